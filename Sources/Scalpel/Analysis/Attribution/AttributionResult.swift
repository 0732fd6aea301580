import Foundation

/// What the attribution is split by (DESIGN.md, "Causal analyses", `scalpel attribute`).
public enum AttributionGrouping: String, CaseIterable, Sendable, Codable {
    /// `decompose_resid`: embed, pos_embed, each block's attn_out and mlp_out (with their biases).
    case component
    /// `stack_head_results`: z · W_O per head, without b_O. Grid [layer, head].
    case head
    /// Each neuron of chosen layers: post · W_out[n], without b_out. Grid [layer, neuron].
    case neuron
    /// The accumulated residual before each block and the final one, through ln_final recomputed
    /// with its bias (the logit lens): not a split, a trajectory. Grid [layer].
    case layer
}

/// A direct logit attribution averaged over items, on a labelled grid (row-major over `dims`).
///
/// `actual` is the model's own logit difference (or the token's logit). For component, head and
/// neuron, `total` is the sum of `values`; what separates it from `actual` is `lnFinalBias` (the
/// final LayerNorm's bias along the direction, which no component writes) and, for heads and
/// neurons, the parts left out of the grouping (embeddings, b_O, the MLPs, …): `remainder`.
/// For layer, `total` is the last row (the final residual), which includes the bias: it equals
/// `actual` up to rounding.
public struct AttributionResult: Sendable {
    public var grouping: AttributionGrouping
    public var normalization: LogitLens.Normalization
    /// "answer − corrupted_answer" or "token <text>".
    public var direction: String
    public var dims: [String]
    public var shape: [Int]
    /// Per grid cell: nil where the model has no such unit (a block without attention).
    public var values: [Double?]
    /// Per grid cell, its label: `9_attn_out`, `9.1` (head), `L9 N934`, `9_pre`.
    public var labels: [String]
    /// Per axis, a label per index.
    public var axisLabels: [[String]]
    public var total: Double
    public var actual: Double
    public var lnFinalBias: Double
    public var items: Int

    /// actual − total − the bias term (for layer, actual − total): what the grouping leaves out.
    public var remainder: Double { actual - total - (grouping == .layer ? 0 : lnFinalBias) }

    /// A sentence saying what separates `total` from `actual`.
    public var explanation: String {
        switch grouping {
        case .component where normalization == .cached:
            return "total + ln_final bias term = actual: the components are the whole final residual, and ln_final's bias is added after them"
        case .component:
            return "with ln_final recomputed on each component the values no longer add up: remainder is the gap"
        case .head:
            return "heads leave out b_O, the MLPs and the embeddings: remainder is their part"
        case .neuron:
            return "the chosen layers' neurons leave out b_out, the attention, other layers and the embeddings: remainder is their part"
        case .layer:
            return "each row is the accumulated residual through ln_final (recomputed, bias included): the last row is the actual value; values do not add up"
        }
    }

    public struct Entry: Sendable, Equatable {
        public var label: String
        public var index: [Int]
        public var value: Double
    }

    /// The grid index of flat cell `cell`.
    public func index(of cell: Int) -> [Int] {
        var rest = cell, index = [Int](repeating: 0, count: shape.count)
        for axis in shape.indices.reversed() { index[axis] = rest % shape[axis]; rest /= shape[axis] }
        return index
    }

    /// The `count` cells of largest |value|, largest first.
    public func top(_ count: Int) -> [Entry] {
        let cells = values.indices.compactMap { cell in values[cell].map { Entry(label: labels[cell], index: index(of: cell), value: $0) } }
        return Array(cells.sorted { abs($0.value) > abs($1.value) }.prefix(count))
    }
}
