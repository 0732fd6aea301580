import XCTest
@testable import Scalpel

/// `LogitAttribution` against TransformerLens (`Fixtures/attribution/`, made by
/// `tools/make_attribution_fixtures.py`): every grouping, both LayerNorm scales and one token's
/// direction on both fixture models, within 1e-4 of the range; and the sums that say what the
/// output claims (components + ln_final bias = actual; heads + b_O = attn_out; neurons + b_out = mlp_out).
final class AttributionParityTests: XCTestCase {
    struct Fixture {
        let name: String
        let model: Model
        let items: AttributionItems
        let answerOnly: AttributionItems
        let tensors: SafetensorsFile
        let info: [String: Any]
    }

    func fixtures() throws -> [Fixture] {
        let folder = TestFiles.fixtures.appendingPathComponent("attribution")
        let cases = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("cases.json"))) as? [String: Any])
        let models = try XCTUnwrap(cases["models"] as? [String: [String: Any]])
        return try models.keys.sorted().map { name in
            let info = models[name]!
            let raw = try XCTUnwrap(info["items"] as? [[String: Any]])
            let items = raw.map { AttributionItem(tokens: $0["clean"] as! [Int], answer: $0["answer"] as! Int, foil: ($0["corrupted_answer"] as! Int)) }
            return Fixture(name: name, model: try Checkpoint.load(from: TestFiles.model(name)),
                           items: try AttributionItems(name: name, items: items),
                           answerOnly: try AttributionItems(name: name, items: items.map { AttributionItem(tokens: $0.tokens, answer: $0.answer, foil: nil) }),
                           tensors: try SafetensorsFile(url: folder.appendingPathComponent("\(name).safetensors")),
                           info: try XCTUnwrap(info["attribution"] as? [String: Any]))
        }
    }

    func values(_ result: AttributionResult) -> Tensor { Tensor(shape: result.shape, data: result.values.map { Float($0 ?? .nan) }) }

    func testEveryGroupingMatchesTransformerLens() throws {
        for fixture in try fixtures() {
            let model = fixture.model, name = fixture.name
            func expect(_ attribution: LogitAttribution, _ items: AttributionItems, _ tensor: String) throws -> AttributionResult {
                let result = try attribution.run(model, on: items)
                assertClose(values(result), try fixture.tensors.tensor("\(name)/\(tensor)"), "\(name) \(tensor)")
                return result
            }
            let component = try expect(LogitAttribution(by: .component), fixture.items, "component/values")
            XCTAssertEqual(component.labels, fixture.info["component_labels"] as? [String])
            _ = try expect(LogitAttribution(by: .component, normalization: .recomputed), fixture.items, "component/recomputed")
            _ = try expect(LogitAttribution(by: .component), fixture.answerOnly, "component_answer/values")
            _ = try expect(LogitAttribution(by: .head), fixture.items, "head/values")
            _ = try expect(LogitAttribution(by: .neuron, layers: Array(model.blocks.indices)), fixture.items, "neuron/values")
            let layer = try expect(LogitAttribution(by: .layer), fixture.items, "layer/values")
            XCTAssertEqual(layer.labels, fixture.info["layer_labels"] as? [String])
            var mid = LogitAttribution(by: .layer)
            mid.includeMid = true
            XCTAssertEqual(try expect(mid, fixture.items, "layer_mid/values").labels, fixture.info["layer_mid_labels"] as? [String])

            let actual = try XCTUnwrap(fixture.info["actual_logit_diff"] as? Double)
            let bias = try XCTUnwrap(fixture.info["ln_final_bias_term"] as? Double)
            XCTAssertEqual(component.actual, actual, accuracy: 1e-4, name)
            XCTAssertEqual(component.lnFinalBias, bias, accuracy: 1e-4, name)
            XCTAssertEqual(layer.total, actual, accuracy: 1e-4, "\(name): the last accumulated row is the model's value")
        }
    }

    func testComponentsPlusTheBiasTermAreTheActualValue() throws {
        for fixture in try fixtures() {
            for items in [fixture.items, fixture.answerOnly] {
                let result = try LogitAttribution(by: .component).run(fixture.model, on: items)
                XCTAssertEqual(result.total + result.lnFinalBias, result.actual, accuracy: 1e-4 * max(1, abs(result.actual)), fixture.name)
                XCTAssertEqual(result.remainder, 0, accuracy: 1e-4 * max(1, abs(result.actual)), fixture.name)
            }
            let answer = try LogitAttribution(by: .component).run(fixture.model, on: fixture.answerOnly)
            XCTAssertEqual(answer.actual, try XCTUnwrap(fixture.info["actual_answer_logit"] as? Double), accuracy: 1e-4, fixture.name)
        }
    }

    /// Heads + the b_O term are that layer's attn_out; neurons + the b_out term are its mlp_out: the
    /// remainder of a head or neuron attribution is what it leaves out, nothing else.
    func testHeadsAndNeuronsAddUpToTheirComponents() throws {
        for fixture in try fixtures() {
            let model = fixture.model
            let component = try LogitAttribution(by: .component).run(model, on: fixture.items)
            let heads = try LogitAttribution(by: .head).run(model, on: fixture.items)
            let neurons = try LogitAttribution(by: .neuron, layers: Array(model.blocks.indices)).run(model, on: fixture.items)
            for (i, block) in model.blocks.enumerated() {
                if block.attention != nil {
                    let sum = (0..<heads.shape[1]).compactMap { heads.values[i * heads.shape[1] + $0] }.reduce(0, +)
                    let attnOut = component.values[component.labels.firstIndex(of: "\(i)_attn_out")!]!
                    let bO = biasTerm(block.attention!.outBias, fixture: fixture)
                    XCTAssertEqual(sum + bO, attnOut, accuracy: 1e-4 * max(1, abs(attnOut)), "\(fixture.name) layer \(i) heads")
                }
                if let mlp = block.mlp {
                    let row = neurons.layersRow(i)
                    let sum = row.reduce(0, +)
                    let mlpOut = component.values[component.labels.firstIndex(of: "\(i)_mlp_out")!]!
                    XCTAssertEqual(sum + biasTerm(mlp.outBias, fixture: fixture), mlpOut, accuracy: 1e-4 * max(1, abs(mlpOut)), "\(fixture.name) layer \(i) neurons")
                }
            }
        }
    }

    /// A bias vector b [d] attributed as a part of the final residual: mean over items of
    /// ((b − mean b) / s_i) · (w ⊙ dir_i).
    func biasTerm(_ bias: Tensor, fixture: Fixture) -> Double {
        let model = fixture.model
        let items = fixture.items.items
        let run = try! model.run(items.map(\.tokens), capture: HookFilter([HookPoint.finalScale]))
        let directions = Directions(items, model: model)
        var sum = 0.0
        for p in items.indices {
            let scale = run.cache[.finalScale, p]!
            sum += Vectors.dot(bias.reshaped([1, bias.count]), row: 0, directions.centredRows, row: p) / Double(scale[flat: scale.count - 1])
        }
        return sum / Double(items.count)
    }

    func testBadRequestsAreRefused() throws {
        let fixture = try fixtures()[0]
        XCTAssertThrowsError(try LogitAttribution(by: .neuron).run(fixture.model, on: fixture.items)) {
            XCTAssertEqual($0 as? AttributionError, .layersNeeded)
        }
        XCTAssertThrowsError(try LogitAttribution(by: .neuron, layers: [7]).run(fixture.model, on: fixture.items)) {
            XCTAssertEqual($0 as? AttributionError, .layerOutOfRange(layer: 7, layers: fixture.model.blocks.count))
        }
        XCTAssertThrowsError(try LogitAttribution(by: .layer, normalization: .cached).run(fixture.model, on: fixture.items))
        XCTAssertThrowsError(try AttributionItems(name: "x", items: []))
    }
}

extension AttributionResult {
    /// The existing values of row `row` of a [layer, …] grid.
    func layersRow(_ row: Int) -> [Double] { (0..<shape[1]).compactMap { values[row * shape[1] + $0] } }
}
