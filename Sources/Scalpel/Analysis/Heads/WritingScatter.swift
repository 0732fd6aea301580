import Foundation

/// The study's writing-direction scatter of one head (its `scatter_attention_and_contribution`,
/// Figures 3 and 6; DESIGN.md "Causal analyses", `scalpel heads --writing`): for every prompt and
/// every position s but the BOS, x = the head's attention from the last position to s
/// (`hook_pattern`[h, last, s]) and y = (z[last, h] · W_O[h]) · W_U[:, token(s)], the projection of
/// what the head writes at the last position on the unembedding of s's token (no LayerNorm, no b_O);
/// then Pearson's r over all points and its two-sided p-value.
///
/// The study takes one position per sequence element, found with `toks.index(tok)` (the first
/// occurrence); Scalpel takes every position, so a prompt repeating a token gives a point per copy.
public struct WritingScatter: Sendable {
    public var head: HeadIndex

    public init(head: HeadIndex) { self.head = head }

    public struct Point: Sendable, Equatable {
        public var prompt: Int
        public var pos: Int
        public var token: Int
        public var attention: Double
        public var projection: Double
    }

    public struct Result: Sendable {
        public var head: HeadIndex
        public var points: [Point]
        /// nil when x or y is constant.
        public var r: Double?
        public var pValue: Double?
    }

    /// - firstScored: 1 when the prompts start with a BOS (never a point), else 0.
    public func run(_ model: Model, prompts: [[Int]], firstScored: Int) throws -> Result {
        try head.check(in: model)
        if prompts.isEmpty { throw RunError.emptyBatch }
        let attention = model.blocks[head.layer].attention!
        let nHead = attention.nHead, dh = attention.dHead, d = model.dModel
        let run = try model.run(prompts, capture: HookFilter([HookPoint.pattern(head.layer), .z(head.layer)]), span: RunSpan(stop: .z(head.layer)))
        let wO = attention.outputWeight(head: head.head)
        var points: [Point] = []
        for (p, tokens) in prompts.enumerated() where tokens.count > firstScored {
            let n = tokens.count, last = n - 1
            let pattern = try run.cache.require(.pattern(head.layer), prompt: p)
            let z = try run.cache.require(.z(head.layer), prompt: p)
            // What the head writes at the last position: z[last, h] · W_O[h] [d_model].
            var written = Tensor(zeros: [1, d])
            Kernels.matmul(z.pointer + (last * nHead + head.head) * dh, wO.pointer, bias: nil, into: written.mutablePointer, m: 1, k: dh, n: d)
            for s in firstScored..<n {
                let token = tokens[s], row = model.unembed.pointer + token * d
                var dot: Float = 0
                for c in 0..<d { dot += written.pointer[c] * row[c] }
                points.append(Point(prompt: p, pos: s, token: token,
                                    attention: Double(pattern.pointer[(head.head * n + last) * n + s]), projection: Double(dot)))
            }
        }
        guard points.count >= 3 else { throw HeadsError.tooFewPoints(count: points.count) }
        let r = Statistics.pearson(points.map(\.attention), points.map(\.projection))
        return Result(head: head, points: points, r: r, pValue: r.map { Statistics.pearsonPValue(r: $0, n: points.count) })
    }
}
