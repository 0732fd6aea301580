import Foundation

/// Reading vocab.json and merges.txt, with errors that say which file and which line is wrong.
extension GPT2Tokenizer {
    static func readVocab(_ data: Data, path: String) throws -> [String: Int] {
        let url = URL(fileURLWithPath: path)
        let vocab: [String: Int]
        do {
            vocab = try JSONDecoder().decode([String: Int].self, from: data)
        } catch {
            throw vocabProblem(data, path: url.path)
        }
        var pieceOfID: [Int: String] = [:]
        pieceOfID.reserveCapacity(vocab.count)
        for (piece, id) in vocab {
            guard id >= 0 else { throw TokenizerError.vocabBadID(path: url.path, piece: piece) }
            if let other = pieceOfID.updateValue(piece, forKey: id) {
                let (first, second) = other < piece ? (other, piece) : (piece, other)
                throw TokenizerError.vocabDuplicateID(path: url.path, id: id, first: first, second: second)
            }
        }
        return vocab
    }

    /// One merge per line, "left right"; a first line starting "#version" is a header. Line
    /// ends may be "\n" or "\r\n"; blank lines are skipped.
    static func readMerges(_ data: Data, path: String, vocab: [String: Int]) throws -> [(String, String)] {
        let url = URL(fileURLWithPath: path)
        guard let text = String(data: data, encoding: .utf8) else { throw TokenizerError.notUTF8(path: url.path) }
        var merges: [(String, String)] = []
        merges.reserveCapacity(50_000)
        // Split on scalars, not Characters: "\r\n" is one Character, and so is a space followed
        // by a combining mark.
        let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        for (index, rawLine) in lines.enumerated() {
            var line = rawLine
            if line.last == "\r" { line = line.dropLast() }
            if line.isEmpty || (index == 0 && String(line).hasPrefix("#version")) { continue }
            let parts = line.split(separator: " ", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw TokenizerError.mergeBadLine(path: url.path, line: index + 1, text: String(line))
            }
            let (left, right) = (String(parts[0]), String(parts[1]))
            for piece in [left, right, left + right] where vocab[piece] == nil {
                throw TokenizerError.mergeNotInVocab(path: url.path, line: index + 1, piece: piece)
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
            guard let number = value as? NSNumber, number.doubleValue == number.doubleValue.rounded() else {
                return .vocabBadID(path: path, piece: piece)
            }
        }
        return .vocabNotAnObject(path: path)
    }

    static func readFile(_ url: URL) throws -> Data {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw TokenizerError.missingFile(path: url.path)
        }
        do {
            return try Data(contentsOf: url)
        } catch {
            throw TokenizerError.unreadable(path: url.path, reason: error.localizedDescription)
        }
    }
}
