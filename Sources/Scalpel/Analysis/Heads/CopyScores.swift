import Foundation

/// The study's OV copy score of every head, and its planned "next" score (DESIGN.md "Causal
/// analyses", `scalpel heads --copy-scores`; the study's `get_copy_scores`).
///
/// For every prompt and every position t but the BOS: r = `blocks.0.hook_resid_post`[t]; for head
/// L.H, o = sign · (LN1_L(r) · W_V[h] + b_V[h]) · W_O[h] (block L's ln1 with its weight and bias; no
/// b_O); logits = LN_final(o) · W_Uᵀ. The copy score is the share of positions whose own token is in
/// the top `k`, the next score the share whose following token (the answer, at the last position) is.
///
/// Speed: LN_final(o) = (o − mean o) / σ ⊙ w + β, and o − mean o = sign · v · W̄_O with W̄_O = W_O[h]
/// with each row's mean taken off, so logits = (sign / σ_t) · v_t · U_h + β · W_Uᵀ where
/// U_h = (W̄_O ⊙ w) · W_Uᵀ [d_head, vocab]. Per head that is d_head·d_model·vocab + n·d_head·vocab
/// multiply-adds instead of n·d_model·vocab; the vocabulary is walked in chunks (each core its own),
/// and the top k of each row are kept by partial selection, never sorting a row. U of all the heads
/// of a layer is one product per vocabulary chunk (W_U is packed once per layer, not per head).
public struct CopyScores: Sendable {
    public var sign: Float
    public var k: Int
    /// Heads whose top-k tokens at every position are returned (the study's Figure 4 table).
    public var tableHeads: [HeadIndex]

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
    public func run(_ model: Model, prompts: [[Int]], answers: [Int], firstScored: Int,
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
        let heads = HeadGrid.heads(of: model)
        var done = 0
        for (layer, block) in model.blocks.enumerated() {
            guard let attention = block.attention else { continue }
            let dh = attention.dHead
            var x = Tensor(zeros: [n, d])
            Kernels.layerNorm(r.pointer, weight: attention.ln.weight.pointer, bias: attention.ln.bias.pointer,
                              eps: model.config.layerNormEpsilon, into: x.mutablePointer, scale: nil, rows: n, cols: d)
            // v for every head of the layer at once: LN1(r) · W_V + b_V [n, d], head h in columns h·d_head…
            var values = Tensor(zeros: [n, d])
            let wV = attention.qkvWeight.columns((2 * d)..<(3 * d))
            Kernels.matmul(x.pointer, wV.pointer, bias: attention.qkvBias.pointer + 2 * d, into: values.mutablePointer, m: n, k: d, n: d, path: .sgemm)
            let tops = topTokens(model, values: values, nHead: attention.nHead, wO: (0..<attention.nHead).map { attention.outputWeight(head: $0) },
                                 biasLogits: biasLogits)
            for head in 0..<attention.nHead {
                let index = HeadIndex(layer: layer, head: head)
                let top = tops[head]
                var copyHits = 0, nextHits = 0
                for (i, row) in rows.enumerated() {
                    let ids = top[(i * k)..<((i + 1) * k)]
                    if ids.contains(row.token) { copyHits += 1 }
                    if ids.contains(row.next) { nextHits += 1 }
                }
                copy[index] = Double(copyHits) / Double(n)
                next[index] = Double(nextHits) / Double(n)
                if tableHeads.contains(index) { tables[index] = (0..<n).map { Array(top[($0 * k)..<(($0 + 1) * k)]) } }
                done += 1
                progress?(done, heads.count)
            }
        }
        return Result(copy: copy, next: next, positions: n, rows: rows, tables: tables, sign: sign, k: k)
    }

    /// The top-k token ids of logits = LN_final(sign · v_h · W_O[h]) · W_Uᵀ for every head h of a layer
    /// and every row of v_h (columns h·d_head… of `values` [n, d_model]), per head row-major [n, k],
    /// best first. The vocabulary is walked once per layer: U = (W̄_O[h] ⊙ w)·W_Uᵀ for all heads of the
    /// layer is one product per chunk.
    func topTokens(_ model: Model, values: Tensor, nHead: Int, wO: [Tensor], biasLogits: Tensor) -> [[Int]] {
        let n = values.shape[0], d = model.dModel, vocab = model.vocabSize, dh = d / nHead
        let eps = model.config.layerNormEpsilon
        var a = Tensor(zeros: [nHead * dh, d])   // (W̄_O[h] ⊙ w) stacked over heads
        var qs: [Tensor] = []
        for head in 0..<nHead {
            let v = values.columns((head * dh)..<((head + 1) * dh))
            // W̄_O: each row's mean removed; o − mean(o) = sign · v · W̄_O.
            var centred = wO[head]
            centred.withMutableBuffer { b in
                for i in 0..<dh {
                    var mean: Float = 0
                    for c in 0..<d { mean += b[i * d + c] }
                    mean /= Float(d)
                    for c in 0..<d { b[i * d + c] -= mean }
                }
            }
            var oc = Tensor(zeros: [n, d])
            Kernels.matmul(v.pointer, centred.pointer, bias: nil, into: oc.mutablePointer, m: n, k: dh, n: d)
            // q_t = (sign / σ_t) · v_t
            var q = v
            q.withMutableBuffer { b in
                for i in 0..<n {
                    var sumSquares: Float = 0
                    for c in 0..<d { let value = oc.pointer[i * d + c]; sumSquares += value * value }
                    let scale = sign / (sumSquares / Float(d) + eps).squareRoot()
                    for j in 0..<dh { b[i * dh + j] *= scale }
                }
            }
            qs.append(q)
            let w = model.lnFinal.weight.pointer, dst = a.mutablePointer + head * dh * d
            for i in 0..<dh { for c in 0..<d { dst[i * d + c] = centred.pointer[i * d + c] * w[c] } }
        }

        let chunk = 2048, chunks = (vocab + chunk - 1) / chunk
        let k = self.k, slots = nHead * chunks * n * k
        let bestValues = UnsafeMutablePointer<Float>.allocate(capacity: slots)
        let bestIDs = UnsafeMutablePointer<Int>.allocate(capacity: slots)
        defer { bestValues.deallocate(); bestIDs.deallocate() }
        bestValues.initialize(repeating: -.infinity, count: slots)
        bestIDs.initialize(repeating: -1, count: slots)
        let unembed = model.unembed.pointer, bias = biasLogits.pointer
        Parallel.ranges(chunks, cost: n * d * vocab) { range in
            let u = UnsafeMutablePointer<Float>.allocate(capacity: nHead * dh * chunk)
            let logits = UnsafeMutablePointer<Float>.allocate(capacity: n * chunk)
            defer { u.deallocate(); logits.deallocate() }
            for c in range {
                let start = c * chunk, width = min(chunk, vocab - start)
                // U = A · W_U[start..<start+width]ᵀ [heads·d_head, width], every head of the layer at once
                Kernels.matmul(a.pointer, unembed + start * d, bias: nil, into: u, m: nHead * dh, k: d, n: width, transposeB: true, path: .sgemm)
                for head in 0..<nHead {
                    // logits = Q_h · U_h + β · W_Uᵀ (the GEMM starts from the bias row)
                    Kernels.matmul(qs[head].pointer, u + head * dh * width, bias: bias + start, into: logits, m: n, k: dh, n: width, path: .sgemm)
                    let values = bestValues + (head * chunks + c) * n * k, ids = bestIDs + (head * chunks + c) * n * k
                    for i in 0..<n {
                        let row = logits + i * width, vals = values + i * k, idx = ids + i * k
                        var threshold = vals[k - 1]
                        func consider(_ j: Int) {
                            let value = row[j]
                            guard value > threshold else { return }
                            var slot = k - 1
                            while slot > 0 && vals[slot - 1] < value { vals[slot] = vals[slot - 1]; idx[slot] = idx[slot - 1]; slot -= 1 }
                            vals[slot] = value; idx[slot] = start + j
                            threshold = vals[k - 1]
                        }
                        // Sixteen logits at a time against the current k-th best: most blocks hold none above it.
                        var j = 0
                        while j + 16 <= width {
                            let block = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self)
                            if any(block .> SIMD16<Float>(repeating: threshold)) { for jj in j..<(j + 16) { consider(jj) } }
                            j += 16
                        }
                        while j < width { consider(j); j += 1 }
                    }
                }
            }
        }
        // Merge the chunks' top k (chunks in vocabulary order, so ties keep the lower id first).
        return (0..<nHead).map { head in
            var out = Array(repeating: -1, count: n * k)
            for i in 0..<n {
                var vals = Array(repeating: -Float.infinity, count: k), idx = Array(repeating: -1, count: k)
                for c in 0..<chunks {
                    let base = ((head * chunks + c) * n + i) * k
                    for s in 0..<k {
                        let value = bestValues[base + s], id = bestIDs[base + s]
                        guard id >= 0, value > vals[k - 1] else { continue }
                        var slot = k - 1
                        while slot > 0 && vals[slot - 1] < value { vals[slot] = vals[slot - 1]; idx[slot] = idx[slot - 1]; slot -= 1 }
                        vals[slot] = value; idx[slot] = id
                    }
                }
                for s in 0..<k { out[i * k + s] = idx[s] }
            }
            return out
        }
    }
}
