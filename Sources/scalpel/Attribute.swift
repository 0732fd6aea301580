import ArgumentParser
import Foundation
import Scalpel

struct Attribute: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Direct logit attribution: how much each component, head, neuron or layer writes toward the answer.",
        discussion: """
        Along W_U[answer] − W_U[corrupted answer] at the last position (or one token's unembedding with \
        --token), each part centred, divided by the final LayerNorm's cached scale (--ln recomputed: its \
        own) and multiplied by ln_final.w, averaged over the items. --by component (decompose_resid \
        labels), head (z · W_O, no b_O), neuron (--layers 9,10), layer (accumulated residual through \
        ln_final recomputed: the logit lens). The total, the model's actual value and the ln_final bias \
        term that separates them are printed side by side. Several groupings separated by commas \
        (--by component,head,neuron) share one forward pass and one output.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions
    @OptionGroup var bos: BOSOption
    @Option(help: "component, head, neuron or layer, or several separated by commas (one forward pass for all).") var by = "component"
    @Option(help: "--by neuron: the layers whose neurons to attribute, e.g. 9,10.") var layers: String?
    @Flag(help: "--by layer: the residual between attention and MLP of each block too.") var mid = false
    @Option(help: "The final LayerNorm's scale: cached (default) or recomputed on each part; --by layer always recomputes.")
    var ln: LogitLens.Normalization?
    @Option(help: "Attribute along this token's unembedding (e.g. \" 5\") instead of answer − corrupted answer.") var token: String?
    @Option(parsing: .unconditional, help: "Entries in the table of the top heads or neurons.") var top = 10
    @OptionGroup var reporting: ReportOptions
    @OptionGroup var sharding: ShardOption

    func validate() throws {
        try FlagCheck.count(top, "--top", in: 1...100_000)
        let groupings = try groupings()
        if layers != nil && !groupings.contains(.neuron) { throw ValidationError("--layers chooses the layers of --by neuron; --by \(by) covers every layer.") }
        if mid && !groupings.contains(.layer) { throw ValidationError("--mid applies to --by layer only.") }
        if reporting.plot != nil && groupings.count > 1 {
            throw ValidationError("--plot draws one grouping; with --by \(by) run once per picture (e.g. --by \(groupings[0].rawValue) --plot FILE.svg).")
        }
        _ = try layers.map(PatchRequest.layers)
        try sharding.requireOutput(reporting.output)
    }

    /// `--by`: one grouping or several separated by commas, each once.
    func groupings() throws -> [AttributionGrouping] {
        let names = by.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var out: [AttributionGrouping] = []
        for name in names {
            guard let grouping = AttributionGrouping(rawValue: name) else {
                throw ValidationError("--by \"\(name)\" is not a grouping. Use component, head, neuron or layer, or several separated by commas (e.g. component,head,neuron).")
            }
            guard !out.contains(grouping) else { throw ValidationError("--by \(by) names \(name) twice; give each grouping once.") }
            out.append(grouping)
        }
        return out
    }

    func run() throws {
        let outputs = try reporting.targets()
        let (outputTarget, plotTarget) = (outputs[0], outputs[1])
        let (model, plan) = try modelOptions.loadWithPlan()
        let dataset = PromptDataset(name: promptOptions.dataset ?? promptOptions.prompts ?? "prompt", description: "", items: try promptOptions.items())
        var attribution = LogitAttribution(by: try groupings(), normalization: ln, layers: try layers.map(PatchRequest.layers))
        attribution.includeMid = mid
        try attribution.validate(model)
        let items = try AttributionItems(dataset: dataset, model: model, token: token, prependBOS: bos.prependBOS)
        sharding.hint(work: items.items.count, unit: "prompts", limit: ShardAdvice.promptsAbove, output: reporting.output)
        // --shard K/N: the batches b with b mod N = K − 1 (a batch's sums are the same bits in any process).
        let batchCount = attribution.batches(items: items.items.count).count
        let mine = sharding.value?.indices(of: items.items.count, block: attribution.batchSize) ?? Array(items.items.indices)
        let progress = ProgressBar(total: 1, label: "attribute")
        let sums = try attribution.sums(model, on: items, only: sharding.value?.indices(of: batchCount)) { done, total in progress.update(done, of: total) }
        progress.finish()
        let results = sums.averaged()
        try OutputTarget.together {
            if let outputTarget {
                let prompts = PromptsGroup(items: mine.map { dataset.items[$0] }, tokens: mine.map { items.items[$0].tokens }, tokenText: model.tokenText)
                try AttributionFile.write(results, prompts: prompts, to: outputTarget, attributes: try provenanceAttributes(model: model, plan: plan),
                                          shard: sharding.run(block: attribution.batchSize), sums: sums, wholeRun: items.items.count)
            }
            if let plotTarget {
                try plotTarget.write(Data(AttributionPlot.svg(results[0], title: "Direct logit attribution by \(results[0].grouping.rawValue) · \(model.name)").utf8))
            }
        }
        sharding.notePartial(share: "\(mine.count) of \(items.items.count) prompts", output: reporting.output)
        switch (reporting.format, results.count) {
        case (.json, 1): try Output.json(AttributionJSON(results[0], model: model.name, top: top, shard: sharding.shard))
        case (.json, _): try Output.json(AttributionsJSON(results, model: model.name, top: top, shard: sharding.shard))
        case (.csv, 1): printCSV(results[0])
        case (.csv, _): printCSV(results)
        case (.table, _):
            for (i, result) in results.enumerated() {
                if i > 0 { print("") }
                printTable(result)
            }
        }
        reporting.sayWritten()
    }

    func printTable(_ result: AttributionResult) {
        let items = "\(result.items) item\(result.items == 1 ? "" : "s")"
        print("direct logit attribution by \(result.grouping.rawValue) along \(result.direction), ln_final scale \(result.normalization.rawValue), over \(items)")
        let everyCell = result.grouping == .component || result.grouping == .layer
        let entries = everyCell ? result.values.indices.compactMap { i in result.values[i].map { (result.labels[i], $0) } }
                                : result.top(top).map { ($0.label, $0.value) }
        if !everyCell { print("top \(entries.count) of \(result.values.compactMap { $0 }.count) by |value|:") }
        let width = max(14, (entries.map(\.0.count).max() ?? 4) + 2)
        func line(_ label: String, _ value: Double, _ note: String = "") {
            print(label.padding(toLength: width, withPad: " ", startingAt: 0) + String(format: "%9.4f", value) + (note.isEmpty ? "" : "   " + note))
        }
        for (label, value) in entries { line(label, value) }
        print("")
        let count = result.values.compactMap { $0 }.count
        line("total", result.total, result.grouping == .layer ? "(the last row: the final residual)" : "(sum of all \(count) values)")
        if result.grouping != .layer { line("ln_final bias", result.lnFinalBias, "(ln_final.b · direction: written by no component)") }
        line("actual", result.actual, result.direction.hasPrefix("token") ? "(the model's logit of the token)" : "(the model's logit difference)")
        line("remainder", result.remainder, "(actual − total\(result.grouping == .layer ? "" : " − bias"))")
        print(result.explanation)
    }

    func printCSV(_ result: AttributionResult) {
        print((result.dims + ["label", "value"]).joined(separator: ","))
        for cell in result.values.indices {
            let index = result.index(of: cell).map(String.init)
            print((index + [Output.csvField(result.labels[cell]), result.values[cell].map { "\($0)" } ?? ""]).joined(separator: ","))
        }
    }

    /// Several groupings: one long table, a `by` column, then every grouping's axes (empty where a
    /// grouping has no such axis), `label`, `value`.
    func printCSV(_ results: [AttributionResult]) {
        var dims: [String] = []
        for result in results { for dim in result.dims where !dims.contains(dim) { dims.append(dim) } }
        print((["by"] + dims + ["label", "value"]).joined(separator: ","))
        for result in results {
            for cell in result.values.indices {
                let index = result.index(of: cell)
                let columns = dims.map { dim in result.dims.firstIndex(of: dim).map { String(index[$0]) } ?? "" }
                print(([result.grouping.rawValue] + columns + [Output.csvField(result.labels[cell]), result.values[cell].map { "\($0)" } ?? ""])
                    .joined(separator: ","))
            }
        }
    }
}

/// The JSON of DESIGN.md: `{dims, labels, values, total, actual}`, with what relates total and
/// actual (`ln_final_bias`, `remainder`, `explanation`), the request, and the top cells.
struct AttributionJSON: Encodable {
    struct Entry: Encodable { let label: String; let index: [Int]; let value: Double }
    let model: String, by: String, ln: String, direction: String, items: Int
    let dims: [String], shape: [Int], axisLabels: [[String]], labels: [String]
    let values: [Double?]
    let total: Double, actual: Double, lnFinalBias: Double, remainder: Double, explanation: String
    let top: [Entry]
    /// "K/N" when the run is one shard of a sweep: the values are over its own prompts only.
    let shard: String?

    init(_ result: AttributionResult, model: String, top count: Int, shard: String? = nil) {
        self.shard = shard
        self.model = model; by = result.grouping.rawValue; ln = result.normalization.rawValue; direction = result.direction
        items = result.items; dims = result.dims; shape = result.shape; axisLabels = result.axisLabels; labels = result.labels
        values = result.values; total = result.total; actual = result.actual; lnFinalBias = result.lnFinalBias
        remainder = result.remainder; explanation = result.explanation
        top = result.top(count).map { Entry(label: $0.label, index: $0.index, value: $0.value) }
    }

    enum CodingKeys: String, CodingKey {
        case model, by, ln, direction, items, dims, shape, labels, values, total, actual, remainder, explanation, top, shard
        case axisLabels = "axis_labels", lnFinalBias = "ln_final_bias"
    }
}

/// Several groupings of one run: `{model, by: [names], attributions: [one grouping's JSON each]}`.
struct AttributionsJSON: Encodable {
    let model: String
    let by: [String]
    let attributions: [AttributionJSON]
    let shard: String?

    init(_ results: [AttributionResult], model: String, top: Int, shard: String?) {
        self.model = model; by = results.map(\.grouping.rawValue); self.shard = shard
        attributions = results.map { AttributionJSON($0, model: model, top: top) }
    }
}
