import XCTest
@testable import Scalpel

/// `--shard K/N` and `scalpel merge` (DESIGN.md "Sweeps across machines"): the shard arithmetic,
/// bad shards, and merges of parts that do not make one run, refused with nothing written.
/// Merged files equal to unsharded ones: Tests/python/test_shards.py (tools/run_shards.py).
final class ShardCommandTests: CLITestCase {
    func testParseAndIndices() throws {
        XCTAssertEqual(try Shard.parse("2/3"), try Shard(index: 2, count: 3))
        XCTAssertEqual(try Shard.parse("2/3").indices(of: 8), [1, 4, 7])
        XCTAssertEqual(try Shard.parse("2/3").indices(of: 20, block: 2), [2, 3, 8, 9, 14, 15])
        XCTAssertEqual(try Shard.parse("1/1").indices(of: 3), [0, 1, 2])
        // Every index in exactly one shard, for blocks of any size.
        for n in [1, 2, 3, 7] {
            for block in [1, 2, 16] {
                let all = try (1...n).flatMap { try Shard(index: $0, count: n).indices(of: 41, block: block) }
                XCTAssertEqual(all.sorted(), Array(0..<41))
            }
        }
        for bad in ["0/3", "4/3", "1/0", "a/3", "1/b", "3", "1/2/3", "-1/3", ""] {
            XCTAssertThrowsError(try Shard.parse(bad), bad) { error in
                XCTAssertTrue((error as? ShardError)?.message.contains("\"\(bad)\"") ?? false, "\(error)")
            }
        }
    }

    func testRunParametersAndUnshardedCommandLine() {
        XCTAssertEqual(ShardedRun.parameters(["/bin/scalpel", "patch", "--dataset", "months", "-o", "p.h5", "--shard=2/3", "--force", "--format", "json", "--target", "z"]),
                       "patch --dataset months --target z")
        XCTAssertEqual(ShardedRun.unsharded("/bin/scalpel patch --dataset months -o p2.h5 --shard 2/3", output: "out.h5"),
                       "/bin/scalpel patch --dataset months -o out.h5")
    }

    func testBadShardsAreRefused() throws {
        for bad in ["0/3", "4/3", "1/0", "x/3", "1/three", "2"] {
            try expectBadInput(["patch", "--dataset", "months", "--target", "z", "--shard", bad, "-o", "x.h5"], mentions: ["\"\(bad)\"", "1 ≤ K ≤ N"])
            try expectBadInput(["trace", "--dataset", "months", "--hooks", "hook_embed", "--shard", bad, "-o", "x.h5"], mentions: ["\"\(bad)\""])
            try expectBadInput(["lens", "--dataset", "months", "--shard", bad, "-o", "x.h5"], mentions: ["\"\(bad)\""])
        }
        try expectBadInput(["lens", "--dataset", "months", "--shard", "1/2"], mentions: ["-o"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("x.h5").path))
    }

    func testMergeRefusesPartsOfOtherRunsAndMissingOrRepeatedParts() throws {
        let patch = ["patch", "--dataset", "months", "--target", "z", "--layers", "0-1"]
        for k in 1...3 { XCTAssertEqual(try scalpel(patch + ["-o", "p\(k).h5", "--shard", "\(k)/3"]).status, 0) }
        XCTAssertEqual(try scalpel(patch + ["--metric", "prob", "-o", "prob2.h5", "--shard", "2/3"]).status, 0)
        XCTAssertEqual(try scalpel(patch + ["-o", "n2.h5", "--shard", "2/2"]).status, 0)
        XCTAssertEqual(try scalpel(patch + ["-o", "whole.h5"]).status, 0)
        XCTAssertEqual(try scalpel(["trace", "--dataset", "months", "--hooks", "hook_embed", "-o", "t2.h5", "--shard", "2/3"]).status, 0)
        // The same run on another model (a copy of the bundled model's archive would hash the same: build one with a block less).
        XCTAssertEqual(try scalpel(["patch", "--dataset", "months", "--target", "z", "--layers", "0-1", "--blocks", "0-4", "-o", "m2.h5", "--shard", "2/3"]).status, 0)

        // The same command on a changed model: copy the bundled model, run shard 1, change a weight, run shard 2.
        let bundled = URL(fileURLWithPath: try HDF5File.open(scratch.appendingPathComponent("p1.h5")).root.stringAttribute("model_files")).deletingLastPathComponent()
        let copy = scratch.appendingPathComponent("model")
        try FileManager.default.copyItem(at: bundled, to: copy)
        let changed = patch + ["--model", copy.path]
        XCTAssertEqual(try scalpel(changed + ["-o", "c1.h5", "--shard", "1/2"]).status, 0)
        let weights = copy.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: weights)
        bytes[bytes.count - 2] ^= 0x01
        try bytes.write(to: weights)
        XCTAssertEqual(try scalpel(changed + ["-o", "c2.h5", "--shard", "2/2"]).status, 0)
        try expectBadInput(["merge", "c1.h5", "c2.h5", "-o", "out.h5"], mentions: ["c2.h5", "model SHA-256"])

        try expectBadInput(["merge", "p1.h5", "p3.h5", "-o", "out.h5"], mentions: ["missing shard 2/3", "1/3, 3/3", "merge all 3"])
        try expectBadInput(["merge", "p1.h5", "p2.h5", "p2.h5", "p3.h5", "-o", "out.h5"], mentions: ["2/3", "more than once", "p2.h5"])
        try expectBadInput(["merge", "p1.h5", "prob2.h5", "p3.h5", "-o", "out.h5"], mentions: ["prob2.h5", "run parameters", "--metric prob"])
        try expectBadInput(["merge", "p1.h5", "n2.h5", "p3.h5", "-o", "out.h5"], mentions: ["n2.h5", "number of shards"])
        try expectBadInput(["merge", "p1.h5", "t2.h5", "p3.h5", "-o", "out.h5"], mentions: ["t2.h5", "another run"])
        try expectBadInput(["merge", "p1.h5", "m2.h5", "p3.h5", "-o", "out.h5"], mentions: ["m2.h5", "another run"])
        try expectBadInput(["merge", "p1.h5", "whole.h5", "p3.h5", "-o", "out.h5"], mentions: ["whole.h5", "not a partial file", "scalpel-patch"])
        try expectBadInput(["merge", "p1.h5", "nothere.h5", "p3.h5", "-o", "out.h5"], mentions: ["nothere.h5"])
        try expectBadInput(["merge", "-o", "out.h5"], mentions: ["partial files"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("out.h5").path))

        let merged = try scalpel(["merge", "p3.h5", "p1.h5", "p2.h5", "-o", "out.h5"])
        XCTAssertEqual(merged.status, 0, merged.stderr)
        try expectBadInput(["merge", "p3.h5", "p1.h5", "p2.h5", "-o", "out.h5"], mentions: ["out.h5", "--force"])
        let whole = try HDF5File.open(scratch.appendingPathComponent("whole.h5")), out = try HDF5File.open(scratch.appendingPathComponent("out.h5"))
        XCTAssertEqual(try out.root.stringAttribute("format"), "scalpel-patch")
        let a = try whole.root.readTensor("patch/raw"), b = try out.root.readTensor("patch/raw")
        XCTAssertEqual((0..<a.count).map { a[flat: $0].bitPattern }, (0..<b.count).map { b[flat: $0].bitPattern })
        XCTAssertTrue(try out.root.stringAttribute("command_line").hasSuffix("patch --dataset months --target z --layers 0-1 -o out.h5"))
    }
}
