import Foundation

// A small strict JSON parser for safetensors headers and vocab.json: JSONSerialization accepts
// duplicate keys and loses number literals, and both matter when validating a header; and
// JSONDecoder hashes keys as Swift Strings (canonical equivalence), which made reading GPT-2's
// 50,257 mostly non-ASCII pieces slow. Keys are compared by their bytes.

/// A JSON value. Objects keep their members in file order; numbers keep their literal text.
indirect enum StrictJSON {
    case object([(key: String, value: StrictJSON)])
    case array([StrictJSON])
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
struct StrictJSONParser {
    enum Failure: Error, Equatable {
        case syntax(offset: Int, reason: String)
        /// `parent` is the key of the enclosing object, nil at the top level.
        case duplicateKey(key: String, parent: String?)
    }

    static let maxDepth = 64

    private let bytes: [UInt8]
    private var i = 0

    private init(_ bytes: [UInt8]) { self.bytes = bytes }

    static func parse(_ bytes: [UInt8]) throws -> StrictJSON {
        var parser = StrictJSONParser(bytes)
        parser.skipWhitespace()
        guard parser.i < bytes.count else { throw Failure.syntax(offset: 0, reason: "the JSON text is empty") }
        let value = try parser.value(depth: 0, key: nil)
        parser.skipWhitespace()
        guard parser.i == bytes.count else {
            throw Failure.syntax(offset: parser.i, reason: "unexpected \(parser.describe(parser.i)) after the end of the JSON value")
        }
        return value
    }

    private func describe(_ at: Int) -> String {
        guard at < bytes.count else { return "end of the text" }
        let b = bytes[at]
        if b >= 0x21 && b < 0x7F { return "character '\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
    }

    private func fail(_ reason: String) -> Failure { .syntax(offset: i, reason: reason) }

    private mutating func skipWhitespace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func value(depth: Int, key: String?) throws -> StrictJSON {
        guard depth < StrictJSONParser.maxDepth else { throw fail("values nested more than \(StrictJSONParser.maxDepth) levels deep") }
        guard i < bytes.count else { throw fail("the text ends where a value was expected") }
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

    private mutating func object(depth: Int, key parent: String?) throws -> StrictJSON {
        i += 1  // {
        var members: [(key: String, value: StrictJSON)] = []
        var seen = Set<[UInt8]>()  // keys' bytes: "é" and "e" + U+0301 are two keys, as in Rust and Python
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
        while true {
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a quoted key, found \(describe(i))") }
            let key = try string()
            guard seen.insert(Array(key.utf8)).inserted else { throw Failure.duplicateKey(key: key, parent: parent) }
            skipWhitespace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected ':' after a key, found \(describe(i))") }
            i += 1
            skipWhitespace()
            members.append((key, try value(depth: depth + 1, key: key)))
            skipWhitespace()
            guard i < bytes.count else { throw fail("the text ends inside an object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            throw fail("expected ',' or '}' in an object, found \(describe(i))")
        }
    }

    private mutating func array(depth: Int, key: String?) throws -> StrictJSON {
        i += 1  // [
        var items: [StrictJSON] = []
        skipWhitespace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try value(depth: depth + 1, key: key))
            skipWhitespace()
            guard i < bytes.count else { throw fail("the text ends inside an array") }
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
        guard i + 4 <= bytes.count else { throw fail("the text ends inside a \\u escape") }
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
        guard i < bytes.count else { throw fail("the text ends inside a string") }
        if bytes[i] == UInt8(ascii: "\"") {
            i += 1
            return String(decoding: bytes[start ..< i - 1], as: UTF8.self)
        }
        var out = Array(bytes[start ..< i])
        while true {
            guard i < bytes.count else { throw fail("the text ends inside a string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; return String(decoding: out, as: UTF8.self) }
            if b < 0x20 { throw fail("unescaped control character in a string") }
            if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw fail("the text ends inside a string escape") }
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
