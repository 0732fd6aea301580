import Foundation

/// The study's months experiment: add a chosen vector v (e.g. an MLP output) to a prompt's residual
/// stream at its last position — p·v before block L (`hook_resid_pre`), n·v after it
/// (`hook_resid_post`), q·v to the final residual — judged decode-only (each edited row through the
/// logit lens, nothing propagated) and propagated (the edits made during a run, then the final logits).
public struct VectorAddition {
    public var vector: Tensor
    public var layer: Int
    public var p: Float
    public var n: Float
    public var q: Float

    public init(vector: Tensor, layer: Int, p: Float, n: Float, q: Float) {
        self.vector = vector; self.layer = layer; self.p = p; self.n = n; self.q = q
    }

    /// Reads v: the activation at `hook` at the last position of `prompt`.
    public static func vector(at hook: String, prompt: [Int], model: Model) throws -> Tensor {
        let points = try HookFilter([hook]).resolve(in: model)
        guard points.count == 1 else { throw HookError.noMatch(pattern: hook, suggestions: points.prefix(3).map(\.name)) }
        let value = try model.run([prompt], capture: HookFilter(points)).cache.lastPositions(points[0])
        guard value.count == model.dModel else { throw VectorAdditionError.notModelWidth(hook: hook, width: value.count, dModel: model.dModel) }
        return value.reshaped([model.dModel])
    }

    public struct Outcome: Codable, Sendable {
        /// The three edited rows decoded by the lens: before L, after L, final.
        public var decoded: [PathJudgement]
        public var propagated: PathJudgement
    }

    /// Before block L, after it, and the final residual (the last block's output).
    func edits(in model: Model) -> [(hook: HookPoint, scale: Float)] {
        [(.residPre(layer), p), (.residPost(layer), n), (.residPost(model.blocks.count - 1), q)]
    }

    public func run(_ model: Model, prompt: [Int], expected: Int, topK: Int = 5) throws -> Outcome {
        let edits = edits(in: model)
        let hooks = edits.map(\.hook)
        let cache = try model.run([prompt], capture: HookFilter(hooks)).cache
        let d = model.dModel
        var rows = Tensor(zeros: [3, d])
        let out = rows.mutablePointer
        for (r, (hook, edit)) in zip(hooks, edits).enumerated() {
            let value = try cache.lastPositions(hook)
            for c in 0..<d { out[r * d + c] = value[flat: c] + edit.scale * vector[flat: c] }
        }
        let decoded = model.unembedRows(model.finalLayerNorm(rows, cachedScales: nil, addBias: true))
        let judgements = (0..<3).map { r in
            PathJudgement(UnsafeBufferPointer(start: decoded.pointer + r * model.vocabSize, count: model.vocabSize), expected: expected, topK: topK)
        }
        // Propagated: each edit in turn during one run (the final edit lands on the last block's output).
        var interventions: [(HookFilter, Intervention)] = []
        for (hook, edit) in zip(hooks, edits) where edit.scale != 0 {
            let scaled = vector.scalars.map { $0 * edit.scale }
            interventions.append((HookFilter([hook]), { _, _, activation in
                let p = activation.mutablePointer + (activation.shape[0] - 1) * d
                for c in 0..<d { p[c] += scaled[c] }
            }))
        }
        let logits = try model.run([prompt], interventions: interventions).logits[0]
        return Outcome(decoded: judgements, propagated: logits.buffer.withMemoryRebound(to: Float.self) {
            PathJudgement($0, expected: expected, topK: topK)
        })
    }
}

public enum VectorAdditionError: UserFacingError, Equatable {
    /// The hook's activation is not a residual-stream vector, so it cannot be added to one.
    case notModelWidth(hook: String, width: Int, dModel: Int)

    public var message: String {
        switch self {
        case let .notModelWidth(hook, width, dModel):
            return "\(hook): a row of its activation has \(width) values, not d_model = \(dModel): the added vector must have the residual stream's width. Use a hook of width d_model, e.g. blocks.9.hook_mlp_out."
        }
    }
}
