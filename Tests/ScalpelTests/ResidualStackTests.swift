import XCTest
@testable import Scalpel

/// Accumulated and decomposed residual streams (TransformerLens `accumulated_resid`,
/// `decompose_resid`) against the hooks of a real run, and the final LayerNorm applied to a stack.
final class ResidualStackTests: XCTestCase {
    func run(_ model: Model, _ prompts: [[Int]]) throws -> ActivationCache {
        try model.run(prompts, capture: HookFilter(["*"])).cache
    }

    func testAccumulatedRowsAreTheCapturedResidualStreamsExactly() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let prompts = [[5, 17, 3, 99, 42], [8, 1]]
        let cache = try run(model, prompts)
        for includeMid in [false, true] {
            for (p, prompt) in prompts.enumerated() {
                let positions = prompt.count == 2 ? [1] : [0, 2, 4]
                let stack = try ResidualStack(.accumulated(includeMid: includeMid), cache: cache, prompt: p, positions: positions, model: model)
                let expectedLabels = includeMid ? ["0_pre", "0_mid", "1_pre", "1_mid", "final_post"] : ["0_pre", "1_pre", "final_post"]
                XCTAssertEqual(model.blocks.count, 2)
                XCTAssertEqual(stack.labels, expectedLabels)
                XCTAssertEqual(stack.values.shape, [stack.labels.count, positions.count, model.dModel])
                let names = model.blocks.indices.flatMap { i in ["blocks.\(i).hook_resid_pre"] + (includeMid ? ["blocks.\(i).hook_resid_mid"] : []) }
                    + ["blocks.\(model.blocks.count - 1).hook_resid_post"]
                XCTAssertEqual(stack.hooks.map(\.name), names)
                let d = model.dModel
                for (c, name) in names.enumerated() {
                    let captured = try XCTUnwrap(cache[name, p]).scalars
                    for (k, position) in positions.enumerated() {
                        let row = Array(stack.values.scalars[((c * positions.count + k) * d)..<((c * positions.count + k + 1) * d)])
                        XCTAssertEqual(row, Array(captured[(position * d)..<((position + 1) * d)]), "\(name) position \(position)")
                    }
                }
            }
        }
    }

    /// embed + pos_embed + Σ (attn_out + mlp_out) is the final residual: each output carries its bias.
    func testDecomposedComponentsSumToTheFinalResidual() throws {
        var model = try Checkpoint.load(from: TestFiles.model("odd-head"))
        for dropMLP in [false, true] {
            if dropMLP { model.blocks[1].mlp = nil }  // a half-block graph: no 1_mlp_out component
            let prompt = [699, 3, 4, 5, 6]
            let cache = try run(model, [prompt])
            let positions = Array(prompt.indices)
            let stack = try ResidualStack(.decomposed, cache: cache, prompt: 0, positions: positions, model: model)
            var labels = ["embed", "pos_embed"]
            for (i, block) in model.blocks.enumerated() {
                labels.append("\(i)_attn_out")
                if block.mlp != nil { labels.append("\(i)_mlp_out") }
            }
            XCTAssertEqual(stack.labels, labels)
            XCTAssertEqual(stack.labels.count, dropMLP ? 2 + 2 * model.blocks.count - 1 : 2 + 2 * model.blocks.count)
            let d = model.dModel, width = positions.count * d
            var sum = [Float](repeating: 0, count: width)
            for c in stack.labels.indices { for i in 0..<width { sum[i] += stack.values[flat: c * width + i] } }
            let final = try XCTUnwrap(cache[.residPost(model.blocks.count - 1), 0])
            assertClose(Tensor(shape: [positions.count, d], data: sum), final, tolerance: 1e-5, "sum of components, mlp dropped: \(dropMLP)")
        }
    }

    /// Without b, the cached final LayerNorm is linear in the residual: over the decomposed
    /// components it adds up to ln_final(final residual) − b, which the run captured as
    /// `ln_final.hook_normalized` (before w and b). Each row is also checked against
    /// (x − mean(x)) / scale · w computed here in Double.
    func testCachedFinalLayerNormWithoutBiasSplitsTheFinalOneAmongComponents() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let prompt = [5, 17, 3, 99, 42]
        let cache = try run(model, [prompt])
        let positions = [1, 4]
        let stack = try ResidualStack(.decomposed, cache: cache, prompt: 0, positions: positions, model: model)
        let normalized = try stack.finalLayerNorm(.cached, model: model, addBias: false)
        XCTAssertEqual(normalized.shape, stack.values.shape)
        let d = model.dModel, w = model.lnFinal.weight.scalars
        let scales = try XCTUnwrap(cache[.finalScale, 0]).scalars
        let finalNormalized = try XCTUnwrap(cache[.finalNormalized, 0]).scalars
        var sum = [Float](repeating: 0, count: positions.count * d)
        for c in stack.labels.indices {
            for (k, position) in positions.enumerated() {
                let start = (c * positions.count + k) * d
                let x = (0..<d).map { Double(stack.values[flat: start + $0]) }
                let mean = x.reduce(0, +) / Double(d)
                for i in 0..<d {
                    let expected = (x[i] - mean) / Double(scales[position]) * Double(w[i])
                    XCTAssertEqual(Double(normalized[flat: start + i]), expected, accuracy: 1e-5 * max(1, abs(expected)))
                    sum[k * d + i] += normalized[flat: start + i]
                }
            }
        }
        let expected = positions.flatMap { position in (0..<d).map { finalNormalized[position * d + $0] * w[$0] } }
        assertClose(Tensor(shape: [positions.count, d], data: sum), Tensor(shape: [positions.count, d], data: expected),
                    tolerance: 1e-5, "Σ components vs ln_final(x) − b")
    }

    /// The final row normalised either way, with b, then unembedded, is the model's own logits; in a
    /// model without blocks that row is the embedding sum.
    func testFinalRowThroughTheFinalLayerNormGivesTheModelsLogits() throws {
        let full = try Checkpoint.load(from: TestFiles.model("odd-head"))
        var embeddingOnly = full
        embeddingOnly.blocks = []
        for model in [full, embeddingOnly] {
            let prompt = [699, 3, 4, 5, 6]
            let run = try model.run([prompt], capture: HookFilter(ResidualStack.hooksToCapture(.accumulated(includeMid: false), in: model) + [.finalScale]),
                                    logitsAt: .all)
            let stack = try ResidualStack(.accumulated(includeMid: false), cache: run.cache, prompt: 0, positions: Array(prompt.indices), model: model)
            for normalization in LogitLens.Normalization.allCases {
                let normalized = try stack.finalLayerNorm(normalization, model: model, addBias: true)
                let last = stack.labels.count - 1, rows = prompt.count * model.dModel
                let finalRows = Tensor(shape: [prompt.count, model.dModel], data: Array(normalized.scalars[(last * rows)..<((last + 1) * rows)]))
                assertClose(model.unembedRows(finalRows), run.logits[0], tolerance: 1e-5, "\(normalization), \(model.blocks.count) blocks")
            }
        }
    }

    func testAHookThatWasNotCapturedIsAnError() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let cache = try model.run([[1, 2, 3]], capture: HookFilter([HookPoint.residPre(0), .pattern(0)])).cache
        XCTAssertThrowsError(try ResidualStack(.accumulated(includeMid: false), cache: cache, prompt: 0, positions: [2], model: model)) {
            XCTAssertEqual($0 as? ActivationCacheError, .notCaptured("blocks.1.hook_resid_pre"))
        }
        let stack = try ResidualStack(.accumulated(includeMid: false), cache: try run(model, [[1, 2, 3]]), prompt: 0, positions: [2], model: model)
        var withoutScale = stack
        withoutScale.finalScales = nil
        XCTAssertThrowsError(try withoutScale.finalLayerNorm(.cached, model: model, addBias: true)) {
            XCTAssertEqual($0 as? ActivationCacheError, .notCaptured("ln_final.hook_scale"))
        }
        XCTAssertThrowsError(try cache.lastPositions(.pattern(0))) {
            XCTAssertEqual($0 as? ActivationCacheError, .notPerPosition("blocks.0.attn.hook_pattern"))
        }
    }

    func testLastPositionsStackEachPromptsLastRow() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let prompts = [[5, 17, 3], [8], [4, 4, 4, 9]]
        let cache = try model.run(prompts, capture: HookFilter([HookPoint.z(1)])).cache
        let last = try cache.lastPositions(.z(1))
        let d = model.dModel
        XCTAssertEqual(last.shape, [3, d])
        for (p, prompt) in prompts.enumerated() {
            let z = try XCTUnwrap(cache[.z(1), p]).scalars
            XCTAssertEqual(Array(last.scalars[(p * d)..<((p + 1) * d)]), Array(z[((prompt.count - 1) * d)..<(prompt.count * d)]))
        }
    }
}
