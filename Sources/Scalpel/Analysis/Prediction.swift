import Foundation

/// The next-token prediction at one position, like the study's `test_prompt`.
public struct Prediction: Codable, Sendable {
    public var tokens: [Int]
    public var top: [TopToken]
    public var answer: TokenScore?
    /// logit(answer) − logit(foil), when both are given.
    public var logitDiff: Float?

    /// Scores one row of logits: the top-k tokens and, when given, the answer's rank, logit and
    /// probability, and its logit difference against a foil.
    public init(tokens: [Int], logits: UnsafeBufferPointer<Float>, topK: Int, answer: Int?, foil: Int? = nil, model: Model) {
        self.tokens = tokens
        let row = LogitRow(logits, probabilities: .softmax)
        top = row.topTokens(topK, model: model)
        self.answer = answer.map { row.score($0, model: model) }
        if let answer, let foil { logitDiff = row.logitDiff(answer, foil: foil) }
    }
}

public enum Softmax {
    /// softmax(logits) computed in Double so small probabilities keep their digits.
    public static func probabilities(_ logits: UnsafeBufferPointer<Float>) -> [Double] {
        let maximum = Double(logits.max() ?? 0)
        var exps = logits.map { exp(Double($0) - maximum) }
        let sum = exps.reduce(0, +)
        for i in exps.indices { exps[i] /= sum }
        return exps
    }

    /// log Σ exp(logits), eight lanes at a time (`Kernels.exp8`), the sum accumulated in Double per chunk.
    public static func logSumExp(_ logits: UnsafeBufferPointer<Float>) -> Double {
        guard let base = logits.baseAddress, !logits.isEmpty else { return -.infinity }
        let maximum = logits.max()!
        let lanes = logits.count / 8
        var sum = 0.0
        let raw = UnsafeRawPointer(base)
        var chunk = SIMD8<Float>(repeating: 0)
        for i in 0..<lanes {
            chunk += Kernels.exp8(raw.loadUnaligned(fromByteOffset: i * 32, as: SIMD8<Float>.self) - maximum)
            if i % 64 == 63 { sum += Double(chunk.sum()); chunk = .zero }
        }
        sum += Double(chunk.sum())
        for i in (lanes * 8)..<logits.count { sum += Double(expf(logits[i] - maximum)) }
        return Double(maximum) + log(sum)
    }

    /// Indices of the k largest logits, largest first (ties broken by the lower id, as torch.topk on CPU).
    public static func topIndices(_ logits: UnsafeBufferPointer<Float>, k: Int) -> [Int] {
        var best: [Int] = []
        best.reserveCapacity(k + 1)
        for i in 0..<logits.count {
            if best.count == k, let last = best.last, logits[i] <= logits[last] { continue }
            let slot = best.firstIndex { logits[i] > logits[$0] } ?? best.count
            best.insert(i, at: slot)
            if best.count > k { best.removeLast() }
        }
        return best
    }

    /// Number of tokens with a strictly larger logit.
    public static func rank(of id: Int, in logits: UnsafeBufferPointer<Float>) -> Int {
        let value = logits[id]
        return logits.reduce(0) { $0 + ($1 > value ? 1 : 0) }
    }
}
