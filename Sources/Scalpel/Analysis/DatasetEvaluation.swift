import Foundation

/// How a model does on one prompt of a family: a row of the study's section 8 table.
public struct ItemResult: Codable, Sendable {
    public var prompt: String
    public var answer: String?
    public var tokens: [Int]
    /// The answer's rank (0 = top prediction), logit and probability; nil without an answer.
    public var score: TokenScore?
    /// logit(answer) − logit(corrupted answer) on the clean prompt, the study's logit difference.
    public var logitDiff: Float?
    public var top: [TopToken]
}

/// A family's accuracy and mean logit difference.
public struct DatasetSummary: Codable, Sendable {
    public var dataset: String
    public var prompts: Int
    /// Fraction of prompts whose answer is the top prediction; nil without answers.
    public var accuracy: Double?
    public var correct: Int
    public var meanLogitDiff: Double?
}

/// Runs every prompt of a family in batches and scores the answers, handing each item's result on
/// as soon as its batch is done: memory stays bounded by the model and one batch, whatever the
/// number of prompts.
public struct DatasetEvaluation {
    public var prependBOS = true
    public var topK = 5
    public var firstTokenOnly = false
    public var batchSize = 64

    public init() {}

    /// Every prompt and answer is encoded (and so checked) before the first batch runs.
    public func run(_ model: Model, dataset: PromptDataset, each: (ItemResult) throws -> Void) throws -> DatasetSummary {
        let prompts = try dataset.items.map { try model.encode(prompt: $0.prompt, prependBOS: prependBOS) }
        let answers = try dataset.items.map { try $0.answer.map { try model.answerID($0, firstTokenOnly: firstTokenOnly) } }
        let foils = try dataset.items.map { try $0.corruptedAnswer.map { try model.answerID($0, firstTokenOnly: firstTokenOnly) } }
        var scored = 0, correct = 0, diffs = 0, diffSum = 0.0
        for start in stride(from: 0, to: prompts.count, by: batchSize) {
            let range = start..<min(start + batchSize, prompts.count)
            let result = try model.runSharingFirstTokens(Array(prompts[range]))
            for (row, i) in range.enumerated() {
                let item = result.logits[row].buffer.withMemoryRebound(to: Float.self) { logits in
                    let prediction = Prediction(tokens: prompts[i], logits: logits, topK: topK, answer: answers[i], foil: foils[i], model: model)
                    return ItemResult(prompt: dataset.items[i].prompt, answer: dataset.items[i].answer, tokens: prompts[i],
                                      score: prediction.answer, logitDiff: prediction.logitDiff, top: prediction.top)
                }
                if let score = item.score { scored += 1; correct += score.rank == 0 ? 1 : 0 }
                if let diff = item.logitDiff { diffs += 1; diffSum += Double(diff) }
                try each(item)
            }
        }
        return DatasetSummary(dataset: dataset.name, prompts: prompts.count,
                              accuracy: scored == 0 ? nil : Double(correct) / Double(scored), correct: correct,
                              meanLogitDiff: diffs == 0 ? nil : diffSum / Double(diffs))
    }
}
