import XCTest
@testable import Scalpel

/// The provable identities of `VectorPaths` on a fixture model, with token-id families.
final class VectorPathsTests: XCTestCase {
    let model = try! Checkpoint.load(from: TestFiles.model("tiny-hub"))

    /// Family of token ids first…first+count−1 with values 1…count, in the alone template.
    func family(_ name: String, first: Int, count: Int = 6) -> VectorPaths.Items {
        let ids = Array(first..<(first + count))
        return VectorPaths.Items(family: SequenceFamily(name: name, items: ids.map(String.init)), items: ids.map(String.init),
                                 values: Array(1...count), prompts: ids.map { [999, $0] }, ids: ids, expected: ids, skipped: [])
    }

    func lensRank(_ vector: Tensor, expected: Int) -> (rank: Int, top: [Int]) {
        let logits = model.unembedRows(model.finalLayerNorm(vector.reshaped([1, model.dModel])))
        return logits.buffer.withMemoryRebound(to: Float.self) { ($0.isEmpty ? 0 : Softmax.rank(of: expected, in: $0), Softmax.topIndices($0, k: 5)) }
    }

    func testAlphaZeroIsThePlainLogitLens() throws {
        var search = VectorPaths()
        search.template = .alone
        let a = family("A", first: 10), b = family("B", first: 110)
        let direction = VectorPaths.offset(from: a, to: b)
        let points = try search.run(direction, model: model)
        let reps = try search.representations(a, model: model, layers: [0, 1])
        for point in points where point.alpha == 0 {
            let i = a.items.firstIndex(of: point.source)!
            let expected = lensRank(reps[point.layer]!.rows(i..<(i + 1)), expected: point.expected)
            XCTAssertEqual(point.decode.rank, expected.rank)
            XCTAssertEqual(point.decode.top, expected.top)
        }
        XCTAssertEqual(points.filter { $0.alpha == 0 }.count, 2 * 6)
    }

    func testFullPairDifferenceReachesTheTarget() throws {
        var search = VectorPaths()
        search.template = .alone
        search.leaveOneOut = false
        search.alphas = [1]
        // One aligned pair: Δ is exactly r_B − r_A, so r_A + Δ is r_B (to rounding).
        var a = family("A", first: 10, count: 1), b = family("B", first: 110, count: 1)
        a.values = [1]; b.values = [1]
        let points = try search.run(VectorPaths.offset(from: a, to: b), model: model)
        let targets = try search.representations(b, model: model, layers: [0, 1])
        for point in points {
            let expected = lensRank(targets[point.layer]!, expected: point.expected)
            XCTAssertEqual(point.decode.rank, expected.rank, "layer \(point.layer)")
            XCTAssertEqual(point.decode.top, expected.top, "layer \(point.layer)")
        }
    }

    func testLeaveOneOutNeverUsesThePairUnderTest() throws {
        let search = VectorPaths()
        let a = family("A", first: 10, count: 3), b = family("B", first: 110, count: 3)
        let direction = VectorPaths.offset(from: a, to: b)
        let d = model.dModel
        let source = Tensor(shape: [3, d], data: (0..<(3 * d)).map { Float($0 / d) })        // rows 0, 1, 2
        let target = Tensor(shape: [3, d], data: (0..<(3 * d)).map { Float(10 * ($0 / d)) })  // rows 0, 10, 20
        // Pair differences are 0, 9, 18; leaving out pair 1 averages 0 and 18.
        XCTAssertEqual(search.delta(direction, excluding: 1, source: source, target: target, d: d)!, Array(repeating: 9, count: d))
        XCTAssertEqual(search.delta(direction, excluding: 0, source: source, target: target, d: d)!, Array(repeating: 13.5, count: d))
    }

    func testPropagatedAtTheFinalLayerEqualsDecodeOnly() throws {
        var search = VectorPaths()
        search.template = .alone
        search.layers = [model.blocks.count - 1]
        let a = family("A", first: 10), b = family("B", first: 110)
        for direction in [VectorPaths.offset(from: a, to: b), VectorPaths.next(a)] {
            for point in try search.run(direction, model: model) {
                XCTAssertEqual(point.propagated.rank, point.decode.rank, "\(direction.name) α \(point.alpha)")
                XCTAssertEqual(point.propagated.top, point.decode.top)
            }
        }
    }
}
