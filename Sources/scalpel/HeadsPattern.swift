import ArgumentParser
import Foundation
import Scalpel

/// `scalpel heads pattern`: the attention patterns of chosen heads over a prompt or dataset, as
/// pictures (per-head heat maps and the multi-head view of one destination), an interactive HTML
/// viewer, an HDF5 file, and a table or JSON of where each head attends from the destination token.
struct HeadsPattern: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "heads-pattern",
        abstract: "Attention patterns of chosen heads: heat maps, the multi-head view, an HTML viewer.",
        discussion: """
        --heads takes layer.head pairs such as 9.1,6.1. A dataset is averaged position by position, so \
        its items need one number of tokens; the token labels are the first item's. --dest picks the \
        destination token of the table, the JSON's top sources and the multi-head picture (0-based, \
        negative from the end; default the last).
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var bos: BOSOption
    @OptionGroup var promptOptions: PromptOptions
    @Option(help: "Heads as layer.head, comma-separated, e.g. 9.1,6.1.") var heads: String
    @Option(parsing: .unconditional, help: "Destination position (0-based; -1 = last, the default).") var dest: Int?
    @Option(parsing: .unconditional, help: "Source tokens per head in the table and JSON.") var top = 5
    @Option(help: "table or json.") var format: SummaryFormat = .table
    @Option(name: .shortAndLong, help: "Also write the patterns to this .h5 file.") var output: String?
    @Option(help: "Also draw the heat maps and the multi-head view to this .svg file.") var plot: String?
    @Option(help: "Also write the interactive attention viewer to this self-contained .html file.") var html: String?
    @Flag(help: "Overwrite existing output files.") var force = false

    func validate() throws {
        try FlagCheck.count(top, "--top", in: 1...10_000)
        do { _ = try HeadID.list(heads) } catch let error as AttentionPatternError { throw ValidationError(error.message) }
    }

    func run() throws {
        let outputs = try OutputTarget.files([output, plot, html], overwrite: force)
        let (outputTarget, plotTarget, htmlTarget) = (outputs[0], outputs[1], outputs[2])
        let (model, plan) = try modelOptions.loadWithPlan()
        let chosen = try HeadID.list(heads)
        try AttentionPatterns.validate(chosen, in: model)
        let items = try promptOptions.items()
        let prompts = try items.map { try model.encode(prompt: $0.prompt, prependBOS: bos.prependBOS) }
        try AttentionPatterns.validate(prompts: prompts)
        let destination = try AttentionPatterns.destination(dest, length: prompts[0].count)
        let progress = ProgressBar(total: prompts.count, label: "pattern")
        let patterns = try AttentionPatterns.collect(model, prompts: prompts, heads: chosen, progress: progress.update)
        progress.finish()
        let title = "Attention · \(model.name) · heads \(chosen.map(\.description).joined(separator: ", "))"
        try OutputTarget.together {
            if let outputTarget {
                try AttentionFile.write(patterns, destination: destination,
                                        prompts: PromptsGroup(items: items, tokens: prompts, tokenText: model.tokenText),
                                        to: outputTarget, attributes: try provenanceAttributes(model: model, plan: plan))
            }
            if let plotTarget {
                try plotTarget.write(Data(AttentionPlot.svg(patterns, destination: destination, title: title).utf8))
            }
            if let htmlTarget {
                try htmlTarget.write(Data(AttentionViewer.html(patterns, destination: destination, title: title, model: model.name).utf8))
            }
        }
        switch format {
        case .json: try Output.json(HeadsPatternJSON(patterns, destination: destination, model: model.name, top: top))
        case .table: printTable(patterns, destination: destination)
        }
        for path in [output, plot, html].compactMap({ $0 }) { FileHandle.standardError.write(Data("wrote \(path)\n".utf8)) }
    }

    func printTable(_ patterns: AttentionPatterns, destination: Int) {
        let over = patterns.promptCount == 1 ? "" : ", mean over \(patterns.promptCount) prompts"
        print("attention from \(Output.shown(patterns.tokenStrings[destination])) (position \(destination)\(over)); top \(top) source tokens per head:")
        let width = (patterns.heads.map(\.description.count).max() ?? 3) + 3
        for (h, head) in patterns.heads.enumerated() {
            let sources = patterns.topSources(head: h, query: destination, count: top)
            let cells = sources.map { "\(Output.shown(patterns.tokenStrings[$0.position]))@\($0.position) " + String(format: "%.3f", $0.weight) }
            print(head.description.padding(toLength: width, withPad: " ", startingAt: 0) + cells.joined(separator: "   "))
        }
    }
}

/// `{model, heads, prompts, destination, destination_token, tokens, dims, shape, values, top}`:
/// `values` is the [head, query_pos, key_pos] pattern (mean over prompts), row-major; `top` per head
/// the source tokens it attends to most from the destination.
struct HeadsPatternJSON: Encodable {
    struct Source: Encodable { let position: Int; let token: String; let weight: Float }
    struct Head: Encodable { let head: String; let layer: Int; let index: Int; let sources: [Source] }
    let model: String, heads: [String], prompts: Int, destination: Int, destinationToken: String
    let tokens: [String], dims: [String], shape: [Int], values: [Float], top: [Head]

    init(_ patterns: AttentionPatterns, destination: Int, model: String, top count: Int) {
        self.model = model
        heads = patterns.heads.map(\.description)
        prompts = patterns.promptCount
        self.destination = destination
        destinationToken = patterns.tokenStrings[destination]
        tokens = patterns.tokenStrings
        dims = AttentionPatterns.dims
        shape = patterns.shape
        values = patterns.values
        top = patterns.heads.enumerated().map { h, head in
            Head(head: head.description, layer: head.layer, index: head.head,
                 sources: patterns.topSources(head: h, query: destination, count: count).map {
                     Source(position: $0.position, token: patterns.tokenStrings[$0.position], weight: $0.weight)
                 })
        }
    }
}
