import XCTest
@testable import Scalpel

/// `scalpel patch` end to end on the bundled model: its outputs, and bad input refused before any work.
final class PatchCommandTests: CLITestCase {
    func testTableJSONCSVAndFilesAgree() throws {
        let json = try scalpel(["patch", "--dataset", "months", "--target", "z", "--format", "json", "-o", "heads.h5", "--plot", "heads.svg"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["dims"] as? [String], ["layer", "head"])
        XCTAssertEqual(object["shape"] as? [Int], [6, 4])
        for key in ["model", "target", "direction", "metric", "values", "raw", "clean", "corrupted", "top", "axis_labels"] {
            XCTAssertNotNil(object[key], key)
        }
        let values = try XCTUnwrap(object["values"] as? [Double]), raw = try XCTUnwrap(object["raw"] as? [Double])
        let clean = try XCTUnwrap(object["clean"] as? Double), corrupted = try XCTUnwrap(object["corrupted"] as? Double)
        for (value, rawValue) in zip(values, raw) { XCTAssertEqual(value, (rawValue - corrupted) / (clean - corrupted), accuracy: 1e-9) }
        let svg = try String(contentsOf: scratch.appendingPathComponent("heads.svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains("<svg") && svg.contains("L5 · 3"), "layer and head labels in the picture")
        let file = try HDF5File.open(scratch.appendingPathComponent("heads.h5"))
        let tensor = try file.root.group("patch").dataset("values").readTensor()
        let stored = (0..<tensor.count).map { tensor[flat: $0] }
        XCTAssertEqual(stored.count, 24)
        for (a, b) in zip(stored, values) { XCTAssertEqual(Double(a), b, accuracy: 1e-6) }

        let csv = try scalpel(["patch", "--dataset", "months", "--target", "z", "--format", "csv"])
        let lines = csv.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "layer,head,label,value,raw")
        XCTAssertEqual(lines.count, 25)
        let table = try scalpel(["patch", "--dataset", "months", "--target", "z", "--top", "3"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("top 3"), table.stdout)
    }

    func testBadInputIsRefusedAndNothingIsWritten() throws {
        try expectBadInput(["patch", "--prompt", "1 2 3 4", "--target", "z", "-o", "x.h5"], mentions: ["corrupted_prompt"])
        try expectBadInput(["patch", "--dataset", "digits", "--target", "zz"], mentions: ["zz", "resid_pre"])
        try expectBadInput(["patch", "--dataset", "digits", "--target", "mlp_post", "--layers", "9", "-o", "x.h5"], mentions: ["Layer 9", "6 blocks"])
        try expectBadInput(["patch", "--dataset", "digits", "--target", "z", "--layers", "2-1"], mentions: ["2-1"])
        try expectBadInput(["patch", "--dataset", "digits", "--target", "z,pattern", "--by-pos"], mentions: ["different grids"])
        let unequal = scratch.appendingPathComponent("unequal.yaml")
        try """
        name: unequal
        items:
          - {prompt: "1 2 3 4", answer: " 5", corrupted_prompt: "1 2 3 3", corrupted_answer: " 4"}
          - {prompt: "1 2 3 4 5", answer: " 6", corrupted_prompt: "1 2 3 4 4", corrupted_answer: " 5"}
        """.write(to: unequal, atomically: true, encoding: .utf8)
        let mismatched = scratch.appendingPathComponent("mismatched.yaml")
        try """
        name: mismatched
        items:
          - {prompt: "1 2 3", answer: " 4", corrupted_prompt: "1 2 3 3", corrupted_answer: " 3"}
        """.write(to: mismatched, atomically: true, encoding: .utf8)
        try expectBadInput(["patch", "--dataset", unequal.path, "--target", "resid_pre", "-o", "x.h5"], mentions: ["item 1 has", "item 2 has"])
        try expectBadInput(["patch", "--dataset", mismatched.path, "--target", "z", "-o", "x.h5"], mentions: ["item 1", "4 tokens", "\" 3\""])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("x.h5").path))
        XCTAssertTrue(FileManager.default.createFile(atPath: scratch.appendingPathComponent("exists.h5").path, contents: Data("mine".utf8)), "test setup: could not create a file")
        try expectBadInput(["patch", "--dataset", "digits", "--target", "z", "-o", "exists.h5"], mentions: ["exists.h5", "--force"])
        XCTAssertEqual(try String(contentsOf: scratch.appendingPathComponent("exists.h5"), encoding: .utf8), "mine")
    }

    func testEqualCleanAndCorruptedMetricsReportRawValuesOnly() throws {
        let same = scratch.appendingPathComponent("same.yaml")
        try """
        name: same
        items:
          - {prompt: "1 2 3 4", answer: " 5", corrupted_prompt: "1 2 3 4", corrupted_answer: " 5"}
        """.write(to: same, atomically: true, encoding: .utf8)
        let result = try scalpel(["patch", "--dataset", same.path, "--target", "z", "--format", "json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stderr.contains("normalised values mean nothing"), result.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertTrue((object["values"] as? [Any])?.allSatisfy { $0 is NSNull } == true)
        XCTAssertEqual((object["raw"] as? [Double])?.count, 24)
    }
}
