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
    /// Per prompt, [selected positions, vocab], or [selected positions, columns.count] when only some
    /// columns were asked for. Empty when the run stopped before the unembedding.
    public var logits: [Tensor]
    /// Per prompt, the positions `logits` rows belong to.
    public var positions: [[Int]]
    /// The token ids the logits' columns are, when only some were asked for; nil means every token.
    public var columns: [Int]?
    public var cache: ActivationCache
    /// Per prompt, its first computed position (0 without a `KeyValuePrefix`): where its captured
    /// token-wise rows, and its attention patterns' query rows, begin.
    public var computedFrom: [Int]

    /// The captured row of prompt `p` at `position`.
    public func capturedRow(_ position: Int, prompt p: Int) -> Int { position - computedFrom[p] }
}

/// Where a run starts, when not at the embedding: block `block`'s input (its `hook_resid_pre`) is
/// given per prompt, [pos, d_model], typically a cached residual (TransformerLens's `start_at_layer`).
/// `block` may be the number of blocks: then only the final LayerNorm and the unembedding run.
public struct ResidualStart: Sendable {
    public var block: Int
    public var residual: [Tensor]

    public init(block: Int, residual: [Tensor]) { self.block = block; self.residual = residual }
}

/// The first positions of each prompt, already computed by an earlier run whose keys and values
/// (`blocks.L.attn.hook_k|hook_v`) `cache` holds. Causal attention makes a position depend only on
/// itself and earlier ones, so when a run changes nothing before position s (activation patching at
/// s), positions 0..<s equal the earlier run's and only s… need computing.
///
/// Or computed by a prompt of the same batch (`sameBatch`): prompts that begin with the same tokens
/// (BOS) take those positions' keys and values from one prompt computed whole in the same run.
///
/// With a prefix, token-wise hooks see the computed rows only ([n − s, …] for positions s..<n),
/// attention scores and patterns [head, n − s, n], and a starting residual gives those rows only.
public struct KeyValuePrefix: Sendable {
    /// Per prompt of the batch, how many of its first positions are taken from `cache` (or from its
    /// source prompt of the batch).
    public var lengths: [Int]
    /// Per prompt of the batch, the prompt of `cache` (or of the batch) whose keys and values they are.
    public var sources: [Int]
    /// The earlier run's activations; nil when the sources are prompts of the same batch.
    public var cache: ActivationCache?

    public init(lengths: [Int], sources: [Int], cache: ActivationCache) {
        self.init(lengths: lengths, sources: sources, cacheOrSameBatch: cache)
    }

    /// Prompt p's first `lengths[p]` positions are those of prompt `sources[p]` of the same batch,
    /// which begins with the same tokens and computes all its positions (its length is 0).
    public static func sameBatch(lengths: [Int], sources: [Int]) -> KeyValuePrefix {
        KeyValuePrefix(lengths: lengths, sources: sources, cacheOrSameBatch: nil)
    }

    private init(lengths: [Int], sources: [Int], cacheOrSameBatch cache: ActivationCache?) {
        self.lengths = lengths; self.sources = sources; self.cache = cache
    }
}

/// How much of the forward pass a run computes, and which logits it returns.
public struct RunSpan: Sendable {
    /// Start at a block from a given residual stream; nil starts at the embedding.
    public var start: ResidualStart?
    /// End right after this hook point fires: no logits are computed, and no later hook fires.
    public var stop: HookPoint?
    /// Only these token ids' logits (the answer and foil columns of a metric); nil for all.
    public var columns: [Int]?
    /// Positions an earlier run computed and that this one would compute identically: only the
    /// positions after them are computed, attending to the earlier run's keys and values.
    public var prefix: KeyValuePrefix?
    /// Per graph block, per prompt of the batch: heads whose `hook_z` an intervention of the run
    /// replaces at every position the run computes (a circuit's mean-ablated heads). Their queries,
    /// keys, values and patterns are not computed there, and their z reaches `hook_z` as NaN, so an
    /// intervention that fails to replace it shows; where consecutive prompts replace the same heads
    /// with the same values at each position, that part of the output projection is computed once per
    /// position. A block whose q, k, v, scores, pattern or per-head results some hook reads computes
    /// every head.
    public var replacedHeads: [Int: [Set<Int>]]

    public init(start: ResidualStart? = nil, stop: HookPoint? = nil, columns: [Int]? = nil, prefix: KeyValuePrefix? = nil,
                replacedHeads: [Int: [Set<Int>]] = [:]) {
        self.start = start; self.stop = stop; self.columns = columns; self.prefix = prefix; self.replacedHeads = replacedHeads
    }

    public static let full = RunSpan()
}

public enum RunError: UserFacingError, Equatable {
    case emptyBatch
    case emptyPrompt(index: Int)
    case promptTooLong(index: Int, length: Int, limit: Int)
    case tokenOutOfRange(index: Int, token: Int, vocab: Int)
    case positionOutOfRange(index: Int, length: Int, position: Int)
    case startOutOfRange(block: Int, blocks: Int)
    case startResidualMismatch(index: Int, expected: [Int], got: [Int])
    case stopNotInModel(hook: String)
    case stopBeforeStart(hook: String, start: Int)
    case columnOutOfRange(token: Int, vocab: Int)
    case prefixMismatch(reason: String)
    case replacedHeadsMismatch(block: Int, lists: Int, prompts: Int)

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
        case let .startOutOfRange(block, blocks):
            return "A run cannot start at block \(block): the model has \(blocks) blocks (start at 0…\(blocks))."
        case let .startResidualMismatch(index, expected, got):
            return "The starting residual of prompt \(index + 1) has shape \(got); the prompt needs \(expected) ([pos, d_model])."
        case let .stopNotInModel(hook):
            return "A run cannot stop at \(hook): that hook point does not fire in this model."
        case let .stopBeforeStart(hook, start):
            return "A run starting at block \(start) cannot stop at \(hook), which fires before it."
        case let .columnOutOfRange(token, vocab):
            return "Token id \(token) is outside the model's vocabulary of \(vocab)."
        case let .prefixMismatch(reason):
            return "The cached keys and values do not fit this run: \(reason)."
        case let .replacedHeadsMismatch(block, lists, prompts):
            return "The replaced heads of block \(block) are given for \(lists) prompts, but the run has \(prompts)."
        }
    }
}

extension Model {
    /// Runs token-id prompts of any lengths as one batch. Prompts are packed one after another
    /// (no padding), so nothing of one prompt can reach another; attention runs per prompt.
    ///
    /// - capture: hooks whose activations are returned in `cache`.
    /// - interventions: called at each hook their filter matches, per prompt; they may replace the activation.
    /// - span: where the run starts and stops, and which logit columns it computes (all of it by default).
    /// Capturing never changes a number the run computes; only an intervention does. A run started
    /// at block L from the residual a full run cached at `blocks.L.hook_resid_pre` computes the same
    /// numbers, bit for bit, as the full run from there on.
    public func run(_ prompts: [[Int]], capture: HookFilter = .none,
                    interventions: [(HookFilter, Intervention)] = [],
                    logitsAt selection: PositionSelection = .last, span: RunSpan = .full) throws -> RunResult {
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
        try checkAblations(promptLengths: prompts.map(\.count))
        let computedFrom = try checkPrefix(span, prompts: prompts, selected: selected)
        let startResidual = try checkSpan(span, prompts: prompts, computedFrom: computedFrom)
        for (block, lists) in span.replacedHeads where lists.count != prompts.count {
            throw RunError.replacedHeadsMismatch(block: block, lists: lists.count, prompts: prompts.count)
        }
        let rows = zip(prompts, computedFrom).map { $0.count - $1 }
        var pass = ForwardPass(model: self, prompts: prompts, computedFrom: computedFrom, prefix: span.prefix,
                               replacedHeads: span.replacedHeads,
                               hooks: HookRunner(capture: capture, interventions: interventions, stop: span.stop,
                                                 rows: rows, model: self))
        let logits = pass.run(selected: selected, from: span.start?.block ?? 0, residual: startResidual, columns: span.columns)
        return RunResult(logits: logits ?? [], positions: selected, columns: span.columns, cache: pass.hooks.cache, computedFrom: computedFrom)
    }

    /// Checks a span against the model and the prompts; returns the starting residual packed [tokens, d_model].
    /// Checks a prefix against the prompts, the positions asked and the cache; returns per prompt the
    /// first position computed (0 without a prefix).
    private func checkPrefix(_ span: RunSpan, prompts: [[Int]], selected: [[Int]]) throws -> [Int] {
        guard let prefix = span.prefix else { return prompts.map { _ in 0 } }
        guard prefix.lengths.count == prompts.count, prefix.sources.count == prompts.count else {
            throw RunError.prefixMismatch(reason: "\(prefix.lengths.count) lengths and \(prefix.sources.count) sources for \(prompts.count) prompts")
        }
        let first = span.start?.block ?? 0
        for (p, length) in prefix.lengths.enumerated() {
            guard (0..<prompts[p].count).contains(length) else {
                throw RunError.prefixMismatch(reason: "prompt \(p + 1) has \(prompts[p].count) tokens; a prefix of \(length) leaves none to compute")
            }
            if let early = selected[p].first(where: { $0 < length }) {
                throw RunError.prefixMismatch(reason: "position \(early) of prompt \(p + 1) is in the prefix; logits come from computed positions only")
            }
            guard let cache = prefix.cache else {
                let source = prefix.sources[p]
                guard length == 0 || (prompts.indices.contains(source) && prefix.lengths[source] == 0
                                      && prompts[source].prefix(length).elementsEqual(prompts[p].prefix(length))) else {
                    throw RunError.prefixMismatch(reason: "the first \(length) tokens of prompt \(p + 1) are not those of prompt \(source + 1) of the batch, computed whole")
                }
                continue
            }
            for (i, block) in blocks.enumerated() where i >= first && block.attention != nil {
                for point in [HookPoint.k(i), .v(i)] {
                    let all = cache[point] ?? []
                    guard all.indices.contains(prefix.sources[p]), all[prefix.sources[p]].shape[0] >= length else {
                        throw RunError.prefixMismatch(reason: "\(point.name) of cached prompt \(prefix.sources[p] + 1) is missing or shorter than \(length)")
                    }
                }
            }
        }
        return prefix.lengths
    }

    private func checkSpan(_ span: RunSpan, prompts: [[Int]], computedFrom: [Int]) throws -> Tensor? {
        if let bad = span.columns?.first(where: { $0 < 0 || $0 >= vocabSize }) {
            throw RunError.columnOutOfRange(token: bad, vocab: vocabSize)
        }
        if let stop = span.stop {
            guard stop.exists(in: self) else { throw RunError.stopNotInModel(hook: stop.name) }
            if let start = span.start?.block, stop.fires(before: start, blocks: blocks.count) {
                throw RunError.stopBeforeStart(hook: stop.name, start: start)
            }
        }
        guard let start = span.start else { return nil }
        guard (0...blocks.count).contains(start.block) else { throw RunError.startOutOfRange(block: start.block, blocks: blocks.count) }
        guard start.residual.count == prompts.count else {
            throw RunError.startResidualMismatch(index: min(start.residual.count, prompts.count), expected: [prompts.count], got: [start.residual.count])
        }
        for (index, (prompt, residual)) in zip(prompts, start.residual).enumerated() where residual.shape != [prompt.count - computedFrom[index], dModel] {
            throw RunError.startResidualMismatch(index: index, expected: [prompt.count - computedFrom[index], dModel], got: residual.shape)
        }
        return Tensor.concatenatingRows(start.residual, width: dModel)
    }
}

extension HookPoint {
    /// Whether this hook fires before block `start`'s input: the embedding hooks, and every hook of
    /// an earlier block. (`blocks.L.hook_resid_pre` itself fires in a run started at block L.)
    func fires(before start: Int, blocks: Int) -> Bool {
        switch self {
        case .embed, .posEmbed: return true
        case .finalScale, .finalNormalized: return false
        default: return (block ?? 0) < start
        }
    }
}

/// Calls interventions and captures activations at hook points, one prompt slice at a time.
/// The filters are resolved to hook points once, when the runner is made: at each hook the
/// forward pass only asks a set, and a hook nobody asked for costs nothing.
struct HookRunner {
    let capture: Set<HookPoint>
    let interventions: [(points: Set<HookPoint>, body: Intervention)]
    /// Hook points captured, intervened on, or stopped at.
    let active: Set<HookPoint>
    /// The run ends after this hook point; once it has fired no hook fires any more.
    let stop: HookPoint?
    private(set) var stopped = false
    /// Prompt p occupies packed rows offsets[p] ..< offsets[p + 1].
    let offsets: [Int]
    var cache = ActivationCache()

    /// `rows`: per prompt, how many of its rows the pass computes (all its tokens without a prefix).
    init(capture: HookFilter, interventions: [(HookFilter, Intervention)], stop: HookPoint? = nil, rows: [Int], model: Model) {
        // Hooks after the stop never fire, even those the rest of a started step passes through
        // (prompt 0's pattern comes before prompt 1's attention scores).
        let afterStop: Set<HookPoint> = stop.map { stop in
            let order = HookPoint.all(in: model)
            return order.firstIndex(of: stop).map { Set(order[($0 + 1)...]) } ?? []
        } ?? []
        self.capture = Set(capture.points(in: model)).subtracting(afterStop)
        self.interventions = interventions.map { (Set($0.0.points(in: model)).subtracting(afterStop), $0.1) }
        self.stop = stop
        active = self.interventions.reduce(self.capture) { $0.union($1.points) }.union(stop.map { [$0] } ?? [])
        var offsets = [0]
        for count in rows { offsets.append(offsets[offsets.count - 1] + count) }
        self.offsets = offsets
    }

    var promptCount: Int { offsets.count - 1 }

    func isActive(_ point: HookPoint) -> Bool { !active.isEmpty && !stopped && active.contains(point) }

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
        if point == stop { stopped = true }
    }

    /// A hook on one prompt's tensor (attention scores and patterns, [head, query, key]).
    mutating func perPrompt(_ point: HookPoint, prompt p: Int, _ x: inout Tensor) {
        guard isActive(point) else { return }
        for (points, body) in interventions where points.contains(point) { body(point, p, &x) }
        if capture.contains(point) { cache.append(point, x) }
        if point == stop && p == promptCount - 1 { stopped = true }
    }
}

/// One forward pass over a packed batch. Kept as a struct so each step reads as the formula it computes.
struct ForwardPass {
    let model: Model
    let prompts: [[Int]]
    /// Per prompt, its first computed position: rows before it come from `prefix` (0 without one).
    let computedFrom: [Int]
    let prefix: KeyValuePrefix?
    /// `RunSpan.replacedHeads`.
    let replacedHeads: [Int: [Set<Int>]]
    var hooks: HookRunner
    /// Rows computed, packed: prompt p's positions computedFrom[p]..<count.
    let tokens: Int

    init(model: Model, prompts: [[Int]], computedFrom: [Int], prefix: KeyValuePrefix?, replacedHeads: [Int: [Set<Int>]] = [:],
         hooks: HookRunner) {
        self.model = model
        self.prompts = prompts
        self.computedFrom = computedFrom
        self.prefix = prefix
        self.replacedHeads = replacedHeads
        self.hooks = hooks
        tokens = hooks.offsets[hooks.offsets.count - 1]
    }

    var d: Int { model.dModel }

    /// The stages in order: embedding (or a given residual at block `start`), each block, then the
    /// final LayerNorm and unembedding. Nil when the run stopped at a hook before the logits.
    mutating func run(selected: [[Int]], from start: Int, residual given: Tensor?, columns: [Int]?) -> [Tensor]? {
        var residual = given ?? embed()
        if hooks.stopped { return nil }
        for i in start..<model.blocks.count {
            block(i, &residual)
            if hooks.stopped { return nil }
        }
        return unembed(residual, selected: selected, columns: columns)
    }

    /// One block: residual += attention(ln1(residual)); residual += mlp(ln2(residual)), each half optional.
    mutating func block(_ i: Int, _ residual: inout Tensor) {
        let block = model.blocks[i]
        hooks.tokenwise(.residPre(i), &residual, shape: [d])
        if let attention = block.attention, !hooks.stopped {
            var out = attend(attention, residual, block: i)
            hooks.tokenwise(.attnOut(i), &out, shape: [d])
            Kernels.add(out.pointer, into: residual.mutablePointer, count: residual.count)
        }
        hooks.tokenwise(.residMid(i), &residual, shape: [d])
        if let mlp = block.mlp, !hooks.stopped {
            var out = feedForward(mlp, residual, block: i)
            hooks.tokenwise(.mlpOut(i), &out, shape: [d])
            Kernels.add(out.pointer, into: residual.mutablePointer, count: residual.count)
        }
        hooks.tokenwise(.residPost(i), &residual, shape: [d])
    }

    /// x = W_E[token] + W_pos[position].
    mutating func embed() -> Tensor {
        var tokenPart = Tensor(uninitialized: [tokens, d]), positionPart = Tensor(uninitialized: [tokens, d])
        let wte = model.embedding.tokens.pointer, wpe = model.embedding.positions.pointer
        tokenPart.withMutableBuffer { te in
            positionPart.withMutableBuffer { pe in
                var row = 0
                for (prompt, first) in zip(prompts, computedFrom) {
                    for (position, token) in prompt.enumerated() where position >= first {
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
        var scale = Tensor(uninitialized: [tokens, 1])
        Kernels.layerNormScale(x.pointer, eps: model.config.layerNormEpsilon, into: scale.mutablePointer, rows: tokens, cols: d)
        hooks.tokenwise(scaleHook, &scale, shape: [1])
        var y = Tensor(uninitialized: [tokens, d])
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
        let skipped = skippedHeads(attention, block: i)
        var qkv = skipped == nil ? Tensor(uninitialized: [tokens, 3 * d]) : Tensor(zeros: [tokens, 3 * d])
        if let skipped {
            queriesKeysValues(attention, normed, skipping: skipped, into: &qkv)
        } else {
            Kernels.matmul(normed.pointer, attention.qkvWeight.pointer, bias: attention.qkvBias.pointer,
                           into: qkv.mutablePointer, m: tokens, k: d, n: 3 * d)
        }
        var q = qkv.columns(0..<d), k = qkv.columns(d..<(2 * d)), v = qkv.columns((2 * d)..<(3 * d))
        hooks.tokenwise(.q(i), &q, shape: [heads, dHead])
        hooks.tokenwise(.k(i), &k, shape: [heads, dHead])
        hooks.tokenwise(.v(i), &v, shape: [heads, dHead])

        var z = Tensor(uninitialized: [tokens, d])  // every head's rows: computed, or NaN when skipped
        let zp = z.mutablePointer, pass = self, scale = 1 / Float(dHead).squareRoot()
        // One prompt's attention: query rows are positions s..<n; key and value rows are all n
        // positions, the first s from a prefix. Prompts are independent of each other.
        func attendPrompt(_ p: Int, hook: (HookPoint, inout Tensor) -> Void) {
            let start = pass.hooks.offsets[p], n = pass.prompts[p].count, s = pass.computedFrom[p], m = n - s
            let cachedKeys = pass.withPrefix(k, .k(i), prompt: p), cachedValues = pass.withPrefix(v, .v(i), prompt: p)
            let keys = cachedKeys?.pointer ?? k.pointer + start * d, values = cachedValues?.pointer ?? v.pointer + start * d
            defer { withExtendedLifetime((cachedKeys, cachedValues)) {} }
            // scores[h, r, j] = q[s + r, h] · k[j, h] / sqrt(d_head), masked to j ≤ s + r.
            var pattern = Tensor(zeros: [heads, m, n])
            let pp = pattern.mutablePointer
            let computed = (0..<heads).filter { skipped?[p].contains($0) != true }
            for h in computed {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(dHead),
                            scale, q.pointer + start * d + h * dHead, Int32(d),
                            keys + h * dHead, Int32(d), 0, pp + h * m * n, Int32(n))
            }
            for h in 0..<heads { for row in 0..<m { for col in (s + row + 1)..<max(n, s + row + 1) { pp[(h * m + row) * n + col] = -.infinity } } }
            hook(.attnScores(i), &pattern)
            Kernels.softmaxRows(pattern.mutablePointer, rows: heads * m, cols: n, valid: { s + $0 % m + 1 })
            hook(.pattern(i), &pattern)
            // z[s + r, h] = Σ_j pattern[h, r, j] v[j, h]
            for h in computed {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(dHead), Int32(n), 1,
                            pattern.pointer + h * m * n, Int32(n), values + h * dHead, Int32(d),
                            0, zp + start * d + h * dHead, Int32(d))
            }
            for h in skipped?[p] ?? [] {
                for row in start..<(start + m) { (zp + row * d + h * dHead).update(repeating: .nan, count: dHead) }
            }
        }
        if hooks.isActive(.attnScores(i)) || hooks.isActive(.pattern(i)) {
            // Hooks see the prompts in order.
            for p in prompts.indices { attendPrompt(p) { point, pattern in hooks.perPrompt(point, prompt: p, &pattern) } }
        } else {
            // Each prompt writes only its own rows of z: the prompts run on all cores.
            let cost = prompts.reduce(0) { $0 + $1.count * $1.count } * 2 * d
            Parallel.ranges(prompts.count, cost: cost) { range in for p in range { attendPrompt(p) { _, _ in } } }
        }
        attention.headAblations.apply(to: &z, unitWidth: dHead, promptOffsets: hooks.offsets, firstPositions: computedFrom)
        hooks.tokenwise(.z(i), &z, shape: [heads, dHead])
        if hooks.isActive(.result(i)), let edited = headResults(attention, z: z, block: i) { return edited }
        if let skipped, !hooks.isActive(.result(i)) { return outputProjection(attention, z, skipping: skipped) }
        var out = Tensor(uninitialized: [tokens, d])
        Kernels.matmul(z.pointer, attention.outWeight.pointer, bias: attention.outBias.pointer,
                       into: out.mutablePointer, m: tokens, k: d, n: d)
        return out
    }

    /// out [tokens, d] = z · W_O + b_O, where the skipped heads' z (their replacements) is projected
    /// once per position for a block of consecutive prompts that skip the same heads, have the same
    /// positions and the same replaced values at each (a circuit's copies of the items, its means):
    ///     out[row] = (b_O + Σ_{h skipped} z[first prompt's row, h] W_O[h]) + Σ_{h computed} z[row, h] W_O[h].
    /// A block whose replaced values differ between prompts is projected whole.
    func outputProjection(_ attention: AttentionHalf, _ z: Tensor, skipping skipped: [Set<Int>]) -> Tensor {
        let dHead = attention.dHead, heads = attention.nHead, offsets = hooks.offsets, d = d
        let blocks = promptRuns(skipping: skipped, samePositions: true)
        var out = Tensor(zeros: [tokens, d])
        let zp = z.pointer, wo = attention.outWeight.pointer, bo = attention.outBias.pointer, op = out.mutablePointer
        Parallel.ranges(blocks.count, cost: tokens * d * d) { part in
            for block in blocks[part] {
                let rows = offsets[block.lowerBound]..<offsets[block.upperBound], m = offsets[block.lowerBound + 1] - rows.lowerBound
                let replaced = skipped[block.lowerBound].sorted(), computed = (0..<heads).filter { !skipped[block.lowerBound].contains($0) }
                let shared = !replaced.isEmpty && rows.count > m && rows.dropFirst(m).allSatisfy { row in
                    let same = rows.lowerBound + (row - rows.lowerBound) % m
                    return replaced.allSatisfy { h in memcmp(zp + row * d + h * dHead, zp + same * d + h * dHead, dHead * 4) == 0 }
                }
                guard shared else {
                    Kernels.matmul(zp + rows.lowerBound * d, wo, bias: bo, into: op + rows.lowerBound * d, m: rows.count, k: d, columns: 0..<d, rowWidth: d)
                    continue
                }
                // The replaced part, once per position: the first prompt's rows with only the replaced heads' z.
                var firstRows = Tensor(zeros: [m, d])
                for r in 0..<m { for h in replaced { (firstRows.mutablePointer + r * d + h * dHead).update(from: zp + (rows.lowerBound + r) * d + h * dHead, count: dHead) } }
                var constant = Tensor(zeros: [m, d])
                Kernels.matmul(firstRows.pointer, wo, bias: bo, into: constant.mutablePointer, m: m, k: d, columns: 0..<d, rowWidth: d)
                // The computed heads, every row: their z columns against their rows of W_O.
                var computedPart = Tensor(zeros: [rows.count, d])
                if !computed.isEmpty {
                    let width = computed.count * dHead
                    var zc = Tensor(zeros: [rows.count, width]), wc = Tensor(zeros: [width, d])
                    for (j, h) in computed.enumerated() {
                        (wc.mutablePointer + j * dHead * d).update(from: wo + h * dHead * d, count: dHead * d)
                        for r in 0..<rows.count { (zc.mutablePointer + r * width + j * dHead).update(from: zp + (rows.lowerBound + r) * d + h * dHead, count: dHead) }
                    }
                    Kernels.matmul(zc.pointer, wc.pointer, bias: nil, into: computedPart.mutablePointer, m: rows.count, k: width, columns: 0..<d, rowWidth: d)
                }
                for r in 0..<rows.count {
                    let o = op + (rows.lowerBound + r) * d, c = constant.pointer + (r % m) * d, x = computedPart.pointer + r * d
                    for col in 0..<d { o[col] = c[col] + x[col] }
                }
            }
        }
        return out
    }

    /// Runs of consecutive prompts that skip the same heads (a circuit's copies of the items) and,
    /// with `samePositions`, compute the same positions.
    func promptRuns(skipping skipped: [Set<Int>], samePositions: Bool) -> [Range<Int>] {
        var runs: [Range<Int>] = [], first = 0
        while first < prompts.count {
            var end = first + 1
            while end < prompts.count && skipped[end] == skipped[first]
                    && (!samePositions || (prompts[end].count == prompts[first].count && computedFrom[end] == computedFrom[first])) { end += 1 }
            runs.append(first..<end)
            first = end
        }
        return runs
    }

    /// Per prompt, the heads of block i whose z the span says will be replaced wherever this pass
    /// computes (`RunSpan.replacedHeads`); nil when there are none or a hook reads the block's
    /// queries, keys, values, scores or pattern. A model's own (baked) ablations are not skipped:
    /// baked and run-time ablations give identical logits (AblationTests).
    func skippedHeads(_ attention: AttentionHalf, block i: Int) -> [Set<Int>]? {
        guard let given = replacedHeads[i], given.contains(where: { !$0.isEmpty }),
              ![HookPoint.q(i), .k(i), .v(i), .attnScores(i), .pattern(i)].contains(where: hooks.isActive) else { return nil }
        return given
    }

    /// qkv [tokens, 3·d] = normed · W_QKV + b_QKV for the heads each prompt computes only: consecutive
    /// prompts skipping the same heads are one block of rows, and each computed head is its three
    /// d_head-wide column ranges (q, k, v) of the product. The other columns stay 0.
    func queriesKeysValues(_ attention: AttentionHalf, _ normed: Tensor, skipping skipped: [Set<Int>], into qkv: inout Tensor) {
        let heads = attention.nHead, dHead = d / heads, offsets = hooks.offsets
        let tasks: [(rows: Range<Int>, head: Int)] = promptRuns(skipping: skipped, samePositions: false).flatMap { run in
            (0..<heads).filter { !skipped[run.lowerBound].contains($0) }.map { (offsets[run.lowerBound]..<offsets[run.upperBound], $0) }
        }
        let a = normed.pointer, w = attention.qkvWeight.pointer, bias = attention.qkvBias.pointer, c = qkv.mutablePointer, d = d
        Parallel.ranges(tasks.count, cost: tasks.reduce(0) { $0 + $1.rows.count } * 3 * dHead * d) { part in
            for (rows, h) in tasks[part] {
                for column in [h * dHead, d + h * dHead, 2 * d + h * dHead] {
                    Kernels.matmul(a + rows.lowerBound * d, w, bias: bias, into: c + rows.lowerBound * 3 * d,
                                   m: rows.count, k: d, columns: column..<(column + dHead), rowWidth: 3 * d)
                }
            }
        }
    }

    /// Prompt p's keys or values for all its positions [n, d] when it has a prefix: the cached rows
    /// (or its source prompt's in this batch), then the computed ones. Nil without a prefix: the
    /// packed rows are all of them.
    func withPrefix(_ computed: Tensor, _ point: HookPoint, prompt p: Int) -> Tensor? {
        let start = hooks.offsets[p], s = computedFrom[p], n = prompts[p].count
        guard s > 0, let prefix else { return nil }
        var all = Tensor(uninitialized: [n, d])
        if let cache = prefix.cache {
            guard let cached = cache[point, prefix.sources[p]] else { return nil }
            all.mutablePointer.update(from: cached.pointer, count: s * d)
        } else {
            all.mutablePointer.update(from: computed.pointer + hooks.offsets[prefix.sources[p]] * d, count: s * d)
        }
        (all.mutablePointer + s * d).update(from: computed.pointer + start * d, count: (n - s) * d)
        return all
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
        var hidden = Tensor(uninitialized: [tokens, width])
        Kernels.matmul(input.pointer, mlp.inWeight.pointer, bias: mlp.inBias.pointer,
                       into: hidden.mutablePointer, m: tokens, k: d, n: width)
        hooks.tokenwise(.mlpPre(i), &hidden, shape: [width])
        Kernels.geluNew(hidden.mutablePointer, count: hidden.count)
        mlp.neuronAblations.apply(to: &hidden, unitWidth: 1, promptOffsets: hooks.offsets, firstPositions: computedFrom)
        hooks.tokenwise(.mlpPost(i), &hidden, shape: [width])
        var out = Tensor(uninitialized: [tokens, d])
        Kernels.matmul(hidden.pointer, mlp.outWeight.pointer, bias: mlp.outBias.pointer,
                       into: out.mutablePointer, m: tokens, k: width, n: d)
        if let ablation = mlp.outputAblation {
            [0: ablation].apply(to: &out, unitWidth: d, promptOffsets: hooks.offsets, firstPositions: computedFrom)
        }
        return out
    }

    /// Final LayerNorm on every position (its hooks see all of them), then W_U on the selected
    /// positions only, and only for the asked columns when there are some.
    mutating func unembed(_ residual: Tensor, selected: [[Int]], columns: [Int]?) -> [Tensor]? {
        var scale = Tensor(uninitialized: [tokens, 1])
        Kernels.layerNormScale(residual.pointer, eps: model.config.layerNormEpsilon, into: scale.mutablePointer, rows: tokens, cols: d)
        hooks.tokenwise(.finalScale, &scale, shape: [1])
        var normalized = Tensor(uninitialized: [tokens, d])
        Kernels.layerNormApply(residual.pointer, scale: scale.pointer, weight: nil, bias: nil,
                               into: normalized.mutablePointer, rows: tokens, cols: d)
        hooks.tokenwise(.finalNormalized, &normalized, shape: [d])
        if hooks.stopped { return nil }
        let rows = selected.indices.flatMap { p in selected[p].map { hooks.offsets[p] + $0 - computedFrom[p] } }
        let picked = normalized.gatherRows(rows)
        let finalRows = model.applyFinalAffine(picked)
        let logits = columns.map { model.unembedRows(finalRows, columns: $0) } ?? model.unembedRows(finalRows)
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

    /// logits [n, columns] = rows [n, d] · W_U[columns]ᵀ: only the asked tokens' logits (a metric's
    /// answer and foil), without the [n, vocab] product.
    public func unembedRows(_ rows: Tensor, columns: [Int]) -> Tensor {
        let n = rows.count / dModel
        let picked = unembed.gatherRows(columns)  // [columns, d]
        var logits = Tensor(zeros: [n, columns.count])
        Kernels.matmul(rows.pointer, picked.pointer, bias: nil, into: logits.mutablePointer, m: n, k: dModel, n: columns.count, transposeB: true)
        return logits
    }

    /// logits [count, vocab] = rows [count, d] · W_Uᵀ, into a buffer the caller reuses.
    func unembedRows(_ rows: UnsafePointer<Float>, count: Int, into logits: UnsafeMutablePointer<Float>) {
        Kernels.matmul(rows, unembed.pointer, bias: nil, into: logits, m: count, k: dModel, n: vocabSize, transposeB: true)
    }
}
