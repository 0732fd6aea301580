import XCTest
@testable import Scalpel

/// The commands on the bundled model, end to end through the binary: what a new user runs first,
/// and the bad input of the lens, trace and paths commands.
final class BundledCommandTests: CLITestCase {
    func testRunPrintsJSONInTheDocumentedShape() throws {
        let result = try scalpel(["run", "--prompt", "1 2 3 4", "--answer", " 5", "--top-k", "3", "--format", "json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        // A single prompt is a dataset of one.
        XCTAssertEqual(Set(json.keys), ["dataset", "records", "prompts", "accuracy", "correct", "mean_logit_diff", "non_finite"])
        let records = try XCTUnwrap(json["records"] as? [[String: Any]])
        XCTAssertEqual(records.count, 1)
        XCTAssertEqual((records[0]["tokens"] as? [Int])?.count, 5)
        let top = try XCTUnwrap(records[0]["top"] as? [[String: Any]])
        XCTAssertEqual(top.count, 3)
        XCTAssertEqual(Set(top[0].keys), ["id", "token", "logit", "prob"])
        XCTAssertEqual(records[0]["answer"] as? String, " 5")
        XCTAssertEqual(records[0]["answer_token"] as? String, " 5")
        XCTAssertEqual(records[0]["rank"] as? Int, 0)
        XCTAssertEqual(json["prompts"] as? Int, 1)
    }

    func testBenchReportsEveryMeasureItNames() throws {
        // What bench prints, not how fast: timings are benchmarks, never tests.
        let result = try scalpel(["bench", "--runs", "1", "--batch-runs", "1", "--batch", "2", "--tokens", "4", "--format", "json",
                                  "--matmul-rows", "2,5,40"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        for key in ["load_seconds", "single_prompt_median_seconds", "batch_median_seconds", "lens_median_seconds"] {
            XCTAssertGreaterThan(json[key] as? Double ?? 0, 0, key)
        }
        let matmul = try XCTUnwrap(json["matmul"] as? [[String: Any]])
        XCTAssertEqual(matmul.map { $0["rows"] as? Int }, [2, 5, 40])
        XCTAssertGreaterThan(matmul[2]["sgemm_median_seconds"] as? Double ?? 0, 0)
        if Kernels.avx512Available {
            XCTAssertEqual(matmul.map { $0["kernel"] as? String }, ["few-rows", "few-rows", "tiled"])
            XCTAssertGreaterThan(matmul[2]["kernel_median_seconds"] as? Double ?? 0, 0)
        } else {
            XCTAssertTrue(matmul.allSatisfy { $0["kernel"] == nil }, "no AVX-512 kernel to time on this CPU")
        }
        // The bundled model's blocks: 40 rows × Σ 2 · weight elements, from its config.
        let config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: ModelLocation.bundledModelURL.appendingPathComponent("config.json"))) as? [String: Any])
        let d = try XCTUnwrap(config["n_embd"] as? Int), layers = try XCTUnwrap(config["n_layer"] as? Int)
        let inner = config["n_inner"] as? Int ?? 4 * d
        let perRow = Double(layers * 2 * (d * 3 * d + d * d + d * inner + inner * d))
        XCTAssertEqual(matmul[2]["gflop"] as? Double ?? 0, 40 * perRow / 1e9, accuracy: 1e-12)
        // The peak is measured on every CPU with AVX2 (all of which have FMA) or AVX-512F.
        XCTAssertEqual(json["fma_peak_gflops"] != nil, Kernels.geluLanes != nil)
        if let peak = json["fma_peak_gflops"] as? Double {
            XCTAssertGreaterThan(peak, 0)
            XCTAssertTrue(["AVX2", "AVX-512"].contains(json["fma_lanes"] as? String), "\(json["fma_lanes"] ?? "none")")
        }
        let bad = try scalpel(["bench", "--matmul-rows", "1,x"])
        XCTAssertEqual(bad.status, 1)
        XCTAssertTrue(bad.stderr.contains("--matmul-rows \"1,x\""), bad.stderr)
    }

    func testDatasetsAndTheMonthsTable() throws {
        let list = try scalpel(["datasets"])
        for name in ["digits", "number-words", "months", "days", "letters", "names-is-digit", "word-is-digit"] {
            XCTAssertTrue(list.stdout.contains(name), name)
        }
        let table = try scalpel(["run", "--dataset", "months"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("months: 8 prompts"), table.stdout)
        XCTAssertTrue(table.stdout.contains("August September October November"), table.stdout)
    }

    func testLensTraceAndPathsWriteTheirFiles() throws {
        let lens = try scalpel(["lens", "--dataset", "digits", "-o", "lens.h5", "--plot", "lens.svg"])
        XCTAssertEqual(lens.status, 0, lens.stderr)
        XCTAssertTrue(lens.stdout.contains("final"))
        for file in ["lens.h5", "lens.svg"] { XCTAssertTrue(FileManager.default.fileExists(atPath: scratch.appendingPathComponent(file).path), file) }
        let trace = try scalpel(["trace", "--prompt", "one two three", "--hooks", "blocks.0.hook_resid_post", "-o", "t.h5"])
        XCTAssertEqual(trace.status, 0, trace.stderr)
        let paths = try scalpel(["paths", "--from", "digits", "--to", "number-words", "--format", "json", "-o", "p.h5", "--plot", "p.svg"])
        XCTAssertEqual(paths.status, 0, paths.stderr)
        let summaries = try XCTUnwrap((JSONSerialization.jsonObject(with: Data(paths.stdout.utf8)) as? [String: Any])?["records"] as? [[String: Any]])
        XCTAssertFalse(summaries.isEmpty)
    }

    func testLensBadInput() throws {
        try expectBadInput(["lens", "--prompt", "1 2 3 4", "--positions", "9"], mentions: ["position", "5 tokens"])
        try expectBadInput(["lens", "--prompt", "1 2 3 4", "--target", " 5 6 7"], mentions: ["\" 5 6 7\"", "--first-token"])
        XCTAssertTrue(FileManager.default.createFile(atPath: scratch.appendingPathComponent("taken.h5").path, contents: Data("old".utf8)), "test setup: could not create a file")
        try expectBadInput(["lens", "--prompt", "1 2 3 4", "-o", "taken.h5"], mentions: ["taken.h5", "--force"])
        XCTAssertEqual(try String(contentsOf: scratch.appendingPathComponent("taken.h5"), encoding: .utf8), "old")
        XCTAssertTrue(FileManager.default.createFile(atPath: scratch.appendingPathComponent("empty.txt").path, contents: Data()), "test setup: could not create a file")
        try expectBadInput(["lens", "--prompts", "empty.txt"], mentions: ["empty.txt", "empty"])
        XCTAssertTrue(FileManager.default.createFile(atPath: scratch.appendingPathComponent("latin1.txt").path, contents: Data([0x31, 0x20, 0xE9, 0x0A])), "test setup: could not create a file")
        try expectBadInput(["lens", "--prompts", "latin1.txt"], mentions: ["latin1.txt", "UTF-8"])
        try "1 2 3\t 4\textra\n".write(to: scratch.appendingPathComponent("bad.txt"), atomically: true, encoding: .utf8)
        try expectBadInput(["lens", "--prompts", "bad.txt"], mentions: ["bad.txt:1"])
    }

    func testTraceNamesTheClosestHooks() throws {
        try expectBadInput(["trace", "--prompt", "1 2", "--hooks", "blocks.*.hook_resid_pots"], mentions: ["blocks.*.hook_resid_pots", "blocks.*.hook_resid_post"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("outputs/traces/trace.h5").path))
    }

    func testPathsBadInput() throws {
        try expectBadInput(["paths", "--from", "digitz", "--to", "months"], mentions: ["digitz", "digits"])
        try expectBadInput(["paths", "--from", "digits", "--to", "months", "--layers", "0,99"], mentions: ["99"])
        try expectBadInput(["paths", "--from", "digits", "--to", "months", "--hook", "hook_resid_postt"], mentions: ["hook_resid_post"])
        try "- {name: roman, items: [I, II, III], values: [101, 102, 103]}\n".write(to: scratch.appendingPathComponent("roman.yaml"), atomically: true, encoding: .utf8)
        // Multi-token items are skipped and reported (a note), then the direction has too few pairs (an error).
        let result = try scalpel(["paths", "--families", "roman.yaml", "--from", "roman", "--to", "digits"])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains("note: roman: skipped"), result.stderr)
        XCTAssertTrue(result.stderr.contains("error: roman → digits: only"), result.stderr)
    }
}
