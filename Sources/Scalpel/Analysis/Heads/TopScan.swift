import Foundation

/// Whether each row's own token and next token are in the top k of a head's OV logits, for every
/// head of one layer (`CopyScores`), without ranking the whole vocabulary when it is not needed.
///
/// For head h and row t, logits = p_t · W_Uᵀ + β · W_Uᵀ with p_t = q_t · A_h, q_t = (sign / σ_t) · v_t
/// and A_h = W̄_O[h] ⊙ w (`CopyScores`). The top k orders logits high to low and equal logits by
/// token id, lower first, and NaN never ranks; so a target token T with logit x is in it exactly
/// when x is a number above −∞ and fewer than k other tokens j have logit > x, or logit = x and j < T.
/// Each target's logit is computed first (in Double, from p_t and W_U[T]); the vocabulary is then
/// scanned in blocks (512 tokens, doubling up to 8192), and each block counts the tokens beating
/// each open target: a target beaten k times is out, a row whose two targets are out leaves the scan.
/// A block's logits for a head come from the cheaper exact route: many open rows, U = A_h · W_U[block]ᵀ
/// once and q_t · U per row (d_head · d_model + d_head per row, per token); few, p_t · W_U[block]ᵀ
/// (d_model per row, per token). Table heads keep every row's full top k over the whole vocabulary
/// (as a running insertion in vocabulary order, so ties keep the lower id) and score from it.
final class TopScan {
    let n: Int, d: Int, dh: Int, nHead: Int, vocab: Int, k: Int
    let rows: [CopyScores.Row]
    let tabled: [Bool]
    let unembed: Tensor, biasLogits: Tensor
    /// Per head: q [n, d_head] and p [n, d_model]; A of every head stacked [heads · d_head, d_model].
    let q: [Tensor], p: [Tensor]
    let a: Tensor
    /// Per (head, row, target) at ((h · n) + t) · 2 + (0 copy | 1 next): the target's logit, how many
    /// tokens beat it so far, and whether it may still be in the top k.
    let targetLogit: UnsafeMutablePointer<Float>, beaten: UnsafeMutablePointer<Int>, open: UnsafeMutablePointer<Bool>
    /// Per table head (its rank among table heads), per row: the top k so far, best first.
    let bestValues: UnsafeMutablePointer<Float>, bestIDs: UnsafeMutablePointer<Int>
    let tableSlot: [Int?]

    /// Tokens in the first block; each next block doubles, up to `largestBlock`.
    let firstBlock: Int
    static let largestBlock = 8192

    init(model: Model, rows: [CopyScores.Row], values: Tensor, wO: [Tensor], sign: Float, k: Int, tabled: [Bool], biasLogits: Tensor,
         firstBlock: Int = 512) {
        self.firstBlock = max(1, firstBlock)
        let n = values.shape[0], d = model.dModel, nHead = wO.count, dh = d / nHead
        self.n = n; self.d = d; self.nHead = nHead; self.dh = dh; vocab = model.vocabSize
        self.k = k; self.rows = rows; self.tabled = tabled; unembed = model.unembed; self.biasLogits = biasLogits
        let eps = model.config.layerNormEpsilon, w = model.lnFinal.weight.pointer
        var a = Tensor(zeros: [nHead * dh, d]), q: [Tensor] = [], p: [Tensor] = []
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
            // q_t = (sign / σ_t) · v_t and p_t = (sign / σ_t) · (v_t · W̄_O) ⊙ w
            var qh = v, ph = Tensor(zeros: [n, d])
            qh.withMutableBuffer { b in
                for i in 0..<n {
                    var sumSquares: Float = 0
                    for c in 0..<d { let value = oc.pointer[i * d + c]; sumSquares += value * value }
                    let scale = sign / (sumSquares / Float(d) + eps).squareRoot()
                    for j in 0..<dh { b[i * dh + j] *= scale }
                    for c in 0..<d { ph.mutablePointer[i * d + c] = oc.pointer[i * d + c] * w[c] * scale }
                }
            }
            q.append(qh); p.append(ph)
            let dst = a.mutablePointer + head * dh * d
            for i in 0..<dh { for c in 0..<d { dst[i * d + c] = centred.pointer[i * d + c] * w[c] } }
        }
        self.a = a; self.q = q; self.p = p
        let states = nHead * n * 2
        targetLogit = .allocate(capacity: states); beaten = .allocate(capacity: states); open = .allocate(capacity: states)
        beaten.initialize(repeating: 0, count: states)
        var slots: [Int?] = [], count = 0
        for t in tabled { slots.append(t ? count : nil); if t { count += 1 } }
        tableSlot = slots
        bestValues = .allocate(capacity: max(1, count * n * k)); bestIDs = .allocate(capacity: max(1, count * n * k))
        bestValues.initialize(repeating: -.infinity, count: max(1, count * n * k))
        bestIDs.initialize(repeating: -1, count: max(1, count * n * k))
        computeTargetLogits()
    }

    deinit {
        targetLogit.deallocate(); beaten.deallocate(); open.deallocate(); bestValues.deallocate(); bestIDs.deallocate()
    }

    func target(_ row: Int, _ which: Int) -> Int { which == 0 ? rows[row].token : rows[row].next }

    /// x = p_t · W_U[T] + β · W_U[T] for both targets of every row of every head (table heads rank
    /// from their top k instead); a NaN or −∞ target is out at once.
    func computeTargetLogits() {
        let u = unembed.pointer, bias = biasLogits.pointer, d = d, n = n
        let (p, targetLogit, open) = (p, targetLogit, open)
        Parallel.ranges(nHead * n, cost: nHead * n * 2 * d) { range in
            for s in range {
                let h = s / n, i = s % n
                for which in 0..<2 {
                    let id = self.target(i, which), row = p[h].pointer + i * d, column = u + id * d
                    var sum = 0.0
                    for c in 0..<d { sum += Double(row[c]) * Double(column[c]) }
                    let x = Float(sum + Double(bias[id]))
                    targetLogit[s * 2 + which] = x
                    open[s * 2 + which] = !self.tabled[h] && x > -.infinity
                }
            }
        }
    }

    func isActive(_ h: Int, _ i: Int) -> Bool { tabled[h] || open[(h * n + i) * 2] || open[(h * n + i) * 2 + 1] }

    /// Scans the vocabulary block by block until every target is decided.
    func run() {
        // Route by cost per token: U costs d_head · d_model once plus d_head per row, the direct route d_model per row.
        let manyRows = dh * d / max(1, d - dh)
        var start = 0, width = firstBlock
        while start < vocab {
            let w = min(width, vocab - start)
            let active = (0..<nHead).map { h in (0..<n).filter { isActive(h, $0) } }
            if active.allSatisfy(\.isEmpty) { break }
            let viaU = (0..<nHead).filter { tabled[$0] || active[$0].count > manyRows }
            let direct = (0..<nHead).filter { !viaU.contains($0) && !active[$0].isEmpty }
            if !viaU.isEmpty { blockViaU(viaU, active: active, start: start, width: w) }
            if !direct.isEmpty { blockDirect(direct, active: active, start: start, width: w) }
            start += w
            width = min(2 * width, Self.largestBlock)
        }
    }

    func blockViaU(_ heads: [Int], active: [[Int]], start: Int, width w: Int) {
        var stacked = Tensor(zeros: [heads.count * dh, d])
        for (slot, h) in heads.enumerated() {
            (stacked.mutablePointer + slot * dh * d).update(from: a.pointer + h * dh * d, count: dh * d)
        }
        var u = Tensor(zeros: [heads.count * dh, w])
        Kernels.matmul(stacked.pointer, unembed.pointer + start * d, bias: nil, into: u.mutablePointer,
                       m: heads.count * dh, k: d, n: w, transposeB: true, path: .sgemm)
        for (slot, h) in heads.enumerated() {
            let rows = active[h]
            var qa = Tensor(zeros: [rows.count, dh])
            for (r, i) in rows.enumerated() { (qa.mutablePointer + r * dh).update(from: q[h].pointer + i * dh, count: dh) }
            var logits = Tensor(zeros: [rows.count, w])
            Kernels.matmul(qa.pointer, u.pointer + slot * dh * w, bias: biasLogits.pointer + start, into: logits.mutablePointer,
                           m: rows.count, k: dh, n: w)
            scan(rows.map { (h, $0) }, logits: logits.pointer, start: start, width: w)
        }
    }

    func blockDirect(_ heads: [Int], active: [[Int]], start: Int, width w: Int) {
        let pairs = heads.flatMap { h in active[h].map { (h, $0) } }
        var pa = Tensor(zeros: [pairs.count, d])
        for (r, (h, i)) in pairs.enumerated() { (pa.mutablePointer + r * d).update(from: p[h].pointer + i * d, count: d) }
        var logits = Tensor(zeros: [pairs.count, w])
        Kernels.matmul(pa.pointer, unembed.pointer + start * d, bias: biasLogits.pointer + start, into: logits.mutablePointer,
                       m: pairs.count, k: d, n: w, transposeB: true)
        scan(pairs, logits: logits.pointer, start: start, width: w)
    }

    /// Updates the state of each (head, row) from its logits over tokens start ..< start + width.
    func scan(_ pairs: [(Int, Int)], logits: UnsafePointer<Float>, start: Int, width: Int) {
        Parallel.ranges(pairs.count, cost: pairs.count * width * 8) { range in
            for r in range {
                let (h, i) = pairs[r], row = logits + r * width
                if let slot = self.tableSlot[h] {
                    self.insert(row, start: start, width: width, values: self.bestValues + (slot * self.n + i) * self.k,
                                ids: self.bestIDs + (slot * self.n + i) * self.k)
                    continue
                }
                for which in 0..<2 {
                    let s = (h * self.n + i) * 2 + which
                    guard self.open[s] else { continue }
                    self.beaten[s] += self.beaters(row, start: start, width: width, target: self.target(i, which),
                                                   logit: self.targetLogit[s], enough: self.k - self.beaten[s])
                    if self.beaten[s] >= self.k { self.open[s] = false }
                }
            }
        }
    }

    /// How many tokens of the block beat `target` (logit > x, or = x with a lower id), stopping
    /// once `enough` are found. The target's own logit in the block never counts.
    func beaters(_ row: UnsafePointer<Float>, start: Int, width: Int, target: Int, logit x: Float, enough: Int) -> Int {
        var count = 0, j = 0
        let threshold = SIMD16<Float>(repeating: x), one = SIMD16<Int32>(repeating: 1), zero = SIMD16<Int32>(repeating: 0)
        func counts(_ jj: Int) -> Bool {
            let id = start + jj, value = row[jj]
            return id != target && (value > x || (value == x && id < target))
        }
        while j + 16 <= width && count < enough {
            let block = UnsafeRawPointer(row + j).loadUnaligned(as: SIMD16<Float>.self)
            let above = block .> threshold, equal = block .== threshold
            let ownHere = (start + j...start + j + 15).contains(target)
            if ownHere || any(equal) {
                for jj in j..<(j + 16) where counts(jj) { count += 1 }
            } else if any(above) {
                count += Int(zero.replacing(with: one, where: above).wrappedSum())
            }
            j += 16
        }
        while j < width && count < enough {
            if counts(j) { count += 1 }
            j += 1
        }
        return count
    }

    /// The running top k of one row, in vocabulary order: a logit enters only above the k-th best,
    /// so equal logits keep the lower id first.
    func insert(_ row: UnsafePointer<Float>, start: Int, width: Int, values vals: UnsafeMutablePointer<Float>, ids idx: UnsafeMutablePointer<Int>) {
        let k = self.k
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

    /// The head's top-k token ids per row, best first (table heads only).
    func table(head h: Int) -> [[Int]]? {
        guard let slot = tableSlot[h] else { return nil }
        return (0..<n).map { i in (0..<k).map { bestIDs[(slot * n + i) * k + $0] } }
    }

    func hits(head h: Int, which: Int) -> Int {
        if let table = table(head: h) { return (0..<n).filter { table[$0].contains(target($0, which)) }.count }
        return (0..<n).filter { open[(h * n + $0) * 2 + which] }.count
    }

    func copyHits(head h: Int) -> Int { hits(head: h, which: 0) }
    func nextHits(head h: Int) -> Int { hits(head: h, which: 1) }
}
