import Foundation

/// The study's Appendix B as one pipeline (`scalpel classify`): patching finds the heads that
/// matter, detectors and OV scores say what each does, each gets a role, and the heads become a
/// candidate circuit scored by mean ablation against random circuits of its size.
///
/// 1. Patch every head's `hook_z` at all positions (denoising, TransformerLens's
///    `get_act_patch_attn_head_out_all_pos`; `PatchSweep` with target `z`) on the dataset's clean and
///    corrupted pairs; keep the heads whose |normalised effect| reaches a threshold, or the k strongest.
/// 2. Describe each head: previous-token, duplicate-token and induction scores on seeded random
///    repeated tokens (`HeadDetection`, as `heads --random-repeated`); same-family on the dataset's
///    clean prompts; OV copy and next scores on the dataset (`CopyScores`); end attention to the
///    answer's family and the mover score = end attention × copy score (`EndAttention`).
/// 3. Name each kept head's role by `RoleThresholds`.
/// 4. The candidate circuit: the kept heads at their role's positions (`HeadRole.circuitPositions`).
/// 5. Score it with `CircuitScorer` (means over the dataset's clean prompts) against random circuits.
public struct HeadClassifier: Sendable {
    public enum Selection: Sendable, Equatable {
        /// Heads whose |normalised effect| is at least this.
        case threshold(Double)
        /// The k heads of largest |normalised effect|.
        case topK(Int)
    }

    public var selection: Selection
    public var thresholds = RoleThresholds()
    public var metric = CausalMetric.logitDiff
    public var meanKind = MeanKind.perPosition
    /// The random repeated tokens of the detectors: prompts, tokens before the repeat, seed.
    public var repeatedPrompts = 20
    public var repeatLength = 10
    public var detectorSeed: UInt64 = 0
    public var baselines = 0
    public var seed: UInt64 = 0

    public init(selection: Selection) { self.selection = selection }

    public enum Stage: String, Sendable { case patch, describe, score }

    /// Runs every step. `patch`: a head-patching result of the same items to reuse instead of
    /// patching again (checked by `checkReusable`).
    public func run(_ model: Model, items: ContrastItems, prependBOS: Bool, patch: PatchResult? = nil,
                    progress: ((Stage, Int, Int) -> Void)? = nil) throws -> Classification {
        let patchResult = try patch ?? patchHeads(model, items: items) { progress?(.patch, $0, $1) }
        let kept = try select(patchResult, model: model)
        progress?(.describe, 0, 1)
        let grids = try describe(model, items: items, prependBOS: prependBOS)
        progress?(.describe, 1, 1)
        var heads: [ClassifiedHead] = []
        for (index, effect, raw) in kept {
            let evidence = grids.evidence(index)
            let named = thresholds.role(effect: effect, evidence: evidence)
            let source = Circuit.Head(layer: model.blocks[index.layer].source.layer, head: index.head)
            heads.append(ClassifiedHead(head: index, circuitHead: source, effect: effect, raw: raw, role: named.role, like: named.like,
                                        reason: named.evidence, evidence: evidence))
        }
        let circuit = Self.circuit(heads, dataset: items.name, selection: selection)
        guard !circuit.isEmpty else { throw ClassificationError.noPositiveHead(heads: heads.map { ($0.circuitHead.description, $0.effect) }) }
        let scorer = try CircuitScorer(model: model, items: items, meansPrompts: items.items.map(\.clean), meansName: items.name,
                                       meanKind: meanKind, metric: metric)
        let score = try CircuitResult.compute(circuit, scorer: scorer, baselines: baselines, seed: seed) { progress?(.score, $0, $1) }
        return Classification(patch: patchResult, selection: selection, thresholds: thresholds, heads: heads, grids: grids,
                              circuit: circuit, score: score)
    }

    /// Step 1: every head's `z`, all positions, denoising. `shard`: compute only that part of the
    /// sweep (`scalpel classify --shard K/N`; the units of `scalpel patch --target z --shard K/N`, so
    /// the parts' values are the unsharded run's bit for bit); the other heads stay nil.
    public func patchHeads(_ model: Model, items: ContrastItems, shard: Shard? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> PatchResult {
        var sweep = PatchSweep(target: .z, direction: .denoise, metric: metric)
        sweep.shard = shard
        return try sweep.run(model, on: items, progress: progress)
    }

    /// Checks that a patching result read from a file is what step 1 computes here: `z` heads
    /// (layer × head) of as many layers and heads, denoising, the same metric, every head computed,
    /// on the same items' tokens, and (when both are known) the same model files.
    public func checkReusable(_ stored: PatchFile.Stored, model: Model, items: ContrastItems, modelSHA256: String?, path: String) throws {
        let patch = stored.result, grid = HeadGrid(model: model)
        if let modelSHA256, let stored = stored.modelSHA256, !stored.isEmpty, stored != modelSHA256 {
            throw ClassificationError.patchResultOtherModel(path: path)
        }
        guard patch.target == PatchTarget.z.rawValue, patch.dims == HeadGrid.dims, patch.shape == [grid.layers, grid.heads],
              patch.direction == .denoise, patch.metric == metric else {
            let dims = patch.dims.isEmpty ? "\(patch.shape.count) axes" : patch.dims.joined(separator: " × ")
            throw ClassificationError.patchResultMismatch(path: path, found: "target \(patch.target), dims \(dims) \(patch.shape), \(patch.direction.rawValue), \(patch.metric.rawValue)",
                                                          expected: "target z, dims layer × head [\(grid.layers), \(grid.heads)], denoise, \(metric.rawValue)")
        }
        if HeadGrid.heads(of: model).contains(where: { patch.raw[$0.layer * grid.heads + $0.head] == nil }) {
            throw ClassificationError.patchResultIncomplete(path: path)
        }
        let clean = items.items.map(\.clean), corrupted = items.items.map(\.corrupted)
        guard stored.tokens == clean, stored.corruptedTokens == corrupted else {
            let differs = clean.indices.first { i in stored.tokens[safe: i] != clean[i] || stored.corruptedTokens[safe: i] != corrupted[i] }
            throw ClassificationError.patchResultOtherItems(path: path, dataset: items.name, fileItems: stored.tokens.count, items: clean.count,
                                                            firstDifferent: differs.map { $0 + 1 })
        }
    }

    /// The kept heads, by |effect| (largest first): (head, normalised effect, raw metric).
    func select(_ patch: PatchResult, model: Model) throws -> [(HeadIndex, Double, Double)] {
        guard patch.isNormalizable else { throw ClassificationError.notNormalizable(clean: patch.clean, corrupted: patch.corrupted, metric: patch.metric.rawValue) }
        let values = patch.values
        let heads = patch.shape[1]
        var cells: [(HeadIndex, Double, Double)] = []
        for cell in patch.raw.indices {
            guard let value = values[cell], value.isFinite, let raw = patch.raw[cell] else { continue }
            cells.append((HeadIndex(layer: cell / heads, head: cell % heads), value, raw))
        }
        cells.sort { abs($0.1) != abs($1.1) ? abs($0.1) > abs($1.1) : $0.0 < $1.0 }
        switch selection {
        case let .topK(k): return Array(cells.prefix(k))
        case let .threshold(t):
            let kept = cells.filter { abs($0.1) >= t }
            guard !kept.isEmpty else {
                throw ClassificationError.noHeadAboveThreshold(threshold: t, best: cells.first.map { ($0.0.description, $0.1) })
            }
            return kept
        }
    }

    /// Step 2: every score of every head (the grids are drawn by `--html`).
    public func describe(_ model: Model, items: ContrastItems, prependBOS: Bool) throws -> ClassificationGrids {
        // Random repeated tokens fit the model's context: [BOS] r r.
        let length = max(1, min(repeatLength, (model.config.nPositions - (prependBOS ? 1 : 0)) / 2))
        let repeated = HeadDetection.randomRepeatedPrompts(count: repeatedPrompts, length: length, seed: detectorSeed,
                                                           vocabSize: model.vocabSize, bos: prependBOS ? model.bosID : nil)
        let clean = items.items.map(\.clean), answers = items.items.map(\.answer)
        // Detectors on the same prompts share one forward pass; one with nothing to score gives nil.
        func detect(_ detectors: [HeadDetector], on prompts: [[Int]], families: TokenFamilies? = nil) throws -> [HeadGrid?] {
            do { return try HeadDetection(detectors: detectors, families: families).run(model, prompts: prompts) }
            catch HeadsError.nothingToScore {
                return detectors.count == 1 ? [nil] : try detectors.flatMap { try detect([$0], on: prompts, families: families) }
            }
        }
        let onRepeated = try detect([.previousToken, .duplicateToken, .induction], on: repeated)
        let families = TokenFamilies.byText(tokens: clean + [answers], text: model.tokenText)
        let copy = try CopyScores().run(model, prompts: clean, answers: answers, firstScored: prependBOS ? 1 : 0)
        let end = try EndAttention.run(model, prompts: clean, answers: answers, families: families)
        let answerFamilies = Set(answers.compactMap { families.family[$0] }).sorted().map { families.names[$0] }
        return ClassificationGrids(previousToken: onRepeated[0], duplicateToken: onRepeated[1], induction: onRepeated[2],
                                   sameFamily: try detect([.sameFamily], on: clean, families: families)[0],
                                   copy: copy.copy, next: copy.next, endAttention: end, answerFamilies: answerFamilies,
                                   repeated: (repeated.count, length, detectorSeed))
    }

    /// Step 4: the kept heads of positive effect at their role's positions.
    static func circuit(_ heads: [ClassifiedHead], dataset: String, selection: Selection) -> Circuit {
        var kept: [Circuit.Head: AblationPositions] = [:]
        for head in heads { if let positions = head.role.circuitPositions { kept[head.circuitHead] = positions } }
        let how: String
        switch selection {
        case let .threshold(t): how = String(format: "heads with |patch effect| ≥ %g", t)
        case let .topK(k): how = "the \(k) heads of largest |patch effect|"
        }
        let roles = heads.filter { $0.role.circuitPositions != nil }.map { "\($0.circuitHead) \($0.role.rawValue)" }.joined(separator: ", ")
        return Circuit(name: "classify-\(dataset)", heads: kept,
                       description: "scalpel classify on \(dataset): \(how), suppressors left out; \(roles)")
    }
}

/// One kept head: its patching effect, role and the scores behind it.
public struct ClassifiedHead: Sendable {
    /// The head in the model's graph (block index) and by its base-model name (as circuits name it).
    public var head: HeadIndex
    public var circuitHead: Circuit.Head
    /// Normalised patching effect (1 = clean restored) and the patched run's raw metric.
    public var effect: Double
    public var raw: Double
    public var role: HeadRole
    /// For a suppressor: the role its scores alone give.
    public var like: HeadRole?
    /// Which rule named the role, with the numbers.
    public var reason: String
    public var evidence: HeadEvidence
}

/// Every score of every head, as grids (layer × head).
public struct ClassificationGrids: Sendable {
    public var previousToken: HeadGrid?
    public var duplicateToken: HeadGrid?
    public var induction: HeadGrid?
    public var sameFamily: HeadGrid?
    public var copy: HeadGrid
    public var next: HeadGrid
    public var endAttention: HeadGrid
    /// The families of the dataset's answers (by token text: numbers, capitalised, words).
    public var answerFamilies: [String]
    /// The detectors' random repeated tokens: prompts, tokens before the repeat, seed.
    public var repeated: (count: Int, length: Int, seed: UInt64)

    public var mover: HeadGrid {
        var grid = endAttention
        for i in grid.values.indices { grid.values[i] = grid.values[i].flatMap { a in copy.values[i].map { a * $0 } } }
        return grid
    }

    public func evidence(_ head: HeadIndex) -> HeadEvidence {
        HeadEvidence(previousToken: previousToken?[head], duplicateToken: duplicateToken?[head], induction: induction?[head],
                     sameFamily: sameFamily?[head], copy: copy[head], next: next[head], endAttention: endAttention[head])
    }
}

/// What `HeadClassifier.run` found.
public struct Classification: Sendable {
    public var patch: PatchResult
    public var selection: HeadClassifier.Selection
    public var thresholds: RoleThresholds
    /// The kept heads, largest |effect| first.
    public var heads: [ClassifiedHead]
    public var grids: ClassificationGrids
    public var circuit: Circuit
    public var score: CircuitResult

    /// (score − baseline mean) / baseline sd; nil without two baselines or when sd is 0.
    public var zScore: Double? {
        guard let b = score.baselines, b.n > 1, b.sd > 0, b.sd.isFinite else { return nil }
        return (score.score - b.mean) / b.sd
    }

    /// The share of baselines scoring strictly below the circuit (0…1); nil without baselines.
    public var percentile: Double? {
        guard let b = score.baselines, b.n > 0 else { return nil }
        return Double(b.values.filter { $0 < score.score }.count) / Double(b.n)
    }
}

public enum ClassificationError: UserFacingError, Equatable {
    case noHeadAboveThreshold(threshold: Double, best: (String, Double)?)
    case noPositiveHead(heads: [(String, Double)])
    case notNormalizable(clean: Double, corrupted: Double, metric: String)
    case patchResultMismatch(path: String, found: String, expected: String)
    case patchResultIncomplete(path: String)
    case patchResultOtherModel(path: String)
    case patchResultOtherItems(path: String, dataset: String, fileItems: Int, items: Int, firstDifferent: Int?)

    public static func == (a: ClassificationError, b: ClassificationError) -> Bool { a.message == b.message }

    public var message: String {
        switch self {
        case let .noHeadAboveThreshold(threshold, best):
            let strongest = best.map { String(format: "the strongest is head %@ at %.4f", $0.0, $0.1) } ?? "no head has a finite effect"
            return String(format: "No head's |normalised patch effect| reaches --threshold %g (%@), so there is no candidate circuit. ", threshold, strongest)
                + "Lower --threshold, or use --top-k K."
        case let .noPositiveHead(heads):
            let list = heads.map { String(format: "%@ %.4f", $0.0, $0.1) }.joined(separator: ", ")
            return "Every kept head has a negative patch effect (\(list)): suppressors are left out of the candidate circuit, so it would be empty. "
                + "Keep more heads (a lower --threshold or a larger --top-k)."
        case let .notNormalizable(clean, corrupted, metric):
            return "The clean and corrupted \(metric) are equal (\(clean) and \(corrupted)): normalised patch effects mean nothing, so heads cannot be "
                + "ranked. Give a dataset whose corruption changes the answer."
        case let .patchResultMismatch(path, found, expected):
            return "\(path): this patching result cannot be reused by classify: it has \(found); classify needs \(expected). "
                + "Make it with `scalpel patch --target z` on the same dataset and model."
        case let .patchResultIncomplete(path):
            return "\(path): some heads have no value (a shard's partial file?). Give every part of the sharded run: --patch-result PART1.h5 … PARTN.h5."
        case let .patchResultOtherModel(path):
            return "\(path) was computed on another model (its model_sha256 differs from this model's files). Patch again with this --model."
        case let .patchResultOtherItems(path, dataset, fileItems, items, firstDifferent):
            let which = fileItems != items ? "it has \(fileItems) items, \(dataset) has \(items)" : "item \(firstDifferent ?? 1) has other tokens"
            return "\(path) was computed on other prompts than \(dataset) (\(which); BOS and --no-bos count). Give the dataset it was patched on."
        }
    }
}
