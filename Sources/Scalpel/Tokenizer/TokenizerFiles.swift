import Foundation

/// Reading vocab.json and merges.txt, with errors that say which file and which line is wrong.
extension GPT2Tokenizer {
    /// Ids must be exactly 0 … n−1 for n pieces, each used once: the tokenizer sizes its tables by
    /// the largest id, so one huge id would allocate without bound. The strict parser reads the file
    /// in one pass and compares keys by their bytes: two keys that decode to the same text are one
    /// piece given twice, and canonically equivalent spellings ("é", "e" + U+0301) are two pieces.
    static func readVocab(_ data: Data, path: String) throws -> PieceTable {
        let bytes = [UInt8](data)
        guard String(validating: bytes, as: UTF8.self) != nil else { throw TokenizerError.notUTF8(path: path) }
        let members: [(key: String, value: StrictJSON)]
        do {
            guard case let .object(object) = try StrictJSONParser.parse(bytes) else { throw TokenizerError.vocabNotAnObject(path: path) }
            members = object
        } catch let StrictJSONParser.Failure.duplicateKey(key, _) {
            throw TokenizerError.vocabDuplicatePiece(path: path, piece: key)
        } catch is StrictJSONParser.Failure {
            throw TokenizerError.vocabNotAnObject(path: path)
        }
        guard !members.isEmpty else { throw TokenizerError.vocabEmpty(path: path) }
        var table = PieceTable(capacity: members.count)
        var pieceOfID = [Int](repeating: -1, count: members.count)  // the member that has each id
        for (index, (piece, value)) in members.enumerated() {
            guard case let .number(text) = value, case let .value(id) = StrictJSON.integer(text) else {
                throw TokenizerError.vocabBadID(path: path, piece: piece)
            }
            guard id < members.count else { throw TokenizerError.vocabIDTooLarge(path: path, piece: piece, id: id, count: members.count) }
            if pieceOfID[id] >= 0 {
                let other = members[pieceOfID[id]].key
                let (first, second) = other < piece ? (other, piece) : (piece, other)
                throw TokenizerError.vocabDuplicateID(path: path, id: id, first: first, second: second)
            }
            pieceOfID[id] = index
            table.insert(piece, id: id)
        }
        return table
    }

    /// One merge per line, "left right", as ids (left, right, merged); a first line starting
    /// "#version" is a header. Lines may end in "\n", "\r\n" or "\r"; blank lines are skipped.
    static func readMerges(_ data: Data, path: String, vocab: PieceTable) throws -> [(left: Int32, right: Int32, merged: Int32)] {
        guard String(validating: data, as: UTF8.self) != nil else { throw TokenizerError.notUTF8(path: path) }
        var merges: [(left: Int32, right: Int32, merged: Int32)] = []
        merges.reserveCapacity(50_000)
        var joined: [UInt8] = []
        try data.withUnsafeBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            for (index, range) in InputFile.lineRanges(bytes).enumerated() {
                let line = UnsafeBufferPointer(rebasing: bytes[range]), number = index + 1
                if line.isEmpty || (number == 1 && line.starts(with: "#version".utf8)) { continue }
                // Exactly one space, with a piece on each side.
                guard let space = line.firstIndex(of: 0x20), space > 0, space < line.count - 1,
                      !line[(space + 1)...].contains(0x20) else {
                    throw TokenizerError.mergeBadLine(path: path, line: number, text: String(decoding: line, as: UTF8.self))
                }
                let left = UnsafeBufferPointer(rebasing: line[..<space]), right = UnsafeBufferPointer(rebasing: line[(space + 1)...])
                joined.removeAll(keepingCapacity: true)
                joined.append(contentsOf: left)
                joined.append(contentsOf: right)
                func id(_ piece: UnsafeBufferPointer<UInt8>) throws -> Int32 {
                    guard let id = vocab.id(of: piece) else {
                        throw TokenizerError.mergeNotInVocab(path: path, line: number, piece: String(decoding: piece, as: UTF8.self))
                    }
                    return Int32(id)
                }
                let (a, b) = (try id(left), try id(right))
                let merged = try joined.withUnsafeBufferPointer { try id($0) }
                merges.append((a, b, merged))
            }
        }
        return merges
    }

    static func readFile(_ url: URL) throws -> Data {
        do {
            return try InputFile.read(url.path, missingHint: "")
        } catch FileError.missing {
            throw TokenizerError.missingFile(path: url.path)
        }
    }
}
