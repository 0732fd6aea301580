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
    @Option(name: .customLong("patch-result"), help: "Reuse this `scalpel patch --target z -o` result (possibly merged from shards) instead of patching again.") var patchResult: String?
    @Option(help: "table or json.") var format: SummaryFormat = .table
    @Option(name: .shortAndLong, help: "Also write everything the report shows to this .h5 file.") var output: String?
    @Option(name: .customLong("circuit-out"), help: "Write the candidate circuit to this circuit file (.yaml).") var circuitOut: String?
    @Option(help: "Write a page with the table and the pictures to this .html file.") var html: String?
    @Option(help: "Also draw the baselines' histogram to this .svg file.") var plot: String?
    @Flag(help: "Overwrite existing output files.") var force = false

    func validate() throws {
        if threshold != nil && topK != nil { throw ValidationError("give --threshold X or --top-k K, not both.") }
        if let threshold, !(threshold.isFinite && threshold >= 0 && threshold <= 1_000) {
            throw ValidationError("--threshold must be a number from 0 to 1000 (a |normalised effect|, 1 = clean restored; got \(threshold)).")
        }
        if let topK { try FlagCheck.count(topK, "--top-k", in: 1...100_000) }
        try FlagCheck.count(baselines, "--baselines", in: 0...1_000_000)
    }

    var selection: HeadClassifier.Selection { threshold.map { .threshold($0) } ?? .topK(topK ?? 10) }

    func run() throws {
        let targets = try OutputTarget.files([circuitOut, html, plot, output], overwrite: force)
        let (model, plan) = try modelOptions.loadWithPlan()
        let family = try DatasetFiles.resolve(dataset)
        let items = try ContrastItems(dataset: family, model: model, prependBOS: bos.prependBOS)
        var classifier = HeadClassifier(selection: selection)
        classifier.metric = metric
        classifier.meanKind = pooledMeans ? .pooled : .perPosition
        classifier.baselines = baselines
        classifier.seed = seed
        classifier.detectorSeed = seed
        let reused = try patchResult.map { path -> PatchResult in
            let stored = try PatchFile.read(path)
            let sha = try provenanceAttributes(model: model, plan: nil)["model_sha256"]
            try classifier.checkReusable(stored, model: model, items: items, modelSHA256: sha, path: path)
            return stored.result
        }
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
}

enum ClassifyTable {
    static func f(_ v: Double?) -> String { v.map { $0.isFinite ? String(format: "%.2f", $0) : "n/a" } ?? "-" }

    static func print(_ c: Classification, items: Int, circuitFile: String?) {
        Swift.print("head classification on \(c.score.dataset) (\(items) item\(items == 1 ? "" : "s")), \(c.patch.metric.rawValue): clean \(String(format: "%.4f", c.patch.clean)), corrupted \(String(format: "%.4f", c.patch.corrupted))")
        Swift.print(ClassifyPage.selectionText(c.selection) + ": \(c.heads.count) head\(c.heads.count == 1 ? "" : "s")")
        let header = ["head", "effect", "role", "kept", "prev", "dup", "induct", "family", "copy", "next", "endatt", "mover"]
        let widths = [7, 8, 28, 5, 6, 6, 7, 7, 6, 6, 7, 6]
        func line(_ cells: [String]) -> String {
            zip(cells, widths).map { $0.padding(toLength: max($1, $0.count), withPad: " ", startingAt: 0) }.joined(separator: " ")
        }
        Swift.print(line(header))
        for h in c.heads {
            let e = h.evidence
            let role = h.role.rawValue + (h.like.map { " (\($0.rawValue))" } ?? "")
                + (h.role == .familyDetector ? " (\(c.grids.answerFamilies.joined(separator: "/")))" : "")
            let kept = h.role.circuitPositions.map { $0 == .all ? "all" : "end" } ?? "-"
            Swift.print(line([h.circuitHead.description, String(format: "%.4f", h.effect), role, kept, f(e.previousToken), f(e.duplicateToken),
                              f(e.induction), f(e.sameFamily), f(e.copy), f(e.next), f(e.endAttention), f(e.mover)]))
        }
        Swift.print("why:")
        for h in c.heads { Swift.print("  \(h.circuitHead): \(h.reason)") }
        let s = c.score
        Swift.print("candidate circuit \(c.circuit.name) (\(c.circuit.size) head\(c.circuit.size == 1 ? "" : "s")): {\(c.circuit.headsText)}"
                    + (circuitFile.map { " → \($0)" } ?? ""))
        Swift.print(String(format: "score     %.4f", s.score))
        Swift.print(String(format: "full      %.4f", s.full))
        Swift.print(String(format: "fraction  %.4f", s.fraction))
        if let b = s.baselines {
            Swift.print(String(format: "baselines %d random circuits (seed %llu): mean %.4f, sd %.4f", b.n, b.seed, b.mean, b.sd))
            let z = c.zScore.map { String(format: "z = %.2f", $0) } ?? "z = n/a"
            let above = b.values.filter { $0 < s.score }.count
            Swift.print("          \(z); the circuit scores above \(above) of \(b.n) (percentile \(String(format: "%.0f", (c.percentile ?? 0) * 100)))")
        } else {
            Swift.print("baselines none (--baselines 0)")
        }
    }
}

/// `scalpel classify --format json` (docs/DECISIONS.md, "classify: JSON").
struct ClassifyJSON: Encodable {
    struct Selection: Encodable { let by: String; let value: Double }
    struct Thresholds: Encodable {
        let previousToken, duplicateToken, induction, sameFamily, mover, next, endAttention: Double
        enum CodingKeys: String, CodingKey {
            case previousToken = "previous_token", duplicateToken = "duplicate_token", induction, sameFamily = "same_family", mover, next
            case endAttention = "end_attention"
        }
    }
    struct Head: Encodable {
        let head: String, effect: Double?, raw: Double?, role: String, like: String?, kept: String?
        let previousToken, duplicateToken, induction, sameFamily, copy, next, endAttention, mover: Double?
        let evidence: String
        enum CodingKeys: String, CodingKey {
            case head, effect, raw, role, like, kept
            case previousToken = "previous_token", duplicateToken = "duplicate_token", induction, sameFamily = "same_family", copy, next
            case endAttention = "end_attention", mover, evidence
        }
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(head, forKey: .head)
            for (key, value) in [(CodingKeys.effect, effect), (.raw, raw)] { try c.encode(value, forKey: key) }
            try c.encode(role, forKey: .role); try c.encode(like, forKey: .like); try c.encode(kept, forKey: .kept)
            for (key, value) in [(CodingKeys.previousToken, previousToken), (.duplicateToken, duplicateToken), (.induction, induction),
                                 (.sameFamily, sameFamily), (.copy, copy), (.next, next), (.endAttention, endAttention), (.mover, mover)] {
                try c.encode(value, forKey: key)
            }
            try c.encode(evidence, forKey: .evidence)
        }
    }
    struct Baselines: Encodable { let n: Int; let seed: UInt64; let mean: Double?; let sd: Double?; let values: [Double?] }

    let model: String, dataset: String, items: Int, metric: String
    let selection: Selection
    let clean: Double?, corrupted: Double?
    let thresholds: Thresholds
    let answerFamilies: [String]
    let heads: [Head]
    let circuit: String, circuitName: String, circuitSize: Int, circuitFile: String?
    let means: String
    let score: Double?, full: Double?, fraction: Double?
    let baselines: Baselines?
    let zScore: Double?, percentile: Double?
    let nonFinite: Int

    enum CodingKeys: String, CodingKey {
        case model, dataset, items, metric, selection, clean, corrupted, thresholds
        case answerFamilies = "answer_families", heads, circuit
        case circuitName = "circuit_name", circuitSize = "circuit_size", circuitFile = "circuit_file", means
        case score, full, fraction, baselines
        case zScore = "z_score", percentile
        case nonFinite = "non_finite"
    }

    init(_ c: Classification, model: String, items: Int, circuitFile: String?) {
        var bad = 0
        func finite(_ v: Double?) -> Double? {
            guard let v else { return nil }
            if !v.isFinite { bad += 1; return nil }
            return v
        }
        self.model = model; dataset = c.score.dataset; self.items = items; metric = c.patch.metric.rawValue
        switch c.selection {
        case let .threshold(t): selection = Selection(by: "threshold", value: t)
        case let .topK(k): selection = Selection(by: "top_k", value: Double(k))
        }
        clean = finite(c.patch.clean); corrupted = finite(c.patch.corrupted)
        let t = c.thresholds
        thresholds = Thresholds(previousToken: t.previousToken, duplicateToken: t.duplicateToken, induction: t.induction, sameFamily: t.sameFamily,
                                mover: t.mover, next: t.next, endAttention: t.endAttention)
        answerFamilies = c.grids.answerFamilies
        heads = c.heads.map { h in
            let e = h.evidence
            return Head(head: h.circuitHead.description, effect: finite(h.effect), raw: finite(h.raw), role: h.role.rawValue, like: h.like?.rawValue,
                        kept: h.role.circuitPositions.map { $0 == .all ? "all" : "end" },
                        previousToken: finite(e.previousToken), duplicateToken: finite(e.duplicateToken), induction: finite(e.induction),
                        sameFamily: finite(e.sameFamily), copy: finite(e.copy), next: finite(e.next), endAttention: finite(e.endAttention),
                        mover: finite(e.mover), evidence: h.reason)
        }
        circuit = "{" + c.circuit.headsText + "}"; circuitName = c.circuit.name; circuitSize = c.circuit.size; self.circuitFile = circuitFile
        means = c.score.meanKind.rawValue
        score = finite(c.score.score); full = finite(c.score.full); fraction = finite(c.score.fraction)
        baselines = c.score.baselines.map { b in Baselines(n: b.n, seed: b.seed, mean: finite(b.mean), sd: finite(b.sd), values: b.values.map { finite($0) }) }
        zScore = finite(c.zScore); percentile = finite(c.percentile)
        nonFinite = bad
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(model, forKey: .model); try c.encode(dataset, forKey: .dataset); try c.encode(items, forKey: .items)
        try c.encode(metric, forKey: .metric); try c.encode(selection, forKey: .selection)
        try c.encode(clean, forKey: .clean); try c.encode(corrupted, forKey: .corrupted)
        try c.encode(thresholds, forKey: .thresholds); try c.encode(answerFamilies, forKey: .answerFamilies)
        try c.encode(heads, forKey: .heads)
        try c.encode(circuit, forKey: .circuit); try c.encode(circuitName, forKey: .circuitName); try c.encode(circuitSize, forKey: .circuitSize)
        try c.encode(circuitFile, forKey: .circuitFile); try c.encode(means, forKey: .means)
        try c.encode(score, forKey: .score); try c.encode(full, forKey: .full); try c.encode(fraction, forKey: .fraction)
        try c.encode(baselines, forKey: .baselines)
        try c.encode(zScore, forKey: .zScore); try c.encode(percentile, forKey: .percentile)
        try c.encode(nonFinite, forKey: .nonFinite)
    }
}
