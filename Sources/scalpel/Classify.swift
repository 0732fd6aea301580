import ArgumentParser
import Foundation
import Scalpel

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The study's Appendix B: find the heads that matter by patching, name their roles, score them as a circuit.",
        discussion: """
        1. Patch every head's z (all positions, clean into corrupted) and keep the heads whose |normalised \
        effect| is at least --threshold, or the --top-k strongest (default: the top 10, as the study's Table 1).
        2. Describe each: previous-token, duplicate-token and induction scores on seeded random repeated \
        tokens; same-family, OV copy and next scores on the dataset; end attention (from the last position \
        to the prompt's tokens of the answer's family) and mover = end attention × copy.
        3. Roles, first rule that holds (thresholds in docs/DECISIONS.md): patch effect < 0: suppressor; \
        induction ≥ 0.4: induction; previous-token ≥ 0.4: previous-token; duplicate-token ≥ 0.4: \
        duplicate-detector; next ≥ 0.3 and ≥ copy with end attention ≥ 0.3: successor; mover ≥ 0.25: mover; \
        same-family ≥ 0.6: family-detector; else unclassified.
        4. The candidate circuit: detectors, induction and unclassified heads keep all positions, movers \
        and successors [end]; suppressors are left out. 5. Scored by mean ablation (per-position means over \
        the dataset, as `scalpel circuit`) against --baselines random circuits of its size.
        On a cluster, --shard K/N -o PART.h5 computes only part K of step 1; then \
        --patch-result PART1.h5 … PARTN.h5 finishes, equal to one unsharded run (docs/cluster.md).
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "A built-in family (see `scalpel datasets`) or a family file with corrupted prompts and answers.") var dataset: String
    @OptionGroup var bos: BOSOption
    @Option(parsing: .unconditional, help: "Keep the heads whose |normalised patch effect| is at least this.") var threshold: Double?
    @Option(name: .customLong("top-k"), parsing: .unconditional, help: "Keep the K heads of largest |normalised patch effect| (default 10).") var topK: Int?
    @Option(help: "logit-diff (answer − corrupted answer), logit or prob of the answer.") var metric: CausalMetric = .logitDiff
    @Flag(name: .customLong("pooled-means"), help: "Score the circuit with one mean per head over every position instead of one per position.") var pooledMeans = false
    @Option(parsing: .unconditional, help: "Random circuits of the candidate's size to score as baselines.") var baselines = 20
    @Option(parsing: .unconditional, help: "Seed of the random baselines and of the detectors' random repeated tokens.") var seed: UInt64 = 0
    @Option(name: .customLong("patch-result"), parsing: .upToNextOption,
            help: "Reuse this `scalpel patch --target z -o` result instead of patching again, or every part of one sharded run (`classify --shard` or `patch --target z --shard`): --patch-result part1.h5 part2.h5 ….")
    var patchResult: [String] = []
    @Option(help: "table or json.") var format: SummaryFormat = .table
    @Option(name: .shortAndLong, help: "Also write everything the report shows to this .h5 file.") var output: String?
    @Option(name: .customLong("circuit-out"), help: "Write the candidate circuit to this circuit file (.yaml).") var circuitOut: String?
    @Option(help: "Write a page with the table and the pictures to this .html file.") var html: String?
    @Option(help: "Also draw the baselines' histogram to this .svg file.") var plot: String?
    @Flag(help: "Overwrite existing output files.") var force = false
    @OptionGroup var sharding: ShardOption

    func validate() throws {
        try sharding.requireOutput(output)
        if let shard = sharding.shard {
            let finishing = [("--patch-result", !patchResult.isEmpty), ("--circuit-out", circuitOut != nil), ("--html", html != nil), ("--plot", plot != nil)]
            if let (flag, _) = finishing.first(where: { $0.1 }) {
                throw ValidationError("--shard \(shard) computes only part of classify's head patching (written to -o); \(flag) belongs to the run that finishes it: scalpel classify … --patch-result PART1.h5 … PARTN.h5 \(flag) ….")
            }
        }
        if threshold != nil && topK != nil { throw ValidationError("give --threshold X or --top-k K, not both.") }
        if let threshold, !(threshold.isFinite && threshold >= 0 && threshold <= 1_000) {
            throw ValidationError("--threshold must be a number from 0 to 1000 (a |normalised effect|, 1 = clean restored; got \(threshold)).")
        }
        if let topK { try FlagCheck.count(topK, "--top-k", in: 1...100_000) }
        try FlagCheck.count(baselines, "--baselines", in: 0...1_000_000)
    }

    var selection: HeadClassifier.Selection { threshold.map { .threshold($0) } ?? .topK(topK ?? 10) }

    var classifier: HeadClassifier {
        var classifier = HeadClassifier(selection: selection)
        classifier.metric = metric
        classifier.meanKind = pooledMeans ? .pooled : .perPosition
        classifier.baselines = baselines
        classifier.seed = seed
        classifier.detectorSeed = seed
        return classifier
    }

    func run() throws {
        if let shard = sharding.value, let output { return try runPart(shard, output: output) }
        let targets = try OutputTarget.files([(circuitOut, .yaml), (html, .html), (plot, .svg), (output, .hdf5)], overwrite: force)
        let (model, plan) = try modelOptions.loadWithPlan()
        let family = try DatasetFiles.resolve(dataset)
        let items = try ContrastItems(dataset: family, model: model, prependBOS: bos.prependBOS)
        let classifier = self.classifier
        // One patch file, or the parts of a sharded run assembled in memory (their exact values).
        let reused = try patchResult.isEmpty ? nil : { () -> PatchResult in
            let stored = try PatchFile.read(patchResult)
            let sha = try provenanceAttributes(model: model, plan: nil)["model_sha256"]
            try classifier.checkReusable(stored, model: model, items: items, modelSHA256: sha, path: patchResult.joined(separator: ", "))
            return stored.result
        }()
        let progress = ProgressBar(total: model.blocks.count, label: "classify")
        // One bar whose total follows the step: layers patched, then circuits scored.
        let result = try classifier.run(model, items: items, prependBOS: bos.prependBOS, patch: reused) { _, done, total in
            progress.update(done, of: total)
        }
        progress.finish()
        let tokens = items.items[0].clean.map(model.tokenText)
        try OutputTarget.together {
            if let target = targets[0] { try target.write(Data(result.circuit.fileText.utf8)) }
            if let target = targets[1] {
                try target.write(Data(ClassifyPage.html(result, model: model.name, positionTokens: tokens, circuitFile: circuitOut).utf8))
            }
            if let target = targets[2] {
                try target.write(Data(CircuitPlot.svg(result.score, title: "Circuit \(result.circuit.name) · \(model.name)").utf8))
            }
            if let target = targets[3] {
                try ClassifyFile.write(result, prompts: PromptsGroup(items: family.items, tokens: items.items.map(\.clean), tokenText: model.tokenText),
                                       corruptedTokens: items.items.map(\.corrupted), to: target,
                                       attributes: try provenanceAttributes(model: model, plan: plan))
            }
        }
        switch format {
        case .json: try Output.json(ClassifyJSON(result, model: model.name, items: items.items.count, circuitFile: circuitOut))
        case .table: ClassifyTable.print(result, items: items.items.count, circuitFile: circuitOut)
        }
        for path in [circuitOut, html, plot, output].compactMap({ $0 }) { FileHandle.standardError.write(Data("wrote \(path)\n".utf8)) }
    }

    /// `--shard K/N`: step 1's part K of N (the units of `patch --target z --shard K/N`), written as a
    /// patch partial file; the run given every part with --patch-result finishes the pipeline.
    func runPart(_ shard: Shard, output: String) throws {
        let target = try OutputTarget(output, overwrite: force, content: .hdf5)
        let (model, plan) = try modelOptions.loadWithPlan()
        let family = try DatasetFiles.resolve(dataset)
        let items = try ContrastItems(dataset: family, model: model, prependBOS: bos.prependBOS)
        let progress = ProgressBar(total: model.blocks.count, label: "classify \(shard)")
        let result = try classifier.patchHeads(model, items: items, shard: shard) { done, total in progress.update(done, of: total) }
        progress.finish()
        try PatchFile.write(result, prompts: PromptsGroup(items: family.items, tokens: items.items.map(\.clean), tokenText: model.tokenText),
                            corruptedTokens: items.items.map(\.corrupted), to: target,
                            attributes: try provenanceAttributes(model: model, plan: plan), shard: sharding.run())
        let heads = result.raw.compactMap { $0 }.count
        FileHandle.standardError.write(Data(("wrote \(output): part \(shard) of classify's head patching (\(heads) of \(result.raw.count) heads); "
            + "when all \(shard.count) parts are written, finish with: scalpel \(ShardedRun.parameters(CommandLine.arguments)) --patch-result PART1.h5 … PART\(shard.count).h5\n").utf8))
    }
}
