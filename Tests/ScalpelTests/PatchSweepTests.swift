import XCTest
@testable import Scalpel

/// The packed sweep (start at the patched block, cached prefix, packed variants, metric columns)
/// against the plain one (one full forward pass per cell, TransformerLens's way), on every target.
final class PatchSweepTests: XCTestCase {
    /// Items differing at the last position and earlier, so prefixes have different lengths.
    func items(bos: Int) throws -> ContrastItems {
        try ContrastItems(name: "test", items: [
            ContrastItem(clean: [bos, 5, 17, 3, 8, 9], corrupted: [bos, 5, 17, 3, 8, 8], answer: 10, foil: 9),
            ContrastItem(clean: [bos, 40, 41, 42, 43, 44], corrupted: [bos, 40, 41, 41, 43, 43], answer: 45, foil: 44),
            ContrastItem(clean: [bos, 7, 7, 7, 2, 1], corrupted: [bos, 8, 7, 7, 2, 1], answer: 3, foil: 4),
        ])
    }

    func sweeps() -> [PatchSweep] {
        var all: [PatchSweep] = PatchTarget.allCases.map { PatchSweep(target: $0) }
        all += [PatchTarget.z, .q, .k, .v, .pattern].map { PatchSweep(target: $0, byPosition: true) }
        all.append(PatchSweep(target: .residPre, direction: .noise))
        all.append(PatchSweep(target: .z, direction: .noise, metric: .prob))
        all.append(PatchSweep(target: .mlpPost, layers: [1], metric: .logit))
        return all
    }

    func testPackedEqualsPlainOnEveryTarget() throws {
        for name in ["tiny-hub", "odd-head"] {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let items = try self.items(bos: model.vocabSize - 1)
            for var sweep in sweeps() {
                sweep.rowsPerBatch = 7  // several batches per layer
                let packed = try sweep.run(model, on: items)
                sweep.strategy = .plain
                let plain = try sweep.run(model, on: items)
                let what = "\(name) \(sweep.target.rawValue) byPosition=\(sweep.byPosition) \(sweep.direction) \(sweep.metric)"
                XCTAssertEqual(packed.shape, plain.shape, what)
                XCTAssertEqual(packed.clean, plain.clean, what)
                XCTAssertEqual(packed.corrupted, plain.corrupted, what)
                XCTAssertNotEqual(packed.clean, packed.corrupted, what)
                for cell in plain.raw.indices {
                    let a = try XCTUnwrap(packed.raw[cell], what), b = try XCTUnwrap(plain.raw[cell], what)
                    XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b)), "\(what) cell \(packed.labels[cell])")
                }
                // Some cells must move the metric, or the comparison proves little.
                XCTAssertTrue(plain.raw.contains { abs($0! - plain.corrupted) > 1e-3 * max(1, abs(plain.corrupted)) || sweep.metric == .prob }, what)
            }
        }
    }

    func testPatchingEverythingOfALayerRestoresTheCleanRun() throws {
        // resid_pre of block 0 at every position is the whole input: patching all positions at once
        // is the clean run. Here each cell patches one position; the last differing one is the
        // only position that matters at block 0 for item 1, so check the layer-0 identity directly.
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let items = try ContrastItems(name: "one", items: [ContrastItem(clean: [999, 5, 17, 9], corrupted: [999, 5, 17, 8], answer: 10, foil: 9)])
        let result = try PatchSweep(target: .residPre).run(model, on: items)
        let last = try XCTUnwrap(result.raw[3])  // L0 pos 3: the only differing position
        XCTAssertEqual(last, result.clean, accuracy: 1e-5)
        XCTAssertEqual(result.raw[0], result.corrupted, "patching an equal position changes nothing")
        XCTAssertEqual(result.values[3]!, 1, accuracy: 1e-5)
    }

    func testLabelsAndShapes() throws {
        let model = try Checkpoint.load(from: TestFiles.model("odd-head"))
        let items = try self.items(bos: 699)
        let heads = try PatchSweep(target: .z).run(model, on: items)
        XCTAssertEqual(heads.dims, ["layer", "head"])
        XCTAssertEqual(heads.shape, [3, 4])
        XCTAssertEqual(heads.labels[5], "1.1")
        let byPos = try PatchSweep(target: .z, byPosition: true).run(model, on: items)
        XCTAssertEqual(byPos.shape, [3, 6, 4])
        XCTAssertEqual(byPos.labels[4 * 6 + 4 + 2], "1.2 pos 1")
        let neurons = try PatchSweep(target: .mlpPost, layers: [2]).run(model, on: items)
        XCTAssertEqual(neurons.shape, [1, 80])
        XCTAssertEqual(neurons.labels[79], "L2 N79")
        let pattern = try PatchSweep(target: .pattern, byPosition: true).run(model, on: items)
        XCTAssertEqual(pattern.dims, ["layer", "head", "dest_pos"])
        XCTAssertEqual(pattern.labels[6 + 2], "0.1 dest 2")
    }

    func testBadInputIsRefused() throws {
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let unequal = try ContrastItems(name: "mixed", items: [
            ContrastItem(clean: [999, 1, 2], corrupted: [999, 1, 1], answer: 3, foil: 2),
            ContrastItem(clean: [999, 1, 2, 3], corrupted: [999, 1, 2, 2], answer: 4, foil: 3),
        ])
        XCTAssertThrowsError(try PatchSweep(target: .residPre).run(model, on: unequal)) { error in
            XCTAssertTrue((error as? ContrastError)?.message.contains("item 2 has 4") == true, "\(error)")
        }
        XCTAssertNoThrow(try PatchSweep(target: .z).run(model, on: unequal), "heads over all positions allow different lengths")
        XCTAssertThrowsError(try PatchSweep(target: .mlpPost, layers: [2]).run(model, on: unequal)) {
            XCTAssertEqual($0 as? PatchError, .layerOutOfRange(layer: 2, layers: 2))
        }
        XCTAssertThrowsError(try ContrastItems(name: "bad", items: [ContrastItem(clean: [999, 1], corrupted: [999, 1, 1], answer: 1, foil: 2)]))
        XCTAssertThrowsError(try ContrastItems(name: "none", items: []))
    }
}
