import XCTest
@testable import Scalpel

/// Bad input at the library level: each mistake is a typed error whose message names the file, the
/// field or tensor, and the value at fault — never a crash.
final class BadInputTests: ScratchTestCase {

    /// A copy of a fixture model that the test may damage.
    func copy(_ fixture: String) throws -> URL { try BadInputFiles.copy(fixture, into: scratch) }

    func writePlan(_ text: String, _ name: String = "plan.yaml") throws -> URL {
        let url = scratch.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    /// Loads a plan and builds it with the base and models it names (mean prompts fixed).
    func buildPlan(_ text: String, baseOverride: String? = nil) throws -> Model {
        let plan = try Plan.load(try writePlan(text))
        let (base, others) = try Surgeon.loadModels(for: plan, baseOverride: baseOverride)
        return try Surgeon.build(plan, base: base, others: others, meanPrompts: { _, _ in [[1, 2, 3]] })
    }

    // MARK: Checkpoint folders

    func testMissingCheckpointFolder() throws {
        let missing = scratch.appendingPathComponent("no-such-model")
        assertError(try Checkpoint.load(from: missing), FileError.self, mentions: [missing.path, "no such file"])
        assertError(try ModelLocation.load(missing.path), FileError.self, mentions: [missing.path])
        let archive = scratch.appendingPathComponent("no-such.h5")
        assertError(try ModelLocation.load(archive.path), FileError.self, mentions: [archive.path, "scalpel build"])
    }

    func testFileInsteadOfFolder() throws {
        let config = try copy("tiny-hub").appendingPathComponent("config.json")
        assertError(try Checkpoint.load(from: config), CheckpointError.self, equals: .notAFolder(path: config.path),
                    mentions: ["is a file", "folder"])
    }

    func testFolderWithoutWeightsOrConfig() throws {
        let empty = scratch.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        assertError(try Checkpoint.load(from: empty), FileError.self, mentions: [empty.appendingPathComponent("config.json").path])
        let folder = try copy("tiny-hub")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("model.safetensors"))
        assertError(try Checkpoint.load(from: folder), CheckpointError.self, equals: .noWeights(path: folder.path),
                    mentions: ["model.safetensors"])
    }

    func testBrokenConfigJSON() throws {
        let folder = try copy("tiny-hub")
        let config = folder.appendingPathComponent("config.json")
        try Data("{\"n_embd\": 64, \"n_head\": ".utf8).write(to: config)
        assertError(try Checkpoint.load(from: folder), ConfigError.self, equals: .notJSON(path: config.path), mentions: [config.path, "JSON"])
    }

    func testUnsupportedActivationNamesGeluNew() throws {
        let folder = try editConfig("tiny-hub") { $0["activation_function"] = "relu" }
        assertError(try Checkpoint.load(from: folder), ConfigError.self,
                    mentions: [folder.appendingPathComponent("config.json").path, "\"relu\"", "gelu_new"])
    }

    func testUnsupportedModelType() throws {
        let folder = try editConfig("tiny-hub") { $0["model_type"] = "llama" }
        assertError(try Checkpoint.load(from: folder), ConfigError.self,
                    equals: .unsupportedArchitecture(path: folder.appendingPathComponent("config.json").path, found: "model_type \"llama\""),
                    mentions: ["llama", "gpt2"])
    }

    func testHeadsNotDividingWidth() throws {
        let folder = try editConfig("tiny-hub") { $0["n_head"] = 5 }
        assertError(try Checkpoint.load(from: folder), ConfigError.self,
                    equals: .badField(path: folder.appendingPathComponent("config.json").path, field: "n_head", value: "5",
                                      expected: "a divisor of n_embd (64)"),
                    mentions: ["n_head", "5", "n_embd"])
    }

    func testSafetensorsTruncatedMidData() throws {
        let folder = try copy("tiny-hub")
        let file = folder.appendingPathComponent("model.safetensors")
        let size = try BadInputFiles.size(file)
        try truncate(file, to: size / 2)
        assertError(try Checkpoint.load(from: folder), SafetensorsError.self, mentions: [file.path, "truncated"])
    }

    func testSafetensorsHeaderLengthPastEnd() throws {
        let folder = try copy("tiny-hub")
        let file = folder.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: file)
        let claimed = UInt64(bytes.count + 100)
        withUnsafeBytes(of: claimed.littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        try bytes.write(to: file)
        assertError(try Checkpoint.load(from: folder), SafetensorsError.self,
                    equals: .headerPastEnd(path: file.path, length: claimed, fileSize: bytes.count),
                    mentions: [file.path, "header length"])
    }

    func testConfigWidthDisagreeingWithWeights() throws {
        let folder = try editConfig("tiny-hub") { $0["n_embd"] = 32 }
        assertError(try Checkpoint.load(from: folder), CheckpointError.self,
                    equals: .shapeMismatch(path: folder.appendingPathComponent("model.safetensors").path, name: "wte.weight",
                                           expected: [1000, 32], found: [1000, 64]),
                    mentions: ["wte.weight", "config.json", "[1000, 64]"])
    }

    func testTensorOfWrongShape() throws {
        let folder = try rewriteWeights("tiny-hub") { tensors in
            let i = tensors.firstIndex { $0.name == "h.1.mlp.c_fc.bias" }!
            tensors[i].tensor = Tensor(zeros: [255])
        }
        assertError(try Checkpoint.load(from: folder), CheckpointError.self,
                    equals: .shapeMismatch(path: folder.appendingPathComponent("model.safetensors").path, name: "h.1.mlp.c_fc.bias",
                                           expected: [256], found: [255]),
                    mentions: ["h.1.mlp.c_fc.bias", "[255]", "[256]"])
    }

    func testUnexpectedTensor() throws {
        let folder = try rewriteWeights("tiny-hub") { $0.append((name: "h.0.mlp.c_gate.weight", tensor: Tensor(zeros: [64, 256]))) }
        assertError(try Checkpoint.load(from: folder), CheckpointError.self,
                    equals: .unexpectedTensor(path: folder.appendingPathComponent("model.safetensors").path, name: "h.0.mlp.c_gate.weight"),
                    mentions: ["h.0.mlp.c_gate.weight", "GPT-2"])
    }

    func testMissingTensor() throws {
        let folder = try rewriteWeights("tiny-hub") { $0.removeAll { $0.name == "ln_f.bias" } }
        assertError(try Checkpoint.load(from: folder), CheckpointError.self,
                    equals: .missingTensor(path: folder.appendingPathComponent("model.safetensors").path, name: "ln_f.bias"),
                    mentions: ["ln_f.bias", "missing"])
    }

    func testShardedIndexNamingMissingShard() throws {
        let folder = try copy("sharded-f16")
        try FileManager.default.removeItem(at: folder.appendingPathComponent("model-00002-of-00003.safetensors"))
        assertError(try Checkpoint.load(from: folder), CheckpointError.self,
                    mentions: [folder.appendingPathComponent("model.safetensors.index.json").path, "model-00002-of-00003.safetensors"])
    }

    // MARK: Prompts

    func testPromptLongerThanContext() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))  // n_positions 32
        XCTAssertNoThrow(try model.run([Array(repeating: 5, count: 32)]))
        assertError(try model.run([[1, 2], Array(repeating: 5, count: 33)]), RunError.self,
                    equals: .promptTooLong(index: 1, length: 33, limit: 32), mentions: ["Prompt 2", "33", "32", "n_positions"])
        assertError(try model.run([[]]), RunError.self, equals: .emptyPrompt(index: 0))
        assertError(try model.run([[1, 1000]]), RunError.self, equals: .tokenOutOfRange(index: 0, token: 1000, vocab: 1000))
    }

    func testEmptyPromptAndMissingTokenizer() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        assertError(try model.encode(prompt: ""), PromptError.self, equals: .emptyPrompt, mentions: ["empty"])
        assertError(try model.encode(prompt: "1 2 3"), PromptError.self, equals: .noTokenizer(model: "tiny-hub"),
                    mentions: ["vocab.json", "merges.txt"])
    }

    func testMultiTokenAnswer() throws {
        let model = try Checkpoint.load(from: try BadInputFiles.gpt2VocabModel())
        assertError(try model.answerID(" 12345678"), PromptError.self,
                    equals: .multiTokenAnswer(answer: " 12345678", pieces: [" 123", "45", "678"]),
                    mentions: ["\" 123\", \"45\", \"678\"", "--first-token"])
        XCTAssertEqual(try model.answerID(" 12345678", firstTokenOnly: true), model.tokenizer!.encode(" 123")[0])
        XCTAssertEqual(try model.answerID(" 5"), 642)
        assertError(try model.answerID(""), PromptError.self, equals: .emptyAnswer)
    }

    /// A tokenizer bigger than the model's vocabulary: the answer's id cannot index the logits.
    func testAnswerOutsideModelVocabulary() throws {
        var model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))  // vocabulary of 1000
        model.tokenizer = try GPT2Tokenizer.load(from: try TestFiles.sharedGPT2())
        assertError(try model.answerID(" 12345678", firstTokenOnly: true), PromptError.self,
                    equals: .answerOutOfVocabulary(answer: " 12345678", id: 17031, vocab: 1000), mentions: ["17031", "1000"])
    }

    // MARK: Plans

    func testUnknownBlockSyntax() throws {
        for entry in ["9.foo", "a-b", "3-1", "-1", "9.attn.noln", ""] {
            let url = try writePlan("blocks: [\"0\", \"\(entry)\"]")
            assertError(try Plan.load(url), PlanError.self, equals: .blockSyntax(location: "\(url.path):1, blocks[1]", entry: entry),
                        mentions: [url.path, "blocks[1]", "\"\(entry)\""])
        }
        assertError(try Plan.inline(blocks: "0,9.foo"), PlanError.self, equals: .blockSyntax(location: "--blocks", entry: "9.foo"))
    }

    func testLayerOutOfRange() throws {
        let model = try BadInputFiles.twelveLayers()
        let url = try writePlan("blocks: [\"0-7\", \"14\"]")
        let plan = try Plan.load(url)
        assertError(try Surgeon.build(plan, base: model), PlanError.self,
                    equals: .layerOutOfRange(location: "\(url.path), blocks[1]", entry: "14", layer: 14, layers: 12),
                    mentions: [url.path, "blocks[1]", "block 14", "model has 12 layers"])
        assertError(try Surgeon.build(try Plan.inline(blocks: "0-12"), base: model), PlanError.self, mentions: ["--blocks", "block 12", "12 layers"])
        let edits = try Plan.parse("blocks: [\"0-11\"]\nedits: [{ablate_heads: [\"12.0\"]}]", origin: "p.yaml")
        assertError(try Surgeon.build(edits, base: model), PlanError.self, mentions: ["p.yaml:2, edits[0]", "block 12", "12 layers"])
    }

    func testHeadOutOfRange() throws {
        let base = TestFiles.model("tiny-hub").path  // 4 heads
        assertError(try buildPlan("base: \(base)\nblocks: [\"0-1\"]\nedits:\n  - ablate_heads: [\"1.2\", \"1.7\"]"), PlanError.self,
                    mentions: ["plan.yaml:4, edits[0]", "\"1.7\"", "4 heads"])
        assertError(try buildPlan("base: \(base)\nblocks: [\"0-1\"]\nedits:\n  - ablate_heads: [\"one\"]"), PlanError.self,
                    mentions: ["edits[0].ablate_heads", "\"one\""])
    }

    func testStitchingModelsOfDifferentWidths() throws {
        let text = "base: \(TestFiles.model("tiny-hub").path)\nblocks: [\"0\", \"odd:1\"]\nmodels: {odd: \(TestFiles.model("odd-head").path)}"
        assertError(try buildPlan(text), PlanError.self, mentions: ["plan.yaml, blocks[1]", "\"odd\"", "width 48", "64"])
    }

    func testPlanNamingMissingModels() throws {
        let missing = scratch.appendingPathComponent("nowhere").path
        assertError(try buildPlan("blocks: [\"0\", \"o:1\"]\nmodels: {o: \(missing)}", baseOverride: TestFiles.model("tiny-hub").path),
                    ModelLocationError.self, mentions: ["plan.yaml, models.o", missing])
        assertError(try buildPlan("base: no-such-model\nblocks: [\"0\"]"), ModelLocationError.self,
                    mentions: ["plan.yaml, base", "\"no-such-model\"", "--model"])
        assertError(try Plan.load(scratch.appendingPathComponent("absent.yaml")), FileError.self, mentions: ["absent.yaml"])
        let plan = try writePlan("blocks: [\"0\", \"o:1\"]")
        assertError(try Plan.load(plan), PlanError.self, equals: .unknownModel(location: "\(plan.path):1, blocks[1]", name: "o", known: []))
    }

    func testUnknownDataset() throws {
        let text = "base: \(TestFiles.model("tiny-hub").path)\nblocks: [\"0-1\"]\nedits:\n  - {ablate_heads: [\"1.1\"], mode: mean, dataset: no-such-family}"
        assertError(try buildPlan(text), PlanError.self, mentions: ["plan.yaml:4, edits[0]", "\"no-such-family\"", "scalpel datasets"])
    }

    func testUnknownFieldsAndBadValues() throws {
        let url = try writePlan("blocks: [\"0\"]\ncolour: red")
        assertError(try Plan.load(url), YAMLFileError.self,
                    equals: .unknownField(location: "\(url.path):2, colour", known: Plan.fields), mentions: ["colour", "blocks"])
        assertError(try Plan.load(try writePlan("blocks: [\"0\"]\nedits: [{ablate_heads: [\"0.1\"], strength: 2}]")), YAMLFileError.self,
                    mentions: ["plan.yaml:2, edits[0].strength", "unknown field"])
        assertError(try Plan.load(try writePlan("blocks: [\"0\"]\nedits: [{ablate_heads: [\"0.1\"], mode: resample}]")), PlanError.self,
                    mentions: ["edits[0].mode", "\"resample\"", "zero or mean"])
        assertError(try Plan.load(try writePlan("name: x")), YAMLFileError.self, mentions: ["blocks", "missing"])
        assertError(try Plan.load(try writePlan("blocks: [\"0\"\nname: x")), YAMLFileError.self, mentions: ["plan.yaml:2", "YAML"])
    }

    func testMeanModeWithoutDataset() throws {
        let url = try writePlan("blocks: [\"0-1\"]\nedits:\n  - ablate_heads: [\"1.1\"]\n    mode: mean")
        assertError(try Plan.load(url), PlanError.self, equals: .datasetNeeded(location: "\(url.path):3, edits[0]"),
                    mentions: ["mean", "dataset"])
    }

    // MARK: Outputs

    func testExistingOutputNeedsOverwrite() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let output = scratch.appendingPathComponent("model.h5")
        try Data("old contents".utf8).write(to: output)
        assertError(try ModelArchive.write(model, plan: nil, to: try OutputTarget(output, overwrite: false)), FileError.self,
                    equals: .exists(path: output.path), mentions: ["--force"])
        XCTAssertEqual(try Data(contentsOf: output), Data("old contents".utf8))
        try ModelArchive.write(model, plan: nil, to: try OutputTarget(output, overwrite: true))
        XCTAssertEqual(try ModelArchive.load(from: output).blocks.count, 2)
        XCTAssertEqual(try leftovers(), ["model.h5"])
    }

    func testUnwritableOutputPaths() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let file = scratch.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        let underFile = file.appendingPathComponent("model.h5")
        assertError(try ModelArchive.write(model, plan: nil, to: try OutputTarget(underFile, overwrite: false)), FileError.self, mentions: [underFile.path, "cannot write"])
        assertError(try HuggingFaceExport.write(model, to: try OutputTarget(file.appendingPathComponent("hf"), kind: .folder, overwrite: false)), FileError.self,
                    mentions: [file.appendingPathComponent("hf").path])
        if FileManager.default.fileExists(atPath: "/proc/self") {
            // Root may write anywhere by permission bits, but nothing can be created in /proc.
            assertError(try ModelArchive.write(model, plan: nil, to: try OutputTarget(URL(fileURLWithPath: "/proc/x.h5"), overwrite: false)), FileError.self,
                        equals: .unwritable(path: "/proc/x.h5", reason: "cannot create a file in /proc: No such file or directory"))
        }
    }

    func testArchiveOfAnotherFormatVersion() throws {
        let url = scratch.appendingPathComponent("future.h5")
        let file = try HDF5File.create(at: url)
        try file.root.setAttribute("format", "scalpel-model")
        try file.root.setAttribute("format_version", 99)
        try file.close()
        assertError(try ModelArchive.load(from: url), ArchiveError.self, equals: .version(path: url.path, found: 99, supported: 3),
                    mentions: [url.path, "version 99", "scalpel build"])
        assertError(try ModelLocation.load(url.path), ArchiveError.self, mentions: ["version 99"])
    }

    func testNotAnArchive() throws {
        let other = scratch.appendingPathComponent("other.h5")
        let file = try HDF5File.create(at: other)
        try file.root.setAttribute("format", "something-else")
        try file.close()
        assertError(try ModelArchive.load(from: other), ArchiveError.self, equals: .notAnArchive(path: other.path))
        let text = scratch.appendingPathComponent("text.h5")
        try Data("not HDF5 at all".utf8).write(to: text)
        assertError(try ModelArchive.load(from: text), ArchiveError.self, mentions: [text.path])
        let badConfig = scratch.appendingPathComponent("bad-config.h5")
        let broken = try HDF5File.create(at: badConfig)
        try broken.root.setAttribute("format", "scalpel-model")
        try broken.root.setAttribute("format_version", 1)
        try broken.root.setAttribute("config", "{not json")
        try broken.close()
        assertError(try ModelArchive.load(from: badConfig), ArchiveError.self,
                    equals: .corrupt(path: badConfig.path, reason: "the config attribute is not a JSON object"))
    }

    func testTruncatedArchive() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let url = scratch.appendingPathComponent("model.h5")
        try ModelArchive.write(model, plan: nil, to: try OutputTarget(url, overwrite: false))
        let size = try BadInputFiles.size(url)
        try truncate(url, to: size / 2)
        assertError(try ModelArchive.load(from: url), ArchiveError.self, mentions: [url.path, "truncated"])
    }

    func testExportRefusesMLPWithoutLayerNorm() throws {
        let model = try buildPlan("base: \(TestFiles.model("tiny-hub").path)\nblocks: [\"0\", \"1.mlp.noln\"]")
        let output = scratch.appendingPathComponent("hf")
        assertError(try HuggingFaceExport.write(model, to: try OutputTarget(output, kind: .folder, overwrite: false)), HuggingFaceExportError.self,
                    mentions: ["block 1", "mlp.noln", "LayerNorm", "every GPT-2 MLP has one"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path))
    }

    // MARK: Failing mid-write

    /// A disk that fills mid-write: the writer throws after writing part of the file. The temporary
    /// file is removed and the old output is byte-identical.
    func testFailureMidWriteKeepsOldFile() throws {
        let output = scratch.appendingPathComponent("out.bin")
        let old = Data((0..<4096).map { UInt8($0 % 251) })
        try old.write(to: output)
        var temporaryPath = ""
        assertError(try OutputTarget(output, overwrite: true).write { temporary -> Void in
            temporaryPath = temporary.path
            try Data(repeating: 7, count: 10_000).write(to: temporary)
            XCTAssertTrue(FileManager.default.fileExists(atPath: temporary.path))
            throw FileError.unwritable(path: temporary.path, reason: "No space left on device")
        }, FileError.self, equals: .unwritable(path: output.path, reason: "No space left on device"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: temporaryPath))
        XCTAssertEqual(try Data(contentsOf: output), old)
        XCTAssertEqual(try leftovers(), ["out.bin"])

        // A failure on a new destination leaves nothing.
        let fresh = scratch.appendingPathComponent("fresh.bin")
        XCTAssertThrowsError(try OutputTarget(fresh, overwrite: false).write { temporary -> Void in
            try Data(repeating: 1, count: 100).write(to: temporary)
            throw CocoaError(.fileWriteOutOfSpace)
        })
        XCTAssertFalse(FileManager.default.fileExists(atPath: fresh.path))
        XCTAssertEqual(try leftovers(), ["out.bin"])
    }

    /// Errors about the temporary file (HDF5 or Foundation) are reported against the output the user named.
    func testWriteFailuresNameTheOutput() throws {
        let output = scratch.appendingPathComponent("folder-output")
        assertError(try OutputTarget(output, overwrite: false).write { temporary -> Void in
            try Data("x".utf8).write(to: temporary.appendingPathComponent("missing-subfolder/config.json"))
        }, FileError.self, mentions: [output.appendingPathComponent("missing-subfolder/config.json").path, "cannot write"])
        let archive = scratch.appendingPathComponent("out.h5")
        assertError(try OutputTarget(archive, overwrite: false).write { temporary -> Void in
            throw HDF5Error.failed(file: temporary.path, object: "/embed/W_E", operation: "writing",
                                   reason: "can't write data: file write failed: errno = 28, error message = 'No space left on device', offset = 0")
        }, FileError.self, equals: .unwritable(path: archive.path, reason: "writing /embed/W_E failed: No space left on device"))
        XCTAssertEqual(try leftovers(), [])
    }

    // MARK: Helpers

    /// Files left in the scratch folder (a `.partial` temporary would show here).
    func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { !["tiny-hub", "a-file"].contains($0) }.sorted()
    }

    func editConfig(_ fixture: String, _ edit: (inout [String: Any]) -> Void) throws -> URL {
        try BadInputFiles.editConfig(try copy(fixture), edit)
    }

    func rewriteWeights(_ fixture: String, _ edit: (inout [(name: String, tensor: Tensor)]) -> Void) throws -> URL {
        try BadInputFiles.rewriteWeights(try copy(fixture), edit)
    }

    func truncate(_ url: URL, to size: Int) throws { try BadInputFiles.truncate(url, to: size) }
}

/// Checks that `expression` throws an `E` (equal to `expected` when given) whose message contains each of `mentions`.
func assertError<T, E: Error & CustomStringConvertible>(
    _ expression: @autoclosure () throws -> T, _ errorType: E.Type, equals expected: E? = nil, mentions: [String] = [],
    file: StaticString = #filePath, line: UInt = #line
) where E: Equatable {
    do {
        _ = try expression()
        XCTFail("expected \(E.self), nothing was thrown", file: file, line: line)
    } catch let error as E {
        if let expected { XCTAssertEqual(error, expected, file: file, line: line) }
        let message = error.description
        for text in mentions where !message.contains(text) {
            XCTFail("message should mention \(text.debugDescription): \(message)", file: file, line: line)
        }
    } catch {
        XCTFail("expected \(E.self), got \(type(of: error)): \(error)", file: file, line: line)
    }
}

/// Models shared by the bad-input and CLI tests, written once per test run.
enum BadInputFiles {
    nonisolated(unsafe) private static var folder: URL?
    nonisolated(unsafe) private static var made: [String: URL] = [:]
    private static let lock = NSLock()

    private static func make(_ name: String, _ write: (URL) throws -> Void) throws -> URL {
        lock.lock(); defer { lock.unlock() }
        if let url = made[name] { return url }
        if folder == nil { folder = TestFiles.temporaryFolder() }
        let url = folder!.appendingPathComponent(name)
        try write(url)
        made[name] = url
        return url
    }

    static func removeAll() {
        lock.lock(); defer { lock.unlock() }
        if let folder { try? FileManager.default.removeItem(at: folder) }
        folder = nil
        made = [:]
    }

    /// A random one-layer model with GPT-2's vocabulary and tokenizer (from ../shared/gpt2) and
    /// 8 positions, so real prompts encode and run, and a prompt of 8 tokens is too long (with BOS).
    static func gpt2VocabModel() throws -> URL {
        let tokenizer = try TestFiles.sharedGPT2()
        return try make("gpt2-vocab") { url in
            try RandomCheckpoint.write(config: GPT2Config(nLayer: 1, nEmbd: 8, nHead: 2, nPositions: 8, vocabSize: 50257, bosTokenID: 50256),
                                       seed: 3, to: try OutputTarget(url, kind: .folder, overwrite: true), tokenizerFolder: tokenizer)
        }
    }

    /// A random model with GPT-2 small's 12 layers and 12 heads (tiny width).
    static func twelveLayers() throws -> Model {
        try Checkpoint.load(from: try make("twelve") { url in
            try RandomCheckpoint.write(config: GPT2Config(nLayer: 12, nEmbd: 24, nHead: 12, nPositions: 16, vocabSize: 32),
                                       seed: 5, to: try OutputTarget(url, kind: .folder, overwrite: true))
        })
    }

    // MARK: Damaging copies of fixtures

    /// A copy of a fixture model in `folder`, for a test to damage.
    static func copy(_ fixture: String, into folder: URL) throws -> URL {
        let url = folder.appendingPathComponent(fixture)
        try FileManager.default.copyItem(at: TestFiles.model(fixture), to: url)
        return url
    }

    /// Rewrites the checkpoint folder's config.json after `edit`.
    static func editConfig(_ folder: URL, _ edit: (inout [String: Any]) -> Void) throws -> URL {
        let url = folder.appendingPathComponent("config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]).write(to: url)
        return folder
    }

    /// Rewrites the checkpoint folder's model.safetensors (as F32) after `edit`.
    static func rewriteWeights(_ folder: URL, _ edit: (inout [(name: String, tensor: Tensor)]) -> Void) throws -> URL {
        let url = folder.appendingPathComponent("model.safetensors")
        let file = try SafetensorsFile(url: url)
        var tensors = try file.names.sorted().map { (name: $0, tensor: try file.tensor($0)) }
        edit(&tensors)
        try SafetensorsWriter.write(tensors, metadata: ["format": "pt"], to: try OutputTarget(url, overwrite: true))
        return folder
    }

    static func truncate(_ url: URL, to size: Int) throws {
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
    }

    static func size(_ url: URL) throws -> Int {
        try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int
    }
}
