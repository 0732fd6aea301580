import Foundation
import XCTest
@testable import Scalpel

/// The strict JSON parser that reads safetensors headers and vocab.json.
final class StrictJSONTests: XCTestCase {
    /// The strict parser against Foundation's on generated objects like vocab.json: every escape
    /// JSON has, surrogate pairs, raw UTF-8 and random white space; then the same texts cut short or
    /// with one byte changed, where it must either refuse them or agree with Foundation.
    func testAgreesWithFoundationsJSONParser() throws {
        var rng = SeededRandom(seed: 77)
        let scalars: [Unicode.Scalar] = ["a", "Z", "5", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "\u{7F}", "\u{E9}",
                                         "\u{120}", "\u{10A}", "\u{65E5}", "\u{1F600}", "\u{10FFFF}"]
        func written(_ scalar: Unicode.Scalar) -> String {
            switch (scalar, rng.next() % 3) {
            case ("\"", _): return "\\\""
            case ("\\", _): return "\\\\"
            case ("/", 0): return "\\/"
            case ("\n", 0): return "\\n"
            case ("\t", 0): return "\\t"
            case let (_, pick) where pick == 1 || scalar.value < 0x20:  // one time in three, and control characters always
                return String(scalar).utf16.map { String(format: "\\u%04x", $0) }.joined()
            default: return String(scalar)
            }
        }
        func space() -> String { ["", " ", "\n  ", "\t", "\r\n"][Int(rng.next() % 5)] }
        var texts: [String] = []
        for _ in 0..<200 {
            var keys = Set<String>()
            var body: [String] = []
            for id in 0..<Int(1 + rng.next() % 12) {
                let key = String(String.UnicodeScalarView((0..<Int(1 + rng.next() % 5)).map { _ in scalars[Int(rng.next() % UInt64(scalars.count))] }))
                guard keys.insert(key).inserted else { continue }
                body.append(space() + "\"" + key.unicodeScalars.map(written).joined() + "\"" + space() + ":" + space() + "\(id * 37)" + space())
            }
            texts.append(space() + "{" + body.joined(separator: ",") + "}" + space())
        }
        func parsed(_ data: Data) -> [String: Int]? {
            (try? JSONSerialization.jsonObject(with: data)) as? [String: Int]
        }
        /// The strict parser's object of integers as (key, value) in file order, or nil when it refuses the text.
        func strict(_ data: Data) -> [(String, Int)]? {
            guard case let .object(members)? = try? StrictJSONParser.parse([UInt8](data)) else { return nil }
            var pairs: [(String, Int)] = []
            for (key, value) in members {
                guard case let .number(text) = value, case let .value(n) = StrictJSON.integer(text) else { return nil }
                pairs.append((key, n))
            }
            return pairs
        }
        var declined = 0, checked = 0
        for text in texts {
            let data = Data(text.utf8)
            let entries = try XCTUnwrap(strict(data), text)
            let expected = try XCTUnwrap(parsed(data), text)
            XCTAssertEqual(entries.count, expected.count, text)
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: entries), expected, text)
            // Damaged copies: cut short, or one byte replaced.
            var damaged = [Data(data.prefix(Int(rng.next() % UInt64(data.count))))]
            var changed = data
            let damage = Array("{}[]\":,\\u0-e.1 \u{0}".utf8)
            changed[Int(rng.next() % UInt64(data.count))] = damage[Int(rng.next() % UInt64(damage.count))]
            damaged.append(changed)
            for bad in damaged where String(validating: bad, as: UTF8.self) != nil {  // callers check UTF-8 first
                checked += 1
                guard let entries = strict(bad) else { declined += 1; continue }
                XCTAssertEqual(parsed(bad).map { Dictionary(uniqueKeysWithValues: $0.map { ($0.key, $0.value) }.sorted { $0.0 < $1.0 }) },
                               Dictionary(uniqueKeysWithValues: entries), String(decoding: bad, as: UTF8.self))
            }
        }
        XCTAssertGreaterThan(declined, checked / 4)  // the damage mostly breaks the JSON
        // Repeated keys are refused, compared by their bytes.
        XCTAssertThrowsError(try StrictJSONParser.parse(Array(#"{"A": 1, "\u0041": 2}"#.utf8))) {
            XCTAssertEqual($0 as? StrictJSONParser.Failure, .duplicateKey(key: "A", parent: nil))
        }
        guard case let .object(members)? = try? StrictJSONParser.parse(Array(#"{"\u00e9": 1, "e\u0301": 2}"#.utf8)) else {
            return XCTFail("canonically equivalent keys are two keys")
        }
        XCTAssertEqual(members.count, 2)
    }
}
