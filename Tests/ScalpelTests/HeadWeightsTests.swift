import XCTest
@testable import Scalpel

/// Per-head weights in TransformerLens shapes against the checkpoint's own fused HF tensors, and
/// the OV and QK circuits against what the forward pass computes.
final class HeadWeightsTests: XCTestCase {
    /// W_Q[h][i, j] = c_attn[i, h·d_head + j] (K and V at offsets d and 2d), b likewise,
    /// W_O[h][j, c] = c_proj[h·d_head + j, c], read straight from the safetensors file.
    func testPerHeadWeightsAreSlicesOfTheFusedCheckpointTensors() throws {
        for (name, prefix) in [("tiny-hub", ""), ("odd-head", "transformer.")] {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let file = try SafetensorsFile(url: TestFiles.model(name).appendingPathComponent("model.safetensors"))
            let d = model.dModel
            for (i, block) in model.blocks.enumerated() {
                let attention = try XCTUnwrap(block.attention)
                let heads = model.config.nHead, dh = d / heads
                let cAttn = try file.tensor("\(prefix)h.\(i).attn.c_attn.weight").scalars
                let cAttnBias = try file.tensor("\(prefix)h.\(i).attn.c_attn.bias").scalars
                let cProj = try file.tensor("\(prefix)h.\(i).attn.c_proj.weight").scalars
                let stacked = attention.weights
                for h in 0..<heads {
                    for (k, projection) in HeadProjection.allCases.enumerated() {
                        let w = attention.inputWeight(projection, head: h), b = attention.inputBias(projection, head: h)
                        XCTAssertEqual(w.shape, [d, dh])
                        XCTAssertEqual(b.shape, [dh])
                        let expected = (0..<d).flatMap { r in (0..<dh).map { j in cAttn[r * 3 * d + k * d + h * dh + j] } }
                        XCTAssertEqual(w.scalars, expected, "\(name) block \(i) head \(h) \(projection)")
                        XCTAssertEqual(b.scalars, Array(cAttnBias[(k * d + h * dh)..<(k * d + (h + 1) * dh)]))
                        XCTAssertEqual(stacked.weight(projection).scalars[(h * d * dh)..<((h + 1) * d * dh)].map { $0 }, expected)
                        XCTAssertEqual(stacked.bias(projection).scalars[(h * dh)..<((h + 1) * dh)].map { $0 }, b.scalars)
                    }
                    let wO = attention.outputWeight(head: h)
                    XCTAssertEqual(wO.shape, [dh, d])
                    XCTAssertEqual(wO.scalars, Array(cProj[(h * dh * d)..<((h + 1) * dh * d)]), "\(name) block \(i) W_O[\(h)]")
                }
                XCTAssertEqual(stacked.W_Q.shape, [heads, d, dh])
                XCTAssertEqual(stacked.W_O.shape, [heads, dh, d])
                XCTAssertEqual(stacked.W_O.scalars, cProj)
            }
        }
    }

    func testFusingPerHeadWeightsGivesBackTheHuggingFaceTensors() throws {
        let model = try Checkpoint.load(from: TestFiles.model("odd-head"))
        for block in model.blocks {
            let attention = try XCTUnwrap(block.attention)
            let rebuilt = AttentionHalf(ln: attention.ln, weights: attention.weights)
            XCTAssertTrue(rebuilt.qkvWeight.isIdentical(to: attention.qkvWeight))
            XCTAssertTrue(rebuilt.qkvBias.isIdentical(to: attention.qkvBias))
            XCTAssertTrue(rebuilt.outWeight.isIdentical(to: attention.outWeight))
            XCTAssertEqual(rebuilt.nHead, attention.nHead)
        }
    }

    /// On a one-token prompt every head attends only to that token (pattern 1), so
    /// z[0, h] = ln1(x) · W_V[h] + b_V[h] and result[0, h] = z[0, h] · W_O[h]
    ///        = OV(ln1(x)) + b_V[h] · W_O[h].
    /// ln1(x) is rebuilt from the captured `ln1.hook_normalized` with ln1's weight and bias; b_V and
    /// W_O come from the fused HF tensors by index.
    func testOVCircuitAppliedToTheLayerNormOutputIsTheHeadsResult() throws {
        for name in ["tiny-hub", "odd-head"] {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let d = model.dModel
            for token in [3, 42] {
                let hooks = model.blocks.indices.flatMap { [HookPoint.ln1Normalized($0), .result($0)] }
                let cache = try model.run([[token]], capture: HookFilter(hooks)).cache
                for (i, block) in model.blocks.enumerated() {
                    let attention = try XCTUnwrap(block.attention)
                    let heads = attention.nHead, dh = d / heads
                    let normalized = try XCTUnwrap(cache[.ln1Normalized(i), 0]).scalars
                    let w = attention.ln.weight.scalars, b = attention.ln.bias.scalars
                    let ln1 = Tensor(shape: [d], data: (0..<d).map { normalized[$0] * w[$0] + b[$0] })
                    let result = try XCTUnwrap(cache[.result(i), 0])
                    XCTAssertEqual(result.shape, [1, heads, d])
                    let out = attention.outWeight.scalars, bias = attention.qkvBias.scalars
                    for h in 0..<heads {
                        let ov = attention.ovCircuit(head: h)
                        XCTAssertEqual(ov.shape, [d, d])
                        var predicted = ov.apply(to: ln1).scalars
                        for c in 0..<d {
                            for j in 0..<dh { predicted[c] += bias[2 * d + h * dh + j] * out[(h * dh + j) * d + c] }
                        }
                        let actual = Tensor(shape: [d], data: Array(result.scalars[(h * d)..<((h + 1) * d)]))
                        assertClose(Tensor(shape: [d], data: predicted), actual, tolerance: 1e-5, "\(name) block \(i) head \(h) token \(token)")
                    }
                }
            }
        }
    }

    /// With the query and key biases set to zero, scores[h, q, k] · sqrt(d_head) = l_q · QK · l_kᵀ
    /// for the ln1 outputs l of a real run (the causal mask leaves k ≤ q).
    func testQKCircuitGivesTheAttentionScores() throws {
        var model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let d = model.dModel
        for i in model.blocks.indices {
            let p = model.blocks[i].attention!.qkvBias.mutablePointer
            p.update(repeating: 0, count: 2 * d)  // b_Q and b_K of every head; b_V stays
        }
        let prompt = [5, 17, 3, 99, 42]
        let n = prompt.count
        let hooks = model.blocks.indices.flatMap { [HookPoint.ln1Normalized($0), .attnScores($0)] }
        let cache = try model.run([prompt], capture: HookFilter(hooks)).cache
        for (i, block) in model.blocks.enumerated() {
            let attention = try XCTUnwrap(block.attention)
            let heads = attention.nHead, dh = d / heads
            let normalized = try XCTUnwrap(cache[.ln1Normalized(i), 0]).scalars
            let w = attention.ln.weight.scalars, b = attention.ln.bias.scalars
            let ln1 = Tensor(shape: [n, d], data: (0..<(n * d)).map { normalized[$0] * w[$0 % d] + b[$0 % d] })
            let scores = try XCTUnwrap(cache[.attnScores(i), 0]).scalars
            for h in 0..<heads {
                let left = attention.qkCircuit(head: h).apply(to: ln1).scalars  // [n, d]: l_q · QK
                for q in 0..<n {
                    for k in 0...q {
                        var bilinear: Float = 0
                        for c in 0..<d { bilinear += left[q * d + c] * ln1.scalars[k * d + c] }
                        let actual = scores[(h * n + q) * n + k] * Float(dh).squareRoot()
                        XCTAssertEqual(bilinear, actual, accuracy: 1e-4 * max(1, abs(actual)), "block \(i) head \(h) q \(q) k \(k)")
                    }
                }
            }
        }
    }

    func testDenseIsTheProductOfTheFactors() {
        let a = Tensor(shape: [3, 2], data: [1, 2, 3, 4, 5, 6]), b = Tensor(shape: [2, 3], data: [1, 0, -1, 2, 1, 0])
        let factored = FactoredMatrix(left: a, right: b)
        // [[1·1+2·2, 1·0+2·1, 1·(−1)+0], [3+8, 4, −3], [5+12, 6, −5]]
        XCTAssertEqual(factored.dense().scalars, [5, 2, -1, 11, 4, -3, 17, 6, -5])
        XCTAssertEqual(factored.apply(to: Tensor(shape: [2, 3], data: [1, 0, 0, 0, 1, 1])).scalars, [5, 2, -1, 28, 10, -8])
    }
}
