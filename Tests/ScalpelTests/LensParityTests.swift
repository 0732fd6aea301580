import XCTest
@testable import Scalpel

/// Logit-lens probabilities against the TransformerLens-style computation in PyTorch
/// (tools/make_fixtures.py: `lens.recomputed`, `lens.cached`, `lens.recomputed_with_mid`).
final class LensParityTests: XCTestCase {
    /// Probabilities of every token in every cell, [rows, positions, vocab], from top-k = vocab.
    func probabilities(_ result: LensPrompt, vocab: Int) -> Tensor {
        let rows = result.cells.count, positions = result.positions.count
        return Tensor(shape: [rows, positions, vocab]) { out in
            for r in 0..<rows { for (k, cell) in result.cells[r].enumerated() {
                for score in cell.top { out[(r * positions + k) * vocab + score.id] = Float(score.prob) }
            } }
        }
    }

    func check(_ model: String, normalization: LogitLens.Normalization, mid: Bool, key: String) throws {
        let checkpoint = try Checkpoint.load(from: TestFiles.model(model))
        let reference = try Reference(model)
        XCTAssertFalse(reference.lensPrompts.isEmpty)
        var lens = LogitLens()
        lens.normalization = normalization
        lens.includeMid = mid
        lens.positions = .all
        lens.topK = checkpoint.vocabSize
        let inputs = reference.lensPrompts.map { LensInput(text: "", tokens: reference.prompts[$0]) }
        // In one unembedding product, and in chunks of 7 rows (the fixture batches have more).
        for chunkRows in [nil, 7] {
            if let chunkRows { lens.logitsChunkBytes = chunkRows * checkpoint.vocabSize * MemoryLayout<Float>.size }
            let result = try lens.run(checkpoint, prompts: inputs)
            XCTAssertEqual(result.rows.count, mid ? 2 * checkpoint.blocks.count + 1 : checkpoint.blocks.count + 1)
            for (k, p) in reference.lensPrompts.enumerated() {
                assertClose(probabilities(result.prompts[k], vocab: checkpoint.vocabSize),
                            try XCTUnwrap(reference.tensor(key, p)), "\(model) \(key) prompt \(p), chunks of \(chunkRows ?? 0) rows")
            }
        }
    }

    func testRecomputedLayerNorm() throws {
        try check("tiny-hub", normalization: .recomputed, mid: false, key: "lens.recomputed")
        try check("odd-head", normalization: .recomputed, mid: false, key: "lens.recomputed")
    }

    func testCachedLayerNorm() throws {
        try check("tiny-hub", normalization: .cached, mid: false, key: "lens.cached")
        try check("odd-head", normalization: .cached, mid: false, key: "lens.cached")
    }

    func testWithResidMidRows() throws {
        try check("odd-head", normalization: .recomputed, mid: true, key: "lens.recomputed_with_mid")
    }

    func testFinalRowEqualsModelOutput() throws {
        let model = try Checkpoint.load(from: TestFiles.model("odd-head"))
        let prompt = [699, 3, 4, 5, 6]
        var lens = LogitLens()
        lens.topK = 3
        let result = try lens.run(model, prompts: [LensInput(text: "", tokens: prompt, target: 7, foil: 6)])
        let logits = try model.run([prompt]).logits[0]
        let top = Array(logits.scalars.indices.sorted { logits.scalars[$0] > logits.scalars[$1] }.prefix(3))
        XCTAssertEqual(result.prompts[0].cells.last![0].top.map(\.id), top)
        let cell = result.prompts[0].cells.last![0]
        XCTAssertEqual(cell.logitDiff!, logits.scalars[7] - logits.scalars[6], accuracy: 1e-4)
        XCTAssertEqual(cell.target!.rank, logits.scalars.filter { $0 > logits.scalars[7] }.count)
    }
}
