import Foundation
import Scalpel

/// One value of a record: what a CSV field and a JSON value are both made from.
enum FieldValue: Encodable {
    case int(Int?)
    case float(Float?)
    case double(Double?)
    case text(String?)
    /// Token ids: a JSON array, space-separated in CSV.
    case ids([Int])
    /// Top predictions: JSON objects {id, token, logit, prob}, the tokens joined by "|" in CSV.
    case scores([TopToken])

    var csv: String {
        switch self {
        case let .int(value): return value.map { "\($0)" } ?? ""
        case let .float(value): return value.map { "\($0)" } ?? ""
        case let .double(value): return value.map { "\($0)" } ?? ""
        case let .text(value): return Output.csvField(value ?? "")
        case let .ids(values): return values.map { "\($0)" }.joined(separator: " ")
        case let .scores(values): return Output.csvField(values.map(\.token).joined(separator: "|"))
        }
    }

    /// A missing value is written as `null`, never left out: every record has every key.
    func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case let .int(value): try value.map { try container.encode($0) } ?? container.encodeNil()
        case let .float(value): try value.map { try container.encode($0) } ?? container.encodeNil()
        case let .double(value): try value.map { try container.encode($0) } ?? container.encodeNil()
        case let .text(value): try value.map { try container.encode($0) } ?? container.encodeNil()
        case let .ids(values): try container.encode(values)
        case let .scores(values): try container.encode(values)
        }
    }
}

/// One line of a command's CSV and one object of its JSON `records` array (DESIGN.md "Output
/// conventions"): both are made from the same `fields`, so the CSV header and the JSON keys are
/// the same snake_case names by construction.
protocol Record: Encodable {
    /// The CSV header, in column order; the keys of every record's `fields`.
    static var columns: [String] { get }
    var fields: [(name: String, value: FieldValue)] { get }
}

extension Record {
    static var csvHeader: String { columns.joined(separator: ",") }

    var csvLine: String {
        assert(fields.map(\.name) == Self.columns, "a record's fields are its columns")
        return fields.map(\.value.csv).joined(separator: ",")
    }

    func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: RecordKey.self)
        for (name, value) in fields { try container.encode(value, forKey: RecordKey(name)) }
    }
}

struct RecordKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// A command's records with no summary: JSON `{"records": [...], "non_finite": n}`, CSV the header
/// and one line per record.
struct RecordList<R: Record>: Encodable {
    var records: [R]

    func print(_ format: OutputFormat) throws {
        switch format {
        case .json: try Output.json(self)
        case .csv:
            Swift.print(R.csvHeader)
            for record in records { Swift.print(record.csvLine) }
        case .table: preconditionFailure("a table is the command's own")
        }
    }
}
