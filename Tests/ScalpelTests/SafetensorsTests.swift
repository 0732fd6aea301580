import XCTest
@testable import Scalpel

final class SafetensorsTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("scalpel-safetensors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: folder)
    }

    // MARK: - Helpers (hand-built files, independent of SafetensorsWriter)

    private static func le64(_ v: UInt64) -> [UInt8] { (0 ..< 8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
    private static func le32(_ v: UInt32) -> [UInt8] { (0 ..< 4).map { UInt8(truncatingIfNeeded: v >> (8 * UInt32($0))) } }
    private static func le16(_ v: UInt16) -> [UInt8] { [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)] }

    /// 8-byte length (the header's own length unless `length` is given), header, data.
    private static func bytes(_ header: String, _ data: [UInt8] = [], length: UInt64? = nil) -> [UInt8] {
        let h = Array(header.utf8)
        return le64(length ?? UInt64(h.count)) + h + data
    }

    private static func entry(_ dtype: String, _ shape: String, _ offsets: String) -> String {
        "{\"dtype\":\"\(dtype)\",\"shape\":\(shape),\"data_offsets\":\(offsets)}"
    }

    private func write(_ bytes: [UInt8], _ name: String = "test.safetensors") throws -> URL {
        let url = folder.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// The case name of an error, e.g. "tooShort" (every case carries values, so Mirror names it).
    private static func kind(_ error: SafetensorsError) -> String {
        Mirror(reflecting: error).children.first?.label ?? "\(error)"
    }

    /// Asserts that opening `bytes` fails with the SafetensorsError case `expected`, and that the
    /// message names the file and says what to do.
    @discardableResult
    private func assertRejects(_ bytes: [UInt8], _ expected: String, mentioning: String? = nil,
                               file: StaticString = #filePath, line: UInt = #line) throws -> SafetensorsError? {
        let url = try write(bytes, "bad-\(expected).safetensors")
        do {
            let opened = try SafetensorsFile(url: url)
            XCTFail("accepted an invalid file (\(opened.names))", file: file, line: line)
        } catch let error as SafetensorsError {
            XCTAssertEqual(Self.kind(error), expected, error.message, file: file, line: line)
            XCTAssertTrue(error.message.contains(url.path), "message does not name the file: \(error.message)", file: file, line: line)
            XCTAssertTrue(error.message.contains("re-download or re-save") || error.message.contains("Re-save"),
                          "message gives no remedy: \(error.message)", file: file, line: line)
            if let mentioning {
                XCTAssertTrue(error.message.contains(mentioning), "message does not mention \(mentioning): \(error.message)", file: file, line: line)
            }
            return error
        } catch {
            XCTFail("unexpected error type: \(error)", file: file, line: line)
        }
        return nil
    }

    // MARK: - Round trip

    func testWriterReaderRoundTripIsBitIdenticalAndZeroCopy() throws {
        let special: [Float] = [0, -0.0, 1, -2.5, .infinity, -.infinity, Float(bitPattern: 0x7FC0_1234),
                                Float(bitPattern: 0x0000_0001), .greatestFiniteMagnitude, 3.1415927, 1e-30, -7]
        let a = Tensor(shape: [3, 4], data: special)
        let b = Tensor(shape: [], data: [42])
        let empty = Tensor(zeros: [0, 5])
        let c = Tensor(shape: [2, 1, 3], data: (0 ..< 6).map { Float($0) * 0.1 })
        let metadata = ["format": "pt", "note": "quote \" backslash \\ newline \n tab \t ünïcode ✓"]
        let url = folder.appendingPathComponent("sub/model.safetensors")
        try SafetensorsWriter.write([("z.weight", a), ("scalar", b), ("empty", empty), ("a/b \"c\"", c)],
                                    metadata: metadata, to: try OutputTarget(url, overwrite: false))

        // The header is padded with spaces to a multiple of 8 bytes.
        let raw = [UInt8](try Data(contentsOf: url))
        let n = raw[0 ..< 8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        XCTAssertEqual(n % 8, 0)
        let header = raw[8 ..< 8 + Int(n)]
        let unpadded = header.reversed().drop { $0 == 0x20 }
        XCTAssertEqual(unpadded.first, UInt8(ascii: "}"))
        XCTAssertLessThan(header.count - unpadded.count, 8)
        XCTAssertEqual(header.first, UInt8(ascii: "{"))
        XCTAssertEqual(raw.count, 8 + Int(n) + (12 + 1 + 0 + 6) * 4)

        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(file.names, ["a/b \"c\"", "empty", "scalar", "z.weight"])
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(file.entries["z.weight"]?.dtype, .F32)
        XCTAssertEqual(file.entries["z.weight"]?.shape, [3, 4])
        XCTAssertEqual(file.entries["scalar"]?.shape, [])
        XCTAssertEqual(file.entries["empty"]?.shape, [0, 5])
        XCTAssertEqual(file.entries["z.weight"]?.byteRange, (8 + Int(n)) ..< (8 + Int(n) + 48))  // tensors in the given order
        for (name, original) in [("z.weight", a), ("scalar", b), ("empty", empty), ("a/b \"c\"", c)] {
            let loaded = try file.tensor(name)
            XCTAssertTrue(loaded.isIdentical(to: original), name)
            XCTAssertEqual(file.isBorrowedFromMap(loaded), original.count > 0, "\(name): expected the zero-copy path")
        }

        // A borrowed tensor keeps the map alive after the file object is gone, and copies on write.
        var kept = try SafetensorsFile(url: url).tensor("z.weight")
        XCTAssertTrue(kept.isIdentical(to: a))
        kept.withMutableBuffer { $0[0] = 99 }
        XCTAssertEqual(kept[flat: 0], 99)
        XCTAssertTrue(try SafetensorsFile(url: url).tensor("z.weight").isIdentical(to: a))

        // Refuses to overwrite unless asked; no metadata means no __metadata__ key.
        XCTAssertThrowsError(try SafetensorsWriter.write([("x", b)], metadata: [:], to: try OutputTarget(url, overwrite: false))) {
            XCTAssertEqual($0 as? FileError, .exists(path: url.path))
        }
        try SafetensorsWriter.write([("x", b)], metadata: [:], to: try OutputTarget(url, overwrite: true))
        let rewritten = try SafetensorsFile(url: url)
        XCTAssertEqual(rewritten.names, ["x"])
        XCTAssertEqual(rewritten.metadata, [:])
        XCTAssertFalse(String(decoding: try Data(contentsOf: url), as: UTF8.self).contains("__metadata__"))
    }

    func testWriterRejectsDuplicateAndReservedNames() throws {
        let t = Tensor(shape: [1], data: [1])
        let url = folder.appendingPathComponent("w.safetensors")
        let cases: [[(name: String, tensor: Tensor)]] = [[("x", t), ("x", t)], [("__metadata__", t)]]
        for tensors in cases {
            XCTAssertThrowsError(try SafetensorsWriter.write(tensors, metadata: [:], to: try OutputTarget(url, overwrite: false))) { error in
                guard let e = error as? SafetensorsError, case .invalidTensorName = e else { return XCTFail("\(error)") }
                XCTAssertTrue(e.message.contains(url.path))
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
    }

    func testUnalignedF32IsCopiedCorrectly() throws {
        // Header of 17 bytes: the data region starts at byte 25, not 4-byte aligned.
        let header = "{\"u\":" + Self.entry("F32", "[2]", "[0,8]") + "}"
        var h = header
        while (8 + h.utf8.count) % 4 != 1 { h += " " }
        let values: [Float] = [1.5, -0.0]
        let url = try write(Self.bytes(h, values.flatMap { Self.le32($0.bitPattern) }))
        let file = try SafetensorsFile(url: url)
        let t = try file.tensor("u")
        XCTAssertFalse(file.isBorrowedFromMap(t))
        XCTAssertEqual(t.scalars.map(\.bitPattern), values.map(\.bitPattern))
    }

    // MARK: - Conversions against hand-computed bit patterns

    func testFloat16DecodingMatchesKnownBitPatterns() throws {
        let cases: [(half: UInt16, float: UInt32)] = [
            (0x0000, 0x0000_0000),  // +0
            (0x8000, 0x8000_0000),  // -0
            (0x3C00, 0x3F80_0000),  // 1
            (0xC000, 0xC000_0000),  // -2
            (0x3555, 0x3EAA_A000),  // 0.333251953125
            (0x7BFF, 0x477F_E000),  // 65504, largest finite
            (0x0400, 0x3880_0000),  // 2^-14, smallest normal
            (0x03FF, 0x387F_C000),  // largest subnormal, 1023 * 2^-24
            (0x0200, 0x3800_0000),  // subnormal 2^-15
            (0x0001, 0x3380_0000),  // smallest subnormal 2^-24
            (0x8001, 0xB380_0000),  // -2^-24
            (0x7C00, 0x7F80_0000),  // +inf
            (0xFC00, 0xFF80_0000),  // -inf
            (0x7E00, 0x7FC0_0000),  // quiet NaN
            (0x7C01, 0x7F80_2000),  // signalling NaN payload kept
        ]
        let header = "{\"h\":" + Self.entry("F16", "[\(cases.count)]", "[0,\(2 * cases.count)]") + "}"
        let url = try write(Self.bytes(header, cases.flatMap { Self.le16($0.half) }))
        let t = try SafetensorsFile(url: url).tensor("h")
        XCTAssertEqual(t.shape, [cases.count])
        for (i, c) in cases.enumerated() {
            XCTAssertEqual(t[flat: i].bitPattern, c.float, String(format: "half 0x%04X", c.half))
        }
        #if arch(x86_64) || arch(arm64)
        // Every half value against the standard library's conversion.
        for h in 0 ... UInt16.max {
            let expected = Float(Float16(bitPattern: h))
            let got = Float(bitPattern: SafetensorsConversion.float32Bits(fromFloat16: h))
            if expected.isNaN { XCTAssertTrue(got.isNaN) } else { XCTAssertEqual(got.bitPattern, expected.bitPattern, "0x\(String(h, radix: 16))") }
        }
        #endif
    }

    func testBFloat16DecodingMatchesKnownBitPatterns() throws {
        let cases: [(bf: UInt16, float: UInt32)] = [
            (0x0000, 0x0000_0000), (0x8000, 0x8000_0000),  // ±0
            (0x3F80, 0x3F80_0000),  // 1
            (0xC049, 0xC049_0000),  // -3.140625
            (0x7F7F, 0x7F7F_0000),  // largest finite
            (0x0080, 0x0080_0000),  // smallest normal
            (0x007F, 0x007F_0000),  // subnormal
            (0x0001, 0x0001_0000),  // smallest subnormal
            (0x7F80, 0x7F80_0000), (0xFF80, 0xFF80_0000),  // ±inf
            (0x7FC0, 0x7FC0_0000),  // NaN
        ]
        let header = "{\"b\":" + Self.entry("BF16", "[\(cases.count)]", "[0,\(2 * cases.count)]") + "}"
        let url = try write(Self.bytes(header, cases.flatMap { Self.le16($0.bf) }))
        let t = try SafetensorsFile(url: url).tensor("b")
        for (i, c) in cases.enumerated() {
            XCTAssertEqual(t[flat: i].bitPattern, c.float, String(format: "bf16 0x%04X", c.bf))
        }
    }

    func testFloat64IsConvertedAndIntegersAreRefused() throws {
        let doubles: [UInt64] = [0x3FF0_0000_0000_0000, 0xC004_0000_0000_0000, 0x8000_0000_0000_0000]  // 1, -2.5, -0
        let header = "{\"d\":" + Self.entry("F64", "[3]", "[0,24]") + ",\"i\":" + Self.entry("I64", "[1]", "[24,32]")
            + ",\"m\":" + Self.entry("BOOL", "[2]", "[32,34]") + "}"
        let url = try write(Self.bytes(header, doubles.flatMap { Self.le64($0) } + Self.le64(7) + [1, 0]))
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(try file.tensor("d").scalars.map(\.bitPattern), [0x3F80_0000, 0xC020_0000, 0x8000_0000])
        XCTAssertEqual(file.entries["i"]?.dtype, .I64)
        XCTAssertEqual(file.entries["i"]?.elementCount, 1)
        for name in ["i", "m"] {
            XCTAssertThrowsError(try file.tensor(name)) { error in
                guard let e = error as? SafetensorsError, case .notFloatingPoint = e else { return XCTFail("\(error)") }
                XCTAssertTrue(e.message.contains(url.path) && e.message.contains("not floating point"), e.message)
            }
        }
        XCTAssertThrowsError(try file.tensor("dd")) { error in
            guard let e = error as? SafetensorsError, case let .unknownTensor(_, _, suggestions, count) = e else { return XCTFail("\(error)") }
            XCTAssertEqual(suggestions, ["d"])
            XCTAssertEqual(count, 3)
            XCTAssertTrue(e.message.contains(url.path), e.message)
        }
    }

    func testEmptyHeaderObjectIsAValidEmptyFile() throws {
        let file = try SafetensorsFile(url: try write(Self.bytes("{}  \n")))
        XCTAssertEqual(file.names, [])
    }

    // MARK: - One test per validation error

    func testMissingFileIsFileErrorMissing() {
        let url = folder.appendingPathComponent("nope.safetensors")
        XCTAssertThrowsError(try SafetensorsFile(url: url)) { error in
            guard case let .missing(path, hint)? = error as? FileError else { return XCTFail("\(error)") }
            XCTAssertEqual(path, url.path)
            XCTAssertFalse(hint.isEmpty)
        }
    }

    func testFolderIsNotARegularFile() {
        XCTAssertThrowsError(try SafetensorsFile(url: folder)) { error in
            guard case .notRegular(_, "a folder")? = error as? FileError else { return XCTFail("\(error)") }
        }
    }

    func testFileShorterThan8Bytes() throws {
        try assertRejects([], "tooShort")
        try assertRejects([1, 0, 0, 0, 0], "tooShort")
    }

    func testHeaderLengthPastEndOfFile() throws {
        try assertRejects(Self.bytes("{}", length: 3), "headerPastEnd")
        try assertRejects(Self.le64(1000) + Array("{}".utf8), "headerPastEnd")
    }

    func testHeaderLengthAbsurdlyLarge() throws {
        try assertRejects(Self.bytes("{}", length: .max), "headerTooLarge")
        try assertRejects(Self.bytes("{}", length: 1 << 63), "headerTooLarge")
        try assertRejects(Self.bytes("{}", length: 100_000_001), "headerTooLarge")
    }

    func testHeaderNotUTF8() throws {
        var header = Array("{\"__metadata__\":{\"k\":\"v?\"}}".utf8)
        header[23] = 0xFF
        let error = try assertRejects(Self.le64(UInt64(header.count)) + header, "headerNotUTF8")
        XCTAssertEqual(error, .headerNotUTF8(path: error?.path ?? "", offset: 23))
    }

    func testHeaderBrokenJSON() throws {
        for bad in ["", "   ", "{", "{\"a\":", "{\"a\" 1}", "{,}", "{\"a\":1,}", "{\"a\":tru}", "{\"a\":01}", "{\"a\":\"\\x\"}",
                    "{\"a\":\"\\ud800\"}", "{\"a\":\"\u{1}\"}", "{} x", "{}\0", "{'a':1}", "{\"a\":1e}", "{\"a\":-}", "{\"a\":.5}"] {
            try assertRejects(Self.bytes(bad), "headerNotJSON")
        }
        // Deep nesting is refused, not a stack overflow.
        let deep = "{\"a\":" + String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000) + "}"
        try assertRejects(Self.bytes(deep), "headerNotJSON", mentioning: "nested")
    }

    func testHeaderNotAnObject() throws {
        for bad in ["[]", "\"x\"", "42", "null", "true"] {
            try assertRejects(Self.bytes(bad), "headerNotObject")
        }
    }

    func testDuplicateKeys() throws {
        let e = Self.entry("F32", "[1]", "[0,4]")
        try assertRejects(Self.bytes("{\"a\":\(e),\"a\":\(e)}", [0, 0, 0, 0]), "duplicateKey", mentioning: "\"a\"")
        try assertRejects(Self.bytes("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", [0, 0, 0, 0]),
                          "duplicateKey", mentioning: "dtype")
    }

    func testEntryNotAnObject() throws {
        for bad in ["5", "[]", "\"F32\"", "null"] {
            try assertRejects(Self.bytes("{\"w\":\(bad)}"), "entryNotObject", mentioning: "'w'")
        }
    }

    func testEntryLacksAField() throws {
        try assertRejects(Self.bytes("{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", [0, 0, 0, 0]), "missingField", mentioning: "dtype")
        try assertRejects(Self.bytes("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", [0, 0, 0, 0]), "missingField", mentioning: "shape")
        try assertRejects(Self.bytes("{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", [0, 0, 0, 0]), "missingField", mentioning: "data_offsets")
    }

    func testFieldsOfTheWrongJSONType() throws {
        let data: [UInt8] = [0, 0, 0, 0]
        try assertRejects(Self.bytes("{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", data), "wrongFieldType", mentioning: "dtype")
        try assertRejects(Self.bytes("{\"w\":{\"dtype\":\"F32\",\"shape\":\"[1]\",\"data_offsets\":[0,4]}}", data), "wrongFieldType", mentioning: "shape")
        for offsets in ["{}", "[4]", "[0,4,4]", "[\"0\",\"4\"]", "[0,4.0]", "[-1,4]", "null"] {
            try assertRejects(Self.bytes("{\"w\":" + Self.entry("F32", "[1]", offsets) + "}", data), "wrongFieldType", mentioning: "data_offsets")
        }
    }

    func testNegativeOrNonIntegerShape() throws {
        let data: [UInt8] = [0, 0, 0, 0]
        for shape in ["[-1]", "[1.0]", "[1e0]", "[\"1\"]", "[null]", "[[1]]", "[99999999999999999999]"] {
            try assertRejects(Self.bytes("{\"w\":" + Self.entry("F32", shape, "[0,4]") + "}", data), "invalidShape", mentioning: "'w'")
        }
    }

    func testUnknownDType() throws {
        for dtype in ["F8_E4M3", "U16", "f32", "Q4_K", ""] {
            try assertRejects(Self.bytes("{\"w\":" + Self.entry(dtype, "[1]", "[0,1]") + "}", [0]), "unsupportedDType", mentioning: "\"\(dtype)\"")
        }
    }

    func testOffsetsBeginAfterEnd() throws {
        try assertRejects(Self.bytes("{\"w\":" + Self.entry("U8", "[0]", "[4,0]") + "}", [0, 0, 0, 0]), "offsetsReversed")
        try assertRejects(Self.bytes("{\"w\":" + Self.entry("U8", "[0]", "[99999999999999999999,4]") + "}", [0, 0, 0, 0]), "offsetsReversed")
    }

    func testOffsetsPastTheDataRegion() throws {
        try assertRejects(Self.bytes("{\"w\":" + Self.entry("F32", "[2]", "[0,8]") + "}", [0, 0, 0, 0]), "offsetsPastEnd")
        try assertRejects(Self.bytes("{\"w\":" + Self.entry("F32", "[2]", "[0,99999999999999999999]") + "}", [0, 0, 0, 0]), "offsetsPastEnd")
    }

    func testSizeDoesNotMatchShape() throws {
        try assertRejects(Self.bytes("{\"w\":" + Self.entry("F32", "[3]", "[0,8]") + "}", [UInt8](repeating: 0, count: 8)),
                          "sizeMismatch", mentioning: "12 bytes")
        try assertRejects(Self.bytes("{\"w\":" + Self.entry("BF16", "[2,2]", "[0,4]") + "}", [0, 0, 0, 0]), "sizeMismatch")
    }

    func testHugeShapeOverflowIsReportedNotTrapped() throws {
        // 2^62 * 4 elements overflows Int; so does 2^62 elements * 4 bytes; and a late zero does not rescue it.
        for shape in ["[4611686018427387904,4]", "[4611686018427387904]", "[9223372036854775807,9223372036854775807,0]"] {
            let error = try assertRejects(Self.bytes("{\"w\":" + Self.entry("F32", shape, "[0,4]") + "}", [0, 0, 0, 0]), "sizeMismatch")
            if case let .sizeMismatch(_, _, _, _, expected, _)? = error { XCTAssertNil(expected) }
        }
        // A zero before the huge dims makes an empty tensor, which is fine.
        let file = try SafetensorsFile(url: try write(Self.bytes("{\"w\":" + Self.entry("F32", "[0,9223372036854775807]", "[0,0]") + "}")))
        XCTAssertEqual(try file.tensor("w").count, 0)
    }

    func testOverlappingRanges() throws {
        let header = "{\"a\":" + Self.entry("U8", "[4]", "[0,4]") + ",\"b\":" + Self.entry("U8", "[4]", "[2,6]") + "}"
        try assertRejects(Self.bytes(header, [UInt8](repeating: 0, count: 6)), "overlap", mentioning: "'b'")
        let same = "{\"a\":" + Self.entry("U8", "[4]", "[0,4]") + ",\"b\":" + Self.entry("U8", "[4]", "[0,4]") + "}"
        try assertRejects(Self.bytes(same, [UInt8](repeating: 0, count: 4)), "overlap")
    }

    func testHolesInTheDataRegion() throws {
        let middle = "{\"a\":" + Self.entry("U8", "[2]", "[0,2]") + ",\"b\":" + Self.entry("U8", "[2]", "[3,5]") + "}"
        try assertRejects(Self.bytes(middle, [UInt8](repeating: 0, count: 5)), "hole", mentioning: "bytes 2..<3")
        let start = "{\"b\":" + Self.entry("U8", "[2]", "[1,3]") + "}"
        try assertRejects(Self.bytes(start, [0, 0, 0]), "hole", mentioning: "before the first tensor")
        let end = "{\"a\":" + Self.entry("U8", "[2]", "[0,2]") + "}"
        try assertRejects(Self.bytes(end, [0, 0, 0, 0]), "hole", mentioning: "bytes 2..<4")
        try assertRejects(Self.bytes("{}", [0]), "hole")
    }

    func testMetadataMustBeAnObjectOfStrings() throws {
        for bad in ["[]", "\"x\"", "null"] {
            try assertRejects(Self.bytes("{\"__metadata__\":\(bad)}"), "metadataNotObject")
        }
        for bad in ["1", "null", "[\"v\"]", "{}", "true"] {
            try assertRejects(Self.bytes("{\"__metadata__\":{\"ok\":\"v\",\"k\":\(bad)}}"), "metadataValueNotString", mentioning: "\"k\"")
        }
    }

    // MARK: - Fuzzing

    /// SplitMix64: a small seeded generator, so every run corrupts files the same way.
    private struct SplitMix64: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// A valid file written by hand, kept as JSON text pieces so fields can be swapped out.
    private struct Base {
        var metadata: String?
        var tensors: [(name: String, dtype: String, shape: String, offsets: String)]
        var space: String  // whitespace put between tokens
        var padTo8: Bool
        var data: [UInt8]

        /// `replace`: (tensor index, field 0 dtype / 1 shape / 2 offsets / 3 metadata, new JSON text or nil to drop it).
        func header(replace: (Int, Int, String?)? = nil) -> [UInt8] {
            let s = space
            var members: [String] = []
            if let m = metadata {
                var text: String? = m
                if case let (_, 3, replacement)? = replace { text = replacement }
                if let text { members.append("\"__metadata__\"\(s):\(s)\(text)") }
            }
            for (i, t) in tensors.enumerated() {
                var fields: [(key: String, value: String?)] = [("dtype", t.dtype), ("shape", t.shape), ("data_offsets", t.offsets)]
                if case let (ti, f, replacement)? = replace, ti == i, f < 3 { fields[f].value = replacement }
                let body = fields.compactMap { f in f.value.map { "\"\(f.key)\"\(s):\(s)\($0)" } }.joined(separator: ",\(s)")
                members.append("\(t.name)\(s):\(s){\(s)\(body)\(s)}")
            }
            var h = Array(("{\(s)" + members.joined(separator: ",\(s)") + "\(s)}").utf8)
            if padTo8 { while h.count % 8 != 0 { h.append(0x20) } }
            return h
        }

        func file(header h: [UInt8]) -> [UInt8] { le64(UInt64(h.count)) + h + data }
    }

    private static let bases: [Base] = [
        Base(metadata: "{\"format\":\"pt\",\"step\":\"12\"}",
             tensors: [("\"w\"", "\"F32\"", "[2,2]", "[0,16]"), ("\"b\"", "\"F16\"", "[3]", "[16,22]")],
             space: "", padTo8: true, data: (0 ..< 22).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }),
        Base(metadata: nil,
             tensors: [("\"x\"", "\"BF16\"", "[2,1]", "[0,4]"), ("\"idx\"", "\"I64\"", "[1]", "[4,12]"),
                       ("\"e\"", "\"F32\"", "[0,3]", "[12,12]"), ("\"m\"", "\"BOOL\"", "[2]", "[12,14]")],
             space: " ", padTo8: false, data: [0x80, 0x3F, 0x00, 0xC0, 7, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
        Base(metadata: "{}",
             tensors: [("\"sc\\u00e9 \\\"q\\\"\"", "\"F64\"", "[]", "[0,8]"), ("\"h.0.attn\"", "\"I8\"", "[1,1,1]", "[8,9]")],
             space: "\n", padTo8: true, data: [0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0xFF]),
        Base(metadata: "{\"a\":\"\",\"b\":\"✓\"}",
             tensors: [("\"u\"", "\"U8\"", "[3]", "[3,6]"), ("\"v\"", "\"I16\"", "[1,1]", "[6,8]"), ("\"t\"", "\"I32\"", "[]", "[8,12]"),
                       ("\"s\"", "\"U8\"", "[3]", "[0,3]")],
             space: "", padTo8: false, data: Array(1 ... 12)),
    ]

    /// An independent judge of validity, written from the format description with JSONSerialization.
    private static func oracleAccepts(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 8 else { return false }
        let n = bytes[0 ..< 8].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard n <= UInt64(bytes.count - 8) else { return false }
        let header = Data(bytes[8 ..< 8 + Int(n)])
        guard !header.starts(with: [0xEF, 0xBB, 0xBF]), String(data: header, encoding: .utf8) != nil,
              let root = (try? JSONSerialization.jsonObject(with: header)) as? [String: Any] else { return false }
        let dataSize = bytes.count - 8 - Int(n)
        let sizes = ["F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1]
        func integer(_ v: Any) -> Int? {
            guard type(of: v) == NSNumber.self, let number = v as? NSNumber else { return nil }  // not Bool, not NSDecimalNumber
            let code = String(cString: number.objCType)
            guard code != "d", code != "f", number.int64Value >= 0, code != "Q" || number.uint64Value <= UInt64(Int.max) else { return nil }
            return Int(number.int64Value)
        }
        var spans: [(Int, Int)] = []
        for (key, value) in root {
            if key == "__metadata__" {
                guard let m = value as? [String: Any], m.values.allSatisfy({ $0 is String }) else { return false }
                continue
            }
            guard let e = value as? [String: Any], let dtype = e["dtype"] as? String, let size = sizes[dtype],
                  let shape = e["shape"] as? [Any], let offsets = e["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = integer(offsets[0]), let end = integer(offsets[1]), begin <= end, end <= dataSize else { return false }
            var count = 1
            for d in shape {
                guard let x = integer(d) else { return false }
                let (p, overflow) = count.multipliedReportingOverflow(by: x)
                if overflow { return false }
                count = p
            }
            let (total, overflow) = count.multipliedReportingOverflow(by: size)
            guard !overflow, total == end - begin else { return false }
            spans.append((begin, end))
        }
        spans.sort { $0 < $1 }
        var reached = 0
        for (b, e) in spans {
            guard b == reached else { return false }
            reached = e
        }
        return reached == dataSize
    }

    /// Replaces the contents of `url` with `bytes` (pwrite + ftruncate: no new inode, no flush on truncate).
    private static func rewrite(_ url: URL, with bytes: [UInt8]) throws {
        let fd = open(url.path, O_WRONLY | O_CREAT, 0o644)
        guard fd >= 0 else { throw FileError.unwritable(path: url.path, reason: "open failed") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard written == bytes.count, ftruncate(fd, off_t(bytes.count)) == 0 else {
            throw FileError.unwritable(path: url.path, reason: "write failed")
        }
    }

    /// Whether JSON text has a comma right before a closing bracket or brace (outside strings).
    private static func hasTrailingComma<C: Collection>(_ text: C) -> Bool where C.Element == UInt8 {
        var inString = false, escaped = false, lastSignificant: UInt8 = 0
        for b in text {
            if inString {
                if escaped { escaped = false } else if b == UInt8(ascii: "\\") { escaped = true } else if b == UInt8(ascii: "\"") { inString = false }
                continue
            }
            if b == UInt8(ascii: "\"") { inString = true }
            if (b == UInt8(ascii: "]") || b == UInt8(ascii: "}")) && lastSignificant == UInt8(ascii: ",") { return true }
            if ![0x20, 0x09, 0x0A, 0x0D].contains(b) { lastSignificant = b }
        }
        return false
    }

    private static let interestingBytes: [UInt8] = Array("{}[]\":,.-+eE0123456789 \\\tnulltruefalseFIU_".utf8) + [0x00, 0x7F, 0x80, 0xC3, 0xFF]
    private static let dtypePool = ["\"F33\"", "\"f32\"", "\"U16\"", "\"U64\"", "\"F8_E4M3\"", "\"\"", "5", "null", "[]", "{}", "true",
                                    "\"F32 \"", "\"I32\"", "\"F16\"", "\"BF16\"", "\"F64\"", "\"U8\"", "[\"F32\"]"]
    private static let shapePool = ["[-1]", "[1.5]", "[2,2.0]", "[\"2\"]", "\"[2]\"", "{}", "null", "3", "[]", "[0]", "[1e1]",
                                    "[99999999999999999999]", "[9223372036854775807,9223372036854775807]", "[4611686018427387904,4]",
                                    "[[2]]", "[true]", "[2,3]", "[3,2]", "[1,4]", "[4]", "[1]", "[2]", "[-0]", "[null]"]
    private static let offsetsPool = ["[0]", "[0,1,2]", "[]", "null", "{\"begin\":0}", "[\"0\",\"16\"]", "[-1,15]", "[0.0,16]", "[16,0]",
                                      "[0,99999999999999999999]", "[99999999999999999999,0]", "[0,1e1]", "[0,-0]", "[true,false]", "\"[0,4]\""]
    private static let metadataPool = ["[]", "null", "{\"k\":1}", "{\"k\":null}", "{\"k\":[\"v\"]}", "\"str\"", "{\"k\":{}}", "5",
                                       "{\"k\":\"v\",\"k\":\"w\"}", "{\"k\":true}"]

    private static func randomBytes(_ count: Int, _ rng: inout SplitMix64) -> [UInt8] {
        (0 ..< count).map { _ in
            Bool.random(using: &rng) ? interestingBytes.randomElement(using: &rng)! : UInt8.random(in: 0 ... 255, using: &rng)
        }
    }

    /// One corrupted variant of `base`: (kind, bytes).
    private static func corrupt(_ base: Base, _ rng: inout SplitMix64) -> (String, [UInt8]) {
        let header = base.header()
        let valid = base.file(header: header)
        switch Int.random(in: 0 ..< 8, using: &rng) {
        case 0:  // truncate anywhere
            return ("truncate", Array(valid.prefix(Int.random(in: 0 ..< valid.count, using: &rng))))
        case 1:  // header length field replaced
            var n: UInt64
            repeat {
                switch Int.random(in: 0 ..< 5, using: &rng) {
                case 0: n = UInt64.random(in: 0 ... .max, using: &rng)
                case 1: n = UInt64.random(in: 0 ... UInt64(valid.count + 16), using: &rng)
                case 2: n = UInt64(header.count) &+ (Bool.random(using: &rng) ? 1 : UInt64.max)  // ±1
                case 3: n = [UInt64.max, 1 << 63, 1 << 32, UInt64(SafetensorsError.maxHeaderLength) + 1, 0].randomElement(using: &rng)!
                default: n = UInt64.random(in: 0 ... UInt64(Int32.max), using: &rng)
                }
            } while n == UInt64(header.count)
            return ("length", le64(n) + Array(valid.dropFirst(8)))
        case 2:  // flip bytes of the JSON header
            var h = header
            for _ in 0 ... Int.random(in: 0 ..< 3, using: &rng) {
                let at = Int.random(in: 0 ..< h.count, using: &rng)
                var b: UInt8
                repeat { b = randomBytes(1, &rng)[0] } while b == h[at]
                h[at] = b
            }
            return ("flip", base.file(header: h))
        case 3:  // insert bytes into the JSON header
            var h = header
            h.insert(contentsOf: randomBytes(Int.random(in: 1 ... 3, using: &rng), &rng), at: Int.random(in: 0 ... h.count, using: &rng))
            return ("insert", base.file(header: h))
        case 4:  // delete bytes of the JSON header
            var h = header
            let at = Int.random(in: 0 ..< h.count, using: &rng)
            h.removeSubrange(at ..< min(h.count, at + Int.random(in: 1 ... 3, using: &rng)))
            return ("delete", base.file(header: h))
        case 5:  // swap a random JSON value into dtype / shape / data_offsets / __metadata__, or drop the field
            let t = Int.random(in: 0 ..< base.tensors.count, using: &rng)
            let f = Int.random(in: 0 ..< (base.metadata == nil ? 3 : 4), using: &rng)
            let pool = [dtypePool, shapePool, offsetsPool, metadataPool][f]
            let text: String? = Int.random(in: 0 ..< 8, using: &rng) == 0 ? nil : pool.randomElement(using: &rng)!
            return ("swap", base.file(header: base.header(replace: (t, f, text))))
        case 6:  // offsets duplicated from another tensor, shifted, or reversed
            var b = base
            let i = Int.random(in: 0 ..< b.tensors.count, using: &rng)
            let j = Int.random(in: 0 ..< b.tensors.count, using: &rng)
            let parts = b.tensors[i].offsets.dropFirst().dropLast().split(separator: ",").map { Int($0)! }
            switch Int.random(in: 0 ..< 3, using: &rng) {
            case 0: b.tensors[i].offsets = b.tensors[j].offsets
            case 1:
                var p = parts
                p[Int.random(in: 0 ..< 2, using: &rng)] += Int.random(in: 1 ... 8, using: &rng) * (Bool.random(using: &rng) ? 1 : -1)
                b.tensors[i].offsets = "[\(p[0]),\(p[1])]"
            default: b.tensors[i].offsets = "[\(parts[1]),\(parts[0])]"
            }
            return ("offsets", b.file(header: b.header()))
        default:  // data region grown or shrunk without touching the header
            var f = valid
            if Bool.random(using: &rng) || base.data.isEmpty {
                f.append(contentsOf: randomBytes(Int.random(in: 1 ... 4, using: &rng), &rng))
            } else {
                f.removeLast(Int.random(in: 1 ... min(4, base.data.count), using: &rng))
            }
            return ("data", f)
        }
    }

    func testFuzzedCorruptFilesAreRejectedCleanly() throws {
        // The hand-written bases are valid, and the oracle agrees.
        for (i, base) in Self.bases.enumerated() {
            let bytes = base.file(header: base.header())
            XCTAssertTrue(Self.oracleAccepts(bytes), "base \(i)")
            let file = try SafetensorsFile(url: try write(bytes, "base-\(i).safetensors"))
            XCTAssertEqual(file.entries.count, base.tensors.count)
            for name in file.names where file.entries[name]!.dtype.isFloatingPoint { _ = try file.tensor(name) }
        }

        // One file rewritten in place: creating and deleting thousands of files costs seconds on some disks.
        let url = folder.appendingPathComponent("fuzz.safetensors")
        var rng = SplitMix64(state: 0x5CA1_9E15)
        var rejected: [String: Int] = [:]
        var stillValid: [String: Int] = [:]
        var forgiven = 0  // still valid per the oracle, but refused for a duplicate key or trailing comma
        let target = 10_000
        var attempt = 0
        let start = Date()
        while rejected.values.reduce(0, +) < target && attempt < 3 * target {
            attempt += 1
            let base = Self.bases[Int.random(in: 0 ..< Self.bases.count, using: &rng)]
            let (kind, bytes) = Self.corrupt(base, &rng)
            try Self.rewrite(url, with: bytes)
            if Self.oracleAccepts(bytes) {
                // Not a corruption after all (e.g. a flipped space, or a renamed tensor): it must load,
                // unless it repeats a key or has a trailing comma, which JSONSerialization forgives and
                // we (like the reference implementation) do not.
                stillValid[kind, default: 0] += 1
                do {
                    let file = try SafetensorsFile(url: url)
                    for name in file.names where file.entries[name]!.dtype.isFloatingPoint { _ = try file.tensor(name) }
                } catch let error as SafetensorsError {
                    if case .duplicateKey = error { forgiven += 1; continue }
                    if case .headerNotJSON = error, Self.hasTrailingComma(bytes.dropFirst(8)) { forgiven += 1; continue }
                    XCTFail("#\(attempt) \(kind): valid per the oracle but refused: \(error.message)\n\(String(decoding: bytes, as: UTF8.self))")
                }
                continue
            }
            rejected[kind, default: 0] += 1
            XCTAssertThrowsError(try SafetensorsFile(url: url), "#\(attempt) \(kind) accepted:\n\(String(decoding: bytes, as: UTF8.self))") { error in
                if let e = error as? SafetensorsError {
                    XCTAssertTrue(e.message.contains(url.path), e.message)
                } else if let e = error as? FileError {
                    XCTAssertTrue(e.message.contains(url.path), e.message)
                } else {
                    XCTFail("#\(attempt) \(kind): not a SafetensorsError or FileError: \(error)")
                }
            }
        }
        let total = rejected.values.reduce(0, +)
        print("fuzz: \(total) corrupted files rejected \(rejected.sorted { $0.key < $1.key }), \(stillValid.values.reduce(0, +)) mutations still valid \(stillValid.sorted { $0.key < $1.key }) (\(forgiven) of them refused for a duplicate key or trailing comma), \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        XCTAssertGreaterThanOrEqual(total, 2000)
        // Truncations and length changes can never leave a valid file.
        XCTAssertNil(stillValid["truncate"])
        XCTAssertNil(stillValid["length"])
        for kind in ["truncate", "length", "flip", "insert", "delete", "swap", "offsets", "data"] {
            XCTAssertGreaterThan(rejected[kind] ?? 0, 500, kind)
        }
    }
}
