import XCTest
@testable import Scalpel

/// The forward pass against Hugging Face `transformers` (fixtures from tools/make_fixtures.py):
/// logits, every hook point, and HF's own hidden_states and attentions, with the prompts run as one batch.
final class ForwardParityTests: XCTestCase {
    static let models = ["tiny-hub", "odd-head", "sharded-f16", "bf16"]

    func testLogitsMatchHuggingFaceBatched() throws {
        for name in Self.models {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let reference = try Reference(name)
            let result = try model.run(reference.prompts, logitsAt: .all)
            for (p, prompt) in reference.prompts.enumerated() {
                let expected = try XCTUnwrap(reference.tensor("logits", p))
                assertClose(result.logits[p], expected, "\(name) logits prompt \(p)")
                for position in 0..<prompt.count {
                    let width = model.vocabSize
                    XCTAssertEqual(argmax(result.logits[p].scalars[(position * width)..<((position + 1) * width)]),
                                   argmax(expected.scalars[(position * width)..<((position + 1) * width)]),
                                   "\(name) argmax prompt \(p) position \(position)")
                }
            }
        }
    }

    func testLogitsMatchHuggingFaceInALargeBatch() throws {
        // The fixture batches are a few rows each, which the few-rows kernel computes; repeated four
        // times they take OpenBLAS's sgemm instead, and must match just as well.
        for name in Self.models {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let reference = try Reference(name)
            let prompts = Array(repeating: reference.prompts, count: 4).flatMap { $0 }
            XCTAssertGreaterThan(prompts.map(\.count).reduce(0, +), Kernels.fewRowsLimit)
            let result = try model.run(prompts, logitsAt: .all)
            for p in prompts.indices {
                let expected = try XCTUnwrap(reference.tensor("logits", p % reference.prompts.count))
                assertClose(result.logits[p], expected, "\(name) logits prompt \(p) in a batch of \(prompts.count)")
            }
        }
    }

    func testEveryHookMatchesHuggingFace() throws {
        for name in Self.models {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let reference = try Reference(name)
            let result = try model.run(reference.prompts, capture: HookFilter(["*"]))
            let hooks = HookPoint.all(in: model)
            XCTAssertEqual(Set(result.cache.points), Set(hooks), "\(name): captured hooks")
            var compared = 0
            for hook in hooks {
                for p in reference.prompts.indices {
                    guard let expected = try reference.tensor(hook.name, p) else { continue }
                    assertClose(try XCTUnwrap(result.cache[hook, p]), expected, "\(name) \(hook) prompt \(p)")
                    compared += 1
                }
            }
            XCTAssertEqual(compared, hooks.count * reference.prompts.count, "\(name): every hook has a reference")
        }
    }

    func testHiddenStatesAndAttentionsEqualHuggingFaceOutputs() throws {
        let model = try Checkpoint.load(from: TestFiles.model("odd-head"))
        let reference = try Reference("odd-head")
        let result = try model.run(reference.prompts, capture: HookFilter(["blocks.*.hook_resid_pre", "blocks.*.attn.hook_pattern"]))
        for p in reference.prompts.indices {
            for layer in 0..<model.blocks.count {
                assertClose(try XCTUnwrap(result.cache[.residPre(layer), p]),
                            try XCTUnwrap(reference.tensor("hf.hidden_states.\(layer)", p)), "hidden_states.\(layer)")
                assertClose(try XCTUnwrap(result.cache[.pattern(layer), p]),
                            try XCTUnwrap(reference.tensor("hf.attentions.\(layer)", p)), "attentions.\(layer)")
            }
        }
    }

    func testBatchingDoesNotChangeResults() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let prompts: [[Int]] = [[999, 5, 6, 7, 8, 9, 10], [999, 1], [999, 300, 301]]
        let together = try model.run(prompts, logitsAt: .all)
        for (p, prompt) in prompts.enumerated() {
            let alone = try model.run([prompt], logitsAt: .all)
            assertClose(together.logits[p], alone.logits[0], tolerance: 1e-6, "prompt \(p) alone vs batched")
        }
    }

    func testInterventionReplacesActivationDownstream() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let prompt = [999, 552, 954, 982]
        // Zeroing the last block's MLP output must give the logits of resid_mid through ln_final + unembed.
        let patched = try model.run([prompt], capture: HookFilter([.residMid(1)]),
                                    interventions: [(HookFilter([.mlpOut(1)]), { _, _, activation in
                                        activation = Tensor(zeros: activation.shape)
                                    })], logitsAt: .all)
        let mid = try XCTUnwrap(patched.cache[.residMid(1), 0])
        let expected = model.unembedRows(model.finalLayerNorm(mid))
        assertClose(patched.logits[0], expected, tolerance: 1e-6, "logits after zeroing mlp_out")
        let clean = try model.run([prompt], logitsAt: .all)
        XCTAssertFalse(clean.logits[0].isIdentical(to: patched.logits[0]))
    }

    func testInterventionSeesEachPromptSeparately() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        var seen: [(Int, [Int])] = []
        _ = try model.run([[999, 1, 2], [999]], interventions: [(HookFilter(["blocks.0.attn.hook_pattern", "hook_embed"]), { hook, p, t in
            seen.append((p, t.shape))
        })])
        XCTAssertEqual(seen.map(\.0), [0, 1, 0, 1])
        XCTAssertEqual(seen.map(\.1), [[3, 64], [1, 64], [4, 3, 3], [4, 1, 1]])
    }
}
