import XCTest
@testable import Scalpel

/// The forward pass in stages: starting at any block from a cached residual, stopping after any
/// hook, and unembedding only some columns. The full run is the reference for each.
final class RunSpanTests: XCTestCase {
    /// Prompts of different lengths in one packed batch, on models with and without a tokenizer.
    let batches: [(model: String, prompts: [[Int]])] = [
        ("tiny-hub", [[999, 5, 17, 3, 8], [999, 2], [999, 40, 41, 42, 43, 44, 45]]),
        ("odd-head", [[699, 1, 2, 3, 4], [699, 650, 12]]),
    ]

    func testStartingAtEveryBlockFromTheCachedResidualGivesBitIdenticalLogits() throws {
        for (name, prompts) in batches {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let full = try model.run(prompts, capture: HookFilter(["blocks.*.hook_resid_pre", "blocks.*.hook_resid_post"]), logitsAt: .all)
            for block in 0...model.blocks.count {
                let residual = block < model.blocks.count
                    ? try XCTUnwrap(full.cache[.residPre(block)])
                    : try XCTUnwrap(full.cache[.residPost(block - 1)])
                let started = try model.run(prompts, logitsAt: .all, span: RunSpan(start: ResidualStart(block: block, residual: residual)))
                for p in prompts.indices {
                    XCTAssertTrue(started.logits[p].isIdentical(to: full.logits[p]), "\(name): start at block \(block), prompt \(p)")
                }
            }
        }
    }

    func testStoppingEarlyGivesBitIdenticalCachesAndNothingAfterTheStop() throws {
        for (name, prompts) in batches {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let full = try model.run(prompts, capture: HookFilter(["*"]))
            let order = HookPoint.all(in: model)
            for (index, stop) in order.enumerated() {
                let stopped = try model.run(prompts, capture: HookFilter(["*"]), span: RunSpan(stop: stop))
                XCTAssertTrue(stopped.logits.isEmpty, "\(name): no logits after stopping at \(stop)")
                XCTAssertEqual(stopped.cache.points, Array(order[...index]), "\(name): hooks up to \(stop)")
                for point in stopped.cache.points {
                    for p in prompts.indices {
                        let a = try XCTUnwrap(stopped.cache[point, p]), b = try XCTUnwrap(full.cache[point, p])
                        XCTAssertTrue(a.isIdentical(to: b), "\(name): \(point) of prompt \(p), stopped at \(stop)")
                    }
                }
            }
        }
    }

    func testInterventionsWorkInAStartedRun() throws {
        let model = try Checkpoint.load(from: TestFiles.model("odd-head"))
        let prompts = [[699, 1, 2, 3, 4], [699, 650, 12]]
        let zeroHead: Intervention = { _, _, z in
            let (positions, heads, dHead) = (z.shape[0], z.shape[1], z.shape[2])
            z.withMutableBuffer { buffer in
                for pos in 0..<positions { for j in 0..<dHead { buffer[(pos * heads + 2) * dHead + j] = 0 } }
            }
        }
        let doubleResid: Intervention = { _, _, x in x.withMutableBuffer { for i in $0.indices { $0[i] *= 2 } } }
        let edits: [(HookFilter, Intervention)] = [(HookFilter([.residPre(1)]), doubleResid), (HookFilter([.z(2)]), zeroHead)]
        let full = try model.run(prompts, capture: HookFilter([.residPre(1)]), interventions: edits, logitsAt: .all)
        // The cache holds resid_pre 1 after the intervention; start from the one before it.
        let clean = try model.run(prompts, capture: HookFilter([.residPre(1)]))
        let started = try model.run(prompts, interventions: edits, logitsAt: .all,
                                    span: RunSpan(start: ResidualStart(block: 1, residual: try XCTUnwrap(clean.cache[.residPre(1)]))))
        for p in prompts.indices { XCTAssertTrue(started.logits[p].isIdentical(to: full.logits[p]), "prompt \(p)") }
        XCTAssertFalse(started.logits[0].isIdentical(to: clean.logits[0].rows(0..<1)), "the interventions changed something")
    }

    func testOnlyTheAskedColumnsAreUnembedded() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let prompts = [[999, 5, 17, 3, 8], [999, 2]]
        let columns = [17, 3, 998, 17]
        let full = try model.run(prompts, logitsAt: .all)
        let some = try model.run(prompts, logitsAt: .all, span: RunSpan(columns: columns))
        XCTAssertEqual(some.columns, columns)
        for p in prompts.indices {
            XCTAssertEqual(some.logits[p].shape, [prompts[p].count, columns.count])
            for row in 0..<prompts[p].count {
                for (c, token) in columns.enumerated() {
                    XCTAssertEqual(some.logits[p][flat: row * columns.count + c], full.logits[p][flat: row * model.vocabSize + token],
                                   accuracy: 1e-5, "prompt \(p) row \(row) token \(token)")
                }
            }
        }
    }

    func testAPrefixOfCachedKeysAndValuesGivesTheFullRunsNumbers() throws {
        for (name, prompts) in batches {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let full = try model.run(prompts, capture: HookFilter(["blocks.*.attn.hook_k", "blocks.*.attn.hook_v", "blocks.*.hook_resid_pre", "blocks.*.hook_mlp_out"]), logitsAt: .last)
            for block in 0..<model.blocks.count {
                // Prompt p keeps its first p + 1 positions cached (at most all but one); a second copy keeps one.
                let batch = prompts + prompts
                let lengths = batch.indices.map { min($0 < prompts.count ? $0 + 1 : 1, batch[$0].count - 1) }
                let sources = batch.indices.map { $0 % prompts.count }
                let residual = try batch.indices.map { p in
                    let all = try XCTUnwrap(full.cache[.residPre(block), sources[p]])
                    return all.rows(lengths[p]..<batch[p].count)
                }
                let run = try model.run(batch, capture: HookFilter([.mlpOut(block)]), span: RunSpan(
                    start: ResidualStart(block: block, residual: residual),
                    prefix: KeyValuePrefix(lengths: lengths, sources: sources, cache: full.cache)))
                for p in batch.indices {
                    assertClose(run.logits[p], full.logits[sources[p]], tolerance: 1e-5, "\(name) block \(block) prompt \(p)")
                    let mlpOut = try XCTUnwrap(run.cache[.mlpOut(block), p]), expected = try XCTUnwrap(full.cache[.mlpOut(block), sources[p]])
                    XCTAssertEqual(mlpOut.shape[0], batch[p].count - lengths[p], "token-wise hooks see the computed rows")
                    assertClose(mlpOut, expected.rows(lengths[p]..<batch[p].count), tolerance: 1e-5, "\(name) mlp_out \(block) prompt \(p)")
                }
            }
        }
    }

    func testSharedFirstTokensAreComputedOnceWithTheFullRunsNumbers() throws {
        XCTAssertEqual(Model.sharedFirstTokens([[1, 2, 3]]), 0, "one prompt shares nothing")
        XCTAssertEqual(Model.sharedFirstTokens([[1, 2, 3], [2, 2, 3]]), 0)
        XCTAssertEqual(Model.sharedFirstTokens([[1, 2, 3], [1, 2, 4, 5]]), 2)
        XCTAssertEqual(Model.sharedFirstTokens([[1, 2], [1, 2, 4, 5]]), 1, "each prompt keeps a token to compute")
        XCTAssertEqual(Model.sharedFirstTokens([[1, 2, 3], [1, 2, 3]]), 2)
        XCTAssertEqual(Model.sharedFirstTokens([[7], [7]]), 0)
        for (name, prompts) in batches + [("tiny-hub", [[999, 5, 17, 3], [999, 5, 17, 9, 9], [999, 5, 2]])] {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let hooks = HookFilter(["hook_embed", "hook_pos_embed", "blocks.*.attn.hook_z", "blocks.*.hook_mlp_out", "ln_final.hook_scale"])
            let full = try model.run(prompts, capture: hooks, logitsAt: .last)
            let shared = try model.runSharingFirstTokens(prompts, capture: hooks)
            let common = Model.sharedFirstTokens(prompts)
            XCTAssertGreaterThan(common, 0)
            XCTAssertEqual(shared.computedFrom, [0] + Array(repeating: common, count: prompts.count - 1))
            // Positions read stay computed: logits at every position, or rows read from position 1.
            XCTAssertEqual(try model.runSharingFirstTokens(prompts, logitsAt: .all).computedFrom, prompts.map { _ in 0 })
            XCTAssertEqual(try model.runSharingFirstTokens(prompts, logitsAt: .positions([]), readingFrom: 1).computedFrom,
                           [0] + Array(repeating: 1, count: prompts.count - 1))
            XCTAssertEqual(shared.cache.points, full.cache.points)
            // The AVX-512 kernels give a row the same bits in any batch; sgemm, which also computes
            // the unembedding (x · W_Uᵀ), may round differently for a different number of rows.
            let tolerance: Float = Kernels.avx512Available ? 0 : 1e-5
            for p in prompts.indices {
                assertClose(shared.logits[p], full.logits[p], tolerance: 1e-5, "\(name) logits of prompt \(p)")
                for point in full.cache.points {
                    let rows = try XCTUnwrap(shared.cache[point, p]), all = try XCTUnwrap(full.cache[point, p])
                    XCTAssertEqual(shared.capturedRow(prompts[p].count - 1, prompt: p), rows.shape[0] - 1, "the last position's row")
                    assertClose(rows, all.rows(shared.computedFrom[p]..<prompts[p].count), tolerance: tolerance, "\(name) \(point.name) prompt \(p)")
                }
            }
        }
    }

    func testReplacedHeadsAreSkippedAndChangeNothing() throws {
        // The batches above (prompts of different lengths), and prompts of one length, which share the
        // projection of their replaced heads per position when the replacements agree.
        let sameLength = [[999, 5, 17, 3], [999, 6, 18, 4], [999, 7, 19, 5], [999, 8, 20, 6]]
        for (name, prompts) in batches + [("tiny-hub", sameLength)] {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let dHead = model.blocks[1].attention!.dHead
            // Prompt 0 replaces heads 0 and 2 of block 1, the others only head 1: per-prompt lists.
            let replaced: [Set<Int>] = prompts.indices.map { $0 == 0 ? [0, 2] : [1] }
            for varying in [false, true] {
                // The same value for every prompt (a circuit's means), or one per prompt.
                let patch: Intervention = { _, p, z in
                    let mean = Tensor(shape: [dHead], data: Array(repeating: varying ? 0.25 * Float(p + 1) : 0.25, count: dHead))
                    Ablation.intervention(Dictionary(uniqueKeysWithValues: replaced[p].map { ($0, Ablation(.pooledMean(mean))) }))(.z(1), p, &z)
                }
                let computed = try model.run(prompts, interventions: [(HookFilter([.z(1)]), patch)], logitsAt: .all)
                let skipped = try model.run(prompts, interventions: [(HookFilter([.z(1)]), patch)], logitsAt: .all,
                                            span: RunSpan(replacedHeads: [1: replaced]))
                // Projected per position or in another order than the whole product: equal to float rounding.
                for p in prompts.indices { assertClose(skipped.logits[p], computed.logits[p], tolerance: 1e-5, "\(name) varying \(varying) prompt \(p)") }
            }
            // Without the intervention the skipped heads' z stays NaN, so a caller that forgets to replace it sees it.
            let forgotten = try model.run(prompts, span: RunSpan(replacedHeads: [1: replaced]))
            XCTAssertTrue(forgotten.logits.allSatisfy { $0.buffer.contains { $0.isNaN } }, name)
            // A hook reading the block's queries makes it compute every head: the hook sees real values.
            let captured = try model.run(prompts, capture: HookFilter([.q(1)]), span: RunSpan(replacedHeads: [1: replaced]))
            let plain = try model.run(prompts, capture: HookFilter([.q(1)]))
            for p in prompts.indices { XCTAssertTrue(try XCTUnwrap(captured.cache[.q(1), p]).isIdentical(to: try XCTUnwrap(plain.cache[.q(1), p]))) }
            XCTAssertThrowsError(try model.run(prompts, span: RunSpan(replacedHeads: [1: [[0]]]))) {
                XCTAssertEqual($0 as? RunError, .replacedHeadsMismatch(block: 1, lists: 1, prompts: prompts.count))
            }
        }
    }

    func testBadSpansAreRefusedWithTheirReason() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let prompts = [[999, 5, 17]]
        let residual = [Tensor(zeros: [3, model.dModel])]
        XCTAssertThrowsError(try model.run(prompts, span: RunSpan(start: ResidualStart(block: 3, residual: residual)))) {
            XCTAssertEqual($0 as? RunError, .startOutOfRange(block: 3, blocks: 2))
        }
        XCTAssertThrowsError(try model.run(prompts, span: RunSpan(start: ResidualStart(block: 1, residual: [Tensor(zeros: [2, 64])])))) {
            XCTAssertEqual($0 as? RunError, .startResidualMismatch(index: 0, expected: [3, 64], got: [2, 64]))
        }
        XCTAssertThrowsError(try model.run(prompts, span: RunSpan(start: ResidualStart(block: 1, residual: residual), stop: .mlpOut(0)))) {
            XCTAssertEqual($0 as? RunError, .stopBeforeStart(hook: "blocks.0.hook_mlp_out", start: 1))
        }
        XCTAssertThrowsError(try model.run(prompts, span: RunSpan(stop: .z(5)))) {
            XCTAssertEqual($0 as? RunError, .stopNotInModel(hook: "blocks.5.attn.hook_z"))
        }
        XCTAssertThrowsError(try model.run(prompts, span: RunSpan(columns: [1000]))) {
            XCTAssertEqual($0 as? RunError, .columnOutOfRange(token: 1000, vocab: 1000))
        }
        // A prefix from the same batch: the source must begin with the same tokens and compute them.
        let pair = [[999, 5, 17], [999, 6, 17]]
        for (lengths, sources, culprit) in [([0, 2], [0, 0], (2, 2, 1)), ([1, 1], [1, 0], (1, 1, 2)), ([0, 1], [0, 5], (1, 2, 6))] {
            XCTAssertThrowsError(try model.run(pair, span: RunSpan(prefix: .sameBatch(lengths: lengths, sources: sources)))) {
                XCTAssertEqual($0 as? RunError, .prefixMismatch(
                    reason: "the first \(culprit.0) tokens of prompt \(culprit.1) are not those of prompt \(culprit.2) of the batch, computed whole"))
            }
        }
    }
}
