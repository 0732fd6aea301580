import XCTest
@testable import Scalpel

/// Hook points as values: names, parsing, shapes, filters, and the hooks computed only on request.
final class HookPointTests: XCTestCase {
    func testNamesAreTransformerLensNamesAndParseBack() throws {
        XCTAssertEqual(HookPoint.z(9).name, "blocks.9.attn.hook_z")
        XCTAssertEqual(HookPoint.result(0).name, "blocks.0.attn.hook_result")
        XCTAssertEqual(HookPoint.ln2Normalized(3).name, "blocks.3.ln2.hook_normalized")
        XCTAssertEqual(HookPoint.embed.name, "hook_embed")
        XCTAssertEqual(HookPoint.finalScale.name, "ln_final.hook_scale")
        let model = try Checkpoint.load(from: TestFiles.model("odd-head"))
        let points = HookPoint.all(in: model)
        XCTAssertEqual(points.count, 4 + 18 * model.blocks.count)
        XCTAssertEqual(Set(points.map(\.name)).count, points.count, "names are unique")
        for point in points {
            XCTAssertEqual(HookPoint(name: point.name), point, point.name)
            XCTAssertTrue(point.exists(in: model), point.name)
        }
        for bad in ["", "hook_resid_pre", "blocks.1.hook_embed", "blocks.03.hook_resid_pre", "blocks.+3.hook_resid_pre",
                    "blocks.-1.hook_resid_pre", "blocks.1.attn.hook_nothing", "blocks.1", "blocks..hook_z", "Blocks.1.hook_resid_pre"] {
            XCTAssertNil(HookPoint(name: bad), bad)
        }
        XCTAssertFalse(HookPoint.residPre(model.blocks.count).exists(in: model))
    }

    func testHooksOfAMissingHalfDoNotExist() throws {
        var model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        model.blocks[0].attention = nil
        model.blocks[1].mlp?.ln = nil
        let names = HookPoint.all(in: model).map(\.name)
        XCTAssertFalse(names.contains { $0.hasPrefix("blocks.0.attn.") || $0.hasPrefix("blocks.0.ln1.") || $0 == "blocks.0.hook_attn_out" })
        XCTAssertFalse(names.contains { $0.hasPrefix("blocks.1.ln2.") })
        XCTAssertTrue(names.contains("blocks.1.mlp.hook_pre"))
        let result = try model.run([[999, 3, 4]], capture: HookFilter(["*"]))
        XCTAssertEqual(result.cache.names, names, "every existing hook fires, in the order listed")
    }

    func testEveryCapturedShapeIsTheHooksDescription() throws {
        let model = try Checkpoint.load(from: TestFiles.model("odd-head"))
        let prompts = [[699, 1, 2, 3, 4], [699]]
        let result = try model.run(prompts, capture: HookFilter(["*"]))
        for point in result.cache.points {
            for (p, prompt) in prompts.enumerated() {
                let tensor = try XCTUnwrap(result.cache[point, p])
                XCTAssertEqual(Array(tensor.shape), point.shape(positions: prompt.count, in: model), point.name)
                XCTAssertEqual(tensor.rank, point.dims.count, point.name)
            }
        }
        XCTAssertEqual(HookPoint.result(1).shape(positions: 5, in: model), [5, 4, 48])
        XCTAssertEqual(HookPoint.pattern(1).dims.map(\.rawValue), ["head", "query_pos", "key_pos"])
    }

    func testFiltersResolveToHookPoints() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        XCTAssertEqual(HookFilter(["blocks.*.attn.hook_result"]).points(in: model), [.result(0), .result(1)])
        XCTAssertEqual(HookFilter(["blocks.1.hook_resid_post", "hook_embed"]).points(in: model), [.embed, .residPost(1)])
        XCTAssertEqual(HookFilter([.z(1), .mlpPost(0)]).points(in: model), [.mlpPost(0), .z(1)])
        XCTAssertEqual(HookFilter.none.points(in: model), [])
        XCTAssertEqual(HookFilter(["blocks.9.hook_resid_post"]).points(in: model), [])
        assertError(try HookFilter(["blocks.9.hook_resid_post"]).resolve(in: model), HookError.self,
                    mentions: ["blocks.9.hook_resid_post"])
    }

    func testCacheReadsByHookPointAndByName() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let cache = try model.run([[999, 5, 6]], capture: HookFilter(["blocks.0.hook_resid_post"])).cache
        let byPoint = try XCTUnwrap(cache[.residPost(0), 0])
        XCTAssertTrue(try XCTUnwrap(cache["blocks.0.hook_resid_post", 0]).isIdentical(to: byPoint))
        XCTAssertNil(cache["blocks.0.hook_resid_pre", 0])
        XCTAssertNil(cache["not a hook", 0])
        XCTAssertEqual(cache.names, ["blocks.0.hook_resid_post"])
    }

    func testInterventionsAreToldTheirHookPoint() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        var seen: [HookPoint] = []
        _ = try model.run([[999, 1]], interventions: [(HookFilter(["blocks.*.hook_resid_mid"]), { hook, _, _ in seen.append(hook) })])
        XCTAssertEqual(seen, [.residMid(0), .residMid(1)])
    }

    /// Capturing any hook, the new ones included, changes no logit; neither does an intervention
    /// that changes nothing, except at `hook_result`, whose sum over heads then replaces the fused
    /// output product (a different summation order).
    func testCapturingChangesNoNumber() throws {
        for name in ["tiny-hub", "odd-head"] {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let prompts = try Reference(name).prompts
            let plain = try model.run(prompts, logitsAt: .all)
            let captured = try model.run(prompts, capture: HookFilter(["*"]), logitsAt: .all)
            let allButResult = HookFilter(HookPoint.all(in: model).filter { $0.kind != .result })
            let untouched = try model.run(prompts, interventions: [(allButResult, { _, _, _ in })], logitsAt: .all)
            for p in prompts.indices {
                XCTAssertTrue(captured.logits[p].isIdentical(to: plain.logits[p]), "\(name) prompt \(p) captured")
                XCTAssertTrue(untouched.logits[p].isIdentical(to: plain.logits[p]), "\(name) prompt \(p) intervened")
            }
            // A batch large enough for attention to run its prompts on all cores, against the same
            // batch with its patterns captured, which runs them in order.
            var rng = SeededRandom(seed: 5)
            let many = (0..<64).map { _ in (0..<(8 + Int(rng.next() % UInt64(model.config.nPositions - 7)))).map { _ in Int(rng.next() % UInt64(model.vocabSize)) } }
            let parallel = try model.run(many, logitsAt: .all)
            let inOrder = try model.run(many, capture: HookFilter(["blocks.*.attn.hook_pattern"]), logitsAt: .all)
            for p in many.indices { XCTAssertTrue(parallel.logits[p].isIdentical(to: inOrder.logits[p]), "\(name) prompt \(p) of 64") }
        }
    }

    /// Replacing ln1/ln2 `hook_normalized` by itself is exact: the weight and bias come after it.
    func testNormalizedHookFeedsTheWeightAndBias() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let prompt = [999, 552, 954, 982]
        let plain = try model.run([prompt], logitsAt: .all)
        let same = try model.run([prompt], interventions: [(HookFilter(["blocks.*.ln*.hook_normalized"]), { _, _, _ in })],
                                 logitsAt: .all)
        XCTAssertTrue(same.logits[0].isIdentical(to: plain.logits[0]))
        let doubled = try model.run([prompt], interventions: [(HookFilter([.ln1Normalized(1)]), { _, _, x in
            x = Tensor(shape: x.shape, data: x.scalars.map { $0 * 2 })
        })], logitsAt: .all)
        XCTAssertFalse(doubled.logits[0].isIdentical(to: plain.logits[0]))
    }

    /// An edited `hook_result` becomes attn_out (Σ heads + b_O), as in TransformerLens: zeroing one
    /// head's result is zeroing that head's z.
    func testEditedHeadResultBecomesAttentionOutput() throws {
        let model = try Checkpoint.load(from: TestFiles.model("odd-head"))
        let prompt = [699, 5, 17, 300, 5, 17]
        let head = 2, dModel = model.dModel, dHead = model.blocks[1].attention!.dHead
        let viaResult = try model.run([prompt], capture: HookFilter([.attnOut(1)]), interventions: [(HookFilter([.result(1)]), { _, _, result in
            let heads = result.shape[1], p = result.mutablePointer
            for t in 0..<result.shape[0] { (p + (t * heads + head) * dModel).update(repeating: 0, count: dModel) }
        })], logitsAt: .all)
        let viaZ = try model.run([prompt], capture: HookFilter([.attnOut(1)]), interventions: [(HookFilter([.z(1)]), { _, _, z in
            let heads = z.shape[1], p = z.mutablePointer
            for t in 0..<z.shape[0] { (p + (t * heads + head) * dHead).update(repeating: 0, count: dHead) }
        })], logitsAt: .all)
        assertClose(try XCTUnwrap(viaResult.cache[.attnOut(1), 0]), try XCTUnwrap(viaZ.cache[.attnOut(1), 0]), tolerance: 1e-5, "attn_out")
        assertClose(viaResult.logits[0], viaZ.logits[0], tolerance: 1e-5, "logits")
        let plain = try model.run([prompt], logitsAt: .all)
        XCTAssertGreaterThan(zip(plain.logits[0].scalars, viaZ.logits[0].scalars).map { abs($0 - $1) }.max()!, 1e-3)
    }
}
