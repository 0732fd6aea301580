import XCTest
@testable import Scalpel

/// Numeric flags are checked before any work (positive counts, finite values, bounded grids), and
/// negative numbers are accepted as option values; JSON reports non-finite numbers as null.
final class CommandFlagTests: CLITestCase {
    func testCountsMustBePositiveAndBounded() throws {
        for (args, flag) in [(["bench", "--runs", "0"], "--runs"), (["bench", "--batch", "0"], "--batch"),
                             (["bench", "--batch", "-3"], "--batch"), (["bench", "--tokens", "-1"], "--tokens"),
                             (["bench", "--batch-runs", "0"], "--batch-runs"), (["bench", "--batch", "100000", "--tokens", "100000"], "--batch × --tokens"),
                             (["run", "--prompt", "1", "--top-k", "-5"], "--top-k"), (["lens", "--prompt", "1", "--top-k", "0"], "--top-k"),
                             (["trace", "--prompt", "1", "--hooks", "blocks.0.hook_resid_post", "--batch-size", "0"], "--batch-size")] {
            try expectBadInput(args, mentions: [flag])
        }
    }

    func testValuesMustBeFiniteAndGridsBounded() throws {
        for alphas in ["0:inf:1", "nan:1:0.5", "0:1:0", "1:0:0.5", "0:1e9:1e-3", "0:1e12:1e-12", "a:b:c"] {
            try expectBadInput(["paths", "--direction", "next", "--family", "digits", "--alphas", alphas], mentions: ["--alphas", alphas])
        }
        try expectBadInput(["paths", "add-vector", "blocks.0.hook_mlp_out", "--vector-prompt", "1 2", "--prompt", "3 4",
                            "--expect", " 5", "--layer", "0", "--n", "inf"], mentions: ["--n", "finite"])
    }

    func testPositionsOutsideThePromptNameTheFlagAndValue() throws {
        for position in ["-9223372036854775808", "9223372036854775807", "5", "-6"] {
            try expectBadInput(["lens", "--prompt", "1 2 3 4", "--positions", position], mentions: ["--positions", position, "5 tokens"])
        }
    }

    func testNegativeNumbersAreOptionValues() throws {
        let lens = try scalpel(["lens", "--prompt", "1 2 3 4", "--positions", "-1", "--format", "json"])
        XCTAssertEqual(lens.status, 0, lens.stderr)
        let paths = try scalpel(["paths", "--direction", "next", "--family", "digits", "--alphas", "-1:0:0.5", "--format", "json"])
        XCTAssertEqual(paths.status, 0, paths.stderr)
        XCTAssertTrue(paths.stdout.contains("\"alpha\":-1"), paths.stdout)
    }

    func testJSONWritesNonFiniteNumbersAsNull() throws {
        struct Row: Encodable { var a: Float; var b: [Double]; var c: String }
        XCTAssertEqual(try JSONText.encode(Row(a: .nan, b: [1, .infinity, -.infinity], c: "x")),
                       #"{"a":null,"b":[1,null,null],"c":"x","non_finite":3}"#)
        XCTAssertEqual(try JSONText.encode(Row(a: 2, b: [], c: "nan")), #"{"a":2,"b":[],"c":"nan","non_finite":0}"#)
    }

    /// A dataset runs in batches: the results do not depend on the batch size.
    func testDatasetEvaluationDoesNotDependOnTheBatchSize() throws {
        let model = try ModelLocation.load(nil)
        let dataset = StudyDatasets.named("digits")!
        func results(batch: Int) throws -> ([ItemResult], DatasetSummary) {
            var evaluation = DatasetEvaluation()
            evaluation.batchSize = batch
            var items: [ItemResult] = []
            let summary = try evaluation.run(model, dataset: dataset) { items.append($0) }
            return (items, summary)
        }
        let (one, oneSummary) = try results(batch: 1), (all, allSummary) = try results(batch: 64)
        XCTAssertEqual(one.count, dataset.items.count)
        XCTAssertEqual(one.map(\.prompt), dataset.items.map(\.prompt))
        XCTAssertEqual(one.map { $0.score?.rank }, all.map { $0.score?.rank })
        for (a, b) in zip(one, all) { XCTAssertEqual(a.logitDiff!, b.logitDiff!, accuracy: 1e-4) }
        XCTAssertEqual(oneSummary.correct, allSummary.correct)
        XCTAssertEqual(oneSummary.meanLogitDiff!, allSummary.meanLogitDiff!, accuracy: 1e-4)
    }
}

/// Under a limit on address space a command either runs or exits 1 with a message: never a hang
/// in OpenBLAS's allocator, never a crash.
final class MemoryLimitTests: CLITestCase {
    func testTooSmallALimitIsReportedAtStart() throws {
        let result = try scalpel(["run", "--prompt", "1 2 3 4"], shellPrefix: "ulimit -v 300000 &&")
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("error: the memory limit"), result.stderr)
        XCTAssertTrue(result.stderr.contains("300 MB") || result.stderr.contains("292 MB"), result.stderr)
    }

    func testCommandsRunUnderAWorkableLimit() throws {
        let run = try scalpel(["run", "--dataset", "digits", "--format", "json"], shellPrefix: "ulimit -v 2000000 &&")
        XCTAssertEqual(run.status, 0, run.stderr)
        let lens = try scalpel(["lens", "--dataset", "months", "--positions", "all"], shellPrefix: "ulimit -v 2000000 &&")
        XCTAssertEqual(lens.status, 0, lens.stderr)
    }

    /// A tensor that cannot be allocated ends in `MemoryBudget.exhausted` (exit 1 on the command
    /// line), not in a Swift allocation crash.
    func testAnImpossibleAllocationIsReported() throws {
        // 65,536 prompts × 16 tokens × d_model 128 floats is 512 MB for each activation.
        let result = try scalpel(["bench", "--batch", "65536", "--tokens", "16", "--runs", "1", "--batch-runs", "1"],
                                 shellPrefix: "ulimit -v 1500000 &&")
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.contains("out of memory"), result.stderr)
    }
}
