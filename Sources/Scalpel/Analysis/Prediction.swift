import Foundation

/// A token with its logit and probability at one position.
public struct TokenScore: Codable, Equatable, Sendable {
    public var id: Int
    public var token: String
    public var logit: Float
    public var prob: Double
}

/// How the model ranks an expected answer: rank 0 is the top prediction.
public struct AnswerScore: Codable, Equatable, Sendable {
    public var id: Int
    public var token: String
    public var rank: Int
    public var logit: Float
    public var prob: Double
}

/// The next-token prediction at one position, like the study's `test_prompt`.
public struct Prediction: Codable, Sendable {
    public var tokens: [Int]
    public var top: [TokenScore]
    public var answer: AnswerScore?

    /// Scores one row of logits: the top-k tokens and, when given, the answer's rank, logit and probability.
    public init(tokens: [Int], logits: UnsafeBufferPointer<Float>, topK: Int, answer: Int?, model: Model) {
        self.tokens = tokens
        let probabilities = Softmax.probabilities(logits)
        top = Softmax.topIndices(logits, k: topK).map {
            TokenScore(id: $0, token: model.tokenText($0), logit: logits[$0], prob: probabilities[$0])
        }
        self.answer = answer.map { id in
            AnswerScore(id: id, token: model.tokenText(id), rank: Softmax.rank(of: id, in: logits),
                        logit: logits[id], prob: probabilities[id])
        }
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
