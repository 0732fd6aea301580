import Foundation

/// One prompt's residual stream at chosen positions, stacked as labelled components, as
/// TransformerLens's `ActivationCache.accumulated_resid` and `decompose_resid` return it:
/// `values` [component, position, d_model], one label and one hook per component.
///
/// - accumulated: `blocks.{i}.hook_resid_pre` of every block (with `hook_resid_mid` after it when
///   asked), then the final residual `blocks.{n-1}.hook_resid_post`; labels `0_pre`, `0_mid`, …,
///   `final_post`. A model without blocks has only the embedding sum, labelled `final_post` and read
///   at `hook_embed` + `hook_pos_embed`.
/// - decomposed: `hook_embed`, `hook_pos_embed`, then each block's `hook_attn_out` and
///   `hook_mlp_out` (only the halves it has); labels `embed`, `pos_embed`, `0_attn_out`,
///   `0_mlp_out`, …. As in TransformerLens each output carries its bias (b_O, b_out), so the
///   components add up to the final residual.
///
/// `i` is the block's place in the graph, as in hook names.
public struct ResidualStack: Sendable {
    public enum Kind: Sendable, Equatable {
        case accumulated(includeMid: Bool)
        case decomposed
    }

    public var labels: [String]
    /// Where each component is read from.
    public var hooks: [HookPoint]
    public var positions: [Int]
    /// [component, position, d_model]
    public var values: Tensor
    /// `ln_final.hook_scale` at `positions` [position], when the cache holds it: what
    /// `finalLayerNorm(.cached, …)` divides by.
    public var finalScales: [Float]?

    /// The components' hooks and labels for a model.
    public static func components(_ kind: Kind, in model: Model) -> [(hook: HookPoint, label: String)] {
        var components: [(hook: HookPoint, label: String)] = []
        switch kind {
        case let .accumulated(includeMid):
            for i in model.blocks.indices {
                components.append((.residPre(i), "\(i)_pre"))
                if includeMid { components.append((.residMid(i), "\(i)_mid")) }
            }
            components.append((model.blocks.isEmpty ? .embed : .residPost(model.blocks.count - 1), "final_post"))
        case .decomposed:
            components = [(.embed, "embed"), (.posEmbed, "pos_embed")]
            for (i, block) in model.blocks.enumerated() {
                if block.attention != nil { components.append((.attnOut(i), "\(i)_attn_out")) }
                if block.mlp != nil { components.append((.mlpOut(i), "\(i)_mlp_out")) }
            }
        }
        return components
    }

    /// The hooks a run must capture to build this stack (the embedding sum needs both embeddings).
    public static func hooksToCapture(_ kind: Kind, in model: Model) -> [HookPoint] {
        let hooks = components(kind, in: model).map(\.hook)
        return hooks == [.embed] ? [.embed, .posEmbed] : hooks
    }

    /// The stack of prompt `prompt` of `cache` at `positions`.
    public init(_ kind: Kind, cache: ActivationCache, prompt: Int, positions: [Int], model: Model) throws {
        let components = Self.components(kind, in: model)
        let d = model.dModel, width = positions.count * d
        labels = components.map(\.label)
        hooks = components.map(\.hook)
        self.positions = positions
        values = Tensor(zeros: [components.count, positions.count, d])
        for (c, component) in components.enumerated() {
            var rows = try cache.rows(component.hook, prompt: prompt, positions: positions)
            if kind != .decomposed && component.hook == .embed {  // no blocks: the residual is the embedding sum
                let position = try cache.rows(.posEmbed, prompt: prompt, positions: positions)
                Kernels.add(position.pointer, into: rows.mutablePointer, count: rows.count)
            }
            precondition(rows.count == width, "\(component.hook) is not a residual-stream hook")
            values.replaceRows(at: c, with: rows.reshaped([positions.count, d]))
        }
        if let scales = cache[.finalScale, prompt] { finalScales = positions.map { scales[flat: $0] } }
    }

    /// `values` with the final LayerNorm applied to every row, [component, position, d_model]:
    /// recomputed on each row, or with the final layer's cached scale at the row's position
    /// (which the cache must hold: `ln_final.hook_scale`). See `Model.finalLayerNorm(_:cachedScales:addBias:)`.
    public func finalLayerNorm(_ normalization: LogitLens.Normalization, model: Model, addBias: Bool) throws -> Tensor {
        var scales: [Float]?
        if normalization == .cached {
            guard let finalScales else { throw ActivationCacheError.notCaptured(HookPoint.finalScale.name) }
            scales = Array(repeating: finalScales, count: labels.count).flatMap { $0 }
        }
        let rows = values.reshaped([labels.count * positions.count, model.dModel])
        return model.finalLayerNorm(rows, cachedScales: scales, addBias: addBias).reshaped(values.shape)
    }
}

extension Model {
    /// ln_final on rows [n, d_model]: y = (x − mean(x)) / scale · w (+ b when `addBias`), the scale
    /// computed on each row itself (`cachedScales` nil) or given per row (the cached
    /// `ln_final.hook_scale`, one per row).
    ///
    /// The lens adds b, so that its final row gives the model's own logits. Direct logit
    /// attribution leaves it out, as TransformerLens's `apply_ln_to_stack`, which divides the
    /// centred components by the cached scale and adds no bias (b is one constant, not split among
    /// components). Unlike `apply_ln_to_stack` it multiplies by w, since Scalpel keeps w unfolded
    /// (DESIGN.md, "Numerics").
    public func finalLayerNorm(_ rows: Tensor, cachedScales: [Float]?, addBias: Bool) -> Tensor {
        let n = rows.count / dModel
        let bias = addBias ? lnFinal.bias.pointer : nil
        guard let cachedScales else {
            if addBias { return finalLayerNorm(rows) }  // the forward pass's own ln_final
            var out = Tensor(zeros: [n, dModel])
            Kernels.layerNorm(rows.pointer, weight: lnFinal.weight.pointer, bias: nil, eps: config.layerNormEpsilon,
                              into: out.mutablePointer, scale: nil, rows: n, cols: dModel)
            return out
        }
        precondition(cachedScales.count == n, "\(cachedScales.count) cached scales for \(n) rows")
        var out = Tensor(zeros: [n, dModel])
        cachedScales.withUnsafeBufferPointer { scale in
            Kernels.layerNormApply(rows.pointer, scale: scale.baseAddress!, weight: lnFinal.weight.pointer, bias: bias,
                                   into: out.mutablePointer, rows: n, cols: dModel)
        }
        return out
    }
}

extension ActivationCache {
    /// The captured activation of `hook` for one prompt at `positions`: [positions.count, width],
    /// width the product of the axes after the position (d_model for the residual stream).
    public func rows(_ hook: HookPoint, prompt: Int, positions: [Int]) throws -> Tensor {
        guard hook.kind.dims.first == .pos else { throw ActivationCacheError.notPerPosition(hook.name) }
        guard let value = self[hook, prompt] else { throw ActivationCacheError.notCaptured(hook.name) }
        let width = value.shape.dropFirst().reduce(1, *)
        return value.gatherRows(positions).reshaped([positions.count, width])
    }

    /// `hook` at the last position of every prompt, stacked: [prompts, width].
    public func lastPositions(_ hook: HookPoint) throws -> Tensor {
        guard let values = self[hook] else { throw ActivationCacheError.notCaptured(hook.name) }
        let rows = try values.indices.map { try self.rows(hook, prompt: $0, positions: [values[$0].shape[0] - 1]) }
        let width = rows.first?.count ?? 0
        var stacked = Tensor(zeros: [rows.count, width])
        for (p, row) in rows.enumerated() { stacked.replaceRows(at: p, with: row) }
        return stacked
    }
}

public enum ActivationCacheError: UserFacingError, Equatable {
    case notCaptured(String)
    case notPerPosition(String)

    public var message: String {
        switch self {
        case let .notCaptured(hook):
            return "\(hook) was not captured by the run this analysis reads; capture it (it is missing from the cache)."
        case let .notPerPosition(hook):
            return "\(hook) is not indexed by position first (it is [head, query, key]); choose a hook of the residual stream or a per-position hook."
        }
    }
}
