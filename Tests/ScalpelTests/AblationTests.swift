import CHDF5
import XCTest
@testable import Scalpel

/// Ablations as data: the same `Ablation` value baked into a model by the surgeon and applied at
/// run time by an intervention gives identical logits; mean activations, positions, plan syntax,
/// archives and the Hugging Face export's refusals.
final class AblationTests: ScratchTestCase {
    let meanPrompts: [[Int]] = [[1, 2, 3, 4, 5], [6, 7, 8, 9, 10], [11, 12, 13, 14, 15]]
    let scored: [[Int]] = [[20, 21, 22, 23, 24], [30, 31, 32, 33, 34]]

    func base() throws -> Model { try Checkpoint.load(from: TestFiles.model("tiny-hub")) }

    /// tiny-hub (2 layers, 4 heads of 16, MLP 256) with `edits` (YAML lines under `edits:`).
    func build(_ edits: String, meanPrompts: [[Int]]? = nil) throws -> Model {
        let text = "base: \(TestFiles.model("tiny-hub").path)\nblocks: [\"0-1\"]\nedits:\n" + edits
        let plan = try Plan.parse(text, origin: "ablation.yaml")
        let (base, others) = try Surgeon.loadModels(for: plan, baseOverride: nil)
        let prompts = meanPrompts ?? self.meanPrompts
        return try Surgeon.build(plan, base: base, others: others, meanPrompts: { _, _ in prompts })
    }

    static let cases: [(name: String, edits: String)] = [
        ("zero", "  - ablate_heads: [\"1.2\", \"0.0\"]\n"),
        ("pooled", "  - ablate_heads: [\"1.2\"]\n    mode: mean\n    dataset: digits\n"),
        ("per-position", "  - ablate_heads: [\"1.2\"]\n    mode: mean\n    dataset: digits\n    means: per-position\n"),
        ("positions subset", "  - ablate_heads: [\"1.2\", \"0.3\"]\n    mode: mean\n    dataset: digits\n    positions: [0, end]\n"),
        ("keep heads at end", "  - keep_heads: [\"1.1\"]\n    mode: mean\n    dataset: digits\n    means: per-position\n    positions: [end]\n"),
        ("neurons", "  - ablate_neurons: [\"0.5\", \"1.7\"]\n    mode: mean\n    dataset: digits\n    means: per-position\n    positions: [1, -2]\n"),
        ("neurons zero", "  - ablate_neurons: [\"1.9\"]\n    positions: [2]\n"),
    ]

    func testSurgeonAndInterventionGiveIdenticalLogits() throws {
        let unablated = try base().run(scored, logitsAt: .all)
        for c in Self.cases {
            let model = try build(c.edits)
            let baked = try model.run(scored, logitsAt: .all)
            let patched = try model.withoutAblations.run(scored, interventions: model.ablationInterventions, logitsAt: .all)
            for p in scored.indices {
                XCTAssertTrue(baked.logits[p].isIdentical(to: patched.logits[p]), "\(c.name), prompt \(p)")
                XCTAssertFalse(baked.logits[p].isIdentical(to: unablated.logits[p]), "\(c.name), prompt \(p): the ablation changed nothing")
            }
        }
    }

    func testAnInterventionFromAHandMadeValueMatchesTheSurgeon() throws {
        let model = try build("  - ablate_heads: [\"1.2\"]\n    positions: [-1]\n")
        let ablation = Ablation(.zero, at: .only([-1]))
        let patch = (HookFilter([.z(1)]), Ablation.intervention([2: ablation]))
        let patched = try base().run(scored, interventions: [patch], logitsAt: .all)
        let baked = try model.run(scored, logitsAt: .all)
        for p in scored.indices { XCTAssertTrue(baked.logits[p].isIdentical(to: patched.logits[p]), "prompt \(p)") }
        // Only the last position's z of head 2 is zero; the others are the head's own.
        let z = try model.run(scored, capture: HookFilter([.z(1)])).cache[.z(1), 0]!  // [pos, heads, d_head]
        let last = (4 * 4 + 2) * 16, first = (0 * 4 + 2) * 16
        XCTAssertTrue((0..<16).allSatisfy { z[flat: last + $0] == 0 })
        XCTAssertFalse((0..<16).allSatisfy { z[flat: first + $0] == 0 })
    }

    func testMeansEqualAHandComputationFromCapturedZ() throws {
        let model = try base()
        let means = try MeanActivations.compute(model: model, prompts: meanPrompts)
        let captured = try model.run(meanPrompts, capture: HookFilter([.z(1), .mlpPost(0)])).cache
        let z = captured[.z(1)]!  // per prompt [pos, heads, d_head]
        for head in 0..<4 {
            guard case let .perPositionMean(values) = try means.replacement(.perPosition, hook: .z(1), unit: head) else { return XCTFail("per position") }
            XCTAssertEqual(values.shape, [5, 16])
            guard case let .pooledMean(pooled) = try means.replacement(.pooled, hook: .z(1), unit: head) else { return XCTFail("pooled") }
            XCTAssertEqual(pooled.shape, [16])
            for j in 0..<16 {
                var all = 0.0
                for pos in 0..<5 {
                    var sum = 0.0
                    for prompt in z { sum += Double(prompt[flat: (pos * 4 + head) * 16 + j]) }
                    XCTAssertEqual(values[flat: pos * 16 + j], Float(sum / 3), "head \(head) pos \(pos) \(j)")
                }
                // Pooled: summed prompt by prompt, position by position, as the surgeon always has.
                for prompt in z { for pos in 0..<5 { all += Double(prompt[flat: (pos * 4 + head) * 16 + j]) } }
                XCTAssertEqual(pooled[flat: j], Float(all / 15), "head \(head) \(j)")
            }
        }
        guard case let .perPositionMean(neuron) = try means.replacement(.perPosition, hook: .mlpPost(0), unit: 7) else { return XCTFail("neuron") }
        XCTAssertEqual(neuron.shape, [5, 1])
        let post = captured[.mlpPost(0)]!
        XCTAssertEqual(neuron[flat: 4], Float(post.map { Double($0[flat: 4 * 256 + 7]) }.reduce(0, +) / 3))
    }

    func testPerPositionMeansNeedOneLength() throws {
        let means = try MeanActivations.compute(model: try base(), prompts: [[1, 2, 3], [4, 5], [6, 7, 8]])
        assertError(try means.perPosition(.z(0)), MeanActivationsError.self, equals: .unequalLengths(lengths: [3, 2, 3]),
                    mentions: ["2 tokens (prompts 2)", "3 tokens (prompts 1, 3)"])
        XCTAssertEqual(try means.replacement(.pooled, hook: .z(0), unit: 1).width, 16)
        assertError(try build("  - ablate_heads: [\"1.2\"]\n    mode: mean\n    dataset: digits\n    means: per-position\n",
                              meanPrompts: [[1, 2, 3], [4, 5]]),
                    PlanError.self, mentions: ["ablation.yaml:4, edits[0]", "one token length", "3 tokens", "2 tokens"])
    }

    func testPromptsThatDoNotFitTheAblationsAreErrors() throws {
        let perPosition = try build(Self.cases[2].edits)
        XCTAssertNoThrow(try perPosition.checkAblations(promptLengths: [5, 5]))
        assertError(try perPosition.checkAblations(promptLengths: [5, 6]), AblationError.self,
                    equals: .lengthMismatch(block: 1, unit: "head 1.2", meansLength: 5, prompt: 1, length: 6), mentions: ["prompt 2 has 6"])
        let late = try build("  - ablate_heads: [\"1.2\"]\n    positions: [7]\n")
        assertError(try late.checkAblations(promptLengths: [5]), AblationError.self, mentions: ["position 7", "5 tokens"])
    }

    func testPlanPositionsAndMeans() throws {
        func edit(_ lines: String) throws -> Edit {
            try Plan.parse("blocks: [\"0-1\"]\nedits:\n  - ablate_heads: [\"1.2\"]\n" + lines, origin: "p.yaml").edits[0]
        }
        XCTAssertEqual(try edit("    positions: [0, -2, end]\n").positions, [0, -2, -1])
        XCTAssertNil(try edit("    positions: all\n").positions)
        XCTAssertNil(try edit("").positions)
        XCTAssertEqual(try edit("    mode: mean\n    dataset: digits\n").means, .pooled)
        XCTAssertEqual(try edit("    mode: mean\n    dataset: digits\n    means: per-position\n").means, .perPosition)
        for (lines, mentions) in [
            ("    positions: [0, first]\n", ["p.yaml:4, edits[0].positions", "[0, first]", "`end`"]),
            ("    positions: []\n", ["edits[0].positions", "[]"]),
            ("    positions: [1, 1]\n", ["edits[0].positions", "none twice"]),
            ("    means: per-position\n", ["edits[0].means", "mode: mean"]),
            ("    mode: mean\n    dataset: digits\n    means: arena\n", ["edits[0].means", "\"arena\"", "pooled or per-position"]),
        ] {
            assertError(try edit(lines), PlanError.self, mentions: mentions)
        }
        assertError(try edit("    positions: 3\n"), YAMLFileError.self, mentions: ["edits[0].positions", "\"3\""])
        // tiny-hub has 32 positions.
        assertError(try build("  - ablate_heads: [\"1.2\"]\n    positions: [0, -33]\n"), PlanError.self,
                    mentions: ["ablation.yaml:4, edits[0].positions", "\"-33\"", "0…31"])
    }

    func testMeanDatasetPathsAreRelativeToThePlan() throws {
        let folder = scratch.appendingPathComponent("study/plans")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("prompts"), withIntermediateDirectories: true)
        try "1 2 3\t 4\n5 6 7\t 8\n".write(to: folder.appendingPathComponent("prompts/counting.txt"), atomically: true, encoding: .utf8)
        let url = folder.appendingPathComponent("plan.yaml")
        try "base: \(TestFiles.model("tiny-hub").path)\nblocks: [\"0-1\"]\nedits:\n  - ablate_heads: [\"1.2\"]\n    mode: mean\n    dataset: prompts/counting.txt\n  - ablate_heads: [\"0.1\"]\n    mode: mean\n    dataset: digits\n"
            .write(to: url, atomically: true, encoding: .utf8)
        let plan = try Plan.load(url)
        XCTAssertEqual(plan.edits[0].dataset, folder.appendingPathComponent("prompts/counting.txt").path)
        XCTAssertEqual(plan.edits[1].dataset, "digits")
        XCTAssertFalse(FileManager.default.fileExists(atPath: "prompts/counting.txt"), "the current folder must not hold the file")
        let (base, others) = try Surgeon.loadModels(for: plan, baseOverride: nil)
        XCTAssertNoThrow(try Surgeon.validate(plan, base: base, others: others))
        XCTAssertEqual(try DatasetFiles.resolve(plan.edits[0].dataset!).items.count, 2)
    }

    func testArchivesKeepPositionsAndPerPositionMeans() throws {
        for c in Self.cases {
            let model = try build(c.edits)
            let url = scratch.appendingPathComponent("\(c.name).h5")
            try ModelArchive.write(model, plan: nil, to: try OutputTarget(url, overwrite: false))
            let file = try HDF5File.open(url)
            let version = try file.root.intAttribute("format_version")
            try file.close()
            // Only what a version-1 reader would silently drop makes a version-2 archive.
            XCTAssertEqual(version, c.name.hasPrefix("zero") || c.name == "pooled" ? 1 : 2, c.name)
            let loaded = try ModelArchive.load(from: url)
            let a = try model.run(scored, logitsAt: .all), b = try loaded.run(scored, logitsAt: .all)
            for p in scored.indices { XCTAssertTrue(a.logits[p].isIdentical(to: b.logits[p]), "\(c.name) prompt \(p)") }
            for (i, block) in loaded.blocks.enumerated() {
                let original = model.blocks[i]
                for (head, ablation) in block.attention?.headAblations ?? [:] {
                    XCTAssertEqual(ablation.positions, original.attention!.headAblations[head]!.positions, "\(c.name) block \(i) head \(head)")
                    XCTAssertEqual(ablation.requiredLength, original.attention!.headAblations[head]!.requiredLength)
                }
                for (neuron, ablation) in block.mlp?.neuronAblations ?? [:] {
                    XCTAssertEqual(ablation.positions, original.mlp!.neuronAblations[neuron]!.positions, "\(c.name) block \(i) neuron \(neuron)")
                }
            }
        }
    }

    func testDamagedPositionsInAnArchiveAreErrors() throws {
        let model = try build(Self.cases[3].edits)
        let url = scratch.appendingPathComponent("positions.h5")
        try ModelArchive.write(model, plan: nil, to: try OutputTarget(url, overwrite: false))
        let file = try HDF5File.open(url, writable: true)
        let attn = try file.root.group("blocks/1/attn")
        XCTAssertEqual(try attn.readStrings("ablation_positions"), ["0,-1"])
        XCTAssertGreaterThanOrEqual(H5Ldelete(attn.id, "ablation_positions", scalpel_h5p_default()), 0)
        _ = try attn.writeStrings("ablation_positions", ["middle"])
        try file.close()
        assertError(try ModelArchive.load(from: url), ArchiveError.self, mentions: [url.path, "ablation_positions", "\"middle\""])
    }

    func testHuggingFaceExportRefusesPositionDependentAblations() throws {
        for (c, mentions) in [(Self.cases[2], ["head 1.2", "a different mean at each position"]),
                              (Self.cases[3], ["block 0, head 0.3", "only at some positions (0,-1)"]),
                              (Self.cases[6], ["neuron 1.9", "only at some positions (2)"])] {
            let folder = scratch.appendingPathComponent("hf-\(c.name)")
            assertError(try HuggingFaceExport.write(try build(c.edits), to: try OutputTarget(folder, kind: .folder, overwrite: false)),
                        HuggingFaceExportError.self, mentions: mentions + ["constant added at every position"])
            XCTAssertFalse(FileManager.default.fileExists(atPath: folder.path), c.name)
        }
        let pooled = scratch.appendingPathComponent("hf-pooled")
        XCTAssertNoThrow(try HuggingFaceExport.write(try build(Self.cases[1].edits), to: try OutputTarget(pooled, kind: .folder, overwrite: false)))
    }
}

extension Ablation.Replacement {
    /// The unit's width, for tests.
    var width: Int {
        switch self {
        case .zero: return 0
        case let .pooledMean(values): return values.count
        case let .perPositionMean(values): return values.shape.dropFirst().reduce(1, *)
        }
    }
}
