import Foundation

/// How a model does on each prompt of a family: the table of the study's section 8.
public struct ItemResult: Codable, Sendable {
    public var prompt: String
    public var answer: String?
    public var tokens: [Int]
    /// The answer's rank (0 = top prediction), logit and probability; nil without an answer.
    public var score: AnswerScore?
    /// logit(answer) − logit(corrupted answer) on the clean prompt, the study's logit difference.
    public var logitDiff: Float?
    public var top: [TokenScore]
}

public struct DatasetEvaluation: Codable, Sendable {
    public var dataset: String
    public var items: [ItemResult]

    /// Fraction of prompts whose answer is the top prediction.
    public var accuracy: Double? {
        let scored = items.compactMap(\.score)
        return scored.isEmpty ? nil : Double(scored.filter { $0.rank == 0 }.count) / Double(scored.count)
    }

    public var meanLogitDiff: Double? {
        let diffs = items.compactMap(\.logitDiff)
        return diffs.isEmpty ? nil : diffs.reduce(0) { $0 + Double($1) } / Double(diffs.count)
    }

    /// Runs every prompt of `dataset` in one batch and scores the answers.
    public init(model: Model, dataset: PromptDataset, prependBOS: Bool = true, topK: Int = 5,
                firstTokenOnly: Bool = false) throws {
        self.dataset = dataset.name
        let prompts = try dataset.items.map { try model.encode(prompt: $0.prompt, prependBOS: prependBOS) }
        let answers = try dataset.items.map { try $0.answer.map { try model.answerID($0, firstTokenOnly: firstTokenOnly) } }
        let foils = try dataset.items.map { try $0.corruptedAnswer.map { try model.answerID($0, firstTokenOnly: firstTokenOnly) } }
        let result = try model.run(prompts)
        items = dataset.items.indices.map { i in
            result.logits[i].buffer.withMemoryRebound(to: Float.self) { logits in
                let prediction = Prediction(tokens: prompts[i], logits: logits, topK: topK, answer: answers[i], model: model)
                var diff: Float?
                if let answer = answers[i], let foil = foils[i] { diff = logits[answer] - logits[foil] }
                return ItemResult(prompt: dataset.items[i].prompt, answer: dataset.items[i].answer, tokens: prompts[i],
                                  score: prediction.answer, logitDiff: diff, top: prediction.top)
            }
        }
    }
}
