import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The safetensors format: an 8-byte little-endian unsigned length N, then N bytes of UTF-8 JSON
// (the header), then the data region. The header is an object mapping each tensor name to
// {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} with offsets relative to the start
// of the data region (byte 8 + N), plus an optional "__metadata__" object of string values. The
// tensors must cover the data region exactly: no overlaps, no holes.

/// Element types of safetensors tensors that Scalpel recognises. Any other dtype string in a file
/// (U16, F8_E4M3, ...) is reported as `SafetensorsError.unsupportedDType`.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }

    /// Whether `SafetensorsFile.tensor(_:)` can load tensors of this type (as float32).
    public var isFloatingPoint: Bool {
        switch self {
        case .F64, .F32, .F16, .BF16: return true
        case .I64, .I32, .I16, .I8, .U8, .BOOL: return false
        }
    }
}

/// One tensor listed in a safetensors header, already validated.
public struct SafetensorsEntry: Equatable, Sendable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Where the tensor's bytes lie, as absolute byte offsets in the file.
    public let byteRange: Range<Int>

    public var elementCount: Int { byteRange.count / dtype.byteSize }
}

/// Everything that can be wrong with a safetensors file (or a request to read or write one).
public enum SafetensorsError: UserFacingError, Equatable {
    case tooShort(path: String, size: Int)
    case headerTooLarge(path: String, length: UInt64)
    case headerPastEnd(path: String, length: UInt64, fileSize: Int)
    case headerNotUTF8(path: String, offset: Int)
    case headerNotJSON(path: String, offset: Int, reason: String)
    case headerNotObject(path: String, found: String)
    /// `context` is nil for a key of the top-level object, else the key of the enclosing object.
    case duplicateKey(path: String, key: String, context: String?)
    case entryNotObject(path: String, tensor: String, found: String)
    case missingField(path: String, tensor: String, field: String)
    case wrongFieldType(path: String, tensor: String, field: String, expected: String, found: String)
    case invalidShape(path: String, tensor: String, reason: String)
    case unsupportedDType(path: String, tensor: String, dtype: String)
    /// Offsets are the JSON number texts (they may not fit in an Int).
    case offsetsReversed(path: String, tensor: String, begin: String, end: String)
    case offsetsPastEnd(path: String, tensor: String, end: String, dataSize: Int)
    /// `expectedBytes` is nil when the element count times the dtype size overflows.
    case sizeMismatch(path: String, tensor: String, dtype: String, shape: [Int], expectedBytes: Int?, actualBytes: Int)
    case overlap(path: String, tensor: String, other: String)
    /// `begin..<end` relative to the data region, which starts at file byte `dataStart`.
    case hole(path: String, begin: Int, end: Int, dataStart: Int, after: String?)
    case metadataNotObject(path: String, found: String)
    case metadataValueNotString(path: String, key: String, found: String)
    case unknownTensor(path: String, tensor: String, suggestions: [String], count: Int)
    case notFloatingPoint(path: String, tensor: String, dtype: String)
    /// Raised by the writer for a name the format cannot hold (duplicate, reserved).
    case invalidTensorName(path: String, tensor: String, reason: String)

    static let remedy = "The file is damaged, truncated or not a safetensors file: re-download or re-save the checkpoint."
    /// Largest header accepted, as in the reference implementation (100 MB).
    public static let maxHeaderLength: UInt64 = 100_000_000

    public var path: String {
        switch self {
        case let .tooShort(path, _), let .headerTooLarge(path, _), let .headerPastEnd(path, _, _),
             let .headerNotUTF8(path, _), let .headerNotJSON(path, _, _), let .headerNotObject(path, _),
             let .duplicateKey(path, _, _), let .entryNotObject(path, _, _), let .missingField(path, _, _),
             let .wrongFieldType(path, _, _, _, _), let .invalidShape(path, _, _), let .unsupportedDType(path, _, _),
             let .offsetsReversed(path, _, _, _), let .offsetsPastEnd(path, _, _, _),
             let .sizeMismatch(path, _, _, _, _, _), let .overlap(path, _, _), let .hole(path, _, _, _, _),
             let .metadataNotObject(path, _), let .metadataValueNotString(path, _, _),
             let .unknownTensor(path, _, _, _), let .notFloatingPoint(path, _, _), let .invalidTensorName(path, _, _):
            return path
        }
    }

    public var message: String {
        let r = SafetensorsError.remedy
        switch self {
        case let .tooShort(path, size):
            return "\(path): only \(size) bytes long, too short for a safetensors file (which starts with an 8-byte header length). \(r)"
        case let .headerTooLarge(path, length):
            return "\(path): the header length field says \(length) bytes, more than the \(SafetensorsError.maxHeaderLength)-byte limit for a safetensors header. \(r)"
        case let .headerPastEnd(path, length, fileSize):
            return "\(path): the header length field says \(length) bytes, but only \(fileSize - 8) bytes follow it. \(r)"
        case let .headerNotUTF8(path, offset):
            return "\(path): the JSON header is not valid UTF-8 (at header byte \(offset)). \(r)"
        case let .headerNotJSON(path, offset, reason):
            return "\(path): the JSON header is malformed at header byte \(offset): \(reason). \(r)"
        case let .headerNotObject(path, found):
            return "\(path): the JSON header is \(found), not an object mapping tensor names to their dtype, shape and data_offsets. \(r)"
        case let .duplicateKey(path, key, context):
            let place = context.map { "inside \"\($0)\"" } ?? "at the top level of the header"
            return "\(path): the key \"\(key)\" appears twice \(place). \(r)"
        case let .entryNotObject(path, tensor, found):
            return "\(path): tensor '\(tensor)': its header entry is \(found), not an object with dtype, shape and data_offsets. \(r)"
        case let .missingField(path, tensor, field):
            return "\(path): tensor '\(tensor)': the header entry has no \"\(field)\" field. \(r)"
        case let .wrongFieldType(path, tensor, field, expected, found):
            return "\(path): tensor '\(tensor)': field \"\(field)\" is \(found), expected \(expected). \(r)"
        case let .invalidShape(path, tensor, reason):
            return "\(path): tensor '\(tensor)': invalid shape: \(reason). \(r)"
        case let .unsupportedDType(path, tensor, dtype):
            let known = SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")
            return "\(path): tensor '\(tensor)': dtype \"\(dtype)\" is unknown or unsupported (Scalpel reads \(known)). Re-save the checkpoint with float32 or float16 weights, or re-download it if the file is damaged."
        case let .offsetsReversed(path, tensor, begin, end):
            return "\(path): tensor '\(tensor)': data_offsets [\(begin), \(end)] begin after they end. \(r)"
        case let .offsetsPastEnd(path, tensor, end, dataSize):
            return "\(path): tensor '\(tensor)': data_offsets end at byte \(end) of the data region, which holds only \(dataSize) bytes. \(r)"
        case let .sizeMismatch(path, tensor, dtype, shape, expected, actual):
            let shapeText = "[" + shape.map(String.init).joined(separator: ", ") + "]"
            if let expected {
                return "\(path): tensor '\(tensor)': shape \(shapeText) of \(dtype) needs \(expected) bytes, but its data_offsets span \(actual) bytes. \(r)"
            }
            return "\(path): tensor '\(tensor)': shape \(shapeText) of \(dtype) has too many elements to fit in memory (its data_offsets span \(actual) bytes). \(r)"
        case let .overlap(path, tensor, other):
            return "\(path): tensors '\(other)' and '\(tensor)' have overlapping data_offsets (they share bytes of the data region). \(r)"
        case let .hole(path, begin, end, dataStart, after):
            let place = after.map { " (after tensor '\($0)')" } ?? " (before the first tensor)"
            return "\(path): bytes \(begin)..<\(end) of the data region (file bytes \(dataStart + begin)..<\(dataStart + end)) belong to no tensor\(place). \(r)"
        case let .metadataNotObject(path, found):
            return "\(path): \"__metadata__\" is \(found), expected an object whose values are strings. \(r)"
        case let .metadataValueNotString(path, key, found):
            return "\(path): \"__metadata__\" entry \"\(key)\" is \(found); metadata values must be strings. \(r)"
        case let .unknownTensor(path, tensor, suggestions, count):
            let hint = suggestions.isEmpty ? "" : " Did you mean " + suggestions.map { "'\($0)'" }.joined(separator: " or ") + "?"
            return "\(path): no tensor named '\(tensor)' among its \(count) tensors.\(hint) Check the tensor name, or that this is the right checkpoint."
        case let .notFloatingPoint(path, tensor, dtype):
            return "\(path): tensor '\(tensor)' holds \(dtype) values, which are not floating point; Scalpel loads only F32, F16, BF16 or F64 tensors. Use a checkpoint that stores this tensor as floating point."
        case let .invalidTensorName(path, tensor, reason):
            return "\(path): cannot write tensor '\(tensor)': \(reason). Rename the tensor."
        }
    }
}

/// A safetensors file mapped into memory, with its header fully validated on opening.
public final class SafetensorsFile: @unchecked Sendable {
    public let url: URL
    public let entries: [String: SafetensorsEntry]
    public let metadata: [String: String]
    /// The tensor names, sorted.
    public var names: [String] { entries.keys.sorted() }

    private let map: MappedFile
    /// File byte at which the data region starts (8 + header length).
    let dataStart: Int

    /// Maps the file and validates its whole header: every entry, every size, and that the tensors
    /// cover the data region exactly. Throws `FileError` (missing, unreadable) or `SafetensorsError`.
    public init(url: URL) throws {
        self.url = url
        let path = url.path
        map = try MappedFile(path: path, missingHint: "Check the path to the .safetensors checkpoint (for example the model.safetensors of a GPT-2 download).")
        let bytes = map.bytes
        guard bytes.count >= 8 else { throw SafetensorsError.tooShort(path: path, size: bytes.count) }
        let length = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard length <= SafetensorsError.maxHeaderLength else {
            throw SafetensorsError.headerTooLarge(path: path, length: length)
        }
        guard length <= UInt64(bytes.count - 8) else {
            throw SafetensorsError.headerPastEnd(path: path, length: length, fileSize: bytes.count)
        }
        let headerLength = Int(length)
        dataStart = 8 + headerLength
        let header = try SafetensorsHeader.validate(Array(bytes[8 ..< dataStart]), path: path,
                                                    dataStart: dataStart, dataSize: bytes.count - dataStart)
        entries = header.entries
        metadata = header.metadata
    }

    /// Loads a floating-point tensor as float32. An F32 tensor whose bytes are 4-byte aligned in the
    /// map is borrowed without copying (it keeps the map alive); anything else is converted.
    public func tensor(_ name: String) throws -> Tensor {
        guard let entry = entries[name] else {
            let lowered = name.lowercased()
            let close = names.filter { $0.lowercased().contains(lowered) || (!$0.isEmpty && lowered.contains($0.lowercased())) }
            throw SafetensorsError.unknownTensor(path: url.path, tensor: name, suggestions: Array(close.prefix(3)), count: entries.count)
        }
        guard entry.dtype.isFloatingPoint else {
            throw SafetensorsError.notFloatingPoint(path: url.path, tensor: name, dtype: entry.dtype.rawValue)
        }
        let count = entry.elementCount
        guard count > 0, let base = map.base else { return Tensor(zeros: entry.shape) }
        let source = base + entry.byteRange.lowerBound
        switch entry.dtype {
        case .F32:
            #if _endian(little)
            if Int(bitPattern: source) % MemoryLayout<Float>.alignment == 0 {
                let storage = FloatStorage(borrowing: source.assumingMemoryBound(to: Float.self), count: count, owner: map)
                return Tensor(shape: entry.shape, storage: storage)
            }
            #endif
            return Tensor(shape: entry.shape) { out in
                for i in 0 ..< count {
                    let bits = UInt32(littleEndian: source.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                    out[i] = Float(bitPattern: bits)
                }
            }
        case .F16:
            return Tensor(shape: entry.shape) { out in
                for i in 0 ..< count {
                    let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    out[i] = Float(bitPattern: SafetensorsConversion.float32Bits(fromFloat16: bits))
                }
            }
        case .BF16:
            return Tensor(shape: entry.shape) { out in
                for i in 0 ..< count {
                    let bits = UInt16(littleEndian: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    out[i] = Float(bitPattern: UInt32(bits) << 16)
                }
            }
        case .F64:
            return Tensor(shape: entry.shape) { out in
                for i in 0 ..< count {
                    let bits = UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
                    out[i] = Float(Double(bitPattern: bits))
                }
            }
        case .I64, .I32, .I16, .I8, .U8, .BOOL:
            throw SafetensorsError.notFloatingPoint(path: url.path, tensor: name, dtype: entry.dtype.rawValue)
        }
    }

    /// Whether `tensor` borrows its values from this file's memory map (the zero-copy path).
    func isBorrowedFromMap(_ tensor: Tensor) -> Bool {
        guard let base = map.base, tensor.count > 0 else { return false }
        let p = UnsafeRawPointer(tensor.pointer)
        return p >= base && p < base + map.count
    }
}

/// Bit-level conversions between float formats.
enum SafetensorsConversion {
    /// IEEE 754 binary16 bits to binary32 bits, exactly (every half value is a float value),
    /// including subnormals, infinities and NaN payloads.
    static func float32Bits(fromFloat16 h: UInt16) -> UInt32 {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        var mantissa = UInt32(h) & 0x3FF
        if exponent == 0x1F { return sign | 0x7F80_0000 | (mantissa << 13) }
        if exponent != 0 { return sign | ((exponent + 112) << 23) | (mantissa << 13) }
        if mantissa == 0 { return sign }
        // Subnormal half: value = mantissa * 2^-24. Normalise it.
        var e: UInt32 = 113  // exponent of 2^-14 in float32 bias, to be decreased per shift
        while mantissa & 0x400 == 0 {
            mantissa <<= 1
            e -= 1
        }
        return sign | (e << 23) | ((mantissa & 0x3FF) << 13)
    }
}

// MARK: - Header validation

enum SafetensorsHeader {
    typealias Parsed = (entries: [String: SafetensorsEntry], metadata: [String: String])

    /// Parses and checks the header bytes; throws only `SafetensorsError`.
    static func validate(_ bytes: [UInt8], path: String, dataStart: Int, dataSize: Int) throws -> Parsed {
        if let bad = firstInvalidUTF8(bytes) { throw SafetensorsError.headerNotUTF8(path: path, offset: bad) }
        let root: HeaderJSON
        do {
            root = try HeaderJSONParser.parse(bytes)
        } catch let failure as HeaderJSONParser.Failure {
            switch failure {
            case let .syntax(offset, reason): throw SafetensorsError.headerNotJSON(path: path, offset: offset, reason: reason)
            case let .duplicateKey(key, parent): throw SafetensorsError.duplicateKey(path: path, key: key, context: parent)
            }
        }
        guard case let .object(members) = root else {
            throw SafetensorsError.headerNotObject(path: path, found: root.summary)
        }

        var entries: [String: SafetensorsEntry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in members {
            if name == "__metadata__" {
                guard case let .object(pairs) = value else {
                    throw SafetensorsError.metadataNotObject(path: path, found: value.summary)
                }
                for (key, item) in pairs {
                    guard case let .string(text) = item else {
                        throw SafetensorsError.metadataValueNotString(path: path, key: key, found: item.summary)
                    }
                    metadata[key] = text
                }
                continue
            }
            entries[name] = try entry(name, value, path: path, dataStart: dataStart, dataSize: dataSize)
        }

        // The tensors must tile the data region: sorted by offsets, each starts where the previous ends.
        let sorted = entries.values.sorted {
            ($0.byteRange.lowerBound, $0.byteRange.upperBound, $0.name) < ($1.byteRange.lowerBound, $1.byteRange.upperBound, $1.name)
        }
        var reached = dataStart
        var reachedBy: String? = nil
        for e in sorted {
            if e.byteRange.lowerBound < reached {
                throw SafetensorsError.overlap(path: path, tensor: e.name, other: reachedBy ?? "")
            }
            if e.byteRange.lowerBound > reached {
                throw SafetensorsError.hole(path: path, begin: reached - dataStart, end: e.byteRange.lowerBound - dataStart,
                                            dataStart: dataStart, after: reachedBy)
            }
            reached = e.byteRange.upperBound
            reachedBy = e.name
        }
        if reached < dataStart + dataSize {
            throw SafetensorsError.hole(path: path, begin: reached - dataStart, end: dataSize, dataStart: dataStart, after: reachedBy)
        }
        return (entries, metadata)
    }

    private static func entry(_ name: String, _ value: HeaderJSON, path: String, dataStart: Int, dataSize: Int) throws -> SafetensorsEntry {
        guard case let .object(pairs) = value else {
            throw SafetensorsError.entryNotObject(path: path, tensor: name, found: value.summary)
        }
        func field(_ key: String) throws -> HeaderJSON {
            guard let v = pairs.first(where: { $0.key == key })?.value else {
                throw SafetensorsError.missingField(path: path, tensor: name, field: key)
            }
            return v
        }

        // dtype
        let dtypeValue = try field("dtype")
        guard case let .string(dtypeText) = dtypeValue else {
            throw SafetensorsError.wrongFieldType(path: path, tensor: name, field: "dtype",
                                                  expected: "a dtype string such as \"F32\"", found: dtypeValue.summary)
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeText) else {
            throw SafetensorsError.unsupportedDType(path: path, tensor: name, dtype: dtypeText)
        }

        // shape
        let shapeValue = try field("shape")
        guard case let .array(dims) = shapeValue else {
            throw SafetensorsError.wrongFieldType(path: path, tensor: name, field: "shape",
                                                  expected: "an array of non-negative integers", found: shapeValue.summary)
        }
        var shape: [Int] = []
        shape.reserveCapacity(dims.count)
        for (i, dim) in dims.enumerated() {
            guard case let .number(text) = dim else {
                throw SafetensorsError.invalidShape(path: path, tensor: name, reason: "dimension \(i) is \(dim.summary), not an integer")
            }
            switch HeaderJSON.integer(text) {
            case let .value(v): shape.append(v)
            case .negative: throw SafetensorsError.invalidShape(path: path, tensor: name, reason: "dimension \(i) is negative (\(text))")
            case .notInteger: throw SafetensorsError.invalidShape(path: path, tensor: name, reason: "dimension \(i) is not an integer (\(text))")
            case .tooLarge: throw SafetensorsError.invalidShape(path: path, tensor: name, reason: "dimension \(i) is too large (\(text))")
            }
        }

        // data_offsets
        let offsetsValue = try field("data_offsets")
        let offsetsExpected = "an array of two non-negative integers [begin, end]"
        guard case let .array(offsets) = offsetsValue, offsets.count == 2 else {
            throw SafetensorsError.wrongFieldType(path: path, tensor: name, field: "data_offsets",
                                                  expected: offsetsExpected, found: offsetsValue.summary)
        }
        var bounds: [Int?] = []  // nil: too large for an Int
        var texts: [String] = []
        for item in offsets {
            guard case let .number(text) = item else {
                throw SafetensorsError.wrongFieldType(path: path, tensor: name, field: "data_offsets",
                                                      expected: offsetsExpected, found: "an array holding \(item.summary)")
            }
            switch HeaderJSON.integer(text) {
            case let .value(v): bounds.append(v)
            case .tooLarge: bounds.append(nil)
            case .negative, .notInteger:
                throw SafetensorsError.wrongFieldType(path: path, tensor: name, field: "data_offsets",
                                                      expected: offsetsExpected, found: "an array holding the number \(text)")
            }
            texts.append(text)
        }
        // An offset too large for an Int is certainly past the end; compare as "infinite".
        let beginAfterEnd: Bool
        switch (bounds[0], bounds[1]) {
        case let (b?, e?): beginAfterEnd = b > e
        case (nil, _?): beginAfterEnd = true
        case (_, nil): beginAfterEnd = false
        }
        if beginAfterEnd {
            throw SafetensorsError.offsetsReversed(path: path, tensor: name, begin: texts[0], end: texts[1])
        }
        guard let begin = bounds[0], let end = bounds[1], end <= dataSize else {
            throw SafetensorsError.offsetsPastEnd(path: path, tensor: name, end: texts[1], dataSize: dataSize)
        }

        // size: element count × dtype size, without overflow, must match the span
        var expected: Int? = 1
        for d in shape {
            guard let e = expected else { break }
            let (p, overflow) = e.multipliedReportingOverflow(by: d)
            expected = overflow ? nil : p
        }
        if let count = expected {
            let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
            expected = overflow ? nil : bytes
        }
        guard expected == end - begin else {
            throw SafetensorsError.sizeMismatch(path: path, tensor: name, dtype: dtype.rawValue, shape: shape,
                                                expectedBytes: expected, actualBytes: end - begin)
        }
        return SafetensorsEntry(name: name, dtype: dtype, shape: shape, byteRange: (dataStart + begin) ..< (dataStart + end))
    }

    /// Offset of the first byte that is not part of well-formed UTF-8, or nil.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int? {
        var decoder = UTF8()
        var iterator = bytes.makeIterator()
        var offset = 0
        while true {
            switch decoder.decode(&iterator) {
            case let .scalarValue(scalar): offset += UTF8.width(scalar)
            case .emptyInput: return nil
            case .error: return offset
            }
        }
    }
}

// MARK: - A small strict JSON parser

/// A JSON value. Objects keep their members in file order; numbers keep their literal text.
indirect enum HeaderJSON {
    case object([(key: String, value: HeaderJSON)])
    case array([HeaderJSON])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    /// A short description for error messages ("an array", "the string \"F32\"", ...).
    var summary: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case let .string(s): return "the string \"\(s.count > 40 ? String(s.prefix(40)) + "…" : s)\""
        case let .number(t): return "the number \(t.count > 40 ? String(t.prefix(40)) + "…" : t)"
        case let .bool(b): return b ? "true" : "false"
        case .null: return "null"
        }
    }

    enum Integer: Equatable { case value(Int), negative, notInteger, tooLarge }

    /// Reads a JSON number literal as an Int: fractions and exponents are not integers, as in the
    /// reference implementation.
    static func integer(_ text: String) -> Integer {
        if text.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { return .notInteger }
        if text.hasPrefix("-") { return text == "-0" ? .value(0) : .negative }
        guard let v = Int(text) else { return .tooLarge }
        return .value(v)
    }
}

/// Parses RFC 8259 JSON from bytes that are already known to be valid UTF-8. Never traps: every
/// malformation (including nesting deeper than `maxDepth` and duplicate keys) is a thrown `Failure`.
struct HeaderJSONParser {
    enum Failure: Error, Equatable {
        case syntax(offset: Int, reason: String)
        /// `parent` is the key of the enclosing object, nil at the top level.
        case duplicateKey(key: String, parent: String?)
    }

    static let maxDepth = 64

    private let bytes: [UInt8]
    private var i = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8]) throws -> HeaderJSON {
        var parser = HeaderJSONParser(bytes)
        parser.skipWhitespace()
        guard parser.i < bytes.count else { throw Failure.syntax(offset: 0, reason: "the header is empty") }
        let value = try parser.value(depth: 0, key: nil)
        parser.skipWhitespace()
        guard parser.i == bytes.count else {
            throw Failure.syntax(offset: parser.i, reason: "unexpected \(parser.describe(parser.i)) after the end of the JSON value")
        }
        return value
    }

    private func describe(_ at: Int) -> String {
        guard at < bytes.count else { return "end of header" }
        let b = bytes[at]
        if b >= 0x21 && b < 0x7F { return "character '\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
    }

    private func fail(_ reason: String) -> Failure { .syntax(offset: i, reason: reason) }

    private mutating func skipWhitespace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func value(depth: Int, key: String?) throws -> HeaderJSON {
        guard depth < HeaderJSONParser.maxDepth else { throw fail("values nested more than \(HeaderJSONParser.maxDepth) levels deep") }
        guard i < bytes.count else { throw fail("the header ends where a value was expected") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object(depth: depth, key: key)
        case UInt8(ascii: "["): return try array(depth: depth, key: key)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "-"), UInt8(ascii: "0") ... UInt8(ascii: "9"): return .number(try number())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default: throw fail("expected a value, found \(describe(i))")
        }
    }

    private mutating func literal(_ word: String) throws {
        for b in word.utf8 {
            guard i < bytes.count, bytes[i] == b else { throw fail("invalid literal (expected \(word))") }
            i += 1
        }
    }

    private mutating func object(depth: Int, key parent: String?) throws -> HeaderJSON {
        i += 1  // {
        var members: [(key: String, value: HeaderJSON)] = []
        var seen = Set<String>()
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a quoted key, found \(describe(i))") }
            let key = try string()
            guard seen.insert(key).inserted else { throw Failure.duplicateKey(key: key, parent: parent) }
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after a key, found \(describe(i))") }
            i += 1
            skipWhitespace()
            members.append((key, try value(depth: depth + 1, key: key)))
            skipWhitespace()
            guard i < bytes.count else { throw fail("the header ends inside an object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw fail("expected ',' or '}' in an object, found \(describe(i))")
        }
    }

    private mutating func array(depth: Int, key: String?) throws -> HeaderJSON {
        i += 1  // [
        var items: [HeaderJSON] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth + 1, key: key))
            skipWhitespace()
            guard i < bytes.count else { throw fail("the header ends inside an array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            throw fail("expected ',' or ']' in an array, found \(describe(i))")
        }
    }

    private mutating func number() throws -> String {
        let start = i
        func digits() -> Int {
            let s = i
            while i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") { i += 1 }
            return i - s
        }
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < bytes.count, bytes[i] >= UInt8(ascii: "0"), bytes[i] <= UInt8(ascii: "9") else { throw fail("expected a digit in a number") }
        if bytes[i] == UInt8(ascii: "0") { i += 1 } else { _ = digits() }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw fail("expected a digit after the decimal point") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw fail("expected a digit in the exponent") }
        }
        return String(decoding: bytes[start ..< i], as: UTF8.self)
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("the header ends inside a \\u escape") }
        var v: UInt32 = 0
        for _ in 0 ..< 4 {
            let b = bytes[i]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0") ... UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a") ... UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A") ... UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw fail("invalid hex digit in a \\u escape")
            }
            v = v << 4 | d
            i += 1
        }
        return v
    }

    private mutating func string() throws -> String {
        i += 1  // opening quote
        let start = i
        // Fast path: no escapes.
        while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\") {
            guard bytes[i] >= 0x20 else { throw fail("unescaped control character in a string") }
            i += 1
        }
        guard i < bytes.count else { throw fail("the header ends inside a string") }
        if bytes[i] == UInt8(ascii: "\"") {
            i += 1
            return String(decoding: bytes[start ..< i - 1], as: UTF8.self)
        }
        var out = Array(bytes[start ..< i])
        while true {
            guard i < bytes.count else { throw fail("the header ends inside a string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; return String(decoding: out, as: UTF8.self) }
            if b < 0x20 { throw fail("unescaped control character in a string") }
            if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw fail("the header ends inside a string escape") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var code = try hex4()
                if code >= 0xD800 && code < 0xDC00 {
                    guard i + 2 <= bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw fail("unpaired UTF-16 surrogate in a \\u escape")
                    }
                    i += 2
                    let low = try hex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw fail("unpaired UTF-16 surrogate in a \\u escape") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                } else if code >= 0xDC00 && code < 0xE000 {
                    throw fail("unpaired UTF-16 surrogate in a \\u escape")
                }
                guard let scalar = Unicode.Scalar(code) else { throw fail("invalid \\u escape") }
                out.append(contentsOf: Array(String(Character(scalar)).utf8))
            default:
                i -= 1
                throw fail("invalid escape \\\(describe(i)) in a string")
            }
        }
    }
}

// MARK: - Writer

/// Writes float32 tensors in the safetensors format.
public enum SafetensorsWriter {
    /// Writes `tensors` (as F32, in the given order) and `metadata` to `target`.
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String],
                             to target: OutputTarget) throws {
        var seen = Set<String>()
        for (name, _) in tensors {
            if name == "__metadata__" {
                throw SafetensorsError.invalidTensorName(path: target.path, tensor: name, reason: "the name is reserved for the metadata")
            }
            guard seen.insert(name).inserted else {
                throw SafetensorsError.invalidTensorName(path: target.path, tensor: name, reason: "two tensors have this name")
            }
        }
        try target.write { temporary in try writeFile(tensors, metadata: metadata, at: temporary) }
    }

    /// Writes the file at `url` directly (inside an output's temporary file or folder), with tensor
    /// names already checked. The header is padded with spaces to a multiple of 8 bytes, as the
    /// reference writer does, so the data region (and every tensor) starts 8-byte aligned.
    static func writeFile(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String], at url: URL) throws {
        let path = url.path

        var parts: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.sorted { $0.key < $1.key }.map { quote($0.key) + ":" + quote($0.value) }
            parts.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for (name, tensor) in tensors {
            let size = tensor.count * MemoryLayout<Float>.size
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            parts.append(quote(name) + ":{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(offset + size)]}")
            offset += size
        }
        var header = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }

        guard let file = fopen(path, "wb") else {
            throw FileError.unwritable(path: path, reason: String(cString: strerror(errno)))
        }
        var failed = false
        func put(_ pointer: UnsafeRawPointer, _ count: Int) {
            if !failed, count > 0, fwrite(pointer, 1, count, file) != count { failed = true }
        }
        var length = UInt64(header.count).littleEndian
        withUnsafeBytes(of: &length) { put($0.baseAddress!, 8) }
        header.withUnsafeBytes { put($0.baseAddress!, $0.count) }
        for (_, tensor) in tensors {
            #if _endian(little)
            put(UnsafeRawPointer(tensor.pointer), tensor.count * 4)
            #else
            let swapped = tensor.buffer.map { $0.bitPattern.littleEndian }
            swapped.withUnsafeBytes { put($0.baseAddress!, $0.count) }
            #endif
        }
        let reason = failed ? String(cString: strerror(errno)) : ""
        if fclose(file) != 0 && !failed {
            throw FileError.unwritable(path: path, reason: String(cString: strerror(errno)))
        }
        if failed { throw FileError.unwritable(path: path, reason: reason) }
    }

    /// A JSON string literal.
    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
