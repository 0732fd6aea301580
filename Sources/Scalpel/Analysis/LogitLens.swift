import Foundation

/// The logit lens (DESIGN.md): each residual-stream row — `blocks.{i}.hook_resid_pre` for every
/// block, then the final residual, plus `hook_resid_mid` rows on request — is normalised by the final
/// LayerNorm and unembedded, at the requested positions only, in one matrix product per batch.
public struct LogitLens {
    public enum Normalization: String, Codable, Sendable, CaseIterable {
        /// ln_final computed on each row itself (tuned-lens, TransformerLens ≥ 2026).
        case recomputed
        /// Centre the row, divide by the final layer's cached scale at that position (older papers).
        case cached
    }

    public var includeMid = false
    public var normalization = Normalization.recomputed
    public var positions = PositionSelection.last
    public var topK = 5
    public var prependBOS = true
    /// Prompts per forward pass; bounds memory for large prompt sets.
    public var batchSize = 16
    /// The most memory the logits of one unembedding product may take; rows beyond it are unembedded
    /// in further chunks (128 MB is 667 rows of GPT-2's vocabulary).
    public var logitsChunkBytes = 128 << 20

    public init() {}

    /// Row hook points for a model: resid_pre of each block (and resid_mid), then the final residual
    /// (`hook_embed` standing for the embedding sum in a model without blocks): the accumulated
    /// residual stream (`ResidualStack`).
    public func rows(for model: Model) -> [HookPoint] {
        ResidualStack.components(stackKind, in: model).map(\.hook)
    }

    var stackKind: ResidualStack.Kind { .accumulated(includeMid: includeMid) }

    /// Short labels of the rows, in the order of `rows(for:)`: "L5 pre", "L5 mid", …, "final". The
    /// number is the layer the block came from, so block 4 of a graph built from `--blocks "0-3,5"`
    /// is "L5"; when the graph mixes blocks of several models the model's name comes first ("other:L3 pre").
    public func rowLabels(for model: Model) -> [String] {
        let mixed = Set(model.blocks.map(\.source.model)).count > 1
        var labels: [String] = []
        for block in model.blocks {
            let layer = (mixed ? "\(block.source.model):" : "") + "L\(block.source.layer)"
            labels.append("\(layer) pre")
            if includeMid { labels.append("\(layer) mid") }
        }
        labels.append("final")
        return labels
    }

    /// Runs the lens on token-id prompts. `targets` / `foils` (per prompt, optional) add the target's
    /// probability, rank and logit, and the logit difference target − foil, to every cell.
    public func run(_ model: Model, prompts: [LensInput], progress: ((Int) -> Void)? = nil) throws -> LensResult {
        let rowPoints = rows(for: model)
        var capture = ResidualStack.hooksToCapture(stackKind, in: model)
        if normalization == .cached { capture.append(.finalScale) }
        var results: [LensPrompt] = []
        for start in stride(from: 0, to: prompts.count, by: batchSize) {
            let batch = Array(prompts[start..<min(start + batchSize, prompts.count)])
            let selected = try batch.enumerated().map { p, input in
                guard let resolved = positions.resolve(length: input.tokens.count) else {
                    throw RunError.positionOutOfRange(index: p, length: input.tokens.count,
                                                      position: positions.firstOutOfRange(length: input.tokens.count) ?? 0)
                }
                return resolved
            }
            // No logits from the run: the lens unembeds its own rows, the final residual among them.
            let run = try model.runSharingFirstTokens(batch.map(\.tokens), capture: HookFilter(capture), logitsAt: .positions([]),
                                                      readingFrom: selected.flatMap { $0 }.min())
            results += try lens(model, batch: batch, run: run, selected: selected, rows: rowPoints)
            progress?(start + batch.count)
        }
        return LensResult(model: model.name, rows: rowPoints.map(\.name), rowLabels: rowLabels(for: model),
                          normalization: normalization, prompts: results)
    }

    /// The lens of a batch at the `selected` positions of each prompt, from the run's captured rows.
    func lens(_ model: Model, batch: [LensInput], run: RunResult, selected: [[Int]], rows: [HookPoint]) throws -> [LensPrompt] {
        let d = model.dModel
        // Gather every (prompt, row, position) vector into one matrix [N, d].
        let total = zip(batch, selected).reduce(0) { $0 + rows.count * $1.1.count }
        // Every prompt's stack [row, position, d] one after another: [N, d].
        var stacked = Tensor(zeros: [total, d])
        var scales: [Float]? = normalization == .cached ? [] : nil
        var n = 0
        for p in batch.indices {
            let stack = try ResidualStack(stackKind, cache: run.cache, prompt: p, positions: selected[p].map { run.capturedRow($0, prompt: p) }, model: model)
            stacked.replaceRows(at: n, with: stack.values)
            n += stack.labels.count * selected[p].count
            if normalization == .cached {
                guard let finalScales = stack.finalScales else { throw ActivationCacheError.notCaptured(HookPoint.finalScale.name) }
                for _ in stack.labels { scales! += finalScales }
            }
        }
        let normalized = model.finalLayerNorm(stacked, cachedScales: scales, addBias: true)
        // Unembed and score the rows a chunk at a time, reusing one logits buffer of at most
        // `logitsChunkBytes`: the logits of a whole batch can take gigabytes (GPT-2, `--positions all`).
        var offsets: [Int] = [], start = 0
        for p in batch.indices { offsets.append(start); start += rows.count * selected[p].count }
        var cells = [LensCell?](repeating: nil, count: total)
        let vocab = model.vocabSize
        let chunks = max(1, (total * vocab * MemoryLayout<Float>.size + logitsChunkBytes - 1) / logitsChunkBytes)
        let chunkRows = (total + chunks - 1) / chunks  // equal chunks: sgemm slows down on a small remainder
        let buffer = FloatStorage(count: min(total, chunkRows) * vocab)  // a failed allocation is reported, not a crash
        let logits = buffer.pointer
        cells.withUnsafeMutableBufferPointer { out in
            let out = out
            for first in stride(from: 0, to: total, by: chunkRows) {
                let count = min(chunkRows, total - first)
                model.unembedRows(normalized.pointer + first * d, count: count, into: logits)
                // Score every row of the chunk, the rows split across cores.
                Parallel.ranges(count, cost: count * vocab * 4) { range in
                    for i in range {
                        let n = first + i, p = offsets.lastIndex { $0 <= n }!
                        let row = UnsafeBufferPointer(start: logits + i * vocab, count: vocab)
                        out[n] = LensCell(logits: row, topK: topK, target: batch[p].target, foil: batch[p].foil, model: model)
                    }
                }
            }
        }
        return batch.indices.map { p in
            let width = selected[p].count
            let grid = rows.indices.map { r in (0..<width).map { cells[offsets[p] + r * width + $0]! } }
            return LensPrompt(prompt: batch[p].text, tokens: batch[p].tokens, positions: selected[p],
                              target: batch[p].target, foil: batch[p].foil, cells: grid)
        }
    }
}

/// One prompt for the lens, with an optional target and foil token.
public struct LensInput: Sendable {
    public var text: String
    public var tokens: [Int]
    public var target: Int?
    public var foil: Int?

    public init(text: String, tokens: [Int], target: Int? = nil, foil: Int? = nil) {
        self.text = text; self.tokens = tokens; self.target = target; self.foil = foil
    }
}

/// What one row says at one position.
public struct LensCell: Codable, Sendable {
    public var top: [TopToken]
    public var target: TokenScore?
    public var logitDiff: Float?

    init(logits: UnsafeBufferPointer<Float>, topK: Int, target: Int?, foil: Int?, model: Model) {
        let row = LogitRow(logits, probabilities: .logSumExp)
        top = row.topTokens(topK, model: model)
        self.target = target.map { row.score($0, model: model) }
        if let target, let foil { logitDiff = row.logitDiff(target, foil: foil) }
    }
}

public struct LensPrompt: Codable, Sendable {
    public var prompt: String
    public var tokens: [Int]
    public var positions: [Int]
    public var target: Int?
    public var foil: Int?
    /// [row][selected position]
    public var cells: [[LensCell]]
}

public struct LensResult: Codable, Sendable {
    public var model: String
    /// The hook name of each row (`blocks.{i}.hook_resid_pre`, `i` the block's place in the graph).
    public var rows: [String]
    /// What tables and pictures call each row, naming the source block (`LogitLens.rowLabels(for:)`).
    public var rowLabels: [String]
    public var normalization: LogitLens.Normalization
    public var prompts: [LensPrompt]

    public init(model: String, rows: [String], rowLabels: [String], normalization: LogitLens.Normalization, prompts: [LensPrompt]) {
        self.model = model; self.rows = rows; self.rowLabels = rowLabels
        self.normalization = normalization; self.prompts = prompts
    }

    /// Per row, averaged over prompts at each prompt's last selected position: the target's
    /// probability and rank, the fraction with the target on top, and the logit difference.
    public struct RowSummary: Codable, Sendable {
        public var row: String
        public var meanTargetProb: Double?
        public var meanTargetRank: Double?
        public var targetTop1: Double?
        public var meanLogitDiff: Double?
    }

    public var summary: [RowSummary] {
        rows.indices.map { r in
            let cells = prompts.compactMap { $0.cells[r].last }
            let targets = cells.compactMap(\.target), diffs = cells.compactMap(\.logitDiff)
            func mean(_ values: [Double]) -> Double? { values.isEmpty ? nil : values.reduce(0, +) / Double(values.count) }
            return RowSummary(row: rows[r], meanTargetProb: mean(targets.map(\.prob)),
                              meanTargetRank: mean(targets.map { Double($0.rank) }),
                              targetTop1: mean(targets.map { $0.rank == 0 ? 1 : 0 }),
                              meanLogitDiff: mean(diffs.map(Double.init)))
        }
    }
}
