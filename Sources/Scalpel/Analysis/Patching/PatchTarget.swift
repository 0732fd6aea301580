import Foundation

/// The activations `scalpel patch` can patch (DESIGN.md, "Causal analyses"), named as
/// TransformerLens's `get_act_patch_*` functions name them.
public enum PatchTarget: String, CaseIterable, Sendable {
    case residPre = "resid_pre", residMid = "resid_mid", residPost = "resid_post", attnOut = "attn_out", mlpOut = "mlp_out"
    case z, q, k, v, pattern
    case mlpPost = "mlp_post"

    /// What one patch replaces.
    public enum Unit: Sendable { case position, head, neuron }

    public var unit: Unit {
        switch self {
        case .residPre, .residMid, .residPost, .attnOut, .mlpOut: return .position
        case .z, .q, .k, .v, .pattern: return .head
        case .mlpPost: return .neuron
        }
    }

    public func hook(_ layer: Int) -> HookPoint {
        switch self {
        case .residPre: return .residPre(layer)
        case .residMid: return .residMid(layer)
        case .residPost: return .residPost(layer)
        case .attnOut: return .attnOut(layer)
        case .mlpOut: return .mlpOut(layer)
        case .z: return .z(layer)
        case .q: return .q(layer)
        case .k: return .k(layer)
        case .v: return .v(layer)
        case .pattern: return .pattern(layer)
        case .mlpPost: return .mlpPost(layer)
        }
    }

    /// The index axes of a sweep, as TransformerLens orders them.
    public func dims(byPosition: Bool) -> [String] {
        switch (self, byPosition) {
        case (.pattern, false): return ["layer", "head"]
        case (.pattern, true): return ["layer", "head", "dest_pos"]
        case (_, _) where unit == .head: return byPosition ? ["layer", "pos", "head"] : ["layer", "head"]
        case (.mlpPost, _): return ["layer", "neuron"]
        default: return ["layer", "pos"]
        }
    }
}

/// TransformerLens's `*_every` sweeps: several targets over the same grid, side by side.
public enum PatchGroup: String, CaseIterable, Sendable {
    /// `get_act_patch_block_every`: resid_pre, attn_out, mlp_out by layer × position.
    case everyBlock = "every-block"
    /// `get_act_patch_attn_head_all_pos_every`: z, q, k, v, pattern by layer × head.
    case everyHead = "every-head"

    public var targets: [PatchTarget] {
        switch self {
        case .everyBlock: return [.residPre, .attnOut, .mlpOut]
        case .everyHead: return [.z, .q, .k, .v, .pattern]
        }
    }
}

/// Which part of one hook's activation a patch replaces, and where.
///
/// Token-wise activations are read as [pos, width]: the patch copies `columns` (a head's d_head
/// slice, a neuron, or the whole row) at `position` (or every position). Attention patterns are
/// [head, query, key]: the patch copies head `head`'s rows at query `position` (or every query).
struct PatchUnit: Sendable {
    var layer: Int
    var position: Int?
    var columns: Range<Int>?
    var head: Int?

    /// The first position where `source` and `base` differ in this unit, or nil when they are equal:
    /// then the patch changes nothing. Both are one prompt's full activations.
    func firstDifference(base: Tensor, source: Tensor) -> Int? {
        let (rows, width, rowLength) = layout(base)
        let positions = position.map { [$0] } ?? Array(0..<rows)
        let part = span(width: width, rowLength: rowLength)
        for position in positions {
            let offset = offsetOf(position, width: width, rowLength: rowLength) + part.lowerBound
            if memcmp(base.pointer + offset, source.pointer + offset, part.count * 4) != 0 { return position }
        }
        return nil
    }

    /// Copies this unit from `source` (one prompt's full activation) into `activation`, which holds
    /// that prompt's positions `first…` only (all of them when `first` is 0).
    func apply(to activation: inout Tensor, from source: Tensor, first: Int) {
        let (rows, width, rowLength) = layout(source)
        let positions = position.map { [$0] } ?? Array(0..<rows)
        let part = span(width: width, rowLength: rowLength)
        let computedRows = rows - first
        let destination = activation.mutablePointer
        for position in positions where position >= first {
            let from = offsetOf(position, width: width, rowLength: rowLength) + part.lowerBound
            let to = head == nil ? (position - first) * width + part.lowerBound
                                 : (head! * computedRows + position - first) * rowLength
            (destination + to).update(from: source.pointer + from, count: part.count)
        }
    }

    /// (positions, floats per position, key length): [pos, …] for token-wise hooks, [head, query, key] for patterns.
    private func layout(_ tensor: Tensor) -> (rows: Int, width: Int, rowLength: Int) {
        if head != nil { return (tensor.shape[1], tensor.shape[2], tensor.shape[2]) }
        return (tensor.shape[0], tensor.count / max(tensor.shape[0], 1), 0)
    }

    private func span(width: Int, rowLength: Int) -> Range<Int> {
        head != nil ? 0..<rowLength : (columns ?? 0..<width)
    }

    private func offsetOf(_ position: Int, width: Int, rowLength: Int) -> Int {
        head.map { ($0 * width + position) * rowLength } ?? position * width
    }
}
