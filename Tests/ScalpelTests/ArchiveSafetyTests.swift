import XCTest
@testable import Scalpel

/// Damaged model archives and checkpoints, and models whose shapes the code once trusted: every
/// case is a typed error naming the file and the field, never a crash or a silently wrong model.
final class ArchiveSafetyTests: ScratchTestCase {

    // MARK: Checkpoints

    func testCheckpointHoldingBothPrefixedAndBareTensor() throws {
        let folder = try BadInputFiles.rewriteWeights(try BadInputFiles.copy("tiny-hub", into: scratch)) { tensors in
            let wte = tensors.first { $0.name == "wte.weight" }!
            tensors.append((name: "transformer.wte.weight", tensor: wte.tensor))
        }
        let file = folder.appendingPathComponent("model.safetensors").path
        assertError(try Checkpoint.load(from: folder), CheckpointError.self,
                    mentions: [file, "\"transformer.wte.weight\"", "\"wte.weight\"", "two names"])
    }
}

/// The same promises through the `scalpel` binary: exit status 1 and a message, never a signal.
final class ArchiveSafetyCLITests: CLITestCase {

    /// A file-size limit makes HDF5's writes fail. The error is reported, and the process must then
    /// exit with status 1: it used to crash at exit, when HDF5 closed the half-closed file again.
    func testArchiveWriterUnderFileSizeLimitExitsWithError() throws {
        let plan = scratch.appendingPathComponent("plan.yaml")
        try "name: small\nbase: \(TestFiles.model("tiny-hub").path)\nblocks: [\"0-1\"]\n".write(to: plan, atomically: true, encoding: .utf8)
        for blocks in [1, 20, 300] {  // 512-byte blocks: the superblock, the first dataset, later datasets
            let output = "limited-\(blocks).h5"
            let result = try scalpel(["build", plan.path, "-o", output], shellPrefix: "trap '' XFSZ; ulimit -f \(blocks);")
            XCTAssertEqual(result.status, 1, "limit of \(blocks) blocks: \(result.stderr)")
            XCTAssertTrue(result.stderr.contains(output), result.stderr)
            XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent(output).path))
        }
    }

    /// A vocabulary of one token is a valid GPT-2 shape; `bench` drew token ids modulo vocab − 1.
    func testModelWithOneTokenVocabulary() throws {
        let folder = scratch.appendingPathComponent("one-token")
        try RandomCheckpoint.write(config: GPT2Config(nLayer: 1, nEmbd: 8, nHead: 2, nPositions: 8, vocabSize: 1, bosTokenID: 0),
                                   seed: 1, to: folder, overwrite: false)
        let result = try scalpel(["bench", "--model", folder.path, "--runs", "1", "--batch-runs", "1", "--batch", "2", "--tokens", "3"])
        XCTAssertEqual(result.status, 0, result.stderr)
    }
}
