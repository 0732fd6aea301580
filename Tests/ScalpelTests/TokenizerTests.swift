import Foundation
import XCTest
@testable import Scalpel

/// The GPT-2 tokenizer: small hand-made vocabularies for the mechanics, and the real GPT-2
/// files (../shared/gpt2) against ids recorded from Hugging Face GPT2TokenizerFast by
/// tools/make_tokenizer_corpus.py.
final class TokenizerTests: XCTestCase {
    // MARK: Byte map and pre-tokenizer (no files needed)

    func testByteMapIsGPT2s() {
        XCTAssertEqual(ByteLevel.scalarOf[0x20], "\u{120}")  // "Ġ"
        XCTAssertEqual(ByteLevel.scalarOf[0x0A], "\u{10A}")  // "Ċ"
        XCTAssertEqual(ByteLevel.scalarOf[0x00], "\u{100}")
        XCTAssertEqual(ByteLevel.scalarOf[0x7F], "\u{121}")
        XCTAssertEqual(ByteLevel.scalarOf[0xAD], "\u{143}")  // the soft hyphen is the last remapped byte
        XCTAssertEqual(ByteLevel.scalarOf[0x41], "A")
        XCTAssertEqual(ByteLevel.scalarOf[0xE9], "é")
        XCTAssertEqual(Set(ByteLevel.scalarOf).count, 256)
        for byte in 0..<256 { XCTAssertEqual(ByteLevel.byte(of: ByteLevel.scalarOf[byte]), UInt8(byte)) }
        XCTAssertEqual(ByteLevel.piece(of: Array(" 5".utf8)), "Ġ5")
        XCTAssertEqual(ByteLevel.bytes(ofPiece: "ĠcafÃ©".utf8), Array(" café".utf8))
        XCTAssertEqual(ByteLevel.bytes(ofPiece: "<|endoftext|>".utf8), Array("<|endoftext|>".utf8))
        XCTAssertEqual(ByteLevel.bytes(ofPiece: "日本".utf8), Array("日本".utf8))  // not byte-level: taken as text
    }

    func testPreTokenizerFollowsTheGPT2Pattern() {
        let cases: [(String, [String])] = [
            ("Hello world", ["Hello", " world"]),
            ("I'M don't they'LL", ["I", "'", "M", " don", "'t", " they", "'", "LL"]),
            ("we've you're 'll'd", ["we", "'ve", " you", "'re", " '", "ll", "'d"]),
            ("''s 's' !'s", ["''", "s", " '", "s", "'", " !'", "s"]),
            ("abc123def 45", ["abc", "123", "def", " 45"]),
            (" 123 !! ?", [" 123", " !!", " ?"]),
            ("a  b", ["a", " ", " b"]),
            ("  \tword", ["  ", "\t", "word"]),
            ("\n\n  x", ["\n\n ", " x"]),
            ("word   ", ["word", "   "]),
            ("x \u{A0}y", ["x", " ", "\u{A0}", "y"]),
            ("x\u{200B}y\u{3000}z", ["x", "\u{200B}", "y", "\u{3000}", "z"]),
            ("a\r\nb", ["a", "\r", "\n", "b"]),  // "\s+(?!\S)" leaves the "\n"
            ("e\u{301}t\u{E9}", ["e", "\u{301}", "t\u{E9}"]),
            ("٣.١٤ ١٢", ["٣", ".", "١٤", " ١٢"]),
            ("", []),
        ]
        for (text, expected) in cases {
            let scalars = Array(text.unicodeScalars)
            let pieces = PreTokenizer.split(scalars, 0..<scalars.count).map { range in
                String(String.UnicodeScalarView(scalars[range]))
            }
            XCTAssertEqual(pieces, expected, "splitting \(text.debugDescription)")
        }
    }

    /// Every code point classified as the Hugging Face regex engine does (recorded ranges).
    func testCharacterClassesMatchHuggingFace() throws {
        let data = try Data(contentsOf: Self.fixture("char_classes.json"))
        let ranges = try JSONDecoder().decode([String: [[UInt32]]].self, from: data)
        var expected = [PreTokenizer.Class](repeating: .other, count: 0x110000)
        let names: [String: PreTokenizer.Class] = ["L": .letter, "N": .number, "S": .whitespace]
        for (name, list) in ranges {
            let cls = try XCTUnwrap(names[name], "unknown class \(name)")
            for range in list { for v in range[0]...range[1] { expected[Int(v)] = cls } }
        }
        var mismatches: [String] = []
        for v in UInt32(0)..<0x110000 {
            guard let scalar = Unicode.Scalar(v) else { continue }
            let found = PreTokenizer.classify(scalar)
            if found != expected[Int(v)] { mismatches.append("U+\(String(v, radix: 16)) \(found) ≠ \(expected[Int(v)])") }
        }
        XCTAssertEqual(mismatches.count, 0, "first: \(mismatches.prefix(10))")
    }

    // MARK: BPE mechanics on hand-made vocabularies

    private func smallTokenizer(merges: [(String, String)], extra: [String] = []) -> GPT2Tokenizer {
        var vocab: [String: Int] = [:]
        for piece in ["a", "b", "c", "Ġ", "!"] + extra { vocab[piece] = vocab.count }
        return GPT2Tokenizer(vocab: vocab, merges: merges)
    }

    func testMergesApplyByRank() {
        let bcFirst = smallTokenizer(merges: [("b", "c"), ("a", "b")], extra: ["ab", "bc"])
        XCTAssertEqual(bcFirst.encode("abc").map(bcFirst.piece), ["a", "bc"])
        let abFirst = smallTokenizer(merges: [("a", "b"), ("b", "c")], extra: ["ab", "bc"])
        XCTAssertEqual(abFirst.encode("abc").map(abFirst.piece), ["ab", "c"])
        // A later merge builds on an earlier one; the space byte is "Ġ".
        let chain = smallTokenizer(merges: [("Ġ", "a"), ("b", "c"), ("Ġa", "bc")], extra: ["Ġa", "bc", "Ġabc"])
        XCTAssertEqual(chain.encode("c abc").map(chain.piece), ["c", "Ġabc"])
        XCTAssertEqual(chain.decode(chain.encode("c abc")), "c abc")
    }

    func testAPairListedTwiceTakesItsLaterRank() {
        // As in Hugging Face `tokenizers` (checked: BPE(vocab, merges) with these lists).
        let tok = smallTokenizer(merges: [("a", "b"), ("b", "c"), ("a", "b")], extra: ["ab", "bc"])
        XCTAssertEqual(tok.encode("abc").map(tok.piece), ["a", "bc"])
    }

    func testMergesFollowHuggingFaceOrderEvenWhenRanksAreOutOfOrder() {
        // A pair made by a merge can outrank the pair that made it (never in GPT-2's list).
        // Hugging Face then merges it at once rather than first finishing every "a b"; so do we.
        var vocab: [String: Int] = [:]
        for piece in ["a", "b", "ab", "aba"] { vocab[piece] = vocab.count }
        let tok = GPT2Tokenizer(vocab: vocab, merges: [("ab", "a"), ("a", "b")])
        XCTAssertEqual(tok.encode("abab").map(tok.piece), ["aba", "b"])
    }

    func testLongPieceRoundTrips() {
        let tok = smallTokenizer(merges: [("a", "b"), ("ab", "c"), ("c", "a")], extra: ["ab", "abc", "ca"])
        let text = String(repeating: "abcab", count: 20_000)  // one 100,000-letter piece
        let ids = tok.encode(text)
        XCTAssertEqual(ids.count, 40_000)
        XCTAssertEqual(tok.decode(ids), text)
    }

    func testRepeatedPairsMergeLeftToRight() {
        let tok = smallTokenizer(merges: [("a", "a"), ("aa", "aa")], extra: ["aa", "aaaa"])
        XCTAssertEqual(tok.encode("aaa").map(tok.piece), ["aa", "a"])
        XCTAssertEqual(tok.encode("aaaaa").map(tok.piece), ["aaaa", "a"])
    }

    func testMergesOutsideTheVocabularyAreIgnored() {
        let tok = smallTokenizer(merges: [("a", "b"), ("x", "y")])  // "ab" is not in the vocabulary
        XCTAssertEqual(tok.encode("ab").map(tok.piece), ["a", "b"])
    }

    func testEndOfTextIsSpecialOnlyWhenInTheVocabulary() throws {
        let plain = smallTokenizer(merges: [])
        XCTAssertNil(plain.endOfTextID)
        let letters = "<|endoftext|>".map(String.init)
        var vocab: [String: Int] = [:]
        for piece in ["a", "b", "Ġ"] + letters + ["<|endoftext|>"] where vocab[piece] == nil { vocab[piece] = vocab.count }
        let tok = GPT2Tokenizer(vocab: vocab, merges: [])
        let eot = try XCTUnwrap(tok.endOfTextID)
        XCTAssertEqual(tok.encode("a<|endoftext|>b"), [vocab["a"]!, eot, vocab["b"]!])
        XCTAssertEqual(tok.encode(" <|endoftext|><|endoftext|>"), [vocab["Ġ"]!, eot, eot])
        XCTAssertEqual(tok.encode("<|endoftext|")[0], vocab["<"]!)  // incomplete: ordinary text
        XCTAssertEqual(tok.decode(tok.encode("a<|endoftext|>b")), "a<|endoftext|>b")
        XCTAssertEqual(tok.vocabSize, vocab.count)
    }

    func testDecodeReplacesInvalidUTF8AndSkipsUnknownIDs() {
        // 你 is E4 BD A0; alone, its first two bytes are one invalid sequence, so one U+FFFD.
        let bytes: [UInt8] = [0xE4, 0xBD, 0xA0, 0x41]
        var vocab: [String: Int] = [:]
        for byte in bytes { vocab[String(ByteLevel.scalarOf[Int(byte)])] = vocab.count }
        let tok = GPT2Tokenizer(vocab: vocab, merges: [])
        XCTAssertEqual(tok.encode("你A"), [0, 1, 2, 3])
        XCTAssertEqual(tok.decode([0, 1, 2, 3]), "你A")
        XCTAssertEqual(tok.decode([0, 1, 3]), "\u{FFFD}A")
        XCTAssertEqual(tok.decode([2, 2]), "\u{FFFD}\u{FFFD}")
        XCTAssertEqual(tok.decode([3, 99, -1, 3]), "AA")
        XCTAssertEqual(tok.piece(99), "")
        XCTAssertEqual(tok.text(of: 0), "\u{FFFD}")
    }

    // MARK: Reading files

    func testReadsVersionHeaderAndCRLF() throws {
        let dir = try temporaryFolder()
        try #"{"a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4}"#.write(to: dir.appendingPathComponent("vocab.json"),
                                                                  atomically: true, encoding: .utf8)
        try "#version: 0.2\r\na b\r\nĠ ab\r\n".write(to: dir.appendingPathComponent("merges.txt"),
                                                     atomically: true, encoding: .utf8)
        let tok = try GPT2Tokenizer.load(from: dir)
        XCTAssertEqual(tok.encode("ab ab"), [2, 4])
        XCTAssertEqual(tok.id(ofPiece: "Ġab"), 4)
    }

    func testFileErrorsNameTheFileAndLine() throws {
        let dir = try temporaryFolder()
        let vocabURL = dir.appendingPathComponent("vocab.json")
        let mergesURL = dir.appendingPathComponent("merges.txt")
        func error(vocab: String?, merges: String?) -> TokenizerError? {
            try? FileManager.default.removeItem(at: vocabURL)
            try? FileManager.default.removeItem(at: mergesURL)
            if let vocab { try? vocab.write(to: vocabURL, atomically: true, encoding: .utf8) }
            if let merges { try? merges.write(to: mergesURL, atomically: true, encoding: .utf8) }
            do {
                _ = try GPT2Tokenizer(vocabURL: vocabURL, mergesURL: mergesURL)
                return nil
            } catch {
                return error as? TokenizerError
            }
        }
        let good = #"{"a": 0, "b": 1, "ab": 2}"#
        XCTAssertEqual(error(vocab: nil, merges: "a b"), .missingFile(path: vocabURL.path))
        XCTAssertEqual(error(vocab: good, merges: nil), .missingFile(path: mergesURL.path))
        XCTAssertEqual(error(vocab: "[1, 2]", merges: "a b"), .vocabNotAnObject(path: vocabURL.path))
        XCTAssertEqual(error(vocab: #"{"a": 0, "b": "one"}"#, merges: ""), .vocabBadID(path: vocabURL.path, piece: "b"))
        XCTAssertEqual(error(vocab: #"{"a": 0, "b": 1.5}"#, merges: ""), .vocabBadID(path: vocabURL.path, piece: "b"))
        XCTAssertEqual(error(vocab: #"{"a": -1}"#, merges: ""), .vocabBadID(path: vocabURL.path, piece: "a"))
        XCTAssertEqual(error(vocab: #"{"a": 0, "b": 0}"#, merges: ""),
                       .vocabDuplicateID(path: vocabURL.path, id: 0, first: "a", second: "b"))
        XCTAssertEqual(error(vocab: good, merges: "#version: 0.2\na b\nab\n"),
                       .mergeBadLine(path: mergesURL.path, line: 3, text: "ab"))
        XCTAssertEqual(error(vocab: good, merges: "a  b"), .mergeBadLine(path: mergesURL.path, line: 1, text: "a  b"))
        XCTAssertEqual(error(vocab: good, merges: "a b\nb a"), .mergeNotInVocab(path: mergesURL.path, line: 2, piece: "ba"))
        XCTAssertNil(error(vocab: good, merges: "a b\n\n"))
        let message = error(vocab: good, merges: "a b\nb c")?.message ?? ""
        XCTAssertTrue(message.contains("merges.txt, line 2") && message.contains("\"c\""), message)
    }

    func testPiecesAreComparedByTheirDecodedBytes() throws {
        let dir = try temporaryFolder()
        let vocabURL = dir.appendingPathComponent("vocab.json"), mergesURL = dir.appendingPathComponent("merges.txt")
        try "".write(to: mergesURL, atomically: true, encoding: .utf8)
        try #"{"A": 0, "\u0041": 1}"#.write(to: vocabURL, atomically: true, encoding: .utf8)
        assertError(try GPT2Tokenizer(vocabURL: vocabURL, mergesURL: mergesURL), TokenizerError.self,
                    equals: .vocabDuplicatePiece(path: vocabURL.path, piece: "A"))
        // "é" and "e" + combining acute are equal Swift Strings but different pieces.
        try #"{"\u00e9": 0, "e\u0301": 1}"#.write(to: vocabURL, atomically: true, encoding: .utf8)
        let tok = try GPT2Tokenizer(vocabURL: vocabURL, mergesURL: mergesURL)
        XCTAssertEqual(tok.id(ofPiece: "\u{E9}"), 0)
        XCTAssertEqual(tok.id(ofPiece: "e\u{301}"), 1)
    }

    // MARK: Parity with Hugging Face on the real GPT-2 vocabulary

    func testCorpusMatchesHuggingFace() throws {
        let rows = try Self.corpus()
        XCTAssertGreaterThanOrEqual(rows.count, 2000)
        let loadStart = Date()
        let tok = try Self.realTokenizer()  // a fresh instance, so the timing below has a cold cache
        let loaded = Date().timeIntervalSince(loadStart)
        let start = Date()
        let encoded = rows.map { tok.encode($0.text) }
        let seconds = Date().timeIntervalSince(start)
        let tokens = encoded.reduce(0) { $0 + $1.count }
        print("TokenizerTests: loaded GPT-2 files in \(ms(loaded)); encoded \(rows.count) strings "
              + "(\(tokens) tokens) in \(ms(seconds)) with a cold cache")
        var failures = 0
        for (row, ids) in zip(rows, encoded) {
            if ids != row.ids {
                failures += 1
                if failures <= 10 { XCTFail("encode(\(row.text.debugDescription)): \(ids), Hugging Face \(row.ids)") }
            }
            let decoded = tok.decode(row.ids)
            if decoded != (row.decoded ?? row.text) {
                failures += 1
                if failures <= 10 { XCTFail("decode(\(row.ids)): \(decoded.debugDescription) for \(row.text.debugDescription)") }
            }
        }
        XCTAssertEqual(failures, 0)
    }

    func testDecodeMatchesHuggingFace() throws {
        let tok = try Self.sharedTokenizer()
        let data = try Data(contentsOf: Self.fixture("decode.jsonl"))
        let rows = try JSONDecoder().decode([DecodeRow].self, from: Self.jsonLinesAsArray(data))
        XCTAssertGreaterThan(rows.count, 500)
        for row in rows {
            XCTAssertEqual(tok.decode(row.ids), row.text, "decode(\(row.ids))")
        }
    }

    func testRealVocabularyLookups() throws {
        let tok = try Self.sharedTokenizer()
        XCTAssertEqual(tok.vocabSize, 50257)
        XCTAssertEqual(tok.endOfTextID, 50256)
        XCTAssertEqual(tok.encode("Hello world"), [15496, 995])
        XCTAssertEqual(tok.piece(15496), "Hello")
        let five = try XCTUnwrap(tok.id(ofPiece: "Ġ5"))
        XCTAssertEqual(tok.text(of: five), " 5")
        XCTAssertEqual(tok.text(of: 198), "\n")
        XCTAssertEqual(tok.piece(50256), "<|endoftext|>")
        XCTAssertEqual(tok.id(ofPiece: "\u{E9}"), 165)  // the byte 0xE9
        XCTAssertNil(tok.id(ofPiece: "e\u{301}"))        // equal as Swift Strings, but not that piece
        for id in 0..<tok.vocabSize { XCTAssertEqual(tok.id(ofPiece: tok.piece(id)), id) }
    }

    func testConcurrentEncodingAgreesWithSerial() throws {
        let tok = try Self.realTokenizer()
        let texts = try Self.corpus().map(\.text)
        let serial = texts.map(tok.encode)
        let parallel = try Self.realTokenizer()
        var results = [[Int]](repeating: [], count: texts.count)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            for i in stride(from: worker, to: texts.count, by: 8) {
                let ids = parallel.encode(texts[i])
                lock.lock(); results[i] = ids; lock.unlock()
            }
        }
        XCTAssertEqual(results, serial)
    }

    // MARK: Helpers

    private struct CorpusRow: Decodable {
        let text: String
        let ids: [Int]
        let decoded: String?  // Hugging Face's decode(ids) when it is not `text`

        init(from decoder: Decoder) throws {
            var row = try decoder.unkeyedContainer()
            text = try row.decode(String.self)
            ids = try row.decode([Int].self)
            decoded = row.isAtEnd ? nil : try row.decode(String.self)
        }
    }

    private struct DecodeRow: Decodable {
        let ids: [Int]
        let text: String

        init(from decoder: Decoder) throws {
            var row = try decoder.unkeyedContainer()
            ids = try row.decode([Int].self)
            text = try row.decode(String.self)
        }
    }

    private static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private static func fixture(_ name: String) throws -> URL {
        let folder = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
        return folder.appendingPathComponent("tokenizer").appendingPathComponent(name)
    }

    private static func corpus() throws -> [CorpusRow] {
        let data = try Data(contentsOf: fixture("corpus.jsonl"))
        return try JSONDecoder().decode([CorpusRow].self, from: jsonLinesAsArray(data))
    }

    /// JSON lines → one JSON array, so a single decode reads the file.
    private static func jsonLinesAsArray(_ data: Data) -> Data {
        let lines = data.split(separator: UInt8(ascii: "\n")).filter { !$0.isEmpty }
        var joined = Data("[".utf8)
        for (i, line) in lines.enumerated() {
            if i > 0 { joined.append(UInt8(ascii: ",")) }
            joined.append(contentsOf: line)
        }
        joined.append(UInt8(ascii: "]"))
        return joined
    }

    private static func realTokenizer() throws -> GPT2Tokenizer {
        let folder = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/gpt2")
        guard FileManager.default.fileExists(atPath: folder.appendingPathComponent("vocab.json").path) else {
            throw XCTSkip("\(folder.path) not found: the real GPT-2 vocabulary is needed for this test; "
                          + "it is present in CI")
        }
        return try GPT2Tokenizer.load(from: folder)
    }

    private static var shared: GPT2Tokenizer?
    private static func sharedTokenizer() throws -> GPT2Tokenizer {
        if let shared { return shared }
        let tok = try realTokenizer()
        shared = tok
        return tok
    }

    private func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("scalpel-tokenizer-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }
}

private func ms(_ seconds: TimeInterval) -> String {
    String(format: "%.0f ms", seconds * 1000)
}
