import XCTest
@testable import Scalpel

/// `scalpel attribute` end to end on the bundled model: its outputs agree with each other, and bad
/// input is refused before any work with nothing written.
final class AttributeCommandTests: CLITestCase {
    func testTableJSONCSVAndFilesAgree() throws {
        let json = try scalpel(["attribute", "--dataset", "months", "--by", "head", "--format", "json", "-o", "heads.h5", "--plot", "heads.svg"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["dims"] as? [String], ["layer", "head"])
        XCTAssertEqual(object["shape"] as? [Int], [6, 4])
        for key in ["model", "by", "ln", "direction", "labels", "values", "total", "actual", "ln_final_bias", "remainder", "explanation", "top", "axis_labels"] {
            XCTAssertNotNil(object[key], key)
        }
        let values = try XCTUnwrap(object["values"] as? [Double])
        XCTAssertEqual(try XCTUnwrap(object["total"] as? Double), values.reduce(0, +), accuracy: 1e-9)
        let svg = try String(contentsOf: scratch.appendingPathComponent("heads.svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains("<svg") && svg.contains("L5 · 3"), "layer and head labels in the picture")
        let file = try HDF5File.open(scratch.appendingPathComponent("heads.h5"))
        let tensor = try file.root.group("attribution").dataset("values").readTensor()
        XCTAssertEqual(tensor.shape, [6, 4])
        for (i, value) in values.enumerated() { XCTAssertEqual(Double(tensor[flat: i]), value, accuracy: 1e-6) }

        let csv = try scalpel(["attribute", "--dataset", "months", "--by", "head", "--format", "csv"])
        let lines = csv.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "layer,head,label,value")
        XCTAssertEqual(lines.count, 25)
        let table = try scalpel(["attribute", "--dataset", "months"])
        XCTAssertEqual(table.status, 0, table.stderr)
        for text in ["0_attn_out", "5_mlp_out", "total", "ln_final bias", "actual", "remainder"] {
            XCTAssertTrue(table.stdout.contains(text), "\(text) in \(table.stdout)")
        }
    }

    /// `bench --attribution` times the analysis on the loaded model (the peer's measure); an unknown
    /// dataset is refused before any timing.
    func testBenchTimesAttributionOnTheLoadedModel() throws {
        let result = try scalpel(["bench", "--runs", "1", "--batch-runs", "1", "--batch", "2", "--tokens", "3", "--attribution", "months", "--format", "json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(report["attribution_items"] as? Int, StudyDatasets.named("months")?.items.count)
        XCTAssertEqual(report["attribution_neuron_layers"] as? [Int], [3, 4])  // the bundled model's 6 blocks
        XCTAssertGreaterThan(try XCTUnwrap(report["attribution_median_seconds"] as? Double), 0)
        let table = try scalpel(["bench", "--runs", "1", "--batch-runs", "1", "--batch", "2", "--tokens", "3", "--attribution", "digits"])
        XCTAssertTrue(table.stdout.contains("attribution, 20 items, by component, head, neurons of 3,4"), table.stdout)
        _ = try expectBadInput(["bench", "--runs", "1", "--batch-runs", "1", "--attribution", "no-such-dataset"], mentions: ["no-such-dataset"])
    }

    /// The components and the bias term add up to the model's own logit difference, as the output says.
    func testComponentsAddUpToTheActualLogitDifference() throws {
        for extra in [[String](), ["--token", " 5"]] {
            let result = try scalpel(["attribute", "--dataset", "digits", "--format", "json"] + extra)
            XCTAssertEqual(result.status, 0, result.stderr)
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
            let total = try XCTUnwrap(object["total"] as? Double), bias = try XCTUnwrap(object["ln_final_bias"] as? Double)
            let actual = try XCTUnwrap(object["actual"] as? Double)
            XCTAssertEqual(total + bias, actual, accuracy: 1e-4 * max(1, abs(actual)), "\(extra)")
        }
    }

    func testNeuronsLayersAndPictures() throws {
        let neurons = try scalpel(["attribute", "--dataset", "digits", "--by", "neuron", "--layers", "4,5", "--top", "3", "--plot", "n.svg"])
        XCTAssertEqual(neurons.status, 0, neurons.stderr)
        XCTAssertTrue(neurons.stdout.contains("top 3 of"), neurons.stdout)
        let layer = try scalpel(["attribute", "--dataset", "digits", "--by", "layer", "--format", "json", "--plot", "l.svg"])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(layer.stdout.utf8)) as? [String: Any])
        let values = try XCTUnwrap(object["values"] as? [Double])
        XCTAssertEqual(values.last!, try XCTUnwrap(object["actual"] as? Double), accuracy: 1e-3)
        let component = try scalpel(["attribute", "--dataset", "digits", "--plot", "c.svg"])
        XCTAssertEqual(component.status, 0, component.stderr)
        let svg = try String(contentsOf: scratch.appendingPathComponent("c.svg"), encoding: .utf8)
        XCTAssertTrue(svg.contains("attention") && svg.contains("MLP"), "Figure 1's two lines")
    }

    /// Several groupings in one run: one forward pass, the same values as separate runs bit for bit,
    /// and the multi-grouping JSON, CSV and HDF5 shapes of DECISIONS.md.
    func testSeveralGroupingsInOneRunEqualSeparateRuns() throws {
        let all = try scalpel(["attribute", "--dataset", "digits", "--by", "component,head,neuron", "--layers", "4,5", "--format", "json", "-o", "all.h5"])
        XCTAssertEqual(all.status, 0, all.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(all.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(object["by"] as? [String], ["component", "head", "neuron"])
        let attributions = try XCTUnwrap(object["attributions"] as? [[String: Any]])
        XCTAssertEqual(attributions.count, 3)
        for (i, extra) in [["--by", "component"], ["--by", "head"], ["--by", "neuron", "--layers", "4,5"]].enumerated() {
            let single = try scalpel(["attribute", "--dataset", "digits", "--format", "json"] + extra)
            let alone = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(single.stdout.utf8)) as? [String: Any])
            for key in ["by", "dims", "shape", "labels", "values", "total", "actual", "ln_final_bias", "remainder"] {
                XCTAssertEqual(attributions[i][key] as? NSObject, alone[key] as? NSObject, "\(extra) \(key)")
            }
            XCTAssertNil(alone["shard"], "no shard field without --shard")
        }
        let file = try HDF5File.open(scratch.appendingPathComponent("all.h5"))
        XCTAssertEqual(try file.root.group("attribution").stringAttribute("by"), "component,head,neuron")
        XCTAssertEqual(try file.root.dataset("attribution/head/values").readTensor().shape, [6, 4])
        XCTAssertEqual(try file.root.dataset("attribution/neuron/values").readTensor().shape, [2, 512])
        XCTAssertEqual(try file.root.group("attribution/neuron").stringAttribute("by"), "neuron")

        let csv = try scalpel(["attribute", "--dataset", "digits", "--by", "component,neuron", "--layers", "4", "--format", "csv"])
        let lines = csv.stdout.split(separator: "\n")
        XCTAssertEqual(lines.first, "by,component,layer,neuron,label,value")
        XCTAssertEqual(lines.count, 1 + 14 + 512)
        XCTAssertTrue(lines[1].hasPrefix("component,0,,,embed,"), String(lines[1]))
        XCTAssertTrue(lines[15].hasPrefix("neuron,,0,0,L4 N0,"), String(lines[15]))
        let table = try scalpel(["attribute", "--dataset", "digits", "--by", "head,layer"])
        XCTAssertTrue(table.stdout.contains("by head") && table.stdout.contains("by layer"), table.stdout)
    }

    func testBadInputIsRefusedAndNothingIsWritten() throws {
        try expectBadInput(["attribute", "--prompt", "1 2 3 4", "-o", "x.h5"], mentions: ["no answer", "--token"])
        let noFoil = scratch.appendingPathComponent("nofoil.yaml")
        try """
        name: nofoil
        items:
          - {prompt: "1 2 3 4", answer: " 5"}
        """.write(to: noFoil, atomically: true, encoding: .utf8)
        try expectBadInput(["attribute", "--dataset", noFoil.path, "-o", "x.h5"], mentions: ["no corrupted_answer", "--token"])
        try expectBadInput(["attribute", "--dataset", "digits", "--by", "neuron", "--layers", "9", "-o", "x.h5"], mentions: ["Layer 9", "6 blocks"])
        try expectBadInput(["attribute", "--dataset", "digits", "--by", "neuron", "-o", "x.h5"], mentions: ["--layers"])
        try expectBadInput(["attribute", "--dataset", "digits", "--by", "head", "--layers", "1"], mentions: ["--by neuron"])
        try expectBadInput(["attribute", "--dataset", "digits", "--by", "layer", "--ln", "cached"], mentions: ["--ln cached"])
        try expectBadInput(["attribute", "--dataset", "digits", "--by", "heads"], mentions: ["heads"])
        try expectBadInput(["attribute", "--dataset", "digits", "--by", "head,head"], mentions: ["twice"])
        try expectBadInput(["attribute", "--dataset", "digits", "--by", "component,head", "--plot", "x.svg"], mentions: ["--plot"])
        try expectBadInput(["attribute", "--dataset", "digits", "--by", "component,layer", "--ln", "cached"], mentions: ["--ln cached"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("x.h5").path))
        XCTAssertTrue(FileManager.default.createFile(atPath: scratch.appendingPathComponent("exists.h5").path, contents: Data("mine".utf8)), "test setup: could not create a file")
        try expectBadInput(["attribute", "--dataset", "digits", "-o", "exists.h5"], mentions: ["exists.h5", "--force"])
        XCTAssertEqual(try String(contentsOf: scratch.appendingPathComponent("exists.h5"), encoding: .utf8), "mine")
        // --token needs neither answers nor foils.
        let token = try scalpel(["attribute", "--prompt", "1 2 3 4", "--token", " 5", "--format", "json"])
        XCTAssertEqual(token.status, 0, token.stderr)
    }
}
