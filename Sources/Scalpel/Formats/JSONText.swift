import Foundation

/// The JSON every command prints (DESIGN.md "Output conventions"): snake_case keys in sorted order
/// (Swift's camelCase property names converted here, once for every command); non-finite numbers are written
/// as `null` and counted in a top-level `non_finite` field, so a NaN in a damaged model's results is
/// reported, never a crash.
public struct JSONText {
    /// Non-finite numbers written as `null` so far.
    public private(set) var nonFinite = 0

    /// Stands for a non-finite number while encoding; replaced by `null` afterwards.
    private static let marker = "__scalpel_non_finite_7f3a9c__"

    public init() {}

    /// One JSON value, for documents printed piece by piece; its non-finite numbers are counted.
    public mutating func fragment<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]  // a stable key order
        encoder.keyEncodingStrategy = .convertToSnakeCase  // the CSV columns' and HDF5 datasets' names
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: Self.marker, negativeInfinity: Self.marker, nan: Self.marker)
        let quoted = "\"\(Self.marker)\""
        let text = String(decoding: try encoder.encode(value), as: UTF8.self)
        nonFinite += text.components(separatedBy: quoted).count - 1
        return text.replacingOccurrences(of: quoted, with: "null")
    }

    /// A whole document: an object gets the `non_finite` count as its last field.
    public static func encode<T: Encodable>(_ value: T) throws -> String {
        var json = JSONText()
        var text = try json.fragment(value)
        if text.hasPrefix("{") && text.hasSuffix("}") {
            text.removeLast()
            text += (text == "{" ? "" : ",") + "\"non_finite\":\(json.nonFinite)}"
        }
        return text
    }

    /// A JSON string literal. `forScript` makes it safe inside an HTML `<script>` element as well:
    /// `<`, `>`, `&` become `\u003c` `\u003e` `\u0026` (no `</script>` or `<!--` can appear), and
    /// U+2028, U+2029 and DEL are escaped too.
    public static func quote(_ s: String, forScript: Bool = false) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where forScript && scriptEscaped.contains(scalar): out += unicodeEscape(scalar)
            default: if scalar.value < 0x20 { out += unicodeEscape(scalar) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }

    private static let scriptEscaped: Set<Unicode.Scalar> = ["<", ">", "&", "\u{2028}", "\u{2029}", "\u{7F}"]

    /// `\uXXXX` for a scalar of the Basic Multilingual Plane.
    private static func unicodeEscape(_ scalar: Unicode.Scalar) -> String {
        let hex = String(scalar.value, radix: 16)
        return "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
    }
}
