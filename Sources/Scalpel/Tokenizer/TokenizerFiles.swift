import Foundation

/// Reading vocab.json and merges.txt, with errors that say which file and which line is wrong.
extension GPT2Tokenizer {
    /// Ids must be exactly 0 … n−1 for n pieces, each used once: the tokenizer sizes its tables by
    /// the largest id, so one huge id would allocate without bound. Pieces are compared by their
    /// bytes: two keys that decode to the same text are the same piece, given twice.
    static func readVocab(_ data: Data, path: String) throws -> PieceTable {
        let entries = try VocabScanner.entries(data) ?? decodedVocab(data, path: path)
        guard !entries.isEmpty else { throw TokenizerError.vocabEmpty(path: path) }
        var table = PieceTable(capacity: entries.count)
        for entry in entries {
            let repeated = entry.piece.withUnsafeBufferPointer { table.insert($0, id: entry.id) }
            if repeated != nil { throw TokenizerError.vocabDuplicatePiece(path: path, piece: String(decoding: entry.piece, as: UTF8.self)) }
        }
        var entryOfID = [Int](repeating: -1, count: entries.count)
        for (index, entry) in entries.enumerated() {
            let piece = String(decoding: entry.piece, as: UTF8.self)
            guard entry.id >= 0 else { throw TokenizerError.vocabBadID(path: path, piece: piece) }
            guard entry.id < entries.count else {
                throw TokenizerError.vocabIDTooLarge(path: path, piece: piece, id: entry.id, count: entries.count)
            }
            if entryOfID[entry.id] >= 0 {
                let other = String(decoding: entries[entryOfID[entry.id]].piece, as: UTF8.self)
                let (first, second) = other < piece ? (other, piece) : (piece, other)
                throw TokenizerError.vocabDuplicateID(path: path, id: entry.id, first: first, second: second)
            }
            entryOfID[entry.id] = index
        }
        return table
    }

    /// vocab.json through the JSON decoder, when `VocabScanner` did not take it: it either reads an
    /// unusual spelling (an id written 1.0) or says what is wrong.
    private static func decodedVocab(_ data: Data, path: String) throws -> [(piece: [UInt8], id: Int)] {
        let vocab: [String: Int]
        do {
            vocab = try JSONDecoder().decode([String: Int].self, from: data)
        } catch {
            throw vocabProblem(data, path: path)
        }
        if let key = JSONKeys.firstDuplicate(in: data) { throw TokenizerError.vocabDuplicatePiece(path: path, piece: key) }
        return vocab.sorted { $0.value < $1.value }.map { (Array($0.key.utf8), $0.value) }
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
            var start = 0, number = 0
            while start < bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != 0x0A && bytes[end] != 0x0D { end += 1 }
                number += 1
                let line = UnsafeBufferPointer(rebasing: bytes[start..<end])
                start = end + (end + 1 < bytes.count && bytes[end] == 0x0D && bytes[end + 1] == 0x0A ? 2 : 1)
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

/// vocab.json in the plain shape every tokenizer writes, read in one pass over its bytes: one
/// object of strings to integers, valid UTF-8. Anything else (an id written 1.0, a lone surrogate
/// escape, a nested value) gives nil, and the JSON decoder reads the file instead.
struct VocabScanner {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var i = 0

    /// The entries (the piece's UTF-8 bytes, its id) in file order, or nil.
    static func entries(_ data: Data) -> [(piece: [UInt8], id: Int)]? {
        guard String(validating: data, as: UTF8.self) != nil else { return nil }
        return data.withUnsafeBytes { raw in
            var scanner = VocabScanner(bytes: raw.bindMemory(to: UInt8.self))
            return scanner.object()
        }
    }

    private init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

    private mutating func object() -> [(piece: [UInt8], id: Int)]? {
        var entries: [(piece: [UInt8], id: Int)] = []
        entries.reserveCapacity(bytes.count / 12)
        guard take("{") else { return nil }
        if !take("}") {
            repeat {
                guard take("\""), let piece = string(), take(":"), let id = integer() else { return nil }
                entries.append((piece, id))
            } while take(",")
            guard take("}") else { return nil }
        }
        skipSpace()
        return i == bytes.count ? entries : nil
    }

    private mutating func skipSpace() {
        while i < bytes.count && (bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09) { i += 1 }
    }

    /// Skips white space, then `character` if it is next.
    private mutating func take(_ character: Unicode.Scalar) -> Bool {
        skipSpace()
        guard i < bytes.count && bytes[i] == UInt8(ascii: character) else { return false }
        i += 1
        return true
    }

    /// A string's UTF-8 bytes, after its opening quote.
    private mutating func string() -> [UInt8]? {
        var out: [UInt8] = []
        while i < bytes.count {
            let byte = bytes[i]
            i += 1
            switch byte {
            case UInt8(ascii: "\""): return out
            case UInt8(ascii: "\\"):
                guard i < bytes.count else { return nil }
                let escaped = bytes[i]
                i += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escaped)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard let scalar = escapedScalar() else { return nil }
                    UTF8.encode(scalar) { out.append($0) }
                default: return nil
                }
            case 0..<0x20: return nil  // control characters must be escaped
            default: out.append(byte)
            }
        }
        return nil
    }

    /// The scalar of "\uXXXX" (after the "u"), or of a surrogate pair "\uD83D\uDE00".
    private mutating func escapedScalar() -> Unicode.Scalar? {
        guard let high = hex4() else { return nil }
        guard (0xD800..<0xDC00).contains(high) else { return Unicode.Scalar(high) }  // nil for a lone low surrogate
        guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else { return nil }
        i += 2
        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
        return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
    }

    private mutating func hex4() -> UInt32? {
        guard i + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            guard let digit = Character(Unicode.Scalar(bytes[i])).hexDigitValue else { return nil }
            value = value * 16 + UInt32(digit)
            i += 1
        }
        return value
    }

    /// An integer written as JSON writes one (no leading zeros, no fraction or exponent), at most
    /// 18 digits.
    private mutating func integer() -> Int? {
        skipSpace()
        let negative = i < bytes.count && bytes[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        let first = i
        var value = 0
        while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]), i - first < 18 {
            value = value * 10 + Int(bytes[i] - UInt8(ascii: "0"))
            i += 1
        }
        let digits = i - first
        guard digits > 0, !(digits > 1 && bytes[first] == UInt8(ascii: "0")) else { return nil }
        if i < bytes.count, [UInt8(ascii: "."), UInt8(ascii: "e"), UInt8(ascii: "E")].contains(bytes[i])
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) { return nil }
        return negative ? -value : value
    }
}
