import COpenBLAS
import Foundation

/// Which positions of each prompt are unembedded into logits.
public enum PositionSelection: Sendable, Equatable {
    case last
    case all
    /// Explicit positions; negative values count from the end (-1 is the last).
    case positions([Int])

    /// The selected positions of a prompt of `length` tokens, or nil when one is out of range.
    /// The first listed position that `resolve` cannot place in a prompt of `length` tokens.
    public func firstOutOfRange(length: Int) -> Int? {
        guard case let .positions(list) = self else { return nil }
        return list.first { !(0..<length).contains($0 < 0 ? length + $0 : $0) }
    }

    public func resolve(length: Int) -> [Int]? {
        switch self {
        case .last: return [length - 1]
        case .all: return Array(0..<length)
        case let .positions(list):
            let resolved = list.map { $0 < 0 ? length + $0 : $0 }
            return resolved.allSatisfy { (0..<length).contains($0) } ? resolved : nil
        }
    }
}

/// What a forward pass returns: logits at the selected positions, and the captured activations.
public struct RunResult: Sendable {
    /// Per prompt, [selected positions, vocab].
    public var logits: [Tensor]
    /// Per prompt, the positions `logits` rows belong to.
    public var positions: [[Int]]
    public var cache: ActivationCache
}

public enum RunError: UserFacingError, Equatable {
    case emptyBatch
    case emptyPrompt(index: Int)
    case promptTooLong(index: Int, length: Int, limit: Int)
    case tokenOutOfRange(index: Int, token: Int, vocab: Int)
    case positionOutOfRange(index: Int, length: Int, position: Int)

    public var message: String {
        switch self {
        case .emptyBatch: return "No prompts to run. Give --prompt TEXT, --dataset NAME or a prompt file."
        case let .emptyPrompt(index): return "Prompt \(index + 1) is empty. Give at least one token (or drop --no-bos)."
        case let .promptTooLong(index, length, limit):
            return "Prompt \(index + 1) has \(length) tokens but the model accepts at most \(limit) (n_positions). Shorten it."
        case let .tokenOutOfRange(index, token, vocab):
            return "Prompt \(index + 1) has token id \(token), outside the model's vocabulary of \(vocab). Use the model's own tokenizer."
        case let .positionOutOfRange(index, length, position):
            return "Position \(position) (--positions) is outside prompt \(index + 1), which has \(length) tokens: use 0…\(length - 1), or -\(length)…-1 counted from the end."
        }
    }
}

extension Model {
    /// Runs token-id prompts of any lengths as one batch. Prompts are packed one after another
    /// (no padding), so nothing of one prompt can reach another; attention runs per prompt.
    ///
    /// - capture: hooks whose activations are returned in `cache`.
    /// - interventions: called at each hook their filter matches, per prompt; they may replace the activation.
    /// Capturing never changes a number the run computes; only an intervention does.
    public func run(_ prompts: [[Int]], capture: HookFilter = .none,
                    interventions: [(HookFilter, Intervention)] = [],
                    logitsAt selection: PositionSelection = .last) throws -> RunResult {
        guard !prompts.isEmpty else { throw RunError.emptyBatch }
        var selected: [[Int]] = []
        for (index, prompt) in prompts.enumerated() {
            guard !prompt.isEmpty else { throw RunError.emptyPrompt(index: index) }
            guard prompt.count <= config.nPositions else {
                throw RunError.promptTooLong(index: index, length: prompt.count, limit: config.nPositions)
            }
            if let bad = prompt.first(where: { $0 < 0 || $0 >= vocabSize }) {
                throw RunError.tokenOutOfRange(index: index, token: bad, vocab: vocabSize)
            }
            guard let positions = selection.resolve(length: prompt.count) else {
                throw RunError.positionOutOfRange(index: index, length: prompt.count, position: selection.firstOutOfRange(length: prompt.count) ?? 0)
            }
            selected.append(positions)
        }
        var pass = ForwardPass(model: self, prompts: prompts,
                               hooks: HookRunner(capture: capture, interventions: interventions, prompts: prompts, model: self))
        let logits = pass.run(selected: selected)
        return RunResult(logits: logits, positions: selected, cache: pass.hooks.cache)
    }
}

/// Calls interventions and captures activations at hook points, one prompt slice at a time.
/// The filters are resolved to hook points once, when the runner is made: at each hook the
/// forward pass only asks a set, and a hook nobody asked for costs nothing.
struct HookRunner {
    let capture: Set<HookPoint>
    let interventions: [(points: Set<HookPoint>, body: Intervention)]
    /// Hook points captured or intervened on.
    let active: Set<HookPoint>
    /// Prompt p occupies packed rows offsets[p] ..< offsets[p + 1].
    let offsets: [Int]
    var cache = ActivationCache()

    init(capture: HookFilter, interventions: [(HookFilter, Intervention)], prompts: [[Int]], model: Model) {
        self.capture = Set(capture.points(in: model))
        self.interventions = interventions.map { (Set($0.0.points(in: model)), $0.1) }
        active = self.interventions.reduce(self.capture) { $0.union($1.points) }
        var offsets = [0]
        for prompt in prompts { offsets.append(offsets.last! + prompt.count) }
        self.offsets = offsets
    }

    var promptCount: Int { offsets.count - 1 }

    func isActive(_ point: HookPoint) -> Bool { !active.isEmpty && active.contains(point) }

    func isIntervened(_ point: HookPoint) -> Bool { interventions.contains { $0.points.contains(point) } }

    /// A token-wise hook over packed rows x [tokens, width]; each prompt sees [pos] + `shape`.
    mutating func tokenwise(_ point: HookPoint, _ x: inout Tensor, shape: [Int]) {
        guard isActive(point) else { return }
        let bodies = interventions.filter { $0.points.contains(point) }.map(\.body)
        let captured = capture.contains(point)
        for p in 0..<promptCount {
            let range = offsets[p]..<offsets[p + 1]
            var slice = x.rows(range).reshaped([range.count] + shape)
            for body in bodies { body(point, p, &slice) }
            if !bodies.isEmpty { x.replaceRows(at: range.lowerBound, with: slice) }
            if captured { cache.append(point, slice) }
        }
    }

    /// A hook on one prompt's tensor (attention scores and patterns, [head, query, key]).
    mutating func perPrompt(_ point: HookPoint, prompt p: Int, _ x: inout Tensor) {
        guard isActive(point) else { return }
        for (points, body) in interventions where points.contains(point) { body(point, p, &x) }
        if capture.contains(point) { cache.append(point, x) }
    }
}

/// One forward pass over a packed batch. Kept as a struct so each step reads as the formula it computes.
struct ForwardPass {
    let model: Model
    let prompts: [[Int]]
    var hooks: HookRunner
    let tokens: Int

    init(model: Model, prompts: [[Int]], hooks: HookRunner) {
        self.model = model
        self.prompts = prompts
        self.hooks = hooks
        tokens = prompts.reduce(0) { $0 + $1.count }
    }

    var d: Int { model.dModel }

    mutating func run(selected: [[Int]]) -> [Tensor] {
        var residual = embed()
        for (i, block) in model.blocks.enumerated() {
            hooks.tokenwise(.residPre(i), &residual, shape: [d])
            if let attention = block.attention {
                var out = attend(attention, residual, block: i)
                hooks.tokenwise(.attnOut(i), &out, shape: [d])
                Kernels.add(out.pointer, into: residual.mutablePointer, count: residual.count)
            }
            hooks.tokenwise(.residMid(i), &residual, shape: [d])
            if let mlp = block.mlp {
                var out = feedForward(mlp, residual, block: i)
                hooks.tokenwise(.mlpOut(i), &out, shape: [d])
                Kernels.add(out.pointer, into: residual.mutablePointer, count: residual.count)
            }
            hooks.tokenwise(.residPost(i), &residual, shape: [d])
        }
        return unembed(residual, selected: selected)
    }

    /// x = W_E[token] + W_pos[position].
    mutating func embed() -> Tensor {
        var tokenPart = Tensor(zeros: [tokens, d]), positionPart = Tensor(zeros: [tokens, d])
        let wte = model.embedding.tokens.pointer, wpe = model.embedding.positions.pointer
        tokenPart.withMutableBuffer { te in
            positionPart.withMutableBuffer { pe in
                var row = 0
                for prompt in prompts {
                    for (position, token) in prompt.enumerated() {
                        (te.baseAddress! + row * d).update(from: wte + token * d, count: d)
                        (pe.baseAddress! + row * d).update(from: wpe + position * d, count: d)
                        row += 1
                    }
                }
            }
        }
        hooks.tokenwise(.embed, &tokenPart, shape: [d])
        hooks.tokenwise(.posEmbed, &positionPart, shape: [d])
        Kernels.add(positionPart.pointer, into: tokenPart.mutablePointer, count: tokenPart.count)
        return tokenPart
    }

    /// LayerNorm in steps so `hook_scale` can be read or replaced before it is applied, and
    /// `hook_normalized` ((x − mean) / scale, before the weight and bias, as TransformerLens's
    /// ln_final) before the weight and bias are. Split or not, the arithmetic is the same.
    mutating func layerNorm(_ params: LayerNormParams, _ x: Tensor, scaleHook: HookPoint, normalizedHook: HookPoint) -> Tensor {
        var scale = Tensor(zeros: [tokens, 1])
        Kernels.layerNormScale(x.pointer, eps: model.config.layerNormEpsilon, into: scale.mutablePointer, rows: tokens, cols: d)
        hooks.tokenwise(scaleHook, &scale, shape: [1])
        var y = Tensor(zeros: [tokens, d])
        guard hooks.isActive(normalizedHook) else {
            Kernels.layerNormApply(x.pointer, scale: scale.pointer, weight: params.weight.pointer, bias: params.bias.pointer,
                                   into: y.mutablePointer, rows: tokens, cols: d)
            return y
        }
        Kernels.layerNormApply(x.pointer, scale: scale.pointer, weight: nil, bias: nil, into: y.mutablePointer, rows: tokens, cols: d)
        hooks.tokenwise(normalizedHook, &y, shape: [d])
        Kernels.affine(y.mutablePointer, weight: params.weight.pointer, bias: params.bias.pointer, rows: tokens, cols: d)
        return y
    }

    /// Multi-head causal self-attention; returns the half's output (before it joins the residual).
    mutating func attend(_ attention: AttentionHalf, _ residual: Tensor, block i: Int) -> Tensor {
        let heads = attention.nHead, dHead = d / heads
        let normed = layerNorm(attention.ln, residual, scaleHook: .ln1Scale(i), normalizedHook: .ln1Normalized(i))
        var qkv = Tensor(zeros: [tokens, 3 * d])
        Kernels.matmul(normed.pointer, attention.qkvWeight.pointer, bias: attention.qkvBias.pointer,
                       into: qkv.mutablePointer, m: tokens, k: d, n: 3 * d)
        var q = qkv.columns(0..<d), k = qkv.columns(d..<(2 * d)), v = qkv.columns((2 * d)..<(3 * d))
        hooks.tokenwise(.q(i), &q, shape: [heads, dHead])
        hooks.tokenwise(.k(i), &k, shape: [heads, dHead])
        hooks.tokenwise(.v(i), &v, shape: [heads, dHead])

        var z = Tensor(zeros: [tokens, d])
        for p in 0..<prompts.count {
            let start = hooks.offsets[p], n = prompts[p].count
            // scores[h, i, j] = q[i, h] · k[j, h] / sqrt(d_head), masked to j ≤ i.
            var pattern = Tensor(zeros: [heads, n, n])
            let pp = pattern.mutablePointer
            for h in 0..<heads {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(dHead),
                            1 / Float(dHead).squareRoot(), q.pointer + start * d + h * dHead, Int32(d),
                            k.pointer + start * d + h * dHead, Int32(d), 0, pp + h * n * n, Int32(n))
            }
            for h in 0..<heads { for row in 0..<n { for col in (row + 1)..<max(n, row + 1) { pp[(h * n + row) * n + col] = -.infinity } } }
            hooks.perPrompt(.attnScores(i), prompt: p, &pattern)
            Kernels.softmaxRows(pattern.mutablePointer, rows: heads * n, cols: n, valid: { $0 % n + 1 })
            hooks.perPrompt(.pattern(i), prompt: p, &pattern)
            // z[i, h] = Σ_j pattern[h, i, j] v[j, h]
            for h in 0..<heads {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(dHead), Int32(n), 1,
                            pattern.pointer + h * n * n, Int32(n), v.pointer + start * d + h * dHead, Int32(d),
                            0, z.mutablePointer + start * d + h * dHead, Int32(d))
            }
        }
        attention.headAblations.apply(to: &z, unitWidth: dHead, promptOffsets: hooks.offsets)
        hooks.tokenwise(.z(i), &z, shape: [heads, dHead])
        if hooks.isActive(.result(i)), let edited = headResults(attention, z: z, block: i) { return edited }
        var out = Tensor(zeros: [tokens, d])
        Kernels.matmul(z.pointer, attention.outWeight.pointer, bias: attention.outBias.pointer,
                       into: out.mutablePointer, m: tokens, k: d, n: d)
        return out
    }

    /// Per-head results result[pos, h] = z[pos, h] · W_O[h] (TransformerLens's `hook_result`, without
    /// b_O), computed only when captured or intervened on. When intervened on, their sum over heads
    /// plus b_O is the half's output, which is returned; when only captured, nil: the output stays the
    /// fused product, so capturing changes nothing.
    mutating func headResults(_ attention: AttentionHalf, z: Tensor, block i: Int) -> Tensor? {
        let heads = attention.nHead, dHead = attention.dHead
        var result = Tensor(zeros: [tokens, heads * d])
        let zp = z.pointer, wp = attention.outWeight.pointer, rp = result.mutablePointer
        Parallel.ranges(heads, cost: tokens * d * d) { range in
            for h in range {  // rows h·d_head ..< (h+1)·d_head of W_O are head h's
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(tokens), Int32(d), Int32(dHead), 1,
                            zp + h * dHead, Int32(d), wp + h * dHead * d, Int32(d), 0, rp + h * d, Int32(heads * d))
            }
        }
        hooks.tokenwise(.result(i), &result, shape: [heads, d])
        guard hooks.isIntervened(.result(i)) else { return nil }
        var out = Tensor(zeros: [tokens, d])
        let op = out.mutablePointer, sum = result.pointer, bias = attention.outBias.pointer
        for t in 0..<tokens {
            for h in 0..<heads { for c in 0..<d { op[t * d + c] += sum[(t * heads + h) * d + c] } }
            for c in 0..<d { op[t * d + c] += bias[c] }
        }
        return out
    }

    /// MLP: gelu_new(x W_in + b_in) W_out + b_out, on LayerNorm(x) unless the half has no LayerNorm.
    mutating func feedForward(_ mlp: MLPHalf, _ residual: Tensor, block i: Int) -> Tensor {
        let input = mlp.ln.map { layerNorm($0, residual, scaleHook: .ln2Scale(i), normalizedHook: .ln2Normalized(i)) } ?? residual
        let width = mlp.dMLP
        var hidden = Tensor(zeros: [tokens, width])
        Kernels.matmul(input.pointer, mlp.inWeight.pointer, bias: mlp.inBias.pointer,
                       into: hidden.mutablePointer, m: tokens, k: d, n: width)
        hooks.tokenwise(.mlpPre(i), &hidden, shape: [width])
        Kernels.geluNew(hidden.mutablePointer, count: hidden.count)
        mlp.neuronAblations.apply(to: &hidden, unitWidth: 1, promptOffsets: hooks.offsets)
        hooks.tokenwise(.mlpPost(i), &hidden, shape: [width])
        var out = Tensor(zeros: [tokens, d])
        Kernels.matmul(hidden.pointer, mlp.outWeight.pointer, bias: mlp.outBias.pointer,
                       into: out.mutablePointer, m: tokens, k: width, n: d)
        return out
    }

    /// Final LayerNorm on every position (its hooks see all of them), then W_U on the selected ones only.
    mutating func unembed(_ residual: Tensor, selected: [[Int]]) -> [Tensor] {
        var scale = Tensor(zeros: [tokens, 1])
        Kernels.layerNormScale(residual.pointer, eps: model.config.layerNormEpsilon, into: scale.mutablePointer, rows: tokens, cols: d)
        hooks.tokenwise(.finalScale, &scale, shape: [1])
        var normalized = Tensor(zeros: [tokens, d])
        Kernels.layerNormApply(residual.pointer, scale: scale.pointer, weight: nil, bias: nil,
                               into: normalized.mutablePointer, rows: tokens, cols: d)
        hooks.tokenwise(.finalNormalized, &normalized, shape: [d])
        let rows = zip(hooks.offsets, selected).flatMap { start, positions in positions.map { start + $0 } }
        let picked = normalized.gatherRows(rows)
        let finalRows = model.applyFinalAffine(picked)
        let logits = model.unembedRows(finalRows)
        var result: [Tensor] = [], row = 0
        for positions in selected {
            result.append(logits.rows(row..<(row + positions.count)))
            row += positions.count
        }
        return result
    }
}

extension Model {
    /// ln_final's weight and bias applied to already-normalised rows [n, d].
    func applyFinalAffine(_ normalized: Tensor) -> Tensor {
        var out = normalized
        let w = lnFinal.weight.pointer, b = lnFinal.bias.pointer, d = dModel
        out.withMutableBuffer { buffer in
            for r in 0..<(buffer.count / d) { for c in 0..<d { buffer[r * d + c] = buffer[r * d + c] * w[c] + b[c] } }
        }
        return out
    }

    /// The full final LayerNorm of rows [n, d] (mean and scale computed on each row itself).
    public func finalLayerNorm(_ rows: Tensor) -> Tensor {
        let n = rows.count / dModel
        var out = Tensor(zeros: [n, dModel])
        Kernels.layerNorm(rows.pointer, weight: lnFinal.weight.pointer, bias: lnFinal.bias.pointer,
                          eps: config.layerNormEpsilon, into: out.mutablePointer, scale: nil, rows: n, cols: dModel)
        return out
    }

    /// Logits = rows [n, d] · W_Uᵀ, one matrix product for all rows.
    public func unembedRows(_ rows: Tensor) -> Tensor {
        let n = rows.count / dModel
        var logits = Tensor(zeros: [n, vocabSize])
        unembedRows(rows.pointer, count: n, into: logits.mutablePointer)
        return logits
    }

    /// logits [count, vocab] = rows [count, d] · W_Uᵀ, into a buffer the caller reuses.
    func unembedRows(_ rows: UnsafePointer<Float>, count: Int, into logits: UnsafeMutablePointer<Float>) {
        Kernels.matmul(rows, unembed.pointer, bias: nil, into: logits, m: count, k: dModel, n: vocabSize, transposeB: true)
    }
}
