import XCTest
@testable import Scalpel

/// `PathSweep` (what `scalpel paths` runs) gives the points of one whole-direction search, and its
/// record holds the mean offsets `paths -o` stores; `paths add-vector` replaced `--add-vector`.
final class PathSweepTests: CLITestCase {
    let model = try! Checkpoint.load(from: TestFiles.model("tiny-hub"))

    /// Family of token ids first…first+count−1 with values 1…count, in the alone template.
    func family(_ name: String, first: Int, count: Int = 6) -> VectorPaths.Items {
        let ids = Array(first..<(first + count))
        return VectorPaths.Items(family: SequenceFamily(name: name, items: ids.map(String.init)), items: ids.map(String.init),
                                 values: Array(1...count), prompts: ids.map { [999, $0] }, ids: ids, expected: ids, skipped: [])
    }

    func search() -> VectorPaths {
        var search = VectorPaths()
        search.template = .alone
        search.alphas = [0, 0.5, 1]
        return search
    }

    func testLayerByLayerSweepGivesTheWholeSearchBitForBit() throws {
        let direction = VectorPaths.offset(from: family("A", first: 10), to: family("B", first: 110))
        let whole = try search().run(direction, model: model)
        var steps: [(Int, Int)] = []
        let result = try PathSweep(search: search()).run([direction], model: model) { steps.append(($0, $1)) }
        XCTAssertEqual(try JSONText.encode(result.points), try JSONText.encode(whole))
        XCTAssertEqual(steps.map(\.0), Array(1...model.blocks.count))
        XCTAssertTrue(steps.allSatisfy { $0.1 == model.blocks.count })
        XCTAssertEqual(try JSONText.encode(result.summaries), try JSONText.encode(PathSummary.summarize(whole)))
    }

    func testRecordHoldsTheMeanOffsetOverAllPairs() throws {
        let a = family("A", first: 10), b = family("B", first: 110)
        let sweep = PathSweep(search: search())
        let direction = VectorPaths.offset(from: a, to: b)
        let record = try sweep.record(try sweep.run([direction], model: model), model: model)
        XCTAssertEqual(record.families.map(\.name), ["A", "B"])
        XCTAssertEqual(record.layers, Array(model.blocks.indices))
        let d = model.dModel
        let reps = (try sweep.search.representations(a, model: model, layers: record.layers),
                    try sweep.search.representations(b, model: model, layers: record.layers))
        for layer in record.layers {
            let source = try XCTUnwrap(reps.0[layer]), target = try XCTUnwrap(reps.1[layer])
            for c in [0, d / 2, d - 1] {
                let mean = direction.pairs.reduce(0.0) { $0 + Double(target[flat: $1.1 * d + c]) - Double(source[flat: $1.0 * d + c]) }
                    / Double(direction.pairs.count)
                XCTAssertEqual(record.offsets[0].delta[flat: layer * d + c], Float(mean))
            }
        }
        XCTAssertEqual(record.offsets[0].points.count, direction.pairs.count * 3 * model.blocks.count)
    }

    func testTheOldAddVectorFlagNamesTheSubcommand() throws {
        try expectBadInput(["paths", "--add-vector", "blocks.0.hook_mlp_out"], mentions: ["paths add-vector blocks.0.hook_mlp_out"])
    }
}
