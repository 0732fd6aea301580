/// Problems with the tokenizer files (vocab.json, merges.txt). Each message names the file,
/// the field or line at fault, and what to do about it.
public enum TokenizerError: UserFacingError, Equatable {
    case missingFile(path: String)
    case unreadable(path: String, reason: String)
    case notUTF8(path: String)
    case vocabNotAnObject(path: String)
    case vocabBadID(path: String, piece: String)
    case vocabDuplicateID(path: String, id: Int, first: String, second: String)
    case vocabIDTooLarge(path: String, piece: String, id: Int, count: Int)
    case vocabDuplicatePiece(path: String, piece: String)
    case vocabEmpty(path: String)
    case mergeBadLine(path: String, line: Int, text: String)
    case mergeNotInVocab(path: String, line: Int, piece: String)
    case largerThanModel(path: String, pieces: Int, vocabSize: Int)

    private static let source = "Use the vocab.json and merges.txt of a GPT-2 model (e.g. the Hugging Face "
        + "repository openai-community/gpt2), unmodified and side by side."

    public var message: String {
        switch self {
        case let .missingFile(path):
            return "\(path): no such file. \(Self.source)"
        case let .unreadable(path, reason):
            return "\(path): cannot read (\(reason))."
        case let .notUTF8(path):
            return "\(path): not valid UTF-8 text. \(Self.source)"
        case let .vocabNotAnObject(path):
            return "\(path): expected one JSON object mapping each token piece to its integer id, "
                + "like {\"!\": 0, \"\\\"\": 1, …}. \(Self.source)"
        case let .vocabBadID(path, piece):
            return "\(path): the id of \(quoted(piece)) is not a non-negative integer. \(Self.source)"
        case let .vocabDuplicateID(path, id, first, second):
            return "\(path): id \(id) is given to both \(quoted(first)) and \(quoted(second)); "
                + "each id must name one piece. \(Self.source)"
        case let .vocabIDTooLarge(path, piece, id, count):
            return "\(path): the id of \(quoted(piece)) is \(id), but the file has \(count) pieces; ids must be 0 to "
                + "\(count - 1), each used once. \(Self.source)"
        case let .vocabDuplicatePiece(path, piece):
            return "\(path): the piece \(quoted(piece)) is given twice; each piece must appear once. \(Self.source)"
        case let .vocabEmpty(path):
            return "\(path): the vocabulary is empty. \(Self.source)"
        case let .mergeBadLine(path, line, text):
            return "\(path), line \(line): expected two pieces separated by one space, found "
                + "\(quoted(text)). \(Self.source)"
        case let .mergeNotInVocab(path, line, piece):
            return "\(path), line \(line): the piece \(quoted(piece)) is not in vocab.json, so this "
                + "merge cannot be used; the two files do not belong together. \(Self.source)"
        case let .largerThanModel(path, pieces, vocabSize):
            return "\(path): the tokenizer has \(pieces) pieces but the model's vocab_size is \(vocabSize), so some ids "
                + "would fall outside its embedding; the tokenizer and the model do not belong together. \(Self.source)"
        }
    }

    private func quoted(_ text: String) -> String {
        let shown = text.count > 60 ? String(text.prefix(60)) + "…" : text
        return "\"" + shown.debugDescription.dropFirst().dropLast() + "\""
    }
}
