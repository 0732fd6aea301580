import Foundation

/// What replaces one unit's activation — a head's `z` slot [d_head] or an MLP neuron's
/// `mlp.hook_post` — and at which positions. A plain value: the surgeon bakes it into a model
/// (`AttentionHalf.headAblations`, `MLPHalf.neuronAblations`) and `Ablation.intervention` applies the
/// same value at run time; both go through `apply`, so they give identical logits.
public struct Ablation: Sendable {
    public enum Replacement: Sendable {
        case zero
        /// One vector [width] (d_head for a head, 1 for a neuron), written at every ablated position.
        case pooledMean(Tensor)
        /// [pos, width]: row p is written at position p. Fits prompts of exactly `pos` tokens.
        case perPositionMean(Tensor)
    }

    public var replacement: Replacement
    public var positions: AblationPositions

    public init(_ replacement: Replacement, at positions: AblationPositions = .all) {
        self.replacement = replacement
        self.positions = positions
    }

    public static let zero = Ablation(.zero)

    /// The prompt length a per-position mean fits; nil when any length does.
    public var requiredLength: Int? {
        if case let .perPositionMean(values) = replacement { return values.shape[0] }
        return nil
    }

    /// Whether GPT-2's own architecture can hold this ablation as weights: a constant at every
    /// position folds into the output bias; anything that depends on the position cannot.
    public var isPositionIndependent: Bool {
        if case .perPositionMean = replacement { return false }
        return positions == .all
    }

    /// Writes the replacement into unit `unit` (`width` values wide) of the rows `rows` of `x`, a
    /// packed activation whose rows are [units · width]; the rows are one prompt's positions
    /// `first…` (`first` is 0 unless the run computes only the positions after a cached prefix).
    /// The single place an ablation touches an activation, for the surgeon and for run-time patches.
    func apply(to x: UnsafeMutablePointer<Float>, rowWidth: Int, rows: Range<Int>, first: Int = 0, unit: Int, width: Int) {
        // Loaders and the surgeon check units against the block; writing past a row would corrupt memory.
        precondition(unit >= 0 && (unit + 1) * width <= rowWidth, "unit \(unit) of \(rowWidth / width) written")
        let length = first + rows.count
        if let required = requiredLength {
            // Model.checkAblations(promptLengths:) turns this into an error before a run.
            precondition(required == length, "per-position mean of \(required) positions on a prompt of \(length) tokens")
        }
        for position in positions.resolve(length: length) where position >= first {
            let slot = x + (rows.lowerBound + position - first) * rowWidth + unit * width
            switch replacement {
            case .zero: slot.update(repeating: 0, count: width)
            case let .pooledMean(vector): slot.update(from: vector.pointer, count: width)
            case let .perPositionMean(values): slot.update(from: values.pointer + position * width, count: width)
            }
        }
    }
}

extension Dictionary where Key == Int, Value == Ablation {
    /// Applies every unit's ablation to a packed activation x [tokens, units · unitWidth] holding
    /// prompts one after another: prompt p occupies rows `promptOffsets[p] ..< promptOffsets[p + 1]`,
    /// which are its positions `firstPositions[p]…` (all zeros unless a cached prefix is skipped).
    public func apply(to x: inout Tensor, unitWidth: Int, promptOffsets: [Int], firstPositions: [Int]? = nil) {
        guard !isEmpty else { return }
        let rowWidth = x.shape.dropFirst().reduce(1, *)
        let pointer = x.mutablePointer
        for p in 0..<(promptOffsets.count - 1) {
            let rows = promptOffsets[p]..<promptOffsets[p + 1]
            for (unit, ablation) in self {
                ablation.apply(to: pointer, rowWidth: rowWidth, rows: rows, first: firstPositions?[p] ?? 0, unit: unit, width: unitWidth)
            }
        }
    }
}

extension Ablation {
    /// A run-time patch applying `ablations` (by head, on a `hook_z` activation [pos, heads, d_head];
    /// or by neuron, on a `mlp.hook_post` activation [pos, d_mlp]) to one prompt's activation.
    public static func intervention(_ ablations: [Int: Ablation]) -> Intervention {
        { _, _, activation in
            // z keeps heads and d_head apart; hook_post is one value per neuron.
            let unitWidth = activation.shape.count > 2 ? activation.shape[activation.shape.count - 1] : 1
            ablations.apply(to: &activation, unitWidth: unitWidth, promptOffsets: [0, activation.shape[0]])
        }
    }
}

extension Ablation {
    /// A run-time patch replacing a whole activation [pos, width] (an MLP's `hook_mlp_out`) at the
    /// ablation's positions; `first` is the prompt's first computed position (after a cached prefix).
    public static func outputIntervention(_ ablation: Ablation, first: @escaping (Int) -> Int = { _ in 0 }) -> Intervention {
        { _, p, activation in
            let width = activation.shape.dropFirst().reduce(1, *)
            ablation.apply(to: activation.mutablePointer, rowWidth: width, rows: 0..<activation.shape[0], first: first(p), unit: 0, width: width)
        }
    }
}

extension Model {
    /// The model's ablations as run-time patches: `withoutAblations.run(…, interventions:
    /// ablationInterventions)` computes what `run(…)` does.
    public var ablationInterventions: [(HookFilter, Intervention)] {
        blocks.enumerated().flatMap { i, block -> [(HookFilter, Intervention)] in
            var patches: [(HookFilter, Intervention)] = []
            if let heads = block.attention?.headAblations, !heads.isEmpty { patches.append((HookFilter([.z(i)]), Ablation.intervention(heads))) }
            if let neurons = block.mlp?.neuronAblations, !neurons.isEmpty { patches.append((HookFilter([.mlpPost(i)]), Ablation.intervention(neurons))) }
            if let output = block.mlp?.outputAblation { patches.append((HookFilter([.mlpOut(i)]), Ablation.outputIntervention(output))) }
            return patches
        }
    }

    /// The same graph with no unit ablated.
    public var withoutAblations: Model {
        var model = self
        for i in model.blocks.indices {
            model.blocks[i].attention?.headAblations = [:]
            model.blocks[i].mlp?.neuronAblations = [:]
            model.blocks[i].mlp?.outputAblation = nil
        }
        return model
    }

    /// Checks that prompts of these token lengths can run with the model's ablations: a
    /// per-position mean fits one length, and every listed position must exist in every prompt.
    public func checkAblations(promptLengths: [Int]) throws {
        for (i, block) in blocks.enumerated() {
            let units = (block.attention?.headAblations ?? [:]).map { ("head \(block.source.layer).\($0.key)", $0.value) }
                + (block.mlp?.neuronAblations ?? [:]).map { ("neuron \(block.source.layer).\($0.key)", $0.value) }
                + (block.mlp?.outputAblation.map { [("MLP \(block.source.layer) output", $0)] } ?? [])
            for (unit, ablation) in units.sorted(by: { $0.0 < $1.0 }) {
                for (p, length) in promptLengths.enumerated() {
                    if let required = ablation.requiredLength, required != length {
                        throw AblationError.lengthMismatch(block: i, unit: unit, meansLength: required, prompt: p, length: length)
                    }
                    if let position = ablation.positions.firstOutOfRange(length: length) {
                        throw AblationError.positionOutOfRange(block: i, unit: unit, position: position, prompt: p, length: length)
                    }
                }
            }
        }
    }
}
