import Foundation

/// Which mean replaces an ablated unit: one vector over every position of every prompt (BOS
/// included), or one per position (ARENA's IOI code; the prompts must share one token length).
public enum MeanKind: String, Sendable, CaseIterable {
    case pooled
    case perPosition = "per-position"
}

/// Mean activations of a model over a set of prompts, at some hook points: computed once and
/// shared by every ablation and circuit that needs them.
public struct MeanActivations: Sendable {
    /// The token length of each prompt the means average over.
    public let promptLengths: [Int]
    /// Per hook, the mean over every position of every prompt: the activation's shape without `pos`
    /// (`hook_z` [heads, d_head], `mlp.hook_post` [d_mlp]).
    public let pooled: [HookPoint: Tensor]
    /// Per hook, the mean over prompts at each position, [pos, …]; empty when the lengths differ.
    let perPositionMeans: [HookPoint: Tensor]

    /// Runs `model` on `prompts`, capturing `hooks` (by default every `hook_z` and `mlp.hook_post`).
    /// Sums are kept in Double, in prompt and position order.
    public static func compute(model: Model, prompts: [[Int]], hooks: [HookPoint]? = nil) throws -> MeanActivations {
        let hooks = hooks ?? model.blocks.indices.flatMap { i in
            (model.blocks[i].attention == nil ? [] : [HookPoint.z(i)]) + (model.blocks[i].mlp == nil ? [] : [.mlpPost(i)])
        }
        let cache = try model.run(prompts, capture: HookFilter(hooks)).cache
        let lengths = prompts.map(\.count)
        let sameLength = Set(lengths).count == 1
        var pooled: [HookPoint: Tensor] = [:], perPosition: [HookPoint: Tensor] = [:]
        for hook in hooks {
            guard let tensors = cache[hook] else { throw MeanActivationsError.notCaptured(hook: hook.name) }
            let unitShape = Array(tensors[0].shape.dropFirst()), width = unitShape.reduce(1, *)
            var sum = [Double](repeating: 0, count: width), rows = 0
            for x in tensors {
                for p in 0..<x.shape[0] { for j in 0..<width { sum[j] += Double(x[flat: p * width + j]) } }
                rows += x.shape[0]
            }
            pooled[hook] = Tensor(shape: unitShape, data: sum.map { Float($0 / Double(rows)) })
            guard sameLength else { continue }
            let positions = lengths[0]
            var byPosition = [Double](repeating: 0, count: positions * width)
            for x in tensors { for k in 0..<(positions * width) { byPosition[k] += Double(x[flat: k]) } }
            perPosition[hook] = Tensor(shape: [positions] + unitShape, data: byPosition.map { Float($0 / Double(tensors.count)) })
        }
        return MeanActivations(promptLengths: lengths, pooled: pooled, perPositionMeans: perPosition)
    }

    /// Per hook, the mean at each position [pos, …]; an error naming the lengths when they differ.
    public func perPosition(_ hook: HookPoint) throws -> Tensor {
        guard Set(promptLengths).count == 1 else { throw MeanActivationsError.unequalLengths(lengths: promptLengths) }
        guard let means = perPositionMeans[hook] else { throw MeanActivationsError.notCaptured(hook: hook.name) }
        return means
    }

    /// The mean of a hook's whole activation as an ablation's replacement, one unit as wide as the
    /// activation: an MLP's `hook_mlp_out` ([d_model], or [pos, d_model] per position).
    public func wholeReplacement(_ kind: MeanKind, hook: HookPoint) throws -> Ablation.Replacement {
        switch kind {
        case .pooled:
            guard let means = pooled[hook] else { throw MeanActivationsError.notCaptured(hook: hook.name) }
            return .pooledMean(means.reshaped([means.count]))
        case .perPosition:
            let means = try perPosition(hook)
            return .perPositionMean(means.reshaped([means.shape[0], means.count / means.shape[0]]))
        }
    }

    /// The mean of one unit as an ablation's replacement: head `unit` of a `hook_z` hook
    /// ([d_head] or [pos, d_head]), or neuron `unit` of an `mlp.hook_post` hook ([1] or [pos, 1]).
    public func replacement(_ kind: MeanKind, hook: HookPoint, unit: Int) throws -> Ablation.Replacement {
        switch kind {
        case .pooled:
            guard let means = pooled[hook] else { throw MeanActivationsError.notCaptured(hook: hook.name) }
            let width = means.shape.count > 1 ? means.shape[1] : 1
            return .pooledMean(Tensor(shape: [width], data: Array(means.scalars[(unit * width)..<((unit + 1) * width)])))
        case .perPosition:
            let means = try perPosition(hook)
            let positions = means.shape[0], rowWidth = means.count / positions
            let width = means.shape.count > 2 ? means.shape[2] : 1
            let values = (0..<positions).flatMap { p in (0..<width).map { means[flat: p * rowWidth + unit * width + $0] } }
            return .perPositionMean(Tensor(shape: [positions, width], data: values))
        }
    }
}
