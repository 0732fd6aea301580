import XCTest
@testable import Scalpel

/// `PatchSweep` against TransformerLens's own `patching` module (`Fixtures/patching/`, made by
/// `tools/make_patch_fixtures.py`): every raw and normalised value within 1e-4 of the range, for the
/// packed sweep and the plain one, on both fixture models.
final class PatchParityTests: XCTestCase {
    /// Fixture target names → a sweep. (`pattern_dest_src`, one entry of a pattern, is not a Scalpel target.)
    static let sweeps: [String: (targets: [PatchTarget], byPosition: Bool, layers: Bool)] = [
        "resid_pre": ([.residPre], false, false), "resid_mid": ([.residMid], false, false),
        "resid_post": ([.residPost], false, false), "attn_out": ([.attnOut], false, false), "mlp_out": ([.mlpOut], false, false),
        "z": ([.z], false, false), "q": ([.q], false, false), "k": ([.k], false, false), "v": ([.v], false, false),
        "z_by_pos": ([.z], true, false), "q_by_pos": ([.q], true, false), "k_by_pos": ([.k], true, false), "v_by_pos": ([.v], true, false),
        "pattern": ([.pattern], false, false), "pattern_by_dest": ([.pattern], true, false),
        "every_block": (PatchGroup.everyBlock.targets, false, false), "every_head": (PatchGroup.everyHead.targets, false, false),
        "mlp_post": ([.mlpPost], false, true),
    ]

    func testEveryTargetMatchesTransformerLens() throws {
        let folder = TestFiles.fixtures.appendingPathComponent("patching")
        let cases = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("cases.json"))) as? [String: Any])
        let models = try XCTUnwrap(cases["models"] as? [String: [String: Any]])
        var compared = 0
        for (name, info) in models.sorted(by: { $0.key < $1.key }) {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let tensors = try SafetensorsFile(url: folder.appendingPathComponent("\(name).safetensors"))
            let items = try ContrastItems(name: name, items: try XCTUnwrap(info["items"] as? [[String: Any]]).map {
                ContrastItem(clean: $0["clean"] as! [Int], corrupted: $0["corrupted"] as! [Int], answer: $0["answer"] as! Int, foil: $0["corrupted_answer"] as! Int)
            })
            let groups = try XCTUnwrap(info["targets"] as? [String: [String: Any]])
            for (group, targets) in groups.sorted(by: { $0.key < $1.key }) {
                let parts = group.split(separator: "/").map(String.init)
                let direction = try XCTUnwrap(PatchDirection(rawValue: parts[0]))
                let metric = try XCTUnwrap(CausalMetric(rawValue: parts[1].replacingOccurrences(of: "_", with: "-")))
                for target in targets.keys.sorted() {
                    guard let spec = Self.sweeps[target] else { continue }
                    for strategy in [PatchSweep.Strategy.packed, .plain] {
                        let results = try spec.targets.map { patchTarget -> PatchResult in
                            var sweep = PatchSweep(target: patchTarget, byPosition: spec.byPosition, direction: direction, metric: metric)
                            sweep.strategy = strategy
                            return try sweep.run(model, on: items)
                        }
                        let result = results.count == 1 ? results[0] : PatchResult.stacked(results, name: target)
                        let what = "\(name) \(group) \(target) \(strategy)"
                        let raw = try tensors.tensor("\(name)/\(group)/\(target)/raw")
                        let normalised = try tensors.tensor("\(name)/\(group)/\(target)/normalised")
                        XCTAssertEqual(result.shape, Array(raw.shape), what)
                        assertClose(Tensor(shape: result.shape, data: result.raw.map { Float($0!) }), raw, what + " raw")
                        assertClose(Tensor(shape: result.shape, data: result.values.map { Float($0!) }), normalised, what + " normalised")
                        compared += 1
                    }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(compared, 2 * 2 * 20, "every fixture target of both models was compared")
    }
}
