import Foundation

/// Captures activations at hook points, one batch of prompts at a time, and hands each finished
/// batch to its consumer (`ActivationFile` appends it). Memory stays bounded by the model plus one
/// batch, however many prompts there are.
public struct ActivationTrace {
    public var hooks: HookFilter
    public var batchSize: Int
    /// The positions rows are padded to; nil for the longest prompt's length. A shard of a trace
    /// (`--shard K/N`) pads to the whole dataset's longest prompt, as the unsharded run does.
    public var padLength: Int?

    public init(hooks: HookFilter, batchSize: Int = 16) {
        self.hooks = hooks
        self.batchSize = batchSize
    }

    /// One batch's captured activations.
    public struct Batch {
        /// The hook points asked for, in the model's order; a point of a missing half block is in
        /// `points` but not in `cache`.
        public let points: [HookPoint]
        /// For each point, the shape of one prompt's activation at the longest prompt's length,
        /// the same in every batch (so a writer can stack prompts of different lengths).
        public let rowShapes: [HookPoint: [Int]]
        /// Index of the batch's first prompt among all prompts, and how many prompts it holds.
        public let start: Int
        public let count: Int
        public let cache: ActivationCache
    }

    /// Runs `prompts` through `model` in batches of `batchSize`, in order.
    public func run(_ model: Model, prompts: [[Int]], _ consume: (Batch) throws -> Void) throws {
        let points = try hooks.resolve(in: model)
        let maxLength = max(padLength ?? 0, prompts.map(\.count).max() ?? 0)
        var rowShapes: [HookPoint: [Int]] = [:]
        for point in points { rowShapes[point] = point.shape(positions: maxLength, in: model) }
        for start in stride(from: 0, to: prompts.count, by: batchSize) {
            let batch = Array(prompts[start..<min(start + batchSize, prompts.count)])
            let cache = try model.run(batch, capture: hooks, logitsAt: .last).cache
            try consume(Batch(points: points, rowShapes: rowShapes, start: start, count: batch.count, cache: cache))
        }
    }
}
