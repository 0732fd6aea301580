import Foundation

/// Reading vocab.json and merges.txt, with errors that say which file and which line is wrong.
extension GPT2Tokenizer {
    /// Ids must be exactly 0 … n−1 for n pieces, each used once: the tokenizer sizes its tables by
    /// the largest id, so one huge id would allocate without bound.
    static func readVocab(_ data: Data, path: String) throws -> [String: Int] {
        let vocab: [String: Int]
        do {
            vocab = try JSONDecoder().decode([String: Int].self, from: data)
        } catch {
            throw vocabProblem(data, path: path)
        }
        guard !vocab.isEmpty else { throw TokenizerError.vocabEmpty(path: path) }
        if let key = JSONKeys.firstDuplicate(in: data) { throw TokenizerError.vocabDuplicatePiece(path: path, piece: key) }
        var pieceOfID: [Int: String] = [:]
        pieceOfID.reserveCapacity(vocab.count)
        for (piece, id) in vocab {
            guard id >= 0 else { throw TokenizerError.vocabBadID(path: path, piece: piece) }
            guard id < vocab.count else { throw TokenizerError.vocabIDTooLarge(path: path, piece: piece, id: id, count: vocab.count) }
            if let other = pieceOfID.updateValue(piece, forKey: id) {
                let (first, second) = other < piece ? (other, piece) : (piece, other)
                throw TokenizerError.vocabDuplicateID(path: path, id: id, first: first, second: second)
            }
        }
        return vocab
    }

    /// One merge per line, "left right"; a first line starting "#version" is a header. Lines may
    /// end in "\n", "\r\n" or "\r"; blank lines are skipped.
    static func readMerges(_ data: Data, path: String, vocab: [String: Int]) throws -> [(String, String)] {
        guard let text = String(data: data, encoding: .utf8) else { throw TokenizerError.notUTF8(path: path) }
        var merges: [(String, String)] = []
        merges.reserveCapacity(50_000)
        for (index, line) in InputFile.lines(text).enumerated() {
            if line.isEmpty || (index == 0 && line.hasPrefix("#version")) { continue }
            // Split on scalars: a space followed by a combining mark is one Character.
            let parts = line.unicodeScalars.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.mergeBadLine(path: path, line: index + 1, text: String(line))
            }
            let (left, right) = (String(parts[0]), String(parts[1]))
            for piece in [left, right, left + right] where vocab[piece] == nil {
                throw TokenizerError.mergeNotInVocab(path: path, line: index + 1, piece: piece)
            }
            merges.append((left, right))
        }
        return merges
    }

    /// Why vocab.json did not decode as [String: Int]: the first entry (by piece) whose value
    /// is not an integer, or else the file's shape.
    private static func vocabProblem(_ data: Data, path: String) -> TokenizerError {
        guard let entries = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            return .vocabNotAnObject(path: path)
        }
        for (piece, value) in entries.sorted(by: { $0.key < $1.key }) {
            guard JSONNumbers.integer(value) != nil else {
                return .vocabBadID(path: path, piece: piece)
            }
        }
        return .vocabNotAnObject(path: path)
    }

    static func readFile(_ url: URL) throws -> Data {
        do {
            return try InputFile.read(url.path, missingHint: "")
        } catch FileError.missing {
            throw TokenizerError.missingFile(path: url.path)
        }
    }
}
