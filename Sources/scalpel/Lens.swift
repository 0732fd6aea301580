import ArgumentParser
import Foundation
import Scalpel

extension PositionSelection: ExpressibleByArgument {
    /// `last`, `all`, or a comma-separated list such as `0,3,-1`.
    public init?(argument: String) {
        switch argument {
        case "last": self = .last
        case "all": self = .all
        default:
            let values = argument.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else { return nil }
            self = .positions(values.map { $0! })
        }
    }
}

extension LogitLens.Normalization: ExpressibleByArgument {}

struct Lens: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The logit lens: what each layer's residual stream predicts, per prompt and position.",
        discussion: "--plot draws the logit-lens picture.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var bos: BOSOption
    @OptionGroup var promptOptions: PromptOptions
    @Option(help: "Target token (e.g. \" 5\"); a dataset's answers are the default targets.") var target: String?
    @Option(help: "Foil token for the logit difference; a dataset's corrupted answers by default.") var foil: String?
    @Flag(name: .customLong("incl-mid"), help: "Add hook_resid_mid rows.") var includeMid = false
    @Option(help: "recomputed (ln_final on each row) or cached (the final layer's scale).") var ln: LogitLens.Normalization = .recomputed
    @Option(parsing: .unconditional, help: "last, all, or a list such as 0,3,-1.") var positions: PositionSelection = .last
    @Option(name: .customLong("top-k"), parsing: .unconditional, help: "Top tokens per cell.") var topK = 5
    @OptionGroup var reporting: ReportOptions
    @OptionGroup var sharding: ShardOption

    func validate() throws {
        try FlagCheck.count(topK, "--top-k", in: 1...1_000)
        try sharding.requireOutput(reporting.output)
    }

    func run() throws {
        let outputs = try reporting.targets()
        let (outputTarget, plotTarget) = (outputs[0], outputs[1])
        let (model, plan) = try modelOptions.loadWithPlan()
        let allItems = try promptOptions.items()
        sharding.hint(work: allItems.count, unit: "prompts", limit: ShardAdvice.promptsAbove, output: reporting.output)
        // --shard K/N: batches b of prompts with b mod N = K − 1 (the lens's batches: the same bits as one run).
        let block = LogitLens().batchSize
        let items = sharding.value.map { $0.indices(of: allItems.count, block: block).map { allItems[$0] } } ?? allItems
        let targetID = try target.map { try model.answerID($0) }
        let foilID = try foil.map { try model.answerID($0) }
        let inputs = try items.map { item in
            LensInput(text: item.prompt, tokens: try model.encode(prompt: item.prompt, prependBOS: bos.prependBOS),
                      target: try targetID ?? item.answer.map { try model.answerID($0) },
                      foil: try foilID ?? item.corruptedAnswer.map { try model.answerID($0) })
        }
        var lens = LogitLens()
        lens.includeMid = includeMid
        lens.normalization = ln
        lens.positions = positions
        lens.topK = min(topK, model.vocabSize)
        let progress = ProgressBar(total: inputs.count, label: "lens")
        let result = try lens.run(model, prompts: inputs, progress: progress.update)
        progress.finish()
        try OutputTarget.together {
            if let outputTarget {
                try LensFile.write(result, prompts: PromptsGroup(items: items, tokens: inputs.map(\.tokens), tokenText: model.tokenText),
                                   to: outputTarget, attributes: try provenanceAttributes(model: model, plan: plan),
                                   shard: sharding.run(block: block), wholeRun: allItems.count)
            }
            if let plotTarget {
                try plotTarget.write(Data(LensPlot.svg(result, title: "Logit lens · \(model.name)", tokenText: model.tokenText).utf8))
            }
        }
        switch reporting.format {
        case .json: try Output.json(LensDocument(result))
        case .csv: try RecordList(records: LensRecord.all(result)).print(.csv)
        case .table: LensTable.print(result, model: model)
        }
        reporting.sayWritten()
    }
}

/// Terminal output of the lens: a grid of rows (layers) by columns (positions of one prompt, or the
/// last position of each prompt), each cell the top token and its probability; then, with targets,
/// the per-row averages the study reports.
enum LensTable {
    static func print(_ result: LensResult, model: Model) {
        let single = result.prompts.count == 1
        var columns: [(header: String, cell: (Int) -> LensCell)] = []
        if single {
            let prompt = result.prompts[0]
            for (j, position) in prompt.positions.enumerated() {
                columns.append((Output.shown(model.tokenText(prompt.tokens[position])), { prompt.cells[$0][j] }))
            }
        } else {
            for (p, prompt) in result.prompts.prefix(12).enumerated() {
                columns.append(("#\(p + 1)", { prompt.cells[$0].last! }))
            }
        }
        func cellText(_ cell: LensCell) -> String {
            guard let top = cell.top.first else { return "" }
            return Output.shown(top.token) + String(format: " %.2f", top.prob)
        }
        // Columns as wide as their widest cell (at most 24 characters).
        let texts = columns.map { column in result.rows.indices.map { cellText(column.cell($0)) } + [column.header] }
        let width = min(24, (texts.flatMap { $0 }.map(\.count).max() ?? 8) + 2)
        func pad(_ s: String) -> String { s.count >= width ? String(s.prefix(width - 2)) + "… " : s.padding(toLength: width, withPad: " ", startingAt: 0) }
        if !single {
            for (p, prompt) in result.prompts.prefix(12).enumerated() { Swift.print("#\(p + 1)  \(prompt.prompt)") }
            if result.prompts.count > 12 { Swift.print("(grid shows the first 12 of \(result.prompts.count) prompts)") }
            Swift.print("")
        }
        Swift.print(pad("") + columns.map { pad($0.header) }.joined())
        for (r, label) in result.rowLabels.enumerated() {
            let cells = columns.map { pad(cellText($0.cell(r))) }
            Swift.print(pad(label) + cells.joined())
        }
        guard result.prompts.contains(where: { $0.target != nil }) else { return }
        Swift.print("\ntarget at the last position, averaged over \(result.prompts.count) prompt\(single ? "" : "s"):")
        Swift.print(pad("row") + "   prob     rank    top-1   logit diff")
        for (summary, label) in zip(result.summary, result.rowLabels) {
            var line = pad(label)
            line += summary.meanTargetProb.map { String(format: "%7.4f", $0) } ?? "      -"
            line += summary.meanTargetRank.map { String(format: "%9.1f", $0) } ?? "        -"
            line += summary.targetTop1.map { String(format: "%8.0f%%", $0 * 100) } ?? "        -"
            line += summary.meanLogitDiff.map { String(format: "%12.3f", $0) } ?? "           -"
            Swift.print(line)
        }
    }
}

struct Trace: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Capture activations at hook points into an HDF5 activation file, streaming batch by batch.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var bos: BOSOption
    @OptionGroup var promptOptions: PromptOptions
    @Option(help: "Hook names or globs, comma-separated, e.g. \"blocks.*.hook_resid_post,blocks.9.attn.hook_pattern\".") var hooks: String
    @Option(name: .shortAndLong, help: "Output .h5 file (default outputs/traces/trace.h5).") var output: String = "outputs/traces/trace.h5"
    @Flag(help: "Compress with gzip.") var gzip = false
    @Option(parsing: .unconditional, help: "Prompts per forward pass.") var batchSize = 16
    @Flag(help: "Overwrite an existing output file.") var force = false
    @OptionGroup var sharding: ShardOption

    func validate() throws {
        try FlagCheck.count(batchSize, "--batch-size", in: 1...4_096)
    }

    func run() throws {
        let destination = try OutputTarget(output, overwrite: force, content: .hdf5)
        let (model, plan) = try modelOptions.loadWithPlan()
        var trace = ActivationTrace(hooks: try HookFilter(list: hooks), batchSize: batchSize)
        let points = try trace.hooks.resolve(in: model)
        let allItems = try promptOptions.items()
        sharding.hint(work: allItems.count, unit: "prompts", limit: ShardAdvice.promptsAbove, output: output)
        let allPrompts = try allItems.map { try model.encode(prompt: $0.prompt, prependBOS: bos.prependBOS) }
        // --shard K/N: batches b of prompts with b mod N = K − 1, padded to the whole dataset's longest prompt.
        let selected = sharding.value?.indices(of: allItems.count, block: batchSize) ?? Array(allItems.indices)
        let items = selected.map { allItems[$0] }, prompts = selected.map { allPrompts[$0] }
        trace.padLength = allPrompts.map(\.count).max()
        var file = ActivationFile(gzip: gzip ? 4 : nil)
        file.attributes = try provenanceAttributes(model: model, plan: plan)
        file.shard = sharding.run(block: batchSize)
        file.wholeRun = allItems.count
        let progress = ProgressBar(total: prompts.count, label: "trace")
        try file.write(prompts: PromptsGroup(items: items, tokens: prompts, tokenText: model.tokenText), to: destination) { append in
            try trace.run(model, prompts: prompts) { batch in
                try append(batch)
                progress.update(batch.start + batch.count)
            }
        }
        progress.finish()
        print("wrote \(output): \(prompts.count) prompts × \(points.count) hooks")
    }
}
