import Foundation

public enum PromptError: UserFacingError, Equatable {
    case noTokenizer(model: String)
    case emptyPrompt
    case multiTokenAnswer(answer: String, pieces: [String])
    case emptyAnswer
    case answerOutOfVocabulary(answer: String, id: Int, vocab: Int)

    public var message: String {
        switch self {
        case let .noTokenizer(model):
            return "Model \(model) has no tokenizer. Put vocab.json and merges.txt in its folder, or pass token ids."
        case .emptyPrompt:
            return "The prompt is empty. Give some text, e.g. --prompt \"1 2 3 4\"."
        case let .multiTokenAnswer(answer, pieces):
            let shown = pieces.map { "\"\($0)\"" }.joined(separator: ", ")
            return "The answer \"\(answer)\" is \(pieces.count) tokens (\(shown)); answers are scored as one token. Pass --first-token to use \(pieces.first.map { "\"\($0)\"" } ?? "the first") only."
        case .emptyAnswer:
            return "The answer is empty. Give the expected next token, e.g. --answer \" 5\" (mind the leading space)."
        case let .answerOutOfVocabulary(answer, id, vocab):
            return "The answer \"\(answer)\" is token id \(id), outside the model's vocabulary of \(vocab). The tokenizer does not belong to this model."
        }
    }
}

extension Model {
    public func requireTokenizer() throws -> GPT2Tokenizer {
        guard let tokenizer else { throw PromptError.noTokenizer(model: name) }
        return tokenizer
    }

    /// The id prepended as BOS: `<|endoftext|>` (50256 in GPT-2), as TransformerLens does by default.
    public var bosID: Int { tokenizer?.endOfTextID ?? config.bosTokenID ?? (vocabSize - 1) }

    /// Token ids of a text prompt, with `<|endoftext|>` prepended unless `prependBOS` is false.
    public func encode(prompt text: String, prependBOS: Bool = true) throws -> [Int] {
        guard !text.isEmpty else { throw PromptError.emptyPrompt }
        let ids = try requireTokenizer().encode(text)
        return prependBOS ? [bosID] + ids : ids
    }

    /// The single token id of an answer such as " 5". Several tokens are an error unless `firstTokenOnly`.
    public func answerID(_ text: String, firstTokenOnly: Bool = false) throws -> Int {
        let tokenizer = try requireTokenizer()
        let ids = tokenizer.encode(text)
        guard let first = ids.first else { throw PromptError.emptyAnswer }
        if ids.count > 1 && !firstTokenOnly {
            throw PromptError.multiTokenAnswer(answer: text, pieces: ids.map { tokenizer.text(of: $0) })
        }
        guard first < vocabSize else { throw PromptError.answerOutOfVocabulary(answer: text, id: first, vocab: vocabSize) }
        return first
    }

    /// Display text of a token (" 5"), or its id when there is no tokenizer.
    public func tokenText(_ id: Int) -> String { tokenizer?.text(of: id) ?? "#\(id)" }
}
