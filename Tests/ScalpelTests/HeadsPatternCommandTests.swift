import XCTest
@testable import Scalpel

/// `scalpel heads --pattern` end to end on the bundled model.
final class HeadsPatternCommandTests: CLITestCase {
    static let command = ["heads"]

    func testOutputsAgreeWithEachOther() throws {
        let result = try scalpel(Self.command + ["--prompt", "one two three four", "--pattern", "5.1,0.3", "--format", "json",
                                  "-o", "attn.h5", "--plot", "attn.svg", "--html", "attn.html"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["dims"] as? [String], ["head", "query_pos", "key_pos"])
        XCTAssertEqual(object["heads"] as? [String], ["5.1", "0.3"])
        let tokens = try XCTUnwrap(object["tokens"] as? [String])
        let n = tokens.count
        XCTAssertEqual(tokens.first, "<|endoftext|>")
        XCTAssertEqual(object["shape"] as? [Int], [2, n, n])
        XCTAssertEqual(object["destination"] as? Int, n - 1)
        XCTAssertEqual(object["destination_token"] as? String, tokens[n - 1])
        let values = try XCTUnwrap(object["values"] as? [Any]).compactMap { ($0 as? NSNumber)?.floatValue }
        XCTAssertEqual(values.count, 2 * n * n)
        let top = try XCTUnwrap(object["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 2)
        XCTAssertEqual((top[0]["sources"] as? [Any])?.count, 5)

        let file = try HDF5File.open(scratch.appendingPathComponent("attn.h5"))
        let group = try file.root.group("attention")
        let stored = try group.dataset("pattern").readTensor()
        XCTAssertEqual(stored.shape, [2, n, n])
        for i in 0..<stored.count { XCTAssertEqual(stored[flat: i], values[i]) }
        XCTAssertEqual(try group.dataset("per_prompt").readTensor().shape, [1, 2, n, n])
        XCTAssertEqual(try group.dataset("pattern").stringAttribute("dims"), "head,query_pos,key_pos")
        XCTAssertTrue(try file.root.exists("prompts"))

        let svg = try String(contentsOf: scratch.appendingPathComponent("attn.svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains("head 5.1") && svg.contains("␣four"), "head and token labels")
        let html = try String(contentsOf: scratch.appendingPathComponent("attn.html"), encoding: .utf8)
        XCTAssertTrue(html.contains("id=\"attention-data\"") && html.contains("\"label\":\"5.1\""))

        let table = try scalpel(Self.command + ["--prompt", "one two three four", "--pattern", "5.1", "--dest", "2", "--top", "2"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("(position 2)") && table.stdout.contains("5.1"), table.stdout)
        XCTAssertEqual(table.stdout.split(separator: "\n").count, 2, table.stdout)

        // CSV: one row per head, query and key of the same mean pattern.
        let csv = try scalpel(Self.command + ["--prompt", "one two three four", "--pattern", "5.1,0.3", "--format", "csv"])
        XCTAssertEqual(csv.status, 0, csv.stderr)
        let lines = csv.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "head,query_pos,key_pos,value")
        XCTAssertEqual(lines.count, 1 + 2 * n * n)
        for (i, line) in lines.dropFirst().enumerated() {
            let fields = line.split(separator: ",")
            XCTAssertEqual(fields[0], i < n * n ? "5.1" : "0.3")
            XCTAssertEqual(Float(String(fields[3])), values[i], "row \(i)")
        }

        // Seeded random repeated tokens (the usual induction picture) are prompts of one length.
        let random = try scalpel(Self.command + ["--random-repeated", "3", "--seed", "1", "--pattern", "1.2", "--format", "json"])
        XCTAssertEqual(random.status, 0, random.stderr)
        let randomObject = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(random.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(randomObject["prompts"] as? Int, 3)
        XCTAssertEqual(randomObject["shape"] as? [Int], [1, 21, 21])
    }

    func testADatasetIsAveragedAndNeedsOneLength() throws {
        let result = try scalpel(Self.command + ["--dataset", "digits", "--pattern", "2.0", "--format", "json", "-o", "digits.h5"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["prompts"] as? Int, 20)
        XCTAssertEqual(object["destination_token"] as? String, " 4", "labels are the first item's")
        let file = try HDF5File.open(scratch.appendingPathComponent("digits.h5"))
        let group = try file.root.group("attention")
        let mean = try group.dataset("pattern").readTensor(), each = try group.dataset("per_prompt").readTensor()
        XCTAssertEqual(each.shape, [20] + mean.shape)
        for i in 0..<mean.count {
            let average = (0..<20).map { Double(each[flat: $0 * mean.count + i]) }.reduce(0, +) / 20
            XCTAssertEqual(Double(mean[flat: i]), average, accuracy: 1e-6)
        }
        let unequal = scratch.appendingPathComponent("unequal.txt")
        try "1 2 3\n1 2 3 4\n".write(to: unequal, atomically: true, encoding: .utf8)
        try expectBadInput(Self.command + ["--prompts", unequal.path, "--pattern", "1.1", "--html", "u.html"], mentions: ["item 1 has", "item 2 has"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("u.html").path))
    }

    func testBadInputIsRefusedAndNothingIsWritten() throws {
        let outputs = ["-o", "x.h5", "--plot", "x.svg", "--html", "x.html"]
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "6.1"] + outputs, mentions: ["6.1", "6 blocks"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "0.4"] + outputs, mentions: ["0.4", "4 heads"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "9"] + outputs, mentions: ["\"9\"", "9.1,6.1"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "1.1,1.1"] + outputs, mentions: ["1.1 twice"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "1.1", "--dest", "4"] + outputs, mentions: ["--dest 4", "4 tokens"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "1.1", "--dest", "-5"] + outputs, mentions: ["--dest -5"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "1.1", "--top", "0"], mentions: ["--top"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "1.1", "--format", "xml"], mentions: ["xml"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3"], mentions: ["--pattern"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "1.1", "--heads", "1.1"], mentions: ["--pattern 9.1,6.1"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--detect", "induction", "--dest", "1"], mentions: ["--dest"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--copy-scores", "--html", "x.html"], mentions: ["--html"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "1.1", "--exclude-bos"], mentions: ["--exclude-bos"])
        try expectBadInput(Self.command + ["--prompt", "", "--no-bos", "--pattern", "1.1"] + outputs, mentions: ["empty"])
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "1.1", "--plot", "same.svg", "--html", "same.svg"], mentions: ["same.svg"])
        for name in ["x.h5", "x.svg", "x.html", "same.svg"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent(name).path), name)
        }
        XCTAssertTrue(FileManager.default.createFile(atPath: scratch.appendingPathComponent("exists.html").path, contents: Data("mine".utf8)), "test setup: could not create a file")
        try expectBadInput(Self.command + ["--prompt", "1 2 3", "--pattern", "1.1", "--plot", "new.svg", "--html", "exists.html"],
                           mentions: ["exists.html", "--force"])
        XCTAssertEqual(try String(contentsOf: scratch.appendingPathComponent("exists.html"), encoding: .utf8), "mine")
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("new.svg").path), "all or none")
        let forced = try scalpel(Self.command + ["--prompt", "1 2 3", "--pattern", "1.1", "--html", "exists.html", "--force"])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertNotEqual(try String(contentsOf: scratch.appendingPathComponent("exists.html"), encoding: .utf8), "mine")
    }
}
