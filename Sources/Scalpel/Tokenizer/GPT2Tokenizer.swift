import Foundation

/// GPT-2's byte-level BPE tokenizer, giving the same ids as Hugging Face `GPT2TokenizerFast`.
///
/// Encoding: "<|endoftext|>" is cut out first and becomes its special id; the rest is split by
/// `PreTokenizer`, each piece's UTF-8 bytes start as one symbol per byte, and BPE (`BPEMerges`)
/// repeatedly merges the adjacent pair with the lowest rank in merges.txt.
///
/// Thread safety: everything is immutable except the BPE cache, which a lock guards, so one
/// instance may be shared between threads.
public final class GPT2Tokenizer: @unchecked Sendable {
    public static let endOfTextPiece = "<|endoftext|>"

    /// One more than the largest id in the vocabulary (50257 for GPT-2).
    public let vocabSize: Int
    /// The id of "<|endoftext|>" when the vocabulary has it.
    public let endOfTextID: Int?

    private let vocab: PieceTable
    private let pieces: [String]          // by id; "" for ids the vocabulary skips
    private let tokenBytes: [[UInt8]]     // by id: the raw bytes each token stands for
    private let byteIDs: [Int32]          // by byte: the id of its one-byte token, or -1
    private let merges: BPEMerges
    private let endOfTextScalars = Array(GPT2Tokenizer.endOfTextPiece.unicodeScalars)

    private let cacheLock = NSLock()
    private var cache: [[UInt8]: [Int]] = [:]
    private static let cacheLimit = 100_000  // entries; the cache is emptied when it grows past this
    private static let cachedPieceLimit = 256  // bytes; longer pieces rarely repeat

    /// Merges whose pieces, or whose merged piece, are missing from `vocab` are ignored, and so
    /// are negative ids. When a pair is listed twice the later rank counts, as in Hugging Face.
    public convenience init(vocab: [String: Int], merges: [(String, String)]) {
        let vocabData = (try? JSONSerialization.data(withJSONObject: vocab, options: [.sortedKeys])) ?? Data()
        let mergesText = "#version: 0.2\n" + merges.map { "\($0.0) \($0.1)\n" }.joined()
        var table = PieceTable(capacity: vocab.count)
        for (piece, id) in vocab.sorted(by: { $0.value < $1.value }) where id >= 0 { table.insert(piece, id: id) }
        let ids: [(Int32, Int32, Int32)] = merges.compactMap { left, right in
            guard let a = table.id(of: left), let b = table.id(of: right), let merged = table.id(of: left + right) else { return nil }
            return (Int32(a), Int32(b), Int32(merged))
        }
        self.init(vocab: table, merges: ids, vocabData: vocabData, mergesData: Data(mergesText.utf8))
    }

    /// The vocab.json and merges.txt this tokenizer was read from, kept so that archives and
    /// exported folders carry the tokenizer byte for byte.
    public let vocabData: Data
    public let mergesData: Data

    /// `merges[rank]`: the ids of the left and right pieces and of the piece they merge into.
    private init(vocab: PieceTable, merges: [(left: Int32, right: Int32, merged: Int32)], vocabData: Data, mergesData: Data) {
        self.vocabData = vocabData
        self.mergesData = mergesData
        self.vocab = vocab
        vocabSize = (vocab.ids.max() ?? -1) + 1
        var pieces = [String](repeating: "", count: vocabSize)
        var tokenBytes = [[UInt8]](repeating: [], count: vocabSize)
        for (entry, id) in vocab.ids.enumerated() {
            let piece = vocab.piece(entry: entry)
            pieces[id] = String(decoding: piece, as: UTF8.self)
            tokenBytes[id] = ByteLevel.bytes(ofPiece: piece)
        }
        self.pieces = pieces
        self.tokenBytes = tokenBytes
        byteIDs = ByteLevel.scalarOf.map { vocab.id(of: String($0)).map(Int32.init) ?? -1 }
        self.merges = BPEMerges(pairs: merges.map { ($0.left, $0.right) }, ids: merges.map(\.merged))
        endOfTextID = vocab.id(of: Self.endOfTextPiece)
    }

    /// Reads a Hugging Face vocab.json and merges.txt (whose first line may be "#version…").
    public convenience init(vocabURL: URL, mergesURL: URL) throws {
        try self.init(vocabData: try Self.readFile(vocabURL), mergesData: try Self.readFile(mergesURL),
                      vocabPath: vocabURL.path, mergesPath: mergesURL.path)
    }

    /// The tokenizer from the contents of vocab.json and merges.txt; errors name `origin`.
    /// Throws unless every id fits in a model of `vocabSize` tokens (a model may have more, never fewer).
    public func checkFits(vocabSize modelVocab: Int, path: String) throws {
        guard vocabSize <= modelVocab else { throw TokenizerError.largerThanModel(path: path, pieces: vocabSize, vocabSize: modelVocab) }
    }

    public convenience init(vocabData: Data, mergesData: Data, origin: String) throws {
        try self.init(vocabData: vocabData, mergesData: mergesData, vocabPath: "\(origin) vocab", mergesPath: "\(origin) merges")
    }

    private convenience init(vocabData: Data, mergesData: Data, vocabPath: String, mergesPath: String) throws {
        let vocab = try Self.readVocab(vocabData, path: vocabPath)
        let merges = try Self.readMerges(mergesData, path: mergesPath, vocab: vocab)
        self.init(vocab: vocab, merges: merges, vocabData: vocabData, mergesData: mergesData)
    }

    /// The tokenizer in a folder holding vocab.json and merges.txt.
    public static func load(from directory: URL) throws -> GPT2Tokenizer {
        try GPT2Tokenizer(vocabURL: directory.appendingPathComponent("vocab.json"),
                          mergesURL: directory.appendingPathComponent("merges.txt"))
    }

    // MARK: Encoding

    public func encode(_ text: String) -> [Int] {
        let scalars = Array(text.unicodeScalars)
        var ids: [Int] = []
        ids.reserveCapacity(scalars.count / 3 + 1)
        var segmentStart = 0
        if let special = endOfTextID {
            let marker = endOfTextScalars
            var i = 0
            while i + marker.count <= scalars.count {
                if scalars[i] == marker[0] && scalars[i..<(i + marker.count)].elementsEqual(marker) {
                    encodeOrdinary(scalars, segmentStart..<i, into: &ids)
                    ids.append(special)
                    i += marker.count
                    segmentStart = i
                } else {
                    i += 1
                }
            }
        }
        encodeOrdinary(scalars, segmentStart..<scalars.count, into: &ids)
        return ids
    }

    private func encodeOrdinary(_ scalars: [Unicode.Scalar], _ range: Range<Int>, into ids: inout [Int]) {
        var bytes: [UInt8] = []
        for piece in PreTokenizer.split(scalars, range) {
            bytes.removeAll(keepingCapacity: true)
            for scalar in scalars[piece] { UTF8.encode(scalar) { bytes.append($0) } }
            ids.append(contentsOf: bpeCached(bytes))
        }
    }

    private func bpeCached(_ bytes: [UInt8]) -> [Int] {
        if bytes.count > Self.cachedPieceLimit { return bpe(bytes) }
        cacheLock.lock()
        let hit = cache[bytes]
        cacheLock.unlock()
        if let hit { return hit }
        let ids = bpe(bytes)
        cacheLock.lock()
        if cache.count >= Self.cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[bytes] = ids
        cacheLock.unlock()
        return ids
    }

    /// One symbol per byte, then BPE. Bytes without a one-byte token are dropped, as Hugging
    /// Face does when there is no unknown token.
    private func bpe(_ bytes: [UInt8]) -> [Int] {
        let symbols = bytes.compactMap { byteIDs[Int($0)] >= 0 ? byteIDs[Int($0)] : nil }
        return merges.apply(symbols).map(Int.init)
    }

    // MARK: Decoding and lookup

    /// The text of the tokens' bytes. Ids outside the vocabulary are skipped and invalid UTF-8
    /// becomes U+FFFD per maximal invalid subsequence, both as Hugging Face does.
    public func decode(_ ids: [Int]) -> String {
        var bytes: [UInt8] = []
        for id in ids where tokenBytes.indices.contains(id) { bytes.append(contentsOf: tokenBytes[id]) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The vocabulary spelling of a token, e.g. "Ġ5"; "" for an id outside the vocabulary.
    public func piece(_ id: Int) -> String {
        pieces.indices.contains(id) ? pieces[id] : ""
    }

    /// The text of one token, e.g. " 5". A token holding part of a multi-byte character shows as "�".
    public func text(of id: Int) -> String {
        decode([id])
    }

    /// The id of a vocabulary piece, matched byte for byte (Swift's `==` would also accept a
    /// canonically equivalent spelling such as "e\u{301}" for "é").
    public func id(ofPiece piece: String) -> Int? {
        vocab.id(of: piece)
    }
}
