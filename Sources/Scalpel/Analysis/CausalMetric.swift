import Foundation

/// What a causal analysis measures at the last position of each item, averaged over the items
/// (DESIGN.md, "Causal analyses").
public enum CausalMetric: String, CaseIterable, Sendable, Codable {
    /// logit(answer) − logit(corrupted answer): the study's metric.
    case logitDiff = "logit-diff"
    /// logit(answer).
    case logit
    /// softmax probability of the answer.
    case prob

    /// Only `prob` needs every token's logit (its softmax); the others read two columns.
    public var needsEveryToken: Bool { self == .prob }

    /// The token ids whose logits the metric reads, when it does not need every token.
    public func columns(for items: [ContrastItem]) -> [Int]? {
        needsEveryToken ? nil : Array(Set(items.flatMap { [$0.answer, $0.foil] })).sorted()
    }

    /// The metric of one item from its last-position logits: every token's, or `columns`' in that order.
    public func value(_ logits: UnsafeBufferPointer<Float>, item: ContrastItem, columns: [Int]?) -> Double {
        func logit(_ token: Int) -> Float { logits[columns.map { $0.firstIndex(of: token)! } ?? token] }
        switch self {
        case .logitDiff: return Double(logit(item.answer) - logit(item.foil))
        case .logit: return Double(logit(item.answer))
        case .prob: return exp(Double(logits[item.answer]) - Softmax.logSumExp(logits))
        }
    }

    /// The mean over items, from each item's logits at its last position ([1, vocab or columns]).
    public func mean(_ rows: [Tensor], items: [ContrastItem], columns: [Int]?) -> Double {
        var sum = 0.0
        for (row, item) in zip(rows, items) {
            sum += withExtendedLifetime(row) { value(UnsafeBufferPointer(start: row.pointer, count: row.count), item: item, columns: columns) }
        }
        return sum / Double(items.count)
    }
}
