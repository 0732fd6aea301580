import XCTest
@testable import Scalpel

/// Edited graphs against PyTorch running the Hugging Face blocks by hand
/// (tools/make_surgery_fixtures.py), then the same graphs through an archive and a Hugging Face export.
final class SurgeryParityTests: XCTestCase {
    struct Case: Decodable {
        var name: String
        var base: String
        var models: [String: String]?
        var blocks: [String]
        var edits: [[String: AnyCodableValue]]
        var mean_prompts: [[Int]]?
        var prompts: [[Int]]
    }

    /// Just enough of a JSON value for the edits list.
    enum AnyCodableValue: Decodable {
        case string(String), strings([String])
        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let list = try? container.decode([String].self) { self = .strings(list) } else { self = .string(try container.decode(String.self)) }
        }
        var yaml: String {
            switch self {
            case let .string(s): return "\"\(s)\""
            case let .strings(l): return "[" + l.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
            }
        }
    }

    static func cases() throws -> [Case] {
        try JSONDecoder().decode([Case].self, from: Data(contentsOf: TestFiles.fixtures.appendingPathComponent("surgery/cases.json")))
    }

    /// The case as a plan file's text, with the fixture checkpoints as models.
    static func planText(_ c: Case) -> String {
        var yaml = "name: \(c.name)\nbase: \(TestFiles.model(c.base).path)\n"
        yaml += "blocks: [" + c.blocks.map { "\"\($0)\"" }.joined(separator: ", ") + "]\n"
        if let models = c.models {
            yaml += "models:\n" + models.map { "  \($0.key): \(TestFiles.model($0.value).path)\n" }.joined()
        }
        if !c.edits.isEmpty {
            yaml += "edits:\n"
            for edit in c.edits {
                yaml += "  - " + edit.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.yaml)" }.joined(separator: "\n    ") + "\n"
                if case .string("mean")? = edit["mode"] { yaml += "    dataset: digits\n" }
            }
        }
        return yaml
    }

    func build(_ c: Case) throws -> Model {
        let plan = try Plan.parse(Self.planText(c), origin: "\(c.name).yaml")
        let (base, others) = try Surgeon.loadModels(for: plan, baseOverride: nil)
        return try Surgeon.build(plan, base: base, others: others, meanPrompts: { _, _ in c.mean_prompts! })
    }

    func testEditedGraphsMatchPyTorch() throws {
        let cases = try Self.cases()
        XCTAssertGreaterThanOrEqual(cases.count, 14)
        for c in cases {
            let model = try build(c)
            let expected = try SafetensorsFile(url: TestFiles.fixtures.appendingPathComponent("surgery/\(c.name).safetensors"))
            let result = try model.run(c.prompts, logitsAt: .all)
            for p in c.prompts.indices {
                assertClose(result.logits[p], try expected.tensor("logits/\(p)"), "\(c.name) prompt \(p)")
            }
            for name in expected.names where name.hasPrefix("means/") {
                let unit = UnitRef(String(name.split(separator: "/").last!))!
                let block = model.blocks.firstIndex { $0.source.layer == unit.layer && $0.source.model == c.base }!
                let stored: Tensor
                if name.contains("means/0/"), case .ablateNeurons = try Plan.parse(Self.planText(c), origin: "x").edits[0].target {
                    guard case let .pooledMean(vector)? = model.blocks[block].mlp?.neuronAblations[unit.index]?.replacement else {
                        return XCTFail("\(c.name): neuron \(unit) has no mean ablation")
                    }
                    stored = vector
                } else {
                    guard case let .pooledMean(vector)? = model.blocks[block].attention?.headAblations[unit.index]?.replacement else {
                        return XCTFail("\(c.name): head \(unit) has no mean ablation")
                    }
                    stored = vector
                }
                assertClose(stored, try expected.tensor(name), "\(c.name) \(name)")
            }
        }
    }

    func testArchiveRoundTripIsBitIdentical() throws {
        let folder = TestFiles.temporaryFolder()
        for c in try Self.cases() {
            let model = try build(c)
            let url = folder.appendingPathComponent("\(c.name).h5")
            try ModelArchive.write(model, plan: try Plan.parse(Self.planText(c), origin: c.name), to: try OutputTarget(url, overwrite: false))
            let loaded = try ModelLocation.load(url.path)
            XCTAssertEqual(loaded.blocks.map(ModelSummary.describe), model.blocks.map(ModelSummary.describe), c.name)
            let a = try model.run(c.prompts, logitsAt: .all), b = try loaded.run(c.prompts, logitsAt: .all)
            for p in c.prompts.indices { XCTAssertTrue(a.logits[p].isIdentical(to: b.logits[p]), "\(c.name) prompt \(p)") }
        }
    }

    func testHuggingFaceExportReloadsWithSameLogits() throws {
        let folder = TestFiles.temporaryFolder()
        var exported = 0
        for c in try Self.cases() {
            let model = try build(c)
            let destination = folder.appendingPathComponent(c.name)
            if model.blocks.contains(where: { $0.mlp != nil && $0.mlp?.ln == nil }) {
                XCTAssertThrowsError(try HuggingFaceExport.write(model, to: try OutputTarget(destination, kind: .folder, overwrite: false)), c.name) { error in
                    XCTAssertTrue("\(error)".contains("no LayerNorm"), "\(error)")
                }
                continue
            }
            try HuggingFaceExport.write(model, to: try OutputTarget(destination, kind: .folder, overwrite: false))
            let reloaded = try Checkpoint.load(from: destination)
            XCTAssertEqual(reloaded.blocks.count, model.blocks.count)
            let a = try model.run(c.prompts, logitsAt: .all), b = try reloaded.run(c.prompts, logitsAt: .all)
            for p in c.prompts.indices { assertClose(b.logits[p], a.logits[p], tolerance: 1e-5, "\(c.name) prompt \(p)") }
            exported += 1
        }
        XCTAssertGreaterThanOrEqual(exported, 12)
    }
}
