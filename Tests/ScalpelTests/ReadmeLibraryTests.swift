import XCTest
@testable import Scalpel

/// The README's "As a library" code, statement for statement, so it keeps compiling and running.
final class ReadmeLibraryTests: XCTestCase {
    func testTheLibraryExampleRuns() throws {
        let readme = try String(contentsOf: TestFiles.packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        for statement in ["PatchSweep(target: .z).run(model, on: items)", "ContrastItems(dataset: try DatasetFiles.resolve(\"digits\"), model: model)",
                          "RunSpan(start: ResidualStart(block: 4, residual: cached), stop: .z(5))",
                          "LogitAttribution(by: .head).run(model, on: AttributionItems(dataset: try DatasetFiles.resolve(\"digits\"), model: model))"] {
            XCTAssertTrue(readme.contains(statement), "README shows \(statement)")
        }
        let model = try ModelLocation.load(nil)
        let tokens = try model.encode(prompt: "1 2 3 4")
        let run = try model.run([tokens], capture: HookFilter(["blocks.*.hook_resid_post"]),
                                interventions: [(HookFilter(["blocks.2.attn.hook_z"]), { name, prompt, z in
                                    z = Tensor(zeros: z.shape)
                                })])
        XCTAssertNotNil(run.cache["blocks.3.hook_resid_post", 0])
        let items = try ContrastItems(dataset: try DatasetFiles.resolve("digits"), model: model)
        let heads = try PatchSweep(target: .z).run(model, on: items)
        XCTAssertEqual(heads.dims, ["layer", "head"])
        XCTAssertEqual(heads.top(3).count, 3)
        let attribution = try LogitAttribution(by: .head).run(model, on: AttributionItems(dataset: try DatasetFiles.resolve("digits"), model: model))
        XCTAssertEqual(attribution.dims, ["layer", "head"])
        let cached = try XCTUnwrap(try model.run([tokens], capture: HookFilter([.residPre(4)])).cache[.residPre(4)])
        let stopped = try model.run([tokens], span: RunSpan(start: ResidualStart(block: 4, residual: cached), stop: .z(5)))
        XCTAssertTrue(stopped.logits.isEmpty)
    }
}
