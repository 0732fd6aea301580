import Foundation

/// How a row of logits scores a chosen token (an answer, a lens target): its rank (0 = top, the
/// number of tokens with a strictly larger logit), logit and probability. A logit difference against
/// a foil sits beside it in each result (`LensCell`, `Prediction`, `ItemResult`), where the JSON has
/// always had it. The lens, `run`, datasets and paths all score through `LogitRow`.
public struct TokenScore: Codable, Equatable, Sendable {
    public var id: Int
    public var token: String
    public var rank: Int
    public var logit: Float
    public var prob: Double
}

/// An entry of a top-k list: its place in the list is its rank.
public struct TopToken: Codable, Equatable, Sendable {
    public var id: Int
    public var token: String
    public var logit: Float
    public var prob: Double
}

/// One position's logits [vocab] and the scores read from them: top-k, a token's rank, logit and
/// probability, and a logit difference against a foil.
struct LogitRow {
    /// How probabilities are normalised: both are softmax, and differ only in the last bits.
    enum ProbabilityMethod {
        /// Only ranks and logits are read (vector paths).
        case none
        /// exp(logit − logΣexp), with the vectorised `Softmax.logSumExp`: the lens scores thousands of rows.
        case logSumExp
        /// `Softmax.probabilities`, exp in Double over the whole row (`run`, datasets).
        case softmax
    }

    let logits: UnsafeBufferPointer<Float>
    private let normalization: Normalization
    private enum Normalization { case none, logSumExp(Double), softmax([Double]) }

    init(_ logits: UnsafeBufferPointer<Float>, probabilities: ProbabilityMethod) {
        self.logits = logits
        switch probabilities {
        case .none: normalization = .none
        case .logSumExp: normalization = .logSumExp(Softmax.logSumExp(logits))
        case .softmax: normalization = .softmax(Softmax.probabilities(logits))
        }
    }

    func probability(of id: Int) -> Double {
        switch normalization {
        case .none: preconditionFailure("probabilities were not computed for this row")
        case let .logSumExp(normalizer): return exp(Double(logits[id]) - normalizer)
        case let .softmax(values): return values[id]
        }
    }

    func rank(of id: Int) -> Int { Softmax.rank(of: id, in: logits) }

    /// Ids of the k largest logits, largest first.
    func top(_ k: Int) -> [Int] { Softmax.topIndices(logits, k: k) }

    /// The top k tokens with their logits and probabilities, largest first.
    func topTokens(_ k: Int, model: Model) -> [TopToken] {
        top(k).map { TopToken(id: $0, token: model.tokenText($0), logit: logits[$0], prob: probability(of: $0)) }
    }

    /// One token's rank, logit and probability.
    func score(_ id: Int, model: Model) -> TokenScore {
        TokenScore(id: id, token: model.tokenText(id), rank: rank(of: id), logit: logits[id], prob: probability(of: id))
    }

    /// logit(target) − logit(foil).
    func logitDiff(_ target: Int, foil: Int) -> Float { logits[target] - logits[foil] }
}
