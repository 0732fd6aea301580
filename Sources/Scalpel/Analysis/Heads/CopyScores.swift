import Foundation

/// The study's OV copy score of every head, and its planned "next" score (DESIGN.md "Causal
/// analyses", `scalpel heads --copy-scores`; the study's `get_copy_scores`).
///
/// For every prompt and every position t but the BOS: r = `blocks.0.hook_resid_post`[t]; for head
/// L.H, o = sign · (LN1_L(r) · W_V[h] + b_V[h]) · W_O[h] (block L's ln1 with its weight and bias; no
/// b_O); logits = LN_final(o) · W_Uᵀ. The copy score is the share of positions whose own token is in
/// the top `k`, the next score the share whose following token (the answer, at the last position) is.
/// The top k ranks logits high to low and equal logits by token id, lower first; NaN never ranks.
///
/// Speed (docs/DECISIONS.md "What heads do"): LN_final(o) = (sign / σ_t) · v_t · W̄_O ⊙ w + β, with
/// W̄_O = W_O[h] with each row's mean taken off. A score only asks whether a target token is in the
/// top k, so each row's two target logits are computed first and the vocabulary is then scanned in
/// blocks, counting the tokens that beat each target; a target beaten k times is out and a row with
/// both targets out leaves the scan. Rows whose targets stay in the top k scan the whole vocabulary.
/// A block's logits come by the cheaper of two exact routes: for a head with many rows still open,
/// U_h = (W̄_O ⊙ w) · W_U[block]ᵀ then q_t · U_h (q_t = (sign / σ_t) · v_t), otherwise
/// p_t · W_U[block]ᵀ with p_t = q_t · (W̄_O ⊙ w). Heads whose top-k table is asked for keep the full
/// top k of every row (and score from it).
public struct CopyScores: Sendable {
    public var sign: Float
    public var k: Int
    /// Heads whose top-k tokens at every position are returned (the study's Figure 4 table).
    public var tableHeads: [HeadIndex]
    /// Tokens in the first block of the vocabulary scan (`TopScan`); tests make it small.
    var firstBlock = 512

    public init(sign: Float = 1, k: Int = 5, tableHeads: [HeadIndex] = []) {
        self.sign = sign; self.k = k; self.tableHeads = tableHeads
    }

    /// One scored position.
    public struct Row: Sendable, Equatable {
        public var prompt: Int
        public var pos: Int
        public var token: Int
        /// The following token, or the prompt's answer at its last position.
        public var next: Int
    }

    public struct Result: Sendable {
        public var copy: HeadGrid
        public var next: HeadGrid
        /// How many positions were scored (the denominator of both scores).
        public var positions: Int
        public var rows: [Row]
        /// Per table head, per row, the top-k token ids (best first).
        public var tables: [HeadIndex: [[Int]]]
        public var sign: Float
        public var k: Int
    }

    /// - prompts: token ids; `firstScored` is 1 when they start with a BOS (never scored), else 0.
    /// - answers: per prompt, the token after its last position.
    /// - layers: only these layers' heads are scored (a shard's share); the others stay nil.
    public func run(_ model: Model, prompts: [[Int]], answers: [Int], firstScored: Int, layers: [Int]? = nil,
                    progress: ((Int, Int) -> Void)? = nil) throws -> Result {
        precondition(prompts.count == answers.count, "one answer per prompt")
        for head in tableHeads { try head.check(in: model) }
        if prompts.isEmpty { throw RunError.emptyBatch }
        var rows: [Row] = []
        for (p, tokens) in prompts.enumerated() where tokens.count > firstScored {
            for t in firstScored..<tokens.count {
                rows.append(Row(prompt: p, pos: t, token: tokens[t], next: t + 1 < tokens.count ? tokens[t + 1] : answers[p]))
            }
        }
        guard !rows.isEmpty else { throw HeadsError.noPositions }
        for id in answers where !(0..<model.vocabSize).contains(id) { throw RunError.columnOutOfRange(token: id, vocab: model.vocabSize) }
        let d = model.dModel, n = rows.count
        let run = try model.run(prompts, capture: HookFilter([HookPoint.residPost(0)]), span: RunSpan(stop: .residPost(0)))
        let resid = try run.cache.require(.residPost(0))
        var r = Tensor(zeros: [n, d])
        for (i, row) in rows.enumerated() { (r.mutablePointer + i * d).update(from: resid[row.prompt].pointer + row.pos * d, count: d) }

        // β · W_Uᵀ, the same for every head.
        let biasLogits = model.unembedRows(model.lnFinal.bias.reshaped([1, d]))
        var copy = HeadGrid(model: model), next = HeadGrid(model: model)
        var tables: [HeadIndex: [[Int]]] = [:]
        let selected = Set(layers ?? Array(model.blocks.indices))
        let total = HeadGrid.heads(of: model).filter { selected.contains($0.layer) }.count
        var done = 0
        for (layer, block) in model.blocks.enumerated() where selected.contains(layer) {
            guard let attention = block.attention else { continue }
            var x = Tensor(zeros: [n, d])
            Kernels.layerNorm(r.pointer, weight: attention.ln.weight.pointer, bias: attention.ln.bias.pointer,
                              eps: model.config.layerNormEpsilon, into: x.mutablePointer, scale: nil, rows: n, cols: d)
            // v for every head of the layer at once: LN1(r) · W_V + b_V [n, d], head h in columns h·d_head…
            var values = Tensor(zeros: [n, d])
            let wV = attention.qkvWeight.columns((2 * d)..<(3 * d))
            Kernels.matmul(x.pointer, wV.pointer, bias: attention.qkvBias.pointer + 2 * d, into: values.mutablePointer, m: n, k: d, n: d, path: .sgemm)
            let heads = (0..<attention.nHead).map { HeadIndex(layer: layer, head: $0) }
            let scan = TopScan(model: model, rows: rows, values: values, wO: heads.map { attention.outputWeight(head: $0.head) },
                               sign: sign, k: k, tabled: heads.map { tableHeads.contains($0) }, biasLogits: biasLogits,
                               firstBlock: firstBlock)
            scan.run()
            for (h, index) in heads.enumerated() {
                copy[index] = Double(scan.copyHits(head: h)) / Double(n)
                next[index] = Double(scan.nextHits(head: h)) / Double(n)
                if let table = scan.table(head: h) { tables[index] = table }
                done += 1
                progress?(done, total)
            }
        }
        return Result(copy: copy, next: next, positions: n, rows: rows, tables: tables, sign: sign, k: k)
    }
}
