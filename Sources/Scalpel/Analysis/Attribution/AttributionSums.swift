import Foundation

/// An attribution before averaging: per batch of prompts, the sum over its items of every
/// grouping's cell values, of the model's actual value and of the ln_final bias term.
///
/// A run adds the batches' sums in batch order and divides by the number of items
/// (`averaged()`). A shard (`--shard K/N`) computes only its batches; `scalpel merge` puts every
/// part's batches back in order and averages them the same way, so the merged values are the
/// unsharded run's bit for bit (a batch is computed by one forward pass whose summation order
/// depends on its rows, DECISIONS.md "Matrix products"; summing batch by batch fixes the order of
/// everything after it).
public struct AttributionSums: Sendable, Codable {
    /// One grouping's grid: what `AttributionResult` needs besides the values.
    public struct Layout: Sendable, Codable, Equatable {
        public var grouping: AttributionGrouping
        public var normalization: LogitLens.Normalization
        public var dims: [String]
        public var shape: [Int]
        public var labels: [String]
        public var axisLabels: [[String]]
        /// false where the model has no such unit (a head of a block without attention).
        public var exists: [Bool]
    }

    public struct Batch: Sendable, Codable {
        /// Which batch of the whole run (prompts index·batchSize …).
        public var index: Int
        public var items: Int
        /// Per grouping (in the order of `layouts`), per cell: the sum over the batch's items.
        public var values: [[Double]]
        public var actual: Double
        public var lnFinalBias: Double

        /// Doubles are stored as their bit patterns: a partial file's payload keeps every bit.
        enum CodingKeys: String, CodingKey { case index, items, values, actual, lnFinalBias }

        public init(index: Int, items: Int, values: [[Double]], actual: Double, lnFinalBias: Double) {
            self.index = index; self.items = items; self.values = values; self.actual = actual; self.lnFinalBias = lnFinalBias
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            index = try c.decode(Int.self, forKey: .index)
            items = try c.decode(Int.self, forKey: .items)
            values = try c.decode([[UInt64]].self, forKey: .values).map { $0.map(Double.init(bitPattern:)) }
            actual = Double(bitPattern: try c.decode(UInt64.self, forKey: .actual))
            lnFinalBias = Double(bitPattern: try c.decode(UInt64.self, forKey: .lnFinalBias))
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index)
            try c.encode(items, forKey: .items)
            try c.encode(values.map { $0.map(\.bitPattern) }, forKey: .values)
            try c.encode(actual.bitPattern, forKey: .actual)
            try c.encode(lnFinalBias.bitPattern, forKey: .lnFinalBias)
        }
    }

    public var layouts: [Layout]
    /// "answer − corrupted_answer" or "token <text>".
    public var direction: String
    /// In increasing `index`.
    public var batches: [Batch]

    public init(layouts: [Layout], direction: String, batches: [Batch]) {
        self.layouts = layouts; self.direction = direction; self.batches = batches.sorted { $0.index < $1.index }
    }

    /// The items the batches hold.
    public var items: Int { batches.reduce(0) { $0 + $1.items } }

    /// Every grouping's values averaged over the batches' items: the batches' sums added in batch order.
    public func averaged() -> [AttributionResult] {
        let n = Double(max(items, 1))
        var actual = 0.0, bias = 0.0
        for batch in batches { actual += batch.actual; bias += batch.lnFinalBias }
        return layouts.enumerated().map { g, layout in
            var sums = [Double](repeating: 0, count: layout.labels.count)
            for batch in batches { for c in sums.indices { sums[c] += batch.values[g][c] } }
            let values = sums.indices.map { layout.exists[$0] ? sums[$0] / n : nil }
            let total = layout.grouping == .layer ? (values.last ?? nil) ?? 0 : values.compactMap { $0 }.reduce(0, +)
            return AttributionResult(grouping: layout.grouping, normalization: layout.normalization, direction: direction,
                                     dims: layout.dims, shape: layout.shape, values: values, labels: layout.labels, axisLabels: layout.axisLabels,
                                     total: total, actual: actual / n, lnFinalBias: bias / n, items: items)
        }
    }
}
