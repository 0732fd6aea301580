import CHDF5
import XCTest
@testable import Scalpel

/// Damaged model archives and checkpoints, and models whose shapes the code once trusted: every
/// case is a typed error naming the file and the field, never a crash or a silently wrong model.
final class ArchiveSafetyTests: ScratchTestCase {

    // MARK: Archives

    /// An archive of tiny-hub (4 heads of 16, MLP width 256, no tokenizer) with heads 1.0 and 1.2
    /// and neuron 1.5 ablated, so that every ablation dataset exists.
    func ablatedArchive() throws -> (url: URL, model: Model) {
        let base = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let planURL = scratch.appendingPathComponent("plan.yaml")
        try "base: tiny-hub\nblocks: [\"0-1\"]\nedits:\n  - ablate_heads: [\"1.0\", \"1.2\"]\n  - ablate_neurons: [\"1.5\"]\n"
            .write(to: planURL, atomically: true, encoding: .utf8)
        let model = try Surgeon.build(try Plan.load(planURL), base: base)
        let url = scratch.appendingPathComponent("ablated.h5")
        try ModelArchive.write(model, plan: nil, to: try OutputTarget(url, overwrite: false))
        return (url, model)
    }

    /// Opens the archive for writing, lets `damage` change it, and closes it.
    func damage(_ url: URL, _ damage: (HDF5Group) throws -> Void) throws {
        let file = try HDF5File.open(url, writable: true)
        try damage(try file.root)
        try file.close()
    }

    func remove(_ path: String, from root: HDF5Group) {
        XCTAssertGreaterThanOrEqual(H5Ldelete(root.id, path, scalpel_h5p_default()), 0, "deleting \(path)")
    }

    /// Loads the archive expecting an `ArchiveError` that names it and each of `mentions`.
    func assertArchiveError(_ url: URL, mentions: [String], file: StaticString = #filePath, line: UInt = #line) {
        assertError(try ModelArchive.load(from: url), ArchiveError.self, mentions: [url.path] + mentions, file: file, line: line)
    }

    func testArchiveRoundTripKeepsAblationsAndChecksum() throws {
        let (url, model) = try ablatedArchive()
        let loaded = try ModelArchive.load(from: url)
        XCTAssertEqual(loaded.blocks[1].attention!.headAblations.keys.sorted(), [0, 2])
        XCTAssertEqual(loaded.blocks[1].mlp!.neuronAblations.keys.sorted(), [5])
        XCTAssertEqual(try loaded.run([[1, 2, 3]]).logits[0].scalars, try model.run([[1, 2, 3]]).logits[0].scalars)
        let root = try HDF5File.open(url).root
        XCTAssertEqual(try root.stringAttribute("weights_sha256").count, 64)
        XCTAssertEqual(try root.group("blocks/1").intAttribute("n_heads"), 4)
    }

    func testOutOfRangeAblatedHeadsAndNeurons() throws {
        for (dataset, values, bound) in [("attn/ablated_heads", [0, 7], "4 heads"), ("attn/ablated_heads", [-1, 2], "4 heads"),
                                         ("mlp/ablated_neurons", [1 << 30], "256 neurons")] {
            let (url, _) = try ablatedArchive()
            try damage(url) { root in
                remove("blocks/1/\(dataset)", from: root)
                try root.writeInt32("blocks/1/\(dataset)", values.map(Int32.init), shape: [values.count])
            }
            assertArchiveError(url, mentions: ["/blocks/1/\(dataset)", "\(values.first { $0 != 0 && $0 != 2 }!)", bound])
            try FileManager.default.removeItem(at: url)
        }
    }

    func testRepeatedAblatedHead() throws {
        let (url, _) = try ablatedArchive()
        try damage(url) { root in
            remove("blocks/1/attn/ablated_heads", from: root)
            try root.writeInt32("blocks/1/attn/ablated_heads", [2, 2], shape: [2])
        }
        assertArchiveError(url, mentions: ["/blocks/1/attn/ablated_heads", "head 2 twice"])
    }

    func testAblationValuesOfWrongShape() throws {
        let (url, _) = try ablatedArchive()
        try damage(url) { root in
            remove("blocks/1/attn/ablation_values", from: root)
            try root.writeTensor("blocks/1/attn/ablation_values", Tensor(zeros: [2, 3]))
        }
        assertArchiveError(url, mentions: ["/blocks/1/attn/ablation_values", "[2, 3]", "expected [2, 16]"])
    }

    func testAblationIndicesWithoutValuesOrValuesWithoutIndices() throws {
        for (deleted, kept) in [("attn/ablated_heads", "attn/ablation_values"), ("mlp/ablation_values", "mlp/ablated_neurons")] {
            let (url, _) = try ablatedArchive()
            try damage(url) { remove("blocks/1/\(deleted)", from: $0) }
            assertArchiveError(url, mentions: ["/blocks/1/\(kept) is present", "/blocks/1/\(deleted) is missing"])
            try FileManager.default.removeItem(at: url)
        }
    }

    func testInvalidPartsAndHeadCountAttributes() throws {
        for (attribute, value, expected) in [("parts", "foo", "\"foo\""), ("parts", "attn,attn", "\"attn,attn\""),
                                             ("parts", "mlp,mlp.noln", "\"mlp,mlp.noln\"")] {
            let (url, _) = try ablatedArchive()
            try damage(url) { try $0.group("blocks/0").setAttribute(attribute, value) }
            assertArchiveError(url, mentions: ["attribute \"\(attribute)\" of /blocks/0", expected])
            try FileManager.default.removeItem(at: url)
        }
        // Valid values that disagree with what the block holds would silently drop a half.
        for value in ["", "attn", "mlp.noln"] {
            let (url, _) = try ablatedArchive()
            try damage(url) { try $0.group("blocks/0").setAttribute("parts", value) }
            assertArchiveError(url, mentions: ["attribute \"parts\" of /blocks/0", "\"\(value)\"", "\"attn,mlp\", the halves the block's groups hold"])
            try FileManager.default.removeItem(at: url)
        }
        let (url, _) = try ablatedArchive()
        try damage(url) { try $0.group("blocks/0").setAttribute("n_heads", 3) }
        assertArchiveError(url, mentions: ["attribute \"n_heads\" of /blocks/0", "3", "divisor of d_model (64)"])
        try FileManager.default.removeItem(at: url)
        // A head count that divides d_model but disagrees with the stored weights.
        let (other, _) = try ablatedArchive()
        try damage(other) { try $0.group("blocks/0").setAttribute("n_heads", 8) }
        assertArchiveError(other, mentions: ["/blocks/0/attn/W_Q", "[4, 64, 16]", "expected [8, 64, 8]"])
    }

    func testEmptyTokenizerDataset() throws {
        let (url, _) = try ablatedArchive()
        try damage(url) { root in
            try root.writeStrings("tokenizer/vocab", [])
            try root.writeStrings("tokenizer/merges", ["#version: 0.2"])
        }
        assertArchiveError(url, mentions: ["/tokenizer/vocab", "shape [0]", "one string"])
    }

    /// A few-KB file declaring huge datasets is refused before anything is allocated: 2^36 rows
    /// disagree with the config; 2^24 rows (the largest vocabulary a config may give) agree with
    /// it but need more bytes than the file has.
    func testHugeDeclaredDatasetInSmallFile() throws {
        for (vocab, rows) in [(100, 1 << 36), (1 << 24, 1 << 24)] {
            let url = scratch.appendingPathComponent("huge-\(rows).h5")
            let file = try HDF5File.create(at: url)
            let root = try file.root
            try root.setAttribute("format", "scalpel-model")
            try root.setAttribute("format_version", 1)
            try root.setAttribute("config", #"{"n_layer": 0, "n_embd": 8, "n_head": 2, "n_positions": 4, "vocab_size": \#(vocab)}"#)
            _ = try root.createGroup("embed")
            var dims: [hsize_t] = [hsize_t(rows), 8]
            let space = H5Screate_simple(2, &dims, nil)
            let dataset = H5Dcreate2(root.id, "embed/W_E", scalpel_h5t_ieee_f32le(), space, scalpel_h5p_default(), scalpel_h5p_default(), scalpel_h5p_default())
            XCTAssertGreaterThanOrEqual(dataset, 0)
            H5Dclose(dataset); H5Sclose(space)
            try file.close()
            let size = try BadInputFiles.size(url)
            XCTAssertLessThan(size, 16_384)
            if vocab == rows {
                assertError(try ModelArchive.load(from: url), ArchiveError.self,
                            equals: .datasetLargerThanFile(path: url.path, dataset: "/embed/W_E", shape: [rows, 8], fileSize: size),
                            mentions: [url.path, "/embed/W_E", "[16777216, 8]", "\(size) bytes"])
            } else {
                assertArchiveError(url, mentions: ["/embed/W_E", "[68719476736, 8]", "expected [100, 8]"])
            }
        }
    }

    func testLinksOutsideTheFileAreRefused() throws {
        let (external, _) = try ablatedArchive()
        try damage(external) { root in
            remove("embed/W_pos", from: root)
            XCTAssertGreaterThanOrEqual(H5Lcreate_external("/etc/other.h5", "/W_pos", root.id, "embed/W_pos", scalpel_h5p_default(), scalpel_h5p_default()), 0)
        }
        assertArchiveError(external, mentions: ["/embed/W_pos", "an external link to another file"])

        let soft = scratch.appendingPathComponent("soft.h5")
        try FileManager.default.copyItem(at: external, to: soft)
        try damage(soft) { root in
            remove("embed/W_pos", from: root)
            XCTAssertGreaterThanOrEqual(H5Lcreate_soft("/blocks/0/ln1/w", root.id, "embed/W_pos", scalpel_h5p_default(), scalpel_h5p_default()), 0)
        }
        assertArchiveError(soft, mentions: ["/embed/W_pos", "a soft link"])

        // A dataset whose values live in a raw file beside the archive.
        let raw = scratch.appendingPathComponent("raw.h5")
        try FileManager.default.removeItem(at: external)
        let (url, _) = try ablatedArchive()
        try FileManager.default.moveItem(at: url, to: raw)
        try damage(raw) { root in
            remove("ln_final/b", from: root)
            var dims: [hsize_t] = [64]
            let space = H5Screate_simple(1, &dims, nil)
            let dcpl = H5Pcreate(scalpel_h5p_dataset_create())
            XCTAssertGreaterThanOrEqual(H5Pset_external(dcpl, "/etc/hostname", 0, 256), 0)
            let dataset = H5Dcreate2(root.id, "ln_final/b", scalpel_h5t_ieee_f32le(), space, scalpel_h5p_default(), dcpl, scalpel_h5p_default())
            XCTAssertGreaterThanOrEqual(dataset, 0)
            H5Dclose(dataset); H5Pclose(dcpl); H5Sclose(space)
        }
        assertArchiveError(raw, mentions: ["/ln_final/b", "stored in other files"])
    }

    /// Hard links may form cycles (a group linked inside itself): the link check visits each group
    /// once and ends; the archive, otherwise intact, loads.
    func testHardLinkCycleEnds() throws {
        let (url, model) = try ablatedArchive()
        try damage(url) { root in
            for group in ["blocks/0/loop", "blocks/0/attn/loop", "blocks/1/mlp/loop"] {
                XCTAssertGreaterThanOrEqual(H5Lcreate_hard(root.id, "blocks", root.id, group, scalpel_h5p_default(), scalpel_h5p_default()), 0)
            }
        }
        XCTAssertEqual(try ModelArchive.load(from: url).run([[1, 2]]).logits[0].scalars, try model.run([[1, 2]]).logits[0].scalars)
    }

    /// One flipped bit in a weight: the archive would load and give other numbers.
    func testFlippedWeightByteFailsTheChecksum() throws {
        let (url, _) = try ablatedArchive()
        let offset = try XCTUnwrap(try HDF5File.open(url).root.dataset("blocks/1/mlp/W_in").contiguousFloat32Offset)
        var bytes = try Data(contentsOf: url)
        bytes[offset + 1001] ^= 0x04
        try bytes.write(to: url)
        assertError(try ModelArchive.load(from: url), ArchiveError.self, equals: .checksumMismatch(path: url.path),
                    mentions: ["archive \(url.path): weights do not match their checksum (damaged file); rebuild it with scalpel build"])
    }

    /// The config decides how the weights are used (epsilon, BOS): the checksum covers it too.
    func testEditedConfigFailsTheChecksum() throws {
        let (url, _) = try ablatedArchive()
        try damage(url) { root in
            let config = try root.stringAttribute("config")
            XCTAssertTrue(config.contains("\"bos_token_id\":999"), config)
            try root.setAttribute("config", config.replacingOccurrences(of: "\"bos_token_id\":999", with: "\"bos_token_id\":5"))
        }
        assertError(try ModelArchive.load(from: url), ArchiveError.self, equals: .checksumMismatch(path: url.path))
    }

    func testArchiveWithoutChecksumLoadsWithWarning() throws {
        let (url, _) = try ablatedArchive()
        try damage(url) { XCTAssertGreaterThanOrEqual(H5Adelete($0.id, "weights_sha256"), 0) }
        let warnings = try collectingWarnings { _ = try ModelArchive.load(from: url) }
        XCTAssertEqual(warnings.count, 1)
        XCTAssertTrue(warnings.first?.contains("\(url.path): the archive has no weights checksum") == true, "\(warnings)")
    }

    // MARK: The HDF5 wrapper

    /// Any dataset read through the wrapper (not only archives) must fit in its file before memory
    /// is allocated for it, and a shape whose size overflows is an error, not a trap.
    func testWrapperRefusesDatasetsLargerThanTheirFile() throws {
        let url = scratch.appendingPathComponent("declared.h5")
        let file = try HDF5File.create(at: url)
        let root = try file.root
        for (name, dims) in [("rows", [hsize_t(1) << 36]), ("overflow", [hsize_t(1) << 40, hsize_t(1) << 30])] {
            var declared = dims
            let space = H5Screate_simple(Int32(dims.count), &declared, nil)
            let dataset = H5Dcreate2(root.id, name, scalpel_h5t_ieee_f32le(), space, scalpel_h5p_default(), scalpel_h5p_default(), scalpel_h5p_default())
            XCTAssertGreaterThanOrEqual(dataset, 0)
            H5Dclose(dataset); H5Sclose(space)
        }
        try file.close()
        let reopened = try HDF5File.open(url).root
        assertError(try reopened.readTensor("rows"), HDF5Error.self, mentions: [url.path, "/rows", "[68719476736]", "the file is damaged"])
        assertError(try reopened.readTensor("overflow"), HDF5Error.self, mentions: [url.path, "/overflow", "the file is damaged"])
    }

    /// A write that fails (here: past a file-size limit, as on a full disk) throws; closing the file
    /// afterwards, twice, and releasing its objects neither crashes nor hides the first error.
    func testFailedWriteThrowsAndLaterClosesDoNotCrash() throws {
        let url = scratch.appendingPathComponent("limited.h5")
        var saved = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved), 0)
        let previousHandler = signal(SIGXFSZ, SIG_IGN)
        defer { _ = signal(SIGXFSZ, previousHandler) }
        let file = try HDF5File.create(at: url)
        var dataset: HDF5Dataset?
        do {
            var limit = saved
            limit.rlim_cur = 64 * 1024
            XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &limit), 0)
            defer { _ = setrlimit(Int32(RLIMIT_FSIZE.rawValue), &saved) }
            let root = try file.root
            XCTAssertThrowsError(try {
                dataset = try root.writeTensor("big", Tensor(zeros: [1024, 1024]))
                try file.flush()
            }())
            _ = try? file.close()  // may fail too, after the failed write: what matters is that it returns
        }
        XCTAssertNoThrow(try file.close())  // the second close does nothing
        XCTAssertNil(dataset)
        // The library still works for the next file.
        let next = try HDF5File.create(at: scratch.appendingPathComponent("next.h5"))
        try next.root.writeTensor("small", Tensor(zeros: [4]))
        try next.close()
    }

    // MARK: Head counts

    /// tiny-hub's weights read with 8 heads of 8 instead of 4 of 16: same width, other head count.
    func eightHeadModel() throws -> URL {
        try BadInputFiles.editConfig(try BadInputFiles.copy("tiny-hub", into: scratch.appendingPathComponent("eight"))) { $0["n_head"] = 8 }
    }

    func testStitchingBlocksWithDifferentHeadCounts() throws {
        try FileManager.default.createDirectory(at: scratch.appendingPathComponent("eight"), withIntermediateDirectories: true)
        let eight = try eightHeadModel()
        let plan = scratch.appendingPathComponent("stitch.yaml")
        try "base: \(TestFiles.model("tiny-hub").path)\nblocks: [\"0\", \"eight:1\"]\nmodels: {eight: \(eight.path)}\nedits:\n  - keep_heads: []\n"
            .write(to: plan, atomically: true, encoding: .utf8)
        let loaded = try Plan.load(plan)
        let (base, others) = try Surgeon.loadModels(for: loaded, baseOverride: nil)
        let model = try Surgeon.build(loaded, base: base, others: others)
        XCTAssertEqual(model.blocks.map { $0.attention!.nHead }, [4, 8])
        // keep_heads: [] ablates every head of every block, whatever its head count.
        XCTAssertEqual(model.blocks.map { $0.attention!.headAblations.keys.sorted() }, [Array(0..<4), Array(0..<8)])

        let url = scratch.appendingPathComponent("stitched.h5")
        try ModelArchive.write(model, plan: loaded, to: try OutputTarget(url, overwrite: false))
        let reloaded = try ModelArchive.load(from: url)
        XCTAssertEqual(reloaded.blocks.map { $0.attention!.nHead }, [4, 8])
        XCTAssertTrue(ModelSummary(reloaded).text.contains("8 heads × d_head 8"), ModelSummary(reloaded).text)
        XCTAssertEqual(reloaded.blocks.map { $0.attention!.headAblations.keys.sorted() }, [Array(0..<4), Array(0..<8)])
        XCTAssertEqual(try reloaded.run([[5, 6, 7]]).logits[0].scalars, try model.run([[5, 6, 7]]).logits[0].scalars)

        // Mean ablation of a head of the 8-head block averages its own 8-wide z (this corrupted the heap).
        let means = scratch.appendingPathComponent("means.yaml")
        try "base: \(TestFiles.model("tiny-hub").path)\nblocks: [\"0\", \"eight:1\"]\nmodels: {eight: \(eight.path)}\nedits:\n  - keep_heads: [\"0.1\"]\n    mode: mean\n    dataset: digits\n"
            .write(to: means, atomically: true, encoding: .utf8)
        let meanPlan = try Plan.load(means)
        let averaged = try Surgeon.build(meanPlan, base: base, others: others, meanPrompts: { _, _ in [[1, 2, 3], [4, 5]] })
        guard case let .pooledMean(vector)? = averaged.blocks[1].attention!.headAblations[7]?.replacement else { return XCTFail("head 7 of block 1 not mean-ablated") }
        XCTAssertEqual(vector.shape, [8])

        let export = scratch.appendingPathComponent("hf")
        assertError(try HuggingFaceExport.write(model, to: try OutputTarget(export, kind: .folder, overwrite: false)), HuggingFaceExportError.self,
                    mentions: ["different head counts (4, 8)", "GPT-2's config has one n_head"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: export.path))
    }

    // MARK: Non-finite weights

    func testNonFiniteWeightsAreReportedNamingTheTensor() throws {
        let folder = try BadInputFiles.rewriteWeights(try BadInputFiles.copy("tiny-hub", into: scratch)) { tensors in
            let index = tensors.firstIndex { $0.name == "h.1.mlp.c_fc.weight" }!
            var tensor = tensors[index].tensor
            tensor.withMutableBuffer { $0[3] = .nan; $0[9] = .infinity }
            tensors[index].tensor = tensor
        }
        var model: Model?
        let warnings = try collectingWarnings { model = try Checkpoint.load(from: folder) }
        XCTAssertEqual(warnings.count, 1, "\(warnings)")
        XCTAssertTrue(warnings.first?.contains("h.1.mlp.c_fc.weight (2 of 16384 values)") == true, "\(warnings)")

        let url = scratch.appendingPathComponent("nan.h5")
        try ModelArchive.write(try XCTUnwrap(model), plan: nil, to: try OutputTarget(url, overwrite: false))
        let archiveWarnings = try collectingWarnings { _ = try ModelArchive.load(from: url) }
        XCTAssertTrue(archiveWarnings.first?.contains("blocks/1/mlp/W_in (2 of 16384 values)") == true, "\(archiveWarnings)")
    }

    /// The count splits a large tensor into chunks across the cores: values on both sides of each
    /// chunk's edge, every NaN and Inf bit pattern, and the largest finite values.
    func testNonFiniteCountAcrossChunks() {
        let count = 3 << 20 + 5
        var tensor = Tensor(zeros: [count])
        let nonFinite: [Float] = [.nan, -.nan, .infinity, -.infinity, Float(bitPattern: 0x7F80_0001), Float(bitPattern: 0xFFFF_FFFF)]
        let places = [0, (1 << 20) - 1, 1 << 20, 2 << 20, (3 << 20) - 1, count - 1]
        tensor.withMutableBuffer { buffer in
            for (place, value) in zip(places, nonFinite) { buffer[place] = value }
            buffer[5] = .greatestFiniteMagnitude
            buffer[(1 << 20) + 1] = -.greatestFiniteMagnitude
        }
        XCTAssertEqual(LoadWarnings.nonFiniteCount(tensor), places.count)
        XCTAssertEqual(LoadWarnings.nonFiniteCount(Tensor(zeros: [0])), 0)
    }

    /// Runs `body` with load warnings collected instead of printed.
    func collectingWarnings(_ body: () throws -> Void) throws -> [String] {
        var warnings: [String] = []
        let saved = LoadWarnings.handler
        LoadWarnings.handler = { warnings.append($0) }
        defer { LoadWarnings.handler = saved }
        try body()
        return warnings
    }

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
                                   seed: 1, to: try OutputTarget(folder, kind: .folder, overwrite: false))
        let result = try scalpel(["bench", "--model", folder.path, "--runs", "1", "--batch-runs", "1", "--batch", "2", "--tokens", "3"])
        XCTAssertEqual(result.status, 0, result.stderr)
    }
}
