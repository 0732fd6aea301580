import Foundation

/// Which run receives the patch.
public enum PatchDirection: String, CaseIterable, Sendable {
    /// The clean activation into the corrupted run (the study's default): how much does it restore?
    case denoise
    /// The corrupted activation into the clean run: how much does it break?
    case noise
}

/// The result of a patching sweep: the metric of every patched run over a labelled grid
/// (DESIGN.md's JSON shape: `{model, target, direction, metric, dims, shape, values, raw, clean,
/// corrupted, top}`). Grids are row-major over `dims`.
public struct PatchResult: Sendable {
    public var target: String
    public var direction: PatchDirection
    public var metric: CausalMetric
    public var dims: [String]
    public var shape: [Int]
    /// The metric of each patched run; nil where the model has no such unit (a block without attention).
    public var raw: [Double?]
    public var clean: Double
    public var corrupted: Double
    /// Per grid cell, its label: `9.1` for a head, `L9 pos 3`, `L9 N934`.
    public var labels: [String]
    /// Per axis, a label per index (layer `L9`, head `3`, position tokens).
    public var axisLabels: [[String]]

    /// Whether (patched − corrupted) / (clean − corrupted) means anything: not when clean and
    /// corrupted are (nearly) equal.
    public var isNormalizable: Bool {
        let gap = abs(clean - corrupted)
        return gap.isFinite && gap > 1e-6 * max(1, abs(clean), abs(corrupted))
    }

    /// (patched − corrupted) / (clean − corrupted): 1 = clean behaviour restored, 0 = none. Nil
    /// everywhere when the normalisation means nothing.
    public var values: [Double?] {
        guard isNormalizable else { return raw.map { _ in nil } }
        return raw.map { $0.map { ($0 - corrupted) / (clean - corrupted) } }
    }

    /// The grid index of flat cell `cell`.
    public func index(of cell: Int) -> [Int] {
        var rest = cell, index = [Int](repeating: 0, count: shape.count)
        for axis in shape.indices.reversed() { index[axis] = rest % shape[axis]; rest /= shape[axis] }
        return index
    }

    public struct Entry: Sendable, Equatable {
        public var label: String
        public var index: [Int]
        public var value: Double
        public var raw: Double
    }

    /// The `count` cells that moved the metric most (by |normalised value|, or |raw − corrupted|
    /// when it cannot be normalised), largest first.
    public func top(_ count: Int) -> [Entry] {
        let normalized = values
        let cells = raw.indices.compactMap { cell -> Entry? in
            guard let raw = raw[cell] else { return nil }
            return Entry(label: labels[cell], index: index(of: cell), value: normalized[cell] ?? raw - corrupted, raw: raw)
        }
        return Array(cells.sorted { abs($0.value) > abs($1.value) }.prefix(count))
    }

    /// Several results over the same grid side by side (TransformerLens's `*_every`), under a
    /// leading `target` axis.
    public static func stacked(_ parts: [PatchResult], name: String) -> PatchResult {
        var result = parts[0]
        result.target = name
        result.dims = ["target"] + parts[0].dims
        result.shape = [parts.count] + parts[0].shape
        result.raw = parts.flatMap(\.raw)
        result.labels = parts.flatMap { part in part.labels.map { "\(part.target) \($0)" } }
        result.axisLabels = [parts.map(\.target)] + parts[0].axisLabels
        return result
    }
}
