/// A batch whose prompts begin with the same tokens (BOS, at least, when it is prepended) computes
/// those positions once. Causal attention makes a prompt's first positions depend on its first
/// tokens only, so they are the same for every prompt of the batch: the first prompt computes all
/// its positions, and the others only those after the shared tokens, reading the shared positions'
/// keys and values from the first prompt's in the same run (`KeyValuePrefix.sameBatch`). On the
/// study's prompts of 5 to 9 tokens that is a fifth to a ninth of the forward pass.
///
/// Without interventions only: an intervention may change a shared position differently per prompt.
extension Model {
    /// The number of first tokens all `prompts` share, leaving each at least one token of its own
    /// to compute; 0 for a batch of one prompt.
    public static func sharedFirstTokens(_ prompts: [[Int]]) -> Int {
        guard prompts.count > 1, let first = prompts.first, let shortest = prompts.map(\.count).min(), shortest > 0 else { return 0 }
        let shared = (0..<shortest).first { t in prompts.contains { $0[t] != first[t] } } ?? shortest
        return min(shared, shortest - 1)
    }

    /// Runs `prompts` computing their shared first tokens once, as `run` runs them otherwise.
    /// Token-wise hooks capture the first prompt's every position and the others' from the shared
    /// tokens on (`RunResult.capturedRow`); `readingFrom` is the earliest position the caller reads
    /// from the captured rows, which stays computed (nil: the last positions only). The numbers are
    /// those of a plain run to float rounding (the attention's products have other shapes).
    public func runSharingFirstTokens(_ prompts: [[Int]], capture: HookFilter = .none, logitsAt selection: PositionSelection = .last,
                                      columns: [Int]? = nil, readingFrom earliest: Int? = nil) throws -> RunResult {
        let earliestLogit = prompts.compactMap { selection.resolve(length: $0.count)?.min() }.min()
        let shared = min(Self.sharedFirstTokens(prompts), earliest ?? .max, earliestLogit ?? .max)
        let prefix = shared <= 0 ? nil : KeyValuePrefix.sameBatch(lengths: [0] + Array(repeating: shared, count: prompts.count - 1),
                                                                  sources: prompts.map { _ in 0 })
        return try run(prompts, capture: capture, logitsAt: selection, span: RunSpan(columns: columns, prefix: prefix))
    }
}
