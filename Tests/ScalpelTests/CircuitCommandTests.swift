import XCTest
@testable import Scalpel

/// `scalpel circuit` end to end on the bundled model (6 layers × 4 heads): outputs agree, the saved
/// model scores as the circuit, bad input is refused before any work and nothing is written.
final class CircuitCommandTests: CLITestCase {
    func writeCircuit(_ name: String, _ text: String) throws {
        try text.write(to: scratch.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func testJSONTableFilesAndSavedModelAgree() throws {
        try writeCircuit("c.yaml", "description: demo\nheads: {\"4.0\": all, \"5.1\": [end]}\n")
        let json = try scalpel(["circuit", "c.yaml", "--dataset", "digits", "--items", "1-10", "--means", "digits", "--means-items", "11-20",
                                "--baselines", "6", "--seed", "3", "--controls", "months", "--format", "json",
                                "-o", "c.h5", "--plot", "c.svg", "--save-model", "m.h5"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        for key in ["circuit", "metric", "score", "full", "fraction", "baselines", "dataset", "means_dataset", "means", "controls", "non_finite"] {
            XCTAssertNotNil(object[key], key)
        }
        XCTAssertEqual(object["circuit"] as? String, "{\"4.0\": all, \"5.1\": [end]}")
        XCTAssertEqual(object["means"] as? String, "per-position")
        XCTAssertEqual(object["dataset"] as? String, "digits[1-10]")
        let score = try XCTUnwrap(object["score"] as? Double), full = try XCTUnwrap(object["full"] as? Double)
        XCTAssertEqual(try XCTUnwrap(object["fraction"] as? Double), score / full, accuracy: 1e-12)
        let baselines = try XCTUnwrap(object["baselines"] as? [String: Any])
        XCTAssertEqual(baselines["n"] as? Int, 6)
        XCTAssertEqual(baselines["seed"] as? Int, 3)
        let values = try XCTUnwrap(baselines["values"] as? [Double])
        XCTAssertEqual(values.count, 6)
        XCTAssertEqual(try XCTUnwrap(baselines["mean"] as? Double), values.reduce(0, +) / 6, accuracy: 1e-9)
        XCTAssertEqual((object["controls"] as? [[String: Any]])?.first?["dataset"] as? String, "months")

        // The same seed gives the same baselines.
        let again = try scalpel(["circuit", "c.yaml", "--dataset", "digits", "--items", "1-10", "--means", "digits", "--means-items", "11-20",
                                 "--baselines", "6", "--seed", "3", "--format", "json"])
        let againObject = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
        XCTAssertEqual((againObject["baselines"] as? [String: Any])?["values"] as? [Double], values)

        let svg = try String(contentsOf: scratch.appendingPathComponent("c.svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains("<svg") && svg.contains("circuit ") && svg.contains("6 random circuits"), "histogram with the circuit marked")
        let file = try HDF5File.open(scratch.appendingPathComponent("c.h5"))
        let stored = try file.root.group("circuit").dataset("baselines").readTensor()
        XCTAssertEqual(stored.count, 6)
        for (i, value) in values.enumerated() { XCTAssertEqual(Double(stored[flat: i]), value, accuracy: 1e-5) }

        // The saved archive (per-position means stored) scores as the circuit.
        let model = try ModelArchive.load(from: scratch.appendingPathComponent("m.h5"))
        let items = try ContrastItems(dataset: PromptDataset(name: "d", description: "", items: Array(StudyDatasets.digits.items[0..<10])), model: model)
        let run = try model.run(items.items.map(\.clean))
        XCTAssertEqual(CausalMetric.logitDiff.mean(run.logits, items: items.items, columns: nil), score, accuracy: 1e-5)

        let table = try scalpel(["circuit", "c.yaml", "--dataset", "digits", "--pooled-means"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("pooled means over digits") && table.stdout.contains("fraction"), table.stdout)
    }

    func testEveryHeadIsTheFullModel() throws {
        let heads = (0..<6).flatMap { l in (0..<4).map { "\"\(l).\($0)\": all" } }.joined(separator: ", ")
        try writeCircuit("every.yaml", "heads: {\(heads)}\n")
        let json = try scalpel(["circuit", "every.yaml", "--dataset", "months", "--format", "json"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["score"] as? Double, object["full"] as? Double)
    }

    func testBadInputIsRefusedAndNothingIsWritten() throws {
        try writeCircuit("nohead.yaml", "heads: {\"6.0\": all}\n")
        try writeCircuit("nopos.yaml", "heads: {\"1.0\": [9]}\n")
        try writeCircuit("two.yaml", "heads: {\"1.0\": all, \"2.1\": [end]}\n")
        try writeCircuit("empty.yaml", "heads: {}\n")
        try writeCircuit("badfield.yaml", "heads: {}\nextra: 1\n")
        try """
        name: five
        items:
          - {prompt: "1 2 3 4 5", answer: " 6", corrupted_prompt: "1 2 3 4 4", corrupted_answer: " 5"}
        """.write(to: scratch.appendingPathComponent("five.yaml"), atomically: true, encoding: .utf8)
        let outputs = ["-o", "x.h5", "--plot", "x.svg", "--save-model", "m.h5"]
        try expectBadInput(["circuit", "nohead.yaml", "--dataset", "digits"] + outputs, mentions: ["head 6.0 does not exist", "layers 0–5"])
        try expectBadInput(["circuit", "nopos.yaml", "--dataset", "digits"] + outputs, mentions: ["position 9", "tokens"])
        try expectBadInput(["circuit", "two.yaml", "--dataset", "digits", "--means", "five.yaml"] + outputs,
                           mentions: ["scored dataset digits has 5 tokens", "means dataset five has 6", "--pooled-means"])
        try expectBadInput(["circuit", "two.yaml", "--dataset", "digits", "--baselines", "553"] + outputs, mentions: ["552", "at most 552"])
        try expectBadInput(["circuit", "empty.yaml", "--dataset", "digits", "--baselines", "2"] + outputs, mentions: ["at most 1"])
        try expectBadInput(["circuit", "badfield.yaml", "--dataset", "digits"] + outputs, mentions: ["badfield.yaml:2", "extra"])
        for name in ["x.h5", "x.svg", "m.h5"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent(name).path), name)
        }
        // The empty circuit is allowed: the all-mean model, said so.
        let empty = try scalpel(["circuit", "empty.yaml", "--dataset", "digits"])
        XCTAssertEqual(empty.status, 0, empty.stderr)
        XCTAssertTrue(empty.stderr.contains("all-mean model") && empty.stdout.contains("all-mean model"), empty.stderr + empty.stdout)
    }

    func testCSVHasOneRowPerScoredCircuit() throws {
        try writeCircuit("c.yaml", "heads: {\"4.0\": all, \"5.1\": [end]}\nmlps: {\"5\": all}\n")
        let args = ["circuit", "c.yaml", "--dataset", "digits", "--baselines", "4", "--seed", "2", "--controls", "months"]
        let csv = try scalpel(args + ["--format", "csv"]), json = try scalpel(args + ["--format", "json"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let lines = csv.stdout.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines.first, "role,index,name,circuit,mlps,size,dataset,means_dataset,means,metric,seed,score,full,fraction")
        XCTAssertEqual(lines.count, 1 + 1 + 4 + 1, "header, the circuit, 4 baselines, 1 control")
        // The last three columns hold no commas or quotes: score, full, fraction.
        func tail(_ line: String) -> [String] { Array(line.split(separator: ",", omittingEmptySubsequences: false).suffix(3).map(String.init)) }
        XCTAssertTrue(lines[1].hasPrefix("circuit,,c,\"{\"\"4.0\"\": all, \"\"5.1\"\": [end]}\",\"{\"\"5\"\": all}\",2,digits,digits,per-position,logit-diff,,"), lines[1])
        XCTAssertEqual(try XCTUnwrap(Double(tail(lines[1])[0])), try XCTUnwrap(object["score"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(Double(tail(lines[1])[1])), try XCTUnwrap(object["full"] as? Double), accuracy: 1e-12)
        let values = try XCTUnwrap((object["baselines"] as? [String: Any])?["values"] as? [Double])
        for (i, value) in values.enumerated() {
            XCTAssertTrue(lines[2 + i].hasPrefix("baseline,\(i + 1),random \(i + 1),"), lines[2 + i])
            XCTAssertTrue(lines[2 + i].contains(",2,\(tail(lines[2 + i])[0]),"), "seed 2 beside the score: \(lines[2 + i])")
            XCTAssertEqual(try XCTUnwrap(Double(tail(lines[2 + i])[0])), value, accuracy: 1e-12)
        }
        XCTAssertTrue(lines[6].hasPrefix("control,,c,") && lines[6].contains(",months,months,"), lines[6])
        let control = try XCTUnwrap((object["controls"] as? [[String: Any]])?.first)
        XCTAssertEqual(try XCTUnwrap(Double(tail(lines[6])[0])), try XCTUnwrap(control["score"] as? Double), accuracy: 1e-12)
    }
}
