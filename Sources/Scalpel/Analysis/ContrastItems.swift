import Foundation

/// One item of a causal analysis, as token ids: the clean prompt and its answer, the corrupted
/// prompt (same number of tokens) and its answer, the foil of the logit difference.
public struct ContrastItem: Sendable, Equatable {
    public var clean: [Int]
    public var corrupted: [Int]
    public var answer: Int
    public var foil: Int

    public init(clean: [Int], corrupted: [Int], answer: Int, foil: Int) {
        self.clean = clean; self.corrupted = corrupted; self.answer = answer; self.foil = foil
    }

    public var length: Int { clean.count }
}

/// The items of a causal analysis (DESIGN.md, "Causal analyses"), checked once: every item has a
/// corrupted prompt of its clean prompt's token count, and one-token answers.
public struct ContrastItems: Sendable {
    public var items: [ContrastItem]
    /// Where the items came from (a dataset's name), for messages and files.
    public var name: String

    public init(name: String, items: [ContrastItem]) throws {
        guard !items.isEmpty else { throw ContrastError.empty(dataset: name) }
        for (index, item) in items.enumerated() where item.clean.count != item.corrupted.count {
            throw ContrastError.lengthMismatch(dataset: name, item: index, clean: item.clean.map(String.init), corrupted: item.corrupted.map(String.init))
        }
        self.name = name
        self.items = items
    }

    /// Tokenises a dataset's items; every item needs `corrupted_prompt`, an answer and a corrupted answer.
    public init(dataset: PromptDataset, model: Model, prependBOS: Bool = true) throws {
        var items: [ContrastItem] = []
        for (index, item) in dataset.items.enumerated() {
            guard let corruptedPrompt = item.corruptedPrompt else { throw ContrastError.missingField(dataset: dataset.name, item: index, field: "corrupted_prompt") }
            guard let answer = item.answer else { throw ContrastError.missingField(dataset: dataset.name, item: index, field: "answer") }
            guard let foil = item.corruptedAnswer else { throw ContrastError.missingField(dataset: dataset.name, item: index, field: "corrupted_answer") }
            let clean = try model.encode(prompt: item.prompt, prependBOS: prependBOS)
            let corrupted = try model.encode(prompt: corruptedPrompt, prependBOS: prependBOS)
            guard clean.count == corrupted.count else {
                throw ContrastError.lengthMismatch(dataset: dataset.name, item: index, clean: clean.map(model.tokenText),
                                                   corrupted: corrupted.map(model.tokenText))
            }
            items.append(ContrastItem(clean: clean, corrupted: corrupted, answer: try model.answerID(answer), foil: try model.answerID(foil)))
        }
        try self.init(name: dataset.name, items: items)
    }

    /// The common token count, or an error naming two items of different lengths (analyses indexed by position need one).
    public func commonLength() throws -> Int {
        let first = items[0].length
        if let other = items.firstIndex(where: { $0.length != first }) {
            throw ContrastError.unequalLengths(dataset: name, first: (0, first), other: (other, items[other].length))
        }
        return first
    }
}

public enum ContrastError: UserFacingError, Equatable {
    case empty(dataset: String)
    case missingField(dataset: String, item: Int, field: String)
    case lengthMismatch(dataset: String, item: Int, clean: [String], corrupted: [String])
    case unequalLengths(dataset: String, first: (Int, Int), other: (Int, Int))

    public static func == (a: ContrastError, b: ContrastError) -> Bool { a.message == b.message }

    public var message: String {
        switch self {
        case let .empty(dataset): return "Dataset \(dataset) has no items."
        case let .missingField(dataset, item, field):
            return "Dataset \(dataset), item \(item + 1) has no \(field). Causal analyses need, per item, a prompt, its answer, a corrupted_prompt and its corrupted_answer (the study's families have them; see `scalpel datasets`)."
        case let .lengthMismatch(dataset, item, clean, corrupted):
            return "Dataset \(dataset), item \(item + 1): the clean prompt has \(clean.count) tokens \(Self.show(clean)) but the corrupted prompt has \(corrupted.count) \(Self.show(corrupted)). Give prompts of the same token count."
        case let .unequalLengths(dataset, first, other):
            return "Dataset \(dataset): item \(first.0 + 1) has \(first.1) tokens but item \(other.0 + 1) has \(other.1). Position-indexed analyses need items of one length; use a per-head or per-neuron target, or split the dataset by length."
        }
    }

    static func show(_ tokens: [String]) -> String { "[" + tokens.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
}
