import XCTest
@testable import Scalpel

/// Every plan in `surgery-plans/` parses, validates and builds against a small random model with
/// GPT-2 small's layer and head counts (12 layers, 12 heads), and builds the graph it describes.
final class SurgeryPlanFilesTests: XCTestCase {
    static let plansFolder = TestFiles.packageRoot.appendingPathComponent("surgery-plans")
    static let checkPrompts = ["1 2 3 4": " 5", "one two three four": " five", "January February March April": " May"]

    /// A random checkpoint named `gpt2` (so block sources read `gpt2:L9`), written once per test run.
    nonisolated(unsafe) static var randomGPT2: URL?

    static func base() throws -> URL {
        if let url = randomGPT2 { return url }
        let url = TestFiles.temporaryFolder().appendingPathComponent("gpt2")
        try RandomCheckpoint.write(config: GPT2Config(nLayer: 12, nEmbd: 24, nHead: 12, nPositions: 32, vocabSize: 64),
                                   seed: 7, to: try OutputTarget(url, kind: .folder, overwrite: true))
        randomGPT2 = url
        return url
    }

    override class func tearDown() {
        if let url = randomGPT2 { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        randomGPT2 = nil
        super.tearDown()
    }

    static func planFiles() throws -> [URL] {
        try FileManager.default.contentsOfDirectory(at: plansFolder, includingPropertiesForKeys: nil)
            .filter { $0.pathExtension == "yaml" || $0.pathExtension == "yml" }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    static func build(_ file: String) throws -> (Plan, Model) {
        let plan = try Plan.load(plansFolder.appendingPathComponent(file))
        let (base, others) = try Surgeon.loadModels(for: plan, baseOverride: try base().path)
        return (plan, try Surgeon.build(plan, base: base, others: others, meanPrompts: { _, _ in [[63, 1, 2, 3]] }))
    }

    /// `gpt2:L9`, `gpt2:L9.mlp`, `gpt2:L3.attn`, `gpt2:L9.mlp.noln`.
    static func describe(_ block: Block) -> String {
        var text = block.source.description
        switch (block.attention != nil, block.mlp) {
        case (true, .some): break
        case (true, .none): text += ".attn"
        case (false, let mlp?): text += mlp.ln == nil ? ".mlp.noln" : ".mlp"
        case (false, .none): text += ".empty"
        }
        return text
    }

    /// The README's example of every plan field builds the graph and the ablations it describes.
    func testTheReadmeExampleOfEveryFieldBuilds() throws {
        let readme = try String(contentsOf: Self.plansFolder.appendingPathComponent("README.md"), encoding: .utf8)
        let example = try XCTUnwrap(readme.components(separatedBy: "```yaml\n").dropFirst().first?.components(separatedBy: "```").first)
        let folder = TestFiles.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let url = folder.appendingPathComponent("example.yaml")
        try example.write(to: url, atomically: true, encoding: .utf8)
        let plan = try Plan.load(url)
        XCTAssertEqual(plan.name, "l0-7-mlp9-edited")
        XCTAssertEqual(plan.edits.map(\.target), [.ablateHeads([UnitRef(layer: 7, index: 10), UnitRef(layer: 6, index: 1)]),
                                                  .ablateNeurons([UnitRef(layer: 9, index: 34), UnitRef(layer: 7, index: 12)]),
                                                  .ablateHeads([UnitRef(layer: 5, index: 3)])])
        XCTAssertEqual(plan.checks.map(\.answer), [" 5", nil])
        let (base, others) = try Surgeon.loadModels(for: plan, baseOverride: try Self.base().path)
        let model = try Surgeon.build(plan, base: base, others: others, meanPrompts: { _, _ in [[63, 1, 2, 3]] })
        XCTAssertEqual(model.blocks.map(Self.describe), (0...7).map { "gpt2:L\($0)" } + ["gpt2:L9.mlp"])
        XCTAssertEqual(model.blocks[7].attention?.headAblations.keys.sorted(), [10])
        XCTAssertEqual(model.blocks[6].attention?.headAblations.keys.sorted(), [1])
        XCTAssertEqual(model.blocks[8].mlp?.neuronAblations.keys.sorted(), [34])
        XCTAssertEqual(model.blocks[7].mlp?.neuronAblations.keys.sorted(), [12])
        // Head 5.3 takes its pooled mean at the last position only.
        let head = try XCTUnwrap(model.blocks[5].attention?.headAblations[3])
        XCTAssertEqual(head.positions, .only([-1]))
        guard case let .pooledMean(mean) = head.replacement else { return XCTFail("head 5.3: expected a pooled mean") }
        XCTAssertEqual(mean.shape, [2])
    }

    func testEveryPlanFileParsesValidatesAndBuilds() throws {
        let files = try Self.planFiles()
        XCTAssertGreaterThanOrEqual(files.count, 20, "surgery-plans/ should hold the study's variants")
        for url in files {
            let file = url.lastPathComponent
            let plan: Plan, model: Model
            do { (plan, model) = try Self.build(file) } catch {
                XCTFail("\(file): \(error)"); continue
            }
            XCTAssertEqual(plan.name, url.deletingPathExtension().lastPathComponent, "\(file): name matches the file name")
            XCTAssertFalse(plan.description.isEmpty, "\(file): description")
            XCTAssertFalse(plan.description.contains("\n"), "\(file): one-line description")
            XCTAssertEqual(plan.base, "gpt2", file)
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: plan.checks.map { ($0.prompt, $0.answer ?? "") }), Self.checkPrompts, file)

            // The graph is the block list, in order, each block the asked-for part of its source layer.
            let expected = plan.blocks.flatMap { spec in
                spec.layers.map { "gpt2:L\($0)" + (spec.part == .whole ? "" : "." + spec.part.rawValue) }
            }
            XCTAssertEqual(model.blocks.map(Self.describe), expected, file)
            XCTAssertEqual(model.config.nLayer, expected.count, file)
            XCTAssertTrue(model.blocks.allSatisfy { $0.mlp?.neuronAblations.isEmpty ?? true }, file)
            if plan.edits.isEmpty {
                XCTAssertTrue(model.blocks.allSatisfy { $0.attention?.headAblations.isEmpty ?? true }, "\(file): no heads ablated")
            }
        }
    }

    func testBlockListsByHand() throws {
        let cases: [(String, [String])] = [
            ("l0-7-mlp9.yaml", (0...7).map { "gpt2:L\($0)" } + ["gpt2:L9.mlp"]),
            ("l0-7-mlp9-noln.yaml", (0...7).map { "gpt2:L\($0)" } + ["gpt2:L9.mlp.noln"]),
            ("attn0-7-mlp9.yaml", (0...7).map { "gpt2:L\($0).attn" } + ["gpt2:L9.mlp"]),
            ("mlp0-8-l9.yaml", (0...8).map { "gpt2:L\($0).mlp" } + ["gpt2:L9"]),
            ("l0-7-attn8-mlp9.yaml", (0...7).map { "gpt2:L\($0)" } + ["gpt2:L8.attn", "gpt2:L9.mlp"]),
            ("all-but-9.yaml", [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11].map { "gpt2:L\($0)" }),
            ("all-but-2-3-4-8-10-11.yaml", [0, 1, 5, 6, 7, 9].map { "gpt2:L\($0)" }),
            ("l0-9.yaml", (0...9).map { "gpt2:L\($0)" }),
        ]
        for (file, blocks) in cases {
            let (_, model) = try Self.build(file)
            XCTAssertEqual(model.blocks.map(Self.describe), blocks, file)
        }
        let (_, model) = try Self.build("l0-7-mlp9.yaml")
        XCTAssertEqual(model.blocks.count, 9)
        XCTAssertNil(model.blocks[8].attention)
        XCTAssertEqual(model.blocks[8].source, BlockSource(model: "gpt2", layer: 9))
        XCTAssertTrue(ModelSummary.describe(model.blocks[8]).hasSuffix("← gpt2:L9.mlp"), ModelSummary.describe(model.blocks[8]))
    }

    func testHeadKeepingCircuits() throws {
        // Only 9.1: every head of every block mean-ablated except head 1 of block 9.
        let (_, only91) = try Self.build("keep-head-9.1.yaml")
        XCTAssertEqual(only91.blocks.count, 12)
        for (i, block) in only91.blocks.enumerated() {
            let ablated = Set(block.attention!.headAblations.keys)
            XCTAssertEqual(ablated, Set(0..<12).subtracting(i == 9 ? [1] : []), "block \(i)")
            for ablation in block.attention!.headAblations.values {
                guard case let .pooledMean(vector) = ablation.replacement else { XCTFail("block \(i): expected a mean ablation"); continue }
                XCTAssertEqual(vector.shape, [2], "block \(i): d_head 24/12")
            }
        }
        // Top 10 of the digits column of Table 1.
        let (plan, top10) = try Self.build("keep-top10-digits.yaml")
        let kept: [Int: Set<Int>] = [9: [1, 9], 7: [10], 10: [7], 8: [8, 11], 0: [1, 5], 6: [1], 11: [10]]
        XCTAssertEqual(kept.values.map(\.count).reduce(0, +), 10)
        guard case let .keepHeads(units)? = plan.edits.first?.target else { return XCTFail("expected keep_heads") }
        XCTAssertEqual(units.map(\.description), ["9.1", "7.10", "10.7", "8.8", "0.1", "8.11", "6.1", "0.5", "9.9", "11.10"])
        XCTAssertEqual(plan.edits.first?.mode, .mean)
        XCTAssertEqual(plan.edits.first?.dataset, "digits")
        for (i, block) in top10.blocks.enumerated() {
            XCTAssertEqual(Set(block.attention!.headAblations.keys), Set(0..<12).subtracting(kept[i] ?? []), "block \(i)")
        }
        // The built circuits run.
        XCTAssertEqual(try top10.run([[63, 1, 2, 3]]).logits[0].shape, [1, 64])
    }

    func testReadmeListsEveryPlan() throws {
        let readme = try String(contentsOf: Self.plansFolder.appendingPathComponent("README.md"), encoding: .utf8)
        for url in try Self.planFiles() {
            XCTAssertTrue(readme.contains("`\(url.lastPathComponent)`"), "README.md should list \(url.lastPathComponent)")
        }
        XCTAssertTrue(readme.contains("scalpel run --plan surgery-plans/l0-7-mlp9.yaml --model PATH/TO/gpt2"))
    }
}
