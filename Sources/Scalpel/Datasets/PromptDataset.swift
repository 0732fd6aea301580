import Foundation

/// One prompt of a family: the clean prompt and its answer, and the corrupted prompt with its answer
/// (the study corrupts by repeating the second-to-last element: "1 2 3 3", whose answer is " 4").
public struct PromptItem: Codable, Equatable, Sendable {
    public var prompt: String
    public var answer: String?
    public var corruptedPrompt: String?
    public var corruptedAnswer: String?

    public init(prompt: String, answer: String? = nil, corruptedPrompt: String? = nil, corruptedAnswer: String? = nil) {
        self.prompt = prompt; self.answer = answer
        self.corruptedPrompt = corruptedPrompt; self.corruptedAnswer = corruptedAnswer
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case prompt, answer
        case corruptedPrompt = "corrupted_prompt"
        case corruptedAnswer = "corrupted_answer"
    }

    /// Every item has every key (`datasets --format json`): null where a file gave none.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(prompt, forKey: .prompt)
        try container.encode(answer, forKey: .answer)
        try container.encode(corruptedPrompt, forKey: .corruptedPrompt)
        try container.encode(corruptedAnswer, forKey: .corruptedAnswer)
    }
}

/// A named family of prompts, such as the study's `digits` or `months`.
public struct PromptDataset: Codable, Equatable, Sendable {
    public var name: String
    public var description: String
    public var items: [PromptItem]

    public init(name: String, description: String, items: [PromptItem]) {
        self.name = name; self.description = description; self.items = items
    }

    /// `description` may be left out in user files.
    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        name = try container.decode(String.self, forKey: .name)
        description = try container.decodeIfPresent(String.self, forKey: .description) ?? ""
        items = try container.decode([PromptItem].self, forKey: .items)
    }

    enum CodingKeys: String, CodingKey { case name, description, items }

    /// A sequence prompt and its study corruption: the window `elements[0..<n]` followed by `elements[n]`,
    /// corrupted by replacing the last element with the second-to-last.
    static func window(_ elements: [String], separator: String = " ", answerPrefix: String = " ") -> PromptItem {
        let shown = Array(elements.dropLast())
        var corrupted = shown
        corrupted[corrupted.count - 1] = corrupted[corrupted.count - 2]
        return PromptItem(prompt: shown.joined(separator: separator), answer: answerPrefix + elements.last!,
                          corruptedPrompt: corrupted.joined(separator: separator), corruptedAnswer: answerPrefix + shown.last!)
    }
}

public enum DatasetError: UserFacingError, Equatable {
    case unknown(name: String, known: [String])
    case malformed(path: String, line: Int?, reason: String)
    case duplicate(path: String, name: String)

    public var message: String {
        switch self {
        case let .unknown(name, known):
            return "No dataset named \"\(name)\". Known: \(known.joined(separator: ", ")) (see `scalpel datasets`), or give a .yaml/.json/.txt/.jsonl file."
        case let .malformed(path, line, reason):
            return "\(path)\(line.map { ":\($0)" } ?? ""): \(reason)"
        case let .duplicate(path, name):
            return "\(path): dataset \"\(name)\" is defined twice. Give each family a distinct name."
        }
    }
}
