import XCTest
@testable import Scalpel

/// A plan that references a circuit file (`edits: [{circuit: FILE, dataset: D}]`) builds the model
/// `scalpel circuit --save-model` writes; export-hf refuses what GPT-2 cannot hold and folds the rest.
final class CircuitBuildTests: CLITestCase {
    func write(_ name: String, _ text: String) throws {
        try text.write(to: scratch.appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    func url(_ name: String) -> URL { scratch.appendingPathComponent(name) }

    func testBuildFromAPlanEqualsSaveModel() throws {
        try write("c.yaml", "heads: {\"4.0\": all, \"5.1\": [end], \"2.3\": [1, end]}\nmlps: {\"4\": all, \"5\": [end]}\n")
        try write("plan.yaml", "blocks: [\"0-5\"]\nedits:\n  - circuit: c.yaml\n    dataset: digits\n")
        let built = try scalpel(["build", "plan.yaml", "-o", "built.h5"])
        XCTAssertEqual(built.status, 0, built.stderr)
        let scored = try scalpel(["circuit", "c.yaml", "--dataset", "digits", "--save-model", "saved.h5", "--format", "json"])
        XCTAssertEqual(scored.status, 0, scored.stderr)
        let score = try XCTUnwrap((try JSONSerialization.jsonObject(with: Data(scored.stdout.utf8)) as? [String: Any])?["score"] as? Double)
        let a = try ModelArchive.load(from: url("built.h5")), b = try ModelArchive.load(from: url("saved.h5"))
        let items = try ContrastItems(dataset: StudyDatasets.digits, model: a)
        let runA = try a.run(items.items.map(\.clean)), runB = try b.run(items.items.map(\.clean))
        for (x, y) in zip(runA.logits, runB.logits) { XCTAssertEqual(x.scalars, y.scalars, "the same archive, bit for bit in its logits") }
        XCTAssertEqual(CausalMetric.logitDiff.mean(runA.logits, items: items.items, columns: nil), score, accuracy: 1e-5)
        XCTAssertEqual(a.blocks[0].attention?.headAblations.count, 4)
        XCTAssertEqual(a.blocks[2].attention?.headAblations[3]?.positions, .allBut([1, -1]))
        XCTAssertNotNil(a.blocks[3].mlp?.outputAblation)
        XCTAssertNil(a.blocks[4].mlp?.outputAblation)
        XCTAssertEqual(a.blocks[5].mlp?.outputAblation?.positions, .allBut([-1]))
        // Per-position means (and kept positions) cannot be GPT-2 weights: export-hf says why.
        _ = try expectBadInput(["export-hf", "built.h5", "-o", "hf"], mentions: ["different mean at each position", "block 0"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: url("hf").path))
    }

    func testPooledMeansAtEveryPositionExportToHuggingFace() throws {
        // Every head and MLP 5 kept; MLPs 0-4 replaced by one pooled mean: constants GPT-2 holds in c_proj's bias.
        let heads = (0..<6).flatMap { l in (0..<4).map { "\"\(l).\($0)\": all" } }.joined(separator: ", ")
        try write("c.yaml", "heads: {\(heads)}\nmlps: {\"5\": all}\n")
        try write("plan.yaml", "blocks: [\"0-5\"]\nedits:\n  - {circuit: c.yaml, dataset: digits, means: pooled}\n")
        XCTAssertEqual(try scalpel(["build", "plan.yaml", "-o", "built.h5"]).status, 0)
        let export = try scalpel(["export-hf", "built.h5", "-o", "hf"])
        XCTAssertEqual(export.status, 0, export.stderr)
        let archive = try ModelArchive.load(from: url("built.h5"))
        let exported = try Checkpoint.load(from: url("hf"))
        let prompts = try StudyDatasets.months.items.map { try archive.encode(prompt: $0.prompt) }
        let x = try archive.run(prompts), y = try exported.run(prompts)
        for (a, b) in zip(x.logits, y.logits) {
            for (u, v) in zip(a.scalars, b.scalars) { XCTAssertEqual(u, v, accuracy: 1e-3) }
        }
        // And MLP ablation changed the model: not the full model's logits.
        let full = try ModelLocation.load(nil).run(prompts)
        XCTAssertNotEqual(full.logits[0].scalars, x.logits[0].scalars)
    }

    func testBadCircuitPlansAreRefusedBeforeAnyWork() throws {
        try write("c.yaml", "heads: {\"4.0\": all}\n")
        try write("mlp9.yaml", "heads: {}\nmlps: {\"9\": all}\n")
        try write("zero.yaml", "blocks: [\"0-5\"]\nedits:\n  - {circuit: c.yaml, dataset: digits, mode: zero}\n")
        try write("pos.yaml", "blocks: [\"0-5\"]\nedits:\n  - {circuit: c.yaml, dataset: digits, positions: [end]}\n")
        try write("nodata.yaml", "blocks: [\"0-5\"]\nedits:\n  - {circuit: c.yaml}\n")
        try write("missing.yaml", "blocks: [\"0-5\"]\nedits:\n  - {circuit: nowhere.yaml, dataset: digits}\n")
        try write("nomlp.yaml", "blocks: [\"0-5\"]\nedits:\n  - {circuit: mlp9.yaml, dataset: digits}\n")
        try write("dropped.yaml", "blocks: [\"0-3\"]\nedits:\n  - {circuit: c.yaml, dataset: digits}\n")
        try write("both.yaml", "blocks: [\"0-5\"]\nedits:\n  - {circuit: c.yaml, keep_heads: [\"4.0\"], dataset: digits}\n")
        try expectBadInput(["build", "zero.yaml", "-o", "m.h5"], mentions: ["zero.yaml:3", "edits[0].mode", "zero", "mean"])
        try expectBadInput(["build", "pos.yaml", "-o", "m.h5"], mentions: ["edits[0].positions", "circuit file lists"])
        try expectBadInput(["build", "nodata.yaml", "-o", "m.h5"], mentions: ["nodata.yaml:3", "dataset"])
        try expectBadInput(["build", "missing.yaml", "-o", "m.h5"], mentions: ["nowhere.yaml"])
        try expectBadInput(["build", "nomlp.yaml", "-o", "m.h5"], mentions: ["nomlp.yaml:3", "MLP 9 does not exist", "0–5"])
        try expectBadInput(["build", "dropped.yaml", "-o", "m.h5"], mentions: ["dropped.yaml:3", "head 4.0 does not exist"])
        try expectBadInput(["build", "both.yaml", "-o", "m.h5"], mentions: ["exactly one of", "circuit"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: url("m.h5").path))
    }
}
