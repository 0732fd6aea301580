import Foundation
import Yams  // Node, the composed document

/// Ordered item families with a value for each item, so families align by value
/// (3 ↔ three ↔ third ↔ March ↔ Wednesday ↔ c). Used by `scalpel paths`.
public struct SequenceFamily: Codable, Equatable, Sendable {
    public var name: String
    /// Items as they appear after a space in text ("3", "three", "March").
    public var items: [String]
    /// The value of each item (1-based position in its sequence unless given).
    public var values: [Int]

    public init(name: String, items: [String], values: [Int]? = nil) {
        self.name = name; self.items = items
        self.values = values ?? Array(1...max(items.count, 1)).prefix(items.count).map { $0 }
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let items = try container.decode([String].self, forKey: .items)
        self.init(name: try container.decode(String.self, forKey: .name), items: items,
                  values: try container.decodeIfPresent([Int].self, forKey: .values))
    }

    enum CodingKeys: String, CodingKey { case name, items, values }

    public func value(of item: String) -> Int? { items.firstIndex(of: item).map { values[$0] } }
    public func item(withValue value: Int) -> String? { values.firstIndex(of: value).map { items[$0] } }
}

public enum SequenceFamilies {
    public static let digits = SequenceFamily(name: "digits", items: (1...20).map(String.init))
    public static let numberWords = SequenceFamily(name: "number-words", items: [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"])
    public static let ordinals = SequenceFamily(name: "ordinals", items: [
        "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth", "eleventh",
        "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth"])
    public static let months = SequenceFamily(name: "months", items: [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
        "November", "December"])
    /// Monday is 1 so that Wednesday aligns with 3, as in ISO 8601.
    public static let days = SequenceFamily(name: "days", items: [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])
    public static let letters = SequenceFamily(name: "letters", items: (0..<26).map { String(UnicodeScalar(UInt8(97 + $0))) })

    public static let all: [SequenceFamily] = [digits, numberWords, ordinals, months, days, letters]

    public static func named(_ name: String) -> SequenceFamily? { all.first { $0.name == name } }
}

extension SequenceFamilies {
    /// A built-in family, or one from `extra` (user files).
    public static func resolve(_ name: String, extra: [SequenceFamily] = []) throws -> SequenceFamily {
        if let family = (extra + all).first(where: { $0.name == name }) { return family }
        throw DatasetError.unknown(name: name, known: (all + extra).map(\.name))
    }

    /// Values are small integers: paths align families by value and step to `value + 1`.
    public static let valueRange = -1_000_000...1_000_000

    /// Families from a YAML/JSON file: a list of `{name, items: [...], values: [...]?}`.
    public static func load(_ url: URL) throws -> [SequenceFamily] {
        let path = url.path
        let text = try InputFile.readText(path, missingHint: "Give a YAML or JSON file with a list of {name, items, values}.")
        let reader = YAMLFields(path: path)
        guard let root = try YAMLFile.compose(text, path: path) else { throw FileError.empty(path: path) }
        return try reader.list(root, at: "").enumerated().map { index, node in
            let field = "[\(index)]"
            let entries = try reader.mapping(node, at: field, known: ["name", "items", "values"],
                                             expected: "a family {name, items: [...], values: [...] (optional)}")
            let name = try reader.string(try reader.required(entries, "name", in: node, at: field), at: "\(field).name")
            let itemList = try reader.required(entries, "items", in: node, at: field)
            let items = try reader.strings(itemList, at: "\(field).items")
            guard !items.isEmpty else { throw reader.unexpected(itemList, at: "\(field).items", expected: "at least one item") }
            let values = try entries["values"].map { list in
                let values = try reader.list(list, at: "\(field).values").enumerated().map {
                    try reader.int($1, at: "\(field).values[\($0)]", in: valueRange)
                }
                guard values.count == items.count else {
                    throw reader.unexpected(list, at: "\(field).values", expected: "one value per item (\(items.count) items, \(values.count) values)")
                }
                return values
            }
            return SequenceFamily(name: name, items: items, values: values)
        }
    }
}
