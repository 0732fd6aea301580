/// A batch whose prompts begin with the same tokens (BOS, at least, when it is prepended) computes
/// those positions once. Causal attention makes a prompt's first positions depend on its first
/// tokens only, so they are the same for every prompt of the batch: the first prompt runs whole,
/// capturing its keys and values, and the others compute only the positions after the shared
/// tokens, attending to the first prompt's (`KeyValuePrefix`). On the study's prompts of 5 to 9
/// tokens that is a fifth to a ninth of the forward pass.
///
/// Without interventions only: an intervention may change a shared position differently per prompt.
public struct SharedFirstTokensRun: Sendable {
    /// Per prompt, its logits at the last position ([1, vocab], or [1, columns]).
    public var logits: [Tensor]
    /// The captured activations, per prompt: all positions of the first prompt, and those from
    /// `firstCaptured[p]` on for the others.
    public var cache: ActivationCache
    /// Per prompt, the position of its first captured row.
    public var firstCaptured: [Int]

    /// The captured row of prompt `p` at `position` (of a token-wise hook; the query row of an
    /// attention pattern).
    public func row(_ position: Int, prompt p: Int) -> Int { position - firstCaptured[p] }
}

extension Model {
    /// The number of first tokens all `prompts` share, leaving each at least one token of its own
    /// to compute; 0 for a batch of one prompt.
    public static func sharedFirstTokens(_ prompts: [[Int]]) -> Int {
        guard prompts.count > 1, let first = prompts.first, let shortest = prompts.map(\.count).min(), shortest > 0 else { return 0 }
        let shared = (0..<shortest).first { t in prompts.contains { $0[t] != first[t] } } ?? shortest
        return min(shared, shortest - 1)
    }

    /// Runs `prompts` (logits at their last positions, only `columns` when given) computing their
    /// shared first tokens once. Same numbers as one `run` of the batch: the kernels give a row
    /// the same bits in any batch.
    public func runSharingFirstTokens(_ prompts: [[Int]], capture: HookFilter = .none, columns: [Int]? = nil) throws -> SharedFirstTokensRun {
        let shared = Self.sharedFirstTokens(prompts)
        guard shared > 0 else {
            let run = try self.run(prompts, capture: capture, span: RunSpan(columns: columns))
            return SharedFirstTokensRun(logits: run.logits, cache: run.cache, firstCaptured: prompts.map { _ in 0 })
        }
        let captured = capture.points(in: self)
        let keysAndValues = blocks.indices.filter { blocks[$0].attention != nil }.flatMap { [HookPoint.k($0), .v($0)] }
        let first = try run([prompts[0]], capture: HookFilter(captured + keysAndValues.filter { !captured.contains($0) }),
                            span: RunSpan(columns: columns))
        let rest = Array(prompts.dropFirst())
        let others = try run(rest, capture: capture,
                             span: RunSpan(columns: columns, prefix: KeyValuePrefix(lengths: rest.map { _ in shared },
                                                                                    sources: rest.map { _ in 0 }, cache: first.cache)))
        var cache = ActivationCache()
        for point in first.cache.points where captured.contains(point) {
            for tensor in (first.cache[point] ?? []) + (others.cache[point] ?? []) { cache.append(point, tensor) }
        }
        return SharedFirstTokensRun(logits: first.logits + others.logits, cache: cache,
                                    firstCaptured: [0] + rest.map { _ in shared })
    }
}
