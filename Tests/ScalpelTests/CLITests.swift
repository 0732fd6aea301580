import XCTest
@testable import Scalpel

/// The `scalpel` binary run as a subprocess on bad input: exit status 1 with a message on stderr that
/// names the file, field or value, never a crash; internal errors exit 2. Build it first with
/// `swift build --build-tests` (which builds `.build/debug/scalpel` too).
class CLITestCase: ScratchTestCase {

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    struct BinaryMissing: Error {}

    static var binary: URL { TestFiles.packageRoot.appendingPathComponent(".build/debug/scalpel") }

    /// Runs `scalpel args` in the scratch folder (or through `/bin/sh -c` with `shellPrefix`), without
    /// the caller's `$SCALPEL_MODELS`.
    func scalpel(_ args: [String], environment: [String: String] = [:], shellPrefix: String? = nil,
                 file: StaticString = #filePath, line: UInt = #line) throws -> Result {
        let binary = Self.binary
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            XCTFail("\(binary.path) not found: run `swift build --build-tests` (or `swift build`) before the CLI tests", file: file, line: line)
            throw BinaryMissing()
        }
        let process = Process()
        if let shellPrefix {
            process.executableURL = URL(fileURLWithPath: "/bin/sh")
            process.arguments = ["-c", shellPrefix + " exec \"$0\" \"$@\"", binary.path] + args
        } else {
            process.executableURL = binary
            process.arguments = args
        }
        process.currentDirectoryURL = scratch
        var env = ProcessInfo.processInfo.environment
        env["SCALPEL_MODELS"] = nil
        env["SCALPEL_TEST_INTERNAL_ERROR"] = nil
        env.merge(environment) { $1 }
        process.environment = env
        let out = scratch.appendingPathComponent(".stdout"), err = scratch.appendingPathComponent(".stderr")
        XCTAssertTrue(FileManager.default.createFile(atPath: out.path, contents: nil), "test setup: could not create a file")
        XCTAssertTrue(FileManager.default.createFile(atPath: err.path, contents: nil), "test setup: could not create a file")
        let outHandle = try FileHandle(forWritingTo: out), errHandle = try FileHandle(forWritingTo: err)
        process.standardOutput = outHandle
        process.standardError = errHandle
        try process.run()
        process.waitUntilExit()
        try outHandle.close(); try errHandle.close()
        defer { try? FileManager.default.removeItem(at: out); try? FileManager.default.removeItem(at: err) }
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: try Data(contentsOf: out), as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: err), as: UTF8.self))
    }

    /// Runs and expects exit status 1 (bad input) with `error:` (or ArgumentParser's `Error:`) on
    /// stderr mentioning each of `mentions`, and nothing on stdout.
    @discardableResult
    func expectBadInput(_ args: [String], mentions: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Result {
        let result = try scalpel(args, file: file, line: line)
        let command = "scalpel " + args.joined(separator: " ")
        XCTAssertEqual(result.status, 1, "\(command): exit status; stderr: \(result.stderr)", file: file, line: line)
        XCTAssertTrue(result.stderr.lowercased().hasPrefix("error:"), "\(command): stderr should start with error: — \(result.stderr)", file: file, line: line)
        XCTAssertFalse(result.stderr.contains("Fatal error") || result.stderr.contains("crashed"), "\(command) crashed: \(result.stderr)", file: file, line: line)
        XCTAssertEqual(result.stdout, "", "\(command): stdout", file: file, line: line)
        for text in mentions where !result.stderr.contains(text) {
            XCTFail("\(command): stderr should mention \(text.debugDescription): \(result.stderr)", file: file, line: line)
        }
        return result
    }

    func writePlan(_ text: String, _ name: String = "plan.yaml") throws -> URL {
        let url = scratch.appendingPathComponent(name)
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    var tinyHub: String { TestFiles.model("tiny-hub").path }
}

/// Exit statuses and bad input through the binary.
final class CLITests: CLITestCase {
    // MARK: Exit status

    func testExitStatusZeroOneAndTwo() throws {
        let ok = try scalpel(["run", "--model", tinyHub, "--blocks", "0", "--help"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("USAGE: scalpel run"))
        let inspect = try scalpel(["inspect", "--model", tinyHub])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        XCTAssertTrue(inspect.stdout.contains("tiny-hub"))

        try expectBadInput(["run", "--model", tinyHub, "--prompt", "1", "--bogus"], mentions: ["Unknown option '--bogus'"])
        try expectBadInput(["frobnicate"], mentions: ["frobnicate"])
        try expectBadInput(["run", "--model", tinyHub, "--prompt", "x", "--top-k", "0"], mentions: ["--top-k must be from 1 to 1000 (got 0)"])
        try expectBadInput(["run", "--model", tinyHub, "--prompt", "x", "--top-k", "ten"], mentions: ["ten"])
        try expectBadInput(["init", "--config", "gpt5", "-o", "out"], mentions: ["\"gpt5\"", "gpt2-medium"])

        let failure = try scalpel(["run", "--model", tinyHub, "--prompt", "x"], environment: ["SCALPEL_TEST_INTERNAL_ERROR": "1"])
        XCTAssertEqual(failure.status, 2, failure.stderr)
        XCTAssertTrue(failure.stderr.hasPrefix("internal error:"), failure.stderr)
    }

    // MARK: Checkpoints

    func testBadCheckpointFolders() throws {
        let missing = scratch.appendingPathComponent("no-such-model").path
        try expectBadInput(["run", "--model", missing, "--prompt", "x"], mentions: [missing, "no such file"])
        let config = TestFiles.model("tiny-hub").appendingPathComponent("config.json").path
        try expectBadInput(["inspect", "--model", config], mentions: [config, "is a file"])
        let noWeights = scratch.appendingPathComponent("no-weights")
        try FileManager.default.createDirectory(at: noWeights, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: TestFiles.model("tiny-hub").appendingPathComponent("config.json"),
                                         to: noWeights.appendingPathComponent("config.json"))
        try expectBadInput(["inspect", "--model", noWeights.path], mentions: [noWeights.path, "model.safetensors"])
    }

    func testBadConfigs() throws {
        let cases: [(String, (inout [String: Any]) -> Void, [String])] = [
            ("relu", { $0["activation_function"] = "relu" }, ["\"relu\"", "gelu_new"]),
            ("llama", { $0["model_type"] = "llama" }, ["\"llama\"", "gpt2"]),
            ("heads", { $0["n_head"] = 5 }, ["n_head", "5", "n_embd (64)"]),
        ]
        for (name, edit, mentions) in cases {
            let folder = try BadInputFiles.editConfig(try copy("tiny-hub", as: name), edit)
            try expectBadInput(["inspect", "--model", folder.path], mentions: [folder.appendingPathComponent("config.json").path] + mentions)
        }
        let broken = try copy("tiny-hub", as: "broken")
        try Data("{\"n_embd\": 64,".utf8).write(to: broken.appendingPathComponent("config.json"))
        try expectBadInput(["inspect", "--model", broken.path], mentions: [broken.appendingPathComponent("config.json").path, "JSON"])
    }

    func testBadWeights() throws {
        let truncated = try copy("tiny-hub", as: "truncated")
        let weights = truncated.appendingPathComponent("model.safetensors")
        try BadInputFiles.truncate(weights, to: try BadInputFiles.size(weights) / 2)
        try expectBadInput(["inspect", "--model", truncated.path], mentions: [weights.path, "truncated"])

        let header = try copy("tiny-hub", as: "header")
        let headerFile = header.appendingPathComponent("model.safetensors")
        var bytes = try Data(contentsOf: headerFile)
        withUnsafeBytes(of: UInt64(bytes.count * 2).littleEndian) { bytes.replaceSubrange(0..<8, with: $0) }
        try bytes.write(to: headerFile)
        try expectBadInput(["inspect", "--model", header.path], mentions: [headerFile.path, "header length"])

        let width = try BadInputFiles.editConfig(try copy("tiny-hub", as: "width")) { $0["n_embd"] = 32 }
        try expectBadInput(["inspect", "--model", width.path], mentions: ["wte.weight", "[1000, 64]", "[1000, 32]", "config.json"])

        let shape = try BadInputFiles.rewriteWeights(try copy("tiny-hub", as: "shape")) { tensors in
            let i = tensors.firstIndex { $0.name == "h.0.attn.c_proj.weight" }!
            tensors[i].tensor = Tensor(zeros: [64, 63])
        }
        try expectBadInput(["inspect", "--model", shape.path], mentions: ["h.0.attn.c_proj.weight", "[64, 63]", "[64, 64]"])

        let extra = try BadInputFiles.rewriteWeights(try copy("tiny-hub", as: "extra")) { $0.append((name: "score.weight", tensor: Tensor(zeros: [2, 64]))) }
        try expectBadInput(["inspect", "--model", extra.path], mentions: [extra.appendingPathComponent("model.safetensors").path, "\"score.weight\""])

        let missing = try BadInputFiles.rewriteWeights(try copy("tiny-hub", as: "missing")) { $0.removeAll { $0.name == "h.1.ln_2.weight" } }
        try expectBadInput(["inspect", "--model", missing.path], mentions: ["\"h.1.ln_2.weight\"", "missing"])

        let sharded = try copy("sharded-f16")
        try FileManager.default.removeItem(at: sharded.appendingPathComponent("model-00003-of-00003.safetensors"))
        try expectBadInput(["inspect", "--model", sharded.path],
                           mentions: [sharded.appendingPathComponent("model.safetensors.index.json").path, "model-00003-of-00003.safetensors"])
    }

    // MARK: Prompts and answers

    func testPromptsAndAnswers() throws {
        let model = try BadInputFiles.gpt2VocabModel().path  // 8 positions, GPT-2 tokenizer
        let ok = try scalpel(["run", "--model", model, "--prompt", "1 2 3 4", "--answer", " 5"])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("Answer | 5|"), ok.stdout)

        try expectBadInput(["run", "--model", model, "--prompt", "1 2 3 4 5 6 7 8"],
                           mentions: ["9 tokens", "at most 8", "n_positions"])
        try expectBadInput(["run", "--model", model, "--prompt", ""], mentions: ["prompt is empty"])
        try expectBadInput(["run", "--model", model, "--prompt", "1 2 3", "--answer", " 12345678"],
                           mentions: ["\" 12345678\"", "3 tokens", "\" 123\", \"45\", \"678\"", "--first-token"])
        let first = try scalpel(["run", "--model", model, "--prompt", "1 2 3", "--answer", " 12345678", "--first-token", "--format", "json"])
        XCTAssertEqual(first.status, 0, first.stderr)
        XCTAssertTrue(first.stdout.contains("\"answer_token\":\" 123\""), first.stdout)
    }

    /// A tokenizer whose ids exceed the model's vocabulary (a fixture given GPT-2's files) is refused
    /// when the model loads, before any prompt is encoded with ids the model does not have.
    func testTokenizerBiggerThanVocabulary() throws {
        let tokenizer = try TestFiles.sharedGPT2()
        let folder = try copy("tiny-hub")  // vocabulary of 1000
        for name in ["vocab.json", "merges.txt"] {
            try FileManager.default.copyItem(at: tokenizer.appendingPathComponent(name), to: folder.appendingPathComponent(name))
        }
        for args in [["run", "--model", folder.path, "--prompt", "1 2"], ["tokenize", "1 2", "--model", folder.path]] {
            try expectBadInput(args, mentions: [folder.appendingPathComponent("vocab.json").path, "50257 pieces", "vocab_size is 1000"])
        }
    }

    // MARK: Plans

    func testBadPlans() throws {
        let cases: [(String, [String])] = [
            ("blocks: [\"0\", \"9.foo\"]", ["blocks[1]", "\"9.foo\" is not a block"]),
            ("blocks: [\"a-b\"]", ["blocks[0]", "\"a-b\""]),
            ("blocks: [\"0-14\"]", ["blocks[0]", "block 14", "model has 2 layers"]),
            ("blocks: [\"0-1\"]\nedits: [{ablate_heads: [\"1.9\"]}]", ["edits[0]", "\"1.9\"", "4 heads"]),
            ("blocks: [\"0\", \"odd:1\"]\nmodels: {odd: \(TestFiles.model("odd-head").path)}", ["blocks[1]", "width 48", "64"]),
            ("blocks: [\"0\", \"o:1\"]\nmodels: {o: ./nowhere}", ["models.o", "\"./nowhere\""]),
            ("blocks: [\"0-1\"]\nedits: [{ablate_heads: [\"1.1\"], mode: mean, dataset: no-such-family}]", ["edits[0]", "\"no-such-family\""]),
            ("blocks: [\"0-1\"]\nablate: [\"1.1\"]", ["ablate: unknown field", "Known fields"]),
            ("blocks: [\"0-1\"]\nedits: [{ablate_heads: [\"1.1\"], mode: mean}]", ["edits[0]", "needs `dataset:`"]),
        ]
        for (n, (text, mentions)) in cases.enumerated() {
            let plan = try writePlan(text, "plan\(n).yaml")
            try expectBadInput(["run", "--plan", plan.path, "--model", tinyHub, "--no-bos", "--prompt", "x"], mentions: [plan.path] + mentions)
        }
        let noBase = try writePlan("base: no-such-model\nblocks: [\"0\"]", "nobase.yaml")
        try expectBadInput(["build", noBase.path, "-o", "x.h5"], mentions: ["nobase.yaml, base", "\"no-such-model\"", "$SCALPEL_MODELS"])
        try expectBadInput(["run", "--model", tinyHub, "--blocks", "0,1.foo", "--prompt", "x"], mentions: ["--blocks", "\"1.foo\""])
        try expectBadInput(["build", scratch.appendingPathComponent("absent.yaml").path], mentions: ["absent.yaml", "no such file"])
    }

    // MARK: Outputs

    func testBuildRefusesToOverwriteWithoutForce() throws {
        let plan = try writePlan("blocks: [\"0-1\"]")
        let output = scratch.appendingPathComponent("model.h5")
        let old = Data("an older file".utf8)
        try old.write(to: output)
        try expectBadInput(["build", plan.path, "--model", tinyHub, "-o", output.path], mentions: [output.path, "--force"])
        XCTAssertEqual(try Data(contentsOf: output), old)

        let forced = try scalpel(["build", plan.path, "--model", tinyHub, "-o", output.path, "--force"])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertEqual(try ModelArchive.load(from: output).blocks.count, 2)
        XCTAssertEqual(try leftovers(), ["model.h5", "plan.yaml"])
    }

    func testUnwritableOutputs() throws {
        let plan = try writePlan("blocks: [\"0\"]")
        let file = scratch.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        let underFile = file.appendingPathComponent("out.h5").path
        try expectBadInput(["build", plan.path, "--model", tinyHub, "-o", underFile], mentions: [underFile, "cannot write"])
        try expectBadInput(["export-hf", "--model", tinyHub, "-o", file.appendingPathComponent("hf").path],
                           mentions: [file.appendingPathComponent("hf").path, "cannot write"])
        if FileManager.default.fileExists(atPath: "/proc/self") {
            try expectBadInput(["build", plan.path, "--model", tinyHub, "-o", "/proc/x.h5"], mentions: ["/proc/x.h5: cannot write"])
        }
        XCTAssertEqual(try leftovers(), ["a-file", "plan.yaml"])
    }

    /// A real write failure: a file-size limit (`ulimit -f`, the signal ignored so write() fails with
    /// EFBIG) stops the archive mid-write, as a full disk would.
    func testWriteFailingMidFileKeepsOldOutput() throws {
        guard FileManager.default.isExecutableFile(atPath: "/bin/sh") else { throw XCTSkip("needs /bin/sh") }
        let plan = try writePlan("blocks: [\"0-1\"]")
        let output = scratch.appendingPathComponent("model.h5")
        XCTAssertEqual(try scalpel(["build", plan.path, "--model", tinyHub, "-o", output.path]).status, 0)
        let old = try Data(contentsOf: output)
        XCTAssertGreaterThan(old.count, 300_000)
        let result = try scalpel(["build", plan.path, "--model", tinyHub, "-o", output.path, "--force"],
                                 shellPrefix: "ulimit -f 200; trap '' XFSZ;")  // 200 blocks: at most 200 KB
        XCTAssertEqual(result.status, 1, result.stderr)
        XCTAssertTrue(result.stderr.hasPrefix("error: \(output.path): cannot write ("), result.stderr)
        XCTAssertEqual(try Data(contentsOf: output), old, "the old archive must be untouched")
        XCTAssertEqual(try leftovers(), ["model.h5", "plan.yaml"], "no temporary file left behind")
    }

    func testBadArchives() throws {
        let future = scratch.appendingPathComponent("future.h5")
        let file = try HDF5File.create(at: future)
        try file.root.setAttribute("format", "scalpel-model")
        try file.root.setAttribute("format_version", 7)
        try file.close()
        try expectBadInput(["run", "--model", future.path, "--prompt", "x"], mentions: [future.path, "format version 7", "reads versions 1–3"])

        let plan = try writePlan("blocks: [\"0-1\"]")
        let archive = scratch.appendingPathComponent("model.h5")
        XCTAssertEqual(try scalpel(["build", plan.path, "--model", tinyHub, "-o", archive.path]).status, 0)
        let half = scratch.appendingPathComponent("half.h5")
        try FileManager.default.copyItem(at: archive, to: half)
        try BadInputFiles.truncate(half, to: try BadInputFiles.size(half) / 2)
        try expectBadInput(["inspect", "--model", half.path], mentions: [half.path, "truncated"])
    }

    func testExportRefusesMLPWithoutLayerNorm() throws {
        let plan = try writePlan("blocks: [\"0\", \"1.mlp.noln\"]")
        let output = scratch.appendingPathComponent("hf")
        try expectBadInput(["export-hf", "--plan", plan.path, "--model", tinyHub, "-o", output.path],
                           mentions: ["cannot be exported", "mlp.noln", "no LayerNorm before its MLP"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: output.path))
    }

    // MARK: Helpers

    func copy(_ fixture: String, as name: String? = nil) throws -> URL {
        let url = scratch.appendingPathComponent(name ?? fixture)
        try FileManager.default.copyItem(at: TestFiles.model(fixture), to: url)
        return url
    }

    /// The scratch folder's files (a `.partial` temporary would show here).
    func leftovers() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted()
    }
}
