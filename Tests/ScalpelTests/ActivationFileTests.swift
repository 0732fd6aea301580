import XCTest
@testable import Scalpel

/// The activation file read back: labelled, padded, streamed in batches, and equal to Hugging Face's
/// `hidden_states` and `attentions` (fixtures from tools/make_fixtures.py).
final class ActivationFileTests: XCTestCase {
    func testTracedActivationsEqualHuggingFace() throws {
        let model = try Checkpoint.load(from: TestFiles.model("odd-head"))
        let reference = try Reference("odd-head")
        let url = TestFiles.temporaryFolder().appendingPathComponent("trace.h5")
        // Several batches, so appends across batches are exercised.
        let trace = ActivationTrace(hooks: HookFilter(["blocks.*.hook_resid_pre", "blocks.1.attn.hook_pattern"]), batchSize: 2)
        var writer = ActivationFile(gzip: 4)
        writer.attributes = ["model": "odd-head"]
        // Every other item has an answer and a corrupted prompt: the file has both, "" where absent.
        let items = reference.prompts.indices.map { p in
            PromptItem(prompt: "prompt \(p)", answer: p % 2 == 0 ? " a\(p)" : nil, corruptedPrompt: p % 2 == 0 ? "corrupted \(p)" : nil)
        }
        let prompts = PromptsGroup(items: items, tokens: reference.prompts, tokenText: { "t\($0)" })
        try writer.write(prompts: prompts, to: try OutputTarget(url, overwrite: false)) { append in
            try trace.run(model, prompts: reference.prompts, append)
        }

        let file = try HDF5File.open(url)
        defer { try? file.close() }
        let root = try file.root
        XCTAssertEqual(try root.stringAttribute("model"), "odd-head")
        let lengths = try root.readInt32("prompts/lengths").values.map(Int.init)
        XCTAssertEqual(lengths, reference.prompts.map(\.count))
        let maxLength = lengths.max()!
        let tokens = try root.readInt32("prompts/tokens")
        XCTAssertEqual(tokens.shape, [reference.prompts.count, maxLength])
        XCTAssertEqual(Array(tokens.values[0..<maxLength]), reference.prompts[0].map(Int32.init) + Array(repeating: -1, count: maxLength - lengths[0]))
        let tokenStrings = try root.dataset("prompts/token_strings")
        XCTAssertEqual(try tokenStrings.shape, [reference.prompts.count, maxLength])
        XCTAssertEqual(Array(try tokenStrings.readStrings()[0..<maxLength]),
                       reference.prompts[0].map { "t\($0)" } + Array(repeating: "", count: maxLength - lengths[0]))
        XCTAssertEqual(try root.readStrings("prompts/answer"), items.map { $0.answer ?? "" })
        XCTAssertEqual(try root.readStrings("prompts/corrupted_prompt"), items.map { $0.corruptedPrompt ?? "" })
        XCTAssertFalse(root.exists("prompts/corrupted_answer"), "no item has one")
        // The groups, and at the root one netCDF dimension scale per dimension name.
        XCTAssertEqual(try root.childNames(), ["activations", "d_model", "head", "key_pos", "pos", "prompt", "prompts", "query_pos"])
        XCTAssertEqual(try root.readInt32("pos").values, (0..<maxLength).map(Int32.init))
        XCTAssertEqual(try root.dataset("pos").stringAttribute("CLASS"), "DIMENSION_SCALE")
        XCTAssertTrue(try root.dataset("activations/blocks.2.hook_resid_pre").hasAttribute("DIMENSION_LIST"))

        let resid = try root.dataset("activations/blocks.2.hook_resid_pre")
        XCTAssertEqual(try resid.shape, [reference.prompts.count, maxLength, 48])
        XCTAssertEqual(try resid.stringAttribute("dims"), "prompt,pos,d_model")
        XCTAssertEqual(try resid.dimensionLabels(), ["prompt", "pos", "d_model"])
        XCTAssertEqual(try resid.chunkShape, [1, maxLength, 48])
        XCTAssertTrue(try resid.isCompressed)
        let pattern = try root.dataset("activations/blocks.1.attn.hook_pattern")
        XCTAssertEqual(try pattern.stringAttribute("dims"), "prompt,head,query_pos,key_pos")

        for (p, prompt) in reference.prompts.enumerated() {
            let n = prompt.count
            let row = try resid.readTensor(rows: p..<(p + 1))
            let real = Tensor(shape: [n, 48], data: Array(row.scalars[0..<(n * 48)]))
            assertClose(real, try XCTUnwrap(reference.tensor("hf.hidden_states.2", p)), "hidden_states.2 prompt \(p)")
            XCTAssertTrue(row.scalars[(n * 48)...].allSatisfy(\.isNaN), "padding is NaN")
            let heads = try pattern.readTensor(rows: p..<(p + 1)).reshaped([4, maxLength, maxLength])
            let expected = try XCTUnwrap(reference.tensor("hf.attentions.1", p))
            let cropped = Tensor(shape: [4, n, n]) { out in
                for h in 0..<4 { for q in 0..<n { for k in 0..<n { out[(h * n + q) * n + k] = heads[flat: (h * maxLength + q) * maxLength + k] } } }
            }
            assertClose(cropped, expected, "attentions.1 prompt \(p)")
        }
    }

    func testUnknownHookNamesTheClosestValidOnes() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        XCTAssertThrowsError(try HookFilter(["blocks.*.hook_resid_pots"]).resolve(in: model)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains("blocks.*.hook_resid_pots"), message)
            XCTAssertTrue(message.contains("blocks.*.hook_resid_post"), message)
        }
    }

    func testNothingIsLeftBehindWhenTheRunFails() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let folder = TestFiles.temporaryFolder()
        let url = folder.appendingPathComponent("trace.h5")
        let trace = ActivationTrace(hooks: HookFilter(["hook_embed"]))
        // The second prompt is longer than n_positions (32): the run fails after the file was opened.
        let tokens = [[999, 1], Array(repeating: 5, count: 40)]
        let prompts = PromptsGroup(items: [PromptItem(prompt: "a"), PromptItem(prompt: "b")], tokens: tokens, tokenText: model.tokenText)
        XCTAssertThrowsError(try ActivationFile().write(prompts: prompts, to: try OutputTarget(url, overwrite: false)) { append in
            try trace.run(model, prompts: tokens, append)
        })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [])
    }
}
