import XCTest
@testable import Scalpel

/// `scalpel heads` end to end on the bundled model (6 layers × 4 heads): outputs agree with each
/// other and with the library, and bad input is refused before any work, writing nothing.
final class HeadsCommandTests: CLITestCase {
    func testDetectJSONCSVTableAndFilesAgree() throws {
        let json = try scalpel(["heads", "--detect", "induction", "--random-repeated", "4", "--seed", "3", "--format", "json",
                                "-o", "induction.h5", "--plot", "induction.svg"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["detector"] as? String, "induction")
        XCTAssertEqual(object["dims"] as? [String], ["layer", "head"])
        let values = try XCTUnwrap(object["values"] as? [[Double]])
        XCTAssertEqual(values.count, 6)
        XCTAssertTrue(values.allSatisfy { $0.count == 4 })

        // The library on the same seeded prompts gives the same numbers.
        let model = try ModelLocation.load(nil)
        let prompts = HeadDetection.randomRepeatedPrompts(count: 4, length: 10, seed: 3, vocabSize: model.vocabSize, bos: model.bosID)
        let grid = try HeadDetection(detector: .induction).run(model, prompts: prompts)[0]
        for layer in 0..<6 { for head in 0..<4 { XCTAssertEqual(values[layer][head], grid[HeadIndex(layer: layer, head: head)]!, accuracy: 1e-12) } }

        let file = try HDF5File.open(scratch.appendingPathComponent("induction.h5"))
        let stored = try file.root.group("heads").dataset("values").readTensor()
        XCTAssertEqual(stored.shape, [6, 4])
        for i in 0..<24 { XCTAssertEqual(Double(stored[flat: i]), values[i / 4][i % 4], accuracy: 1e-6) }
        let svg = try String(contentsOf: scratch.appendingPathComponent("induction.svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains("<svg") && svg.contains("L5") && svg.contains("H3"))

        let csv = try scalpel(["heads", "--detect", "previous-token", "--dataset", "digits", "--format", "csv"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        let lines = csv.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "layer,head,value")
        XCTAssertEqual(lines.count, 25)
        let table = try scalpel(["heads", "--detect", "same-family", "--dataset", "names-is-digit", "--top", "3"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("top 3") && table.stdout.contains("numbers"), table.stdout)
    }

    /// Several detectors from one run give each one's own grid, in every output.
    func testSeveralDetectorsInOneRun() throws {
        let json = try scalpel(["heads", "--detect", "all", "--random-repeated", "4", "--seed", "3", "--format", "json", "-o", "all.h5", "--plot", "all.svg"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let grids = try XCTUnwrap(object["detectors"] as? [[String: Any]])
        XCTAssertEqual(grids.map { $0["detector"] as? String }, ["previous-token", "duplicate-token", "induction", "same-family"])
        XCTAssertEqual(object["prompts"] as? Int, 4)
        let file = try HDF5File.open(scratch.appendingPathComponent("all.h5"))
        let stored = try file.root.group("heads").dataset("values").readTensor()
        XCTAssertEqual(stored.shape, [4, 6, 4])
        XCTAssertEqual(try file.root.group("heads").readStrings("detector_labels"), ["previous-token", "duplicate-token", "induction", "same-family"])
        for (d, grid) in grids.enumerated() {
            let name = try XCTUnwrap(grid["detector"] as? String)
            let values = try XCTUnwrap(grid["values"] as? [[Double]])
            let alone = try scalpel(["heads", "--detect", name, "--random-repeated", "4", "--seed", "3", "--format", "json"])
            XCTAssertEqual(alone.status, 0, alone.stderr)
            let single = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(alone.stdout.utf8)) as? [String: Any])
            XCTAssertEqual(single["values"] as? [[Double]], values, "\(name) alone and together: the same bits")
            for i in 0..<24 { XCTAssertEqual(stored[flat: d * 24 + i], Float(values[i / 4][i % 4]), name) }
        }
        let svg = try String(contentsOf: scratch.appendingPathComponent("all.svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains("induction") && svg.contains("same-family"))

        let csv = try scalpel(["heads", "--detect", "induction,previous-token", "--random-repeated", "2", "--format", "csv"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        let lines = csv.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "detector,layer,head,value")
        XCTAssertEqual(lines.count, 1 + 2 * 24)
        XCTAssertTrue(lines[1].hasPrefix("induction,0,0,") && lines[25].hasPrefix("previous-token,0,0,"))
        let table = try scalpel(["heads", "--detect", "induction,previous-token", "--random-repeated", "2", "--top", "2"])
        XCTAssertTrue(table.stdout.contains("induction scores") && table.stdout.contains("previous-token scores"), table.stdout)

        try expectBadInput(["heads", "--detect", "induction,induction", "--random-repeated", "2"], mentions: ["induction twice"])
        try expectBadInput(["heads", "--detect", "induction,", "--random-repeated", "2"], mentions: ["\"\"", "all"])
        try expectBadInput(["heads", "--detect", "all", "--prompt", "1 2 3 4", "-o", "none.h5"], mentions: ["repeat"])
        try expectBadInput(["heads", "--detect", "induction", "--random-repeated", "2", "--families", "f.yaml"], mentions: ["--families"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("none.h5").path))
    }

    func testCopyScoresAndWriting() throws {
        let json = try scalpel(["heads", "--copy-scores", "--dataset", "digits", "--heads", "2.1", "--format", "json", "-o", "copy.h5", "--plot", "copy.svg"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["positions"] as? Int, 80, "20 prompts of 4 tokens after BOS")
        let copy = try XCTUnwrap(object["copy"] as? [[Double]]), next = try XCTUnwrap(object["next"] as? [[Double]])
        XCTAssertEqual(copy.count, 6); XCTAssertEqual(next.count, 6)
        for value in copy.joined() { XCTAssertEqual((value * 80).rounded(), value * 80, accuracy: 1e-9, "a count over 80 positions") }
        let tables = try XCTUnwrap(object["tables"] as? [[String: Any]])
        XCTAssertEqual(tables.first?["head"] as? String, "2.1")
        XCTAssertEqual((tables.first?["rows"] as? [[String: Any]])?.count, 80)
        let hits = try HDF5File.open(scratch.appendingPathComponent("copy.h5")).root.group("heads").dataset("copy_hits").readInt32().values
        XCTAssertEqual(hits.map { Double($0) / 80 }, Array(copy.joined()))

        let negative = try scalpel(["heads", "--copy-scores", "--dataset", "digits", "--sign", "-1", "--format", "csv"])
        XCTAssertEqual(negative.status, 0, negative.stderr)
        XCTAssertEqual(negative.stdout.split(separator: "\n").first, "layer,head,copy,next,positions")

        let writing = try scalpel(["heads", "--writing", "2.1", "--dataset", "digits", "--format", "json", "--plot", "w.svg"])
        XCTAssertEqual(writing.status, 0, writing.stderr)
        let scatter = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(writing.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(scatter["head"] as? String, "2.1")
        let points = try XCTUnwrap(scatter["points"] as? [[String: Any]])
        XCTAssertEqual(points.count, 80)
        let r = try XCTUnwrap(scatter["r"] as? Double)
        let x = points.map { $0["attention"] as! Double }, y = points.map { $0["projection"] as! Double }
        XCTAssertEqual(r, Statistics.pearson(x, y)!, accuracy: 1e-9)
        XCTAssertNotNil(scatter["p_value"] as? Double)
        let svg = try String(contentsOf: scratch.appendingPathComponent("w.svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains("r = "), "the picture states r")
        let csv = try scalpel(["heads", "--writing", "2.1", "--dataset", "digits", "--format", "csv"])
        XCTAssertEqual(csv.stdout.split(separator: "\n").first, "prompt,pos,token,token_id,attention,projection")
    }

    func testBadInputIsRefusedAndNothingIsWritten() throws {
        try expectBadInput(["heads", "--writing", "6.0", "--dataset", "digits", "-o", "x.h5"], mentions: ["6.0", "6 layers"])
        try expectBadInput(["heads", "--writing", "2.4", "--dataset", "digits", "-o", "x.h5"], mentions: ["2.4", "4 heads"])
        try expectBadInput(["heads", "--writing", "two", "--dataset", "digits"], mentions: ["two", "layer.head"])
        try expectBadInput(["heads", "--copy-scores", "--dataset", "digits", "--heads", "9.1", "-o", "x.h5"], mentions: ["9.1", "6 layers"])
        try expectBadInput(["heads", "--copy-scores", "--prompt", "1 2 3 4", "-o", "x.h5"], mentions: ["no answer"])
        try expectBadInput(["heads", "--detect", "induction", "--prompt", "1 2 3 4", "-o", "x.h5"], mentions: ["induction", "repeat"])
        try expectBadInput(["heads", "--detect", "duplicate-token", "--prompt", "1 2 3 4", "-o", "x.h5"], mentions: ["repeat"])
        try expectBadInput(["heads", "--detect", "previous-token", "--prompt", "1", "--no-bos", "-o", "x.h5"], mentions: ["1 token", "at least 2"])
        try expectBadInput(["heads", "--detect", "same-family", "--prompt", "1 ,", "-o", "x.h5"], mentions: ["same-family", "family"])
        try expectBadInput(["heads", "--detect", "previous-token", "--copy-scores", "--dataset", "digits"], mentions: ["one analysis"])
        try expectBadInput(["heads", "--detect", "induction"], mentions: ["--random-repeated"])
        try expectBadInput(["heads", "--detect", "induction", "--random-repeated", "0"], mentions: ["--random-repeated"])
        try expectBadInput(["heads", "--copy-scores", "--dataset", "digits", "--sign", "2"], mentions: ["--sign"])
        try expectBadInput(["heads", "--detect", "looping", "--dataset", "digits"], mentions: ["looping"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("x.h5").path))
        XCTAssertTrue(FileManager.default.createFile(atPath: scratch.appendingPathComponent("exists.h5").path, contents: Data("mine".utf8)), "test setup: could not create a file")
        try expectBadInput(["heads", "--detect", "previous-token", "--dataset", "digits", "-o", "exists.h5"], mentions: ["exists.h5", "--force"])
        XCTAssertEqual(try String(contentsOf: scratch.appendingPathComponent("exists.h5"), encoding: .utf8), "mine")
    }
}
