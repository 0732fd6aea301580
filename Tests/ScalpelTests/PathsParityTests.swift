import XCTest
@testable import Scalpel

/// Representations, leave-one-out offsets and path decodes against PyTorch (tools/make_paths_fixtures.py).
final class PathsParityTests: XCTestCase {
    struct Fixture: Decodable {
        struct Family: Decodable { var ids: [Int]; var values: [Int] }
        struct Case: Decodable {
            var name: String, template: String, kind: String, from: String, to: String
            var pairs: [[Int]]
            var prompts: [String: [[Int]]]
        }
        var families: [String: Family]
        var layers: [Int]
        var alphas: [Double]
        var logit_pairs: [Int]
        var propagated_layers: [Int]
        var cases: [Case]
    }

    func testPathsMatchPyTorch() throws {
        let folder = TestFiles.fixtures.appendingPathComponent("paths")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: folder.appendingPathComponent("cases.json")))
        let model = try Checkpoint.load(from: TestFiles.model("tiny-hub"))
        let d = model.dModel
        for c in fixture.cases {
            let expected = try SafetensorsFile(url: folder.appendingPathComponent("\(c.name).safetensors"))
            var search = VectorPaths()
            search.template = VectorPaths.Template(rawValue: c.template)!
            search.alphas = fixture.alphas
            search.layers = fixture.layers
            func items(_ name: String) -> VectorPaths.Items {
                let family = fixture.families[name]!
                let next = family.ids.indices.map { $0 + 1 < family.ids.count ? family.ids[$0 + 1] : nil }
                return VectorPaths.Items(family: SequenceFamily(name: name, items: family.ids.map(String.init), values: family.values),
                                         items: family.ids.map(String.init), values: family.values, prompts: c.prompts[name]!,
                                         ids: family.ids, expected: c.template == "alone" ? family.ids : next, skipped: [])
            }
            let from = items(c.from), to = items(c.to)
            let direction = c.kind == "next" ? VectorPaths.next(from) : VectorPaths.offset(from: from, to: to)
            XCTAssertEqual(direction.pairs.map { [$0.0, $0.1] }, c.pairs, c.name)
            let reps = try search.representations(from, model: model, layers: fixture.layers)
            let targetReps = try search.representations(to, model: model, layers: fixture.layers)
            for layer in fixture.layers {
                assertClose(reps[layer]!, try expected.tensor("reps/\(c.from)/\(layer)"), tolerance: 1e-5, "\(c.name) reps L\(layer)")
                for k in direction.pairs.indices {
                    let delta = search.delta(direction, excluding: k, source: reps[layer]!, target: targetReps[layer]!, d: d)!
                    assertClose(Tensor(shape: [d], data: delta), try expected.tensor("delta/\(layer)/\(k)"), tolerance: 1e-5, "\(c.name) Δ L\(layer) pair \(k)")
                }
            }
            // Decodes and propagated runs of the stored pairs, judged from PyTorch's logits.
            let points = try search.run(direction, model: model)
            for layer in fixture.layers {
                let decode = try expected.tensor("decode/\(layer)")
                let propagated = fixture.propagated_layers.contains(layer) ? try expected.tensor("propagated/\(layer)") : decode
                for k in fixture.logit_pairs {
                    for (a, alpha) in fixture.alphas.enumerated() {
                        let (i, j) = direction.pairs[k]
                        guard let point = points.first(where: { $0.layer == layer && $0.alpha == alpha && $0.source == from.items[i] && $0.target == to.items[j] }) else {
                            XCTFail("\(c.name): no point for pair \(k) L\(layer) α \(alpha)"); continue
                        }
                        let row = k * fixture.alphas.count + a, vocab = model.vocabSize
                        for (judged, reference, label) in [(point.decode, decode, "decode"), (point.propagated, propagated, "propagated")] {
                            let logits = reference.rows(row..<(row + 1)).reshaped([vocab])
                            logits.buffer.withMemoryRebound(to: Float.self) { buffer in
                                XCTAssertEqual(judged.rank, Softmax.rank(of: point.expected, in: buffer), "\(c.name) \(label) L\(layer) pair \(k) α \(alpha)")
                                XCTAssertEqual(judged.top, Softmax.topIndices(buffer, k: judged.top.count), "\(c.name) \(label) top")
                            }
                        }
                    }
                }
            }
        }
    }
}
