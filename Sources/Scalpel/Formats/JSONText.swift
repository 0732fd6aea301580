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
}
