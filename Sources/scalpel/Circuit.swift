import ArgumentParser
import Foundation
import Scalpel

struct CircuitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circuit",
        abstract: "Mean-ablation circuit score (ARENA's IOI code, the study's section 7), with random baselines.",
        discussion: """
        Every head outside the circuit gets its mean over --means at every position; a circuit head keeps \
        its own activation at its listed positions and gets its mean elsewhere. Means are per position \
        (the means and scored prompts must share one token length) or, with --pooled-means, one vector \
        over every position. The score is the metric on --dataset; fraction = score / full model's score. \
        Circuit files: circuits/README.md. The study's runs had no BOS: add --no-bos to reproduce them. \
        --format csv has one row per scored circuit (the circuit, each baseline, each control); --plot \
        draws the baselines' histogram.
        """)

    @Argument(help: "A circuit file (.yaml): heads and the positions where they keep their activation.") var circuit: String
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var bos: BOSOption
    @Option(help: "The scored dataset: a built-in family (see `scalpel datasets`) or a family file.") var dataset: String
    @Option(help: "Only these items of --dataset, 1-based, e.g. 1-10.") var items: String?
    @Option(help: "The dataset the means are taken over (default: --dataset).") var means: String?
    @Option(name: .customLong("means-items"), help: "Only these items of --means, 1-based, e.g. 11-20.") var meansItems: String?
    @Flag(name: .customLong("pooled-means"), help: "One mean over every position of every means prompt (BOS included) instead of one per position.") var pooledMeans = false
    @Option(help: "logit-diff (answer − corrupted answer), logit or prob of the answer.") var metric: CausalMetric = .logitDiff
    @Option(parsing: .unconditional, help: "Random circuits of the same size to score as baselines.") var baselines = 0
    @Option(parsing: .unconditional, help: "Seed of the random baselines.") var seed: UInt64 = 0
    @Option(help: "Other families to score on the same circuit, comma-separated (e.g. ioi); each uses its own prompts as means.") var controls: String?
    @OptionGroup var reporting: ReportOptions
    @Option(name: .customLong("save-model"), help: "Also write the circuit's mean-ablated model to this .h5 archive.") var saveModel: String?
    @Option(name: .customLong("batch-size"), parsing: .unconditional,
            help: "Circuits per packed run (default: as many as fit 4,096 token rows). Shards split the baselines by these batches.")
    var batchSize: Int?
    @OptionGroup var sharding: ShardOption

    func validate() throws {
        try FlagCheck.count(baselines, "--baselines", in: 0...1_000_000)
        if let batchSize { try FlagCheck.count(batchSize, "--batch-size", in: 1...1_000_000) }
        try sharding.requireOutput(reporting.output)
        _ = try items.map { try Self.range($0, flag: "--items") }
        _ = try meansItems.map { try Self.range($0, flag: "--means-items") }
    }

    func run() throws {
        let targets = try reporting.targets((saveModel, .hdf5))
        let circuitValue = try Scalpel.Circuit.load(circuit)
        let (model, plan) = try modelOptions.loadWithPlan()
        let kind: MeanKind = pooledMeans ? .pooled : .perPosition
        let scored = try Self.family(dataset, items: items, flag: "--items")
        let meansFamily = try Self.family(means ?? dataset, items: meansItems, flag: "--means-items")
        let contrast = try ContrastItems(dataset: scored, model: model, prependBOS: bos.prependBOS)
        let meansPrompts = try meansFamily.items.map { try model.encode(prompt: $0.prompt, prependBOS: bos.prependBOS) }
        var scorer = try CircuitScorer(model: model, items: contrast, meansPrompts: meansPrompts, meansName: meansFamily.name,
                                       meanKind: kind, metric: metric)
        if let batchSize { scorer.rowsPerBatch = batchSize * contrast.items.reduce(0) { $0 + $1.length } }
        try scorer.validate(circuitValue)
        // Baselines are drawn before any run, so "too many" fails fast.
        if baselines > 0 {
            _ = try RandomCircuits.draw(like: circuitValue, from: model.circuitHeads, count: baselines, seed: seed)
        }
        var controlScorers: [CircuitScorer] = []
        for name in controls.map({ $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }) ?? [] {
            let family = try DatasetFiles.resolve(name)
            let items = try ContrastItems(dataset: family, model: model, prependBOS: bos.prependBOS)
            let scorer = try CircuitScorer(model: model, items: items, meansPrompts: items.items.map(\.clean), meansName: family.name,
                                           meanKind: kind, metric: metric)
            try scorer.validate(circuitValue)
            controlScorers.append(scorer)
        }
        if circuitValue.isEmpty {
            FileHandle.standardError.write(Data("note: circuit \(circuitValue.name) keeps no head: its score is the all-mean model's (every head replaced by its mean everywhere).\n".utf8))
        }
        sharding.hint(work: (1 + baselines) * contrast.items.count, unit: "scored circuits × items", limit: ShardAdvice.circuitRunsAbove, output: reporting.output)
        let progress = ProgressBar(total: 1 + baselines, label: "circuit")
        let result = try CircuitResult.compute(circuitValue, scorer: scorer, baselines: baselines, seed: seed, shard: sharding.value) { done, total in
            progress.update(done, of: total)
        }
        progress.finish()
        // A sharded run's controls are scored by shard 1 only (docs/cluster.md).
        let controlResults = sharding.value.map { $0.index == 1 } ?? true ? try controlScorers.map { try CircuitResult.compute(circuitValue, scorer: $0) } : []
        try OutputTarget.together {
            if let target = targets[0] {
                try CircuitFile.write(result, prompts: PromptsGroup(items: scored.items, tokens: contrast.items.map(\.clean), tokenText: model.tokenText),
                                      corruptedTokens: contrast.items.map(\.corrupted), controls: controlResults, to: target,
                                      attributes: try provenanceAttributes(model: model, plan: plan), shard: sharding.run(block: scorer.circuitsPerBatch))
            }
            if let target = targets[1] {
                try target.write(Data(CircuitPlot.svg(result, title: "Circuit \(circuitValue.name) · \(model.name)").utf8))
            }
            if let target = targets[2] {
                try ModelArchive.write(try scorer.ablatedModel(circuitValue), plan: plan, to: target, commandLine: CommandLine.arguments.joined(separator: " "))
            }
        }
        if let shard = sharding.value {
            let held = shard.indices(of: 1 + baselines, block: scorer.circuitsPerBatch)
            let own = held.first == 0 ? "the circuit's score and " : "not the circuit's own score (shard 1 has it) but "
            sharding.notePartial(share: own + "\(held.count - (held.first == 0 ? 1 : 0)) of \(baselines) baselines", output: reporting.output)
        }
        switch reporting.format {
        case .json: try Output.json(CircuitJSON(result, controls: controlResults, shard: sharding.value))
        case .csv: try RecordList(records: CircuitRecord.rows(result, controls: controlResults).filter { $0.score.isFinite || sharding.value == nil }).print(.csv)
        case .table:
            printTable(result, items: contrast.items.count, controls: controlResults)
        }
        reporting.sayWritten(saveModel)
    }

    func printTable(_ result: CircuitResult, items count: Int, controls: [CircuitResult]) {
        let c = result.circuit
        print("circuit \(c.name): \(c.size) head\(c.size == 1 ? "" : "s")\(c.isEmpty ? " (none kept: the all-mean model)" : "")")
        if let mlps = c.mlpsText { print("MLPs kept \(mlps); every other MLP output mean-ablated") }
        print("\(result.metric.rawValue) on \(result.dataset) (\(count) item\(count == 1 ? "" : "s")), \(result.meanKind.rawValue) means over \(result.meansDataset)")
        print(String(format: "score     %.4f", result.score))
        print(String(format: "full      %.4f", result.full))
        print(String(format: "fraction  %.4f", result.fraction))
        if var b = result.baselines {
            let all = b.n
            b.values = b.values.filter(\.isFinite)  // a shard's own baselines
            print(String(format: "baselines %d%@ random circuits (seed %llu): mean %.4f, sd %.4f, min %.4f, max %.4f", b.n,
                         b.n == all ? "" : " of \(all)", b.seed, b.mean, b.sd, b.values.min() ?? .nan, b.values.max() ?? .nan))
            if result.score.isFinite {
                let above = b.values.filter { $0 >= result.score }.count
                print("          \(above) of \(b.n) score at least the circuit's")
            }
        }
        for control in controls {
            print(String(format: "control %@: score %.4f, full %.4f, fraction %.4f", control.dataset, control.score, control.full, control.fraction))
        }
    }

    /// A family, or items `a-b` (1-based, inclusive) of it, renamed `NAME[a-b]`.
    static func family(_ name: String, items: String?, flag: String) throws -> PromptDataset {
        let family = try DatasetFiles.resolve(name)
        guard let items else { return family }
        let range = try range(items, flag: flag)
        guard range.upperBound <= family.items.count else {
            throw ValidationError("\(flag) \(items): \(family.name) has \(family.items.count) items (use 1-\(family.items.count) or a part of it).")
        }
        return PromptDataset(name: "\(family.name)[\(items)]", description: family.description, items: Array(family.items[(range.lowerBound - 1)..<range.upperBound]))
    }

    static func range(_ text: String, flag: String) throws -> ClosedRange<Int> {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        guard (1...2).contains(parts.count), parts.allSatisfy({ $0 != nil && $0! >= 1 && $0! <= 1_000_000 }), parts[0]! <= parts.last!! else {
            throw ValidationError("\(flag) \"\(text)\" is not an item or a range a-b of items, counted from 1 (e.g. 1-10).")
        }
        return parts[0]!...parts.last!!
    }
}

/// The JSON of DESIGN.md: `{circuit, metric, score, full, fraction, baselines: {n, seed, mean, sd,
/// values}}`, plus the MLPs it keeps (`mlps`, null when the file has no `mlps:`), the circuit's name and size, the datasets, the means and the controls.
struct CircuitJSON: Encodable {
    struct Baselines: Encodable { let n: Int; let seed: UInt64; let mean: Double; let sd: Double; let values: [Double] }
    struct Control: Encodable { let dataset: String; let score: Double; let full: Double; let fraction: Double }
    let circuit: String, mlps: String?, name: String, size: Int
    let dataset: String, meansDataset: String, means: String, metric: String
    let score: Double, full: Double, fraction: Double
    let baselines: Baselines?
    let controls: [Control]
    /// `K/N` for one shard's part (its own scores only, the others null); absent for a whole run, as in every sweep's JSON.
    let shard: String?

    init(_ result: CircuitResult, controls: [CircuitResult], shard: Shard? = nil) {
        self.shard = shard?.description
        circuit = "{" + result.circuit.headsText + "}"; mlps = result.circuit.mlpsText; name = result.circuit.name; size = result.circuit.size
        dataset = result.dataset; meansDataset = result.meansDataset; means = result.meanKind.rawValue; metric = result.metric.rawValue
        score = result.score; full = result.full; fraction = result.fraction
        baselines = result.baselines.map { Baselines(n: $0.n, seed: $0.seed, mean: $0.mean, sd: $0.sd, values: $0.values) }
        self.controls = controls.map { Control(dataset: $0.dataset, score: $0.score, full: $0.full, fraction: $0.fraction) }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(circuit, forKey: .circuit); try c.encode(mlps, forKey: .mlps); try c.encode(name, forKey: .name); try c.encode(size, forKey: .size)
        try c.encode(dataset, forKey: .dataset); try c.encode(meansDataset, forKey: .meansDataset); try c.encode(means, forKey: .means)
        try c.encode(metric, forKey: .metric); try c.encode(score, forKey: .score); try c.encode(full, forKey: .full)
        try c.encode(fraction, forKey: .fraction)
        if let baselines { try c.encode(baselines, forKey: .baselines) } else { try c.encodeNil(forKey: .baselines) }
        try c.encode(controls, forKey: .controls)
        try c.encodeIfPresent(shard, forKey: .shard)
    }

    enum CodingKeys: String, CodingKey { case circuit, mlps, name, size, dataset, meansDataset, means, metric, score, full, fraction, baselines, controls, shard }
}

/// `--format csv`: one row per scored circuit — the circuit (`role` circuit), each random baseline
/// (`baseline`, numbered from 1, with its heads) and each control (`control`) — with the JSON's
/// scalar keys as columns; `seed` only on baseline rows.
struct CircuitRecord: Record {
    static let columns = ["role", "index", "name", "circuit", "mlps", "size", "dataset", "means_dataset", "means", "metric", "seed",
                          "score", "full", "fraction"]
    let role: String, index: Int?, circuit: Circuit, result: CircuitResult, seed: UInt64?, score: Double

    var fields: [(name: String, value: FieldValue)] {
        [("role", .text(role)), ("index", .int(index)), ("name", .text(circuit.name)), ("circuit", .text("{" + circuit.headsText + "}")),
         ("mlps", .text(circuit.mlpsText)), ("size", .int(circuit.size)), ("dataset", .text(result.dataset)),
         ("means_dataset", .text(result.meansDataset)), ("means", .text(result.meanKind.rawValue)), ("metric", .text(result.metric.rawValue)),
         ("seed", .text(seed.map { String($0) })), ("score", .double(score)), ("full", .double(result.full)), ("fraction", .double(score / result.full))]
    }

    static func rows(_ result: CircuitResult, controls: [CircuitResult]) -> [CircuitRecord] {
        var rows = [CircuitRecord(role: "circuit", index: nil, circuit: result.circuit, result: result, seed: nil, score: result.score)]
        if let baselines = result.baselines {
            for (i, value) in baselines.values.enumerated() {
                let circuit = i < baselines.circuits.count ? baselines.circuits[i] : Circuit(name: "random \(i + 1)", heads: [:])
                rows.append(CircuitRecord(role: "baseline", index: i + 1, circuit: circuit, result: result, seed: baselines.seed, score: value))
            }
        }
        rows += controls.map { CircuitRecord(role: "control", index: nil, circuit: $0.circuit, result: $0, seed: nil, score: $0.score) }
        return rows
    }
}
