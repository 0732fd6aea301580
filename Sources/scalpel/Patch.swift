import ArgumentParser
import Foundation
import Scalpel

extension PatchDirection: ExpressibleByArgument {}
extension CausalMetric: ExpressibleByArgument {}

struct Patch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Activation patching: which activations restore the clean answer in the corrupted run.",
        discussion: """
        Targets: resid_pre, resid_mid, resid_post, attn_out, mlp_out (layer × position); z, q, k, v \
        (layer × head, or layer × position × head with --by-pos); pattern (layer × head, or layer × \
        head × destination with --by-pos); mlp_post (layer × neuron, --layers to choose); every-block \
        and every-head (TransformerLens's *_every); or several targets side by side, e.g. v,pattern.
        """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var promptOptions: PromptOptions
    @OptionGroup var bos: BOSOption
    @Option(help: "What to patch (see above).") var target: String
    @Flag(name: .customLong("by-pos"), help: "Heads per position too (pattern: per destination).") var byPosition = false
    @Option(help: "Layers to sweep, e.g. 9,10 (default all).") var layers: String?
    @Option(help: "denoise (clean into corrupted, the default) or noise (corrupted into clean).") var direction: PatchDirection = .denoise
    @Option(help: "logit-diff (answer − corrupted answer), logit or prob of the answer.") var metric: CausalMetric = .logitDiff
    @Option(parsing: .unconditional, help: "Entries in the table of the top results.") var top = 10
    @Flag(help: "One full forward pass per patch, as TransformerLens does (slower; for checking).") var plain = false
    @OptionGroup var reporting: ReportOptions
    @OptionGroup var sharding: ShardOption

    func validate() throws {
        try FlagCheck.count(top, "--top", in: 1...100_000)
        _ = try PatchRequest.targets(target)
        _ = try layers.map(PatchRequest.layers)
        try sharding.requireOutput(reporting.output)
    }

    func run() throws {
        let outputs = try reporting.targets()
        let (outputTarget, plotTarget) = (outputs[0], outputs[1])
        let (model, plan) = try modelOptions.loadWithPlan()
        let dataset = PromptDataset(name: promptOptions.dataset ?? promptOptions.prompts ?? "prompt", description: "", items: try promptOptions.items())
        let items = try ContrastItems(dataset: dataset, model: model, prependBOS: bos.prependBOS)
        let (targets, name) = try PatchRequest.targets(target)
        var sweeps = try targets.map { target -> PatchSweep in
            var sweep = PatchSweep(target: target, byPosition: byPosition, layers: try layers.map(PatchRequest.layers),
                                   direction: direction, metric: metric)
            sweep.strategy = plain ? .plain : .packed
            try sweep.validate(model, items: items)
            return sweep
        }
        try PatchRequest.checkSameGrid(sweeps)
        // --shard K/N: this part's batches (or cells, --plain) of the whole stacked grid.
        let perSweep = sweeps[0].cellCount(model, items: items)
        for t in sweeps.indices {
            sweeps[t].shard = sharding.value
            sweeps[t].shardOffset = t * (plain ? perSweep : sweeps[t].layers?.count ?? model.blocks.count)
        }
        sharding.hint(work: sweeps.count * perSweep * items.items.count, unit: "patched runs of one item (cells × items)",
                      limit: ShardAdvice.patchRunsAbove, output: reporting.output)
        let progress = ProgressBar(total: sweeps.count * (sweeps[0].layers?.count ?? model.blocks.count), label: "patch")
        var results: [PatchResult] = []
        for sweep in sweeps {
            let done = results.count * (sweep.layers?.count ?? model.blocks.count)
            results.append(try sweep.run(model, on: items) { layer, _ in progress.update(done + layer) })
        }
        progress.finish()
        let result = results.count == 1 ? results[0] : PatchResult.stacked(results, name: name)
        let tokens = items.items[0].clean.map(model.tokenText)
        try OutputTarget.together {
            if let outputTarget {
                try PatchFile.write(result, prompts: PromptsGroup(items: dataset.items, tokens: items.items.map { $0.clean }, tokenText: model.tokenText),
                                    corruptedTokens: items.items.map { $0.corrupted }, to: outputTarget,
                                    attributes: try provenanceAttributes(model: model, plan: plan), shard: sharding.run())
            }
            if let plotTarget {
                try plotTarget.write(Data(PatchPlot.svg(result, positionTokens: tokens, title: "Patching · \(model.name)").utf8))
            }
        }
        if !result.isNormalizable {
            FileHandle.standardError.write(Data(("warning: the clean and corrupted \(metric.rawValue) are equal (\(result.clean) and \(result.corrupted)): "
                + "normalised values mean nothing and are left empty; the raw values are reported.\n").utf8))
        }
        sharding.notePartial(share: "\(result.raw.compactMap { $0 }.count) of \(result.raw.count) cells", output: reporting.output)
        switch reporting.format {
        case .json: try Output.json(PatchJSON(result, model: model.name, top: top, shard: sharding.shard))
        case .csv: printCSV(result)
        case .table: printTable(result, items: items.items.count)
        }
        reporting.sayWritten()
    }

    func printTable(_ result: PatchResult, items: Int) {
        print("\(result.target) patching (\(result.direction.rawValue)), \(result.metric.rawValue) over \(items) item\(items == 1 ? "" : "s")")
        print(String(format: "clean %.4f   corrupted %.4f", result.clean, result.corrupted))
        print(result.isNormalizable ? "top \(top) by |normalised effect| (1 = clean restored):" : "top \(top) by |raw − corrupted|:")
        let entries = result.top(top)
        let width = (entries.map(\.label.count).max() ?? 4) + 2
        for entry in entries {
            print(entry.label.padding(toLength: width, withPad: " ", startingAt: 0) + String(format: "%8.4f   raw %.4f", entry.value, entry.raw))
        }
    }

    func printCSV(_ result: PatchResult) {
        print((result.dims + ["label", "value", "raw"]).joined(separator: ","))
        let values = result.values
        for cell in result.raw.indices {
            let index = result.index(of: cell).map(String.init)
            let value = values[cell].map { "\($0)" } ?? "", raw = result.raw[cell].map { "\($0)" } ?? ""
            print((index + [Output.csvField(result.labels[cell]), value, raw]).joined(separator: ","))
        }
    }
}

/// The JSON of DESIGN.md: `{model, target, direction, metric, dims, shape, values, raw, clean,
/// corrupted, top}`, plus `axis_labels`.
struct PatchJSON: Encodable {
    struct Entry: Encodable { let label: String; let index: [Int]; let value: Double; let raw: Double }
    let model: String, target: String, direction: String, metric: String
    let dims: [String], shape: [Int], axisLabels: [[String]]
    let values: [Double?], raw: [Double?]
    let clean: Double, corrupted: Double
    let top: [Entry]
    /// "K/N" when the run is one shard of a sweep: only its own cells have values.
    let shard: String?

    init(_ result: PatchResult, model: String, top count: Int, shard: String? = nil) {
        self.shard = shard
        self.model = model; target = result.target; direction = result.direction.rawValue; metric = result.metric.rawValue
        dims = result.dims; shape = result.shape; axisLabels = result.axisLabels
        values = result.values; raw = result.raw; clean = result.clean; corrupted = result.corrupted
        top = result.top(count).map { Entry(label: $0.label, index: $0.index, value: $0.value, raw: $0.raw) }
    }

    enum CodingKeys: String, CodingKey {
        case model, target, direction, metric, dims, shape, values, raw, clean, corrupted, top, shard
        case axisLabels = "axis_labels"
    }
}

/// Parsing of `--target` and `--layers`.
enum PatchRequest {
    static func targets(_ text: String) throws -> (targets: [PatchTarget], name: String) {
        if let group = PatchGroup(rawValue: text) { return (group.targets, group.rawValue) }
        let names = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        let targets = try names.map { name -> PatchTarget in
            guard let target = PatchTarget(rawValue: name) else {
                let known = PatchTarget.allCases.map(\.rawValue) + PatchGroup.allCases.map(\.rawValue)
                throw ValidationError("--target \"\(name)\" is not a patch target. Use one of \(known.joined(separator: ", ")), or several separated by commas (e.g. v,pattern).")
            }
            return target
        }
        return (targets, names.joined(separator: ","))
    }

    /// More blocks than any model Scalpel could load has.
    static let maxLayer = 10_000

    static func layers(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var layers: [Int] = []
        for part in parts {
            // Layers beyond any GPT-2 are refused here, before a range like 0-10000000000 is built.
            let bounds = part.split(separator: "-", omittingEmptySubsequences: false).compactMap { Int($0) }.filter { (0...maxLayer).contains($0) }
            guard (1...2).contains(bounds.count), bounds.count == part.split(separator: "-", omittingEmptySubsequences: false).count,
                  bounds[0] <= bounds[bounds.count - 1] else {
                throw ValidationError("--layers \"\(text)\": \"\(part)\" is not a layer or a range a-b of layers 0…\(maxLayer). Give e.g. 9,10 or 0-5.")
            }
            layers += Array(bounds[0]...bounds[bounds.count - 1])
            guard layers.count <= maxLayer else { throw ValidationError("--layers \"\(text)\" names more than \(maxLayer) layers.") }
        }
        return layers
    }

    /// Several targets side by side need one grid.
    static func checkSameGrid(_ sweeps: [PatchSweep]) throws {
        let dims = sweeps.map { $0.target.dims(byPosition: $0.byPosition) }
        if let other = dims.firstIndex(where: { $0 != dims[0] }) {
            throw ValidationError("--target \(sweeps[0].target.rawValue) and \(sweeps[other].target.rawValue) have different grids (\(dims[0].joined(separator: " × ")) and \(dims[other].joined(separator: " × "))); patch them in separate runs.")
        }
    }
}
