import XCTest
@testable import Scalpel

/// `scalpel classify` on a model whose heads are planted by hand (tools/make_planted_model.py):
/// head 0.0 is a previous-token head (its QK meets position p with p − 1), head 1.0 an induction head
/// (its QK meets the current token with 0.0's output; its OV copies the token to its unembedding);
/// the other six heads are small random weights. The dataset repeats ten random letters and asks for
/// the induction continuation; the corruption swaps a letter of the first half so that the repeat
/// predicts another one. The expected roles come from that construction.
final class ClassifyTests: XCTestCase {
    static var modelURL: URL { TestFiles.model("planted") }
    static var datasetPath: String { TestFiles.fixtures.appendingPathComponent("classify/induction.yaml").path }

    func planted() throws -> (Model, ContrastItems) {
        let model = try Checkpoint.load(from: Self.modelURL)
        let items = try ContrastItems(dataset: try DatasetFiles.resolve(Self.datasetPath), model: model)
        return (model, items)
    }

    func testNamesThePlantedHeadsAndTheirCircuitBeatsRandomOnes() throws {
        let (model, items) = try planted()
        var classifier = HeadClassifier(selection: .threshold(0.2))
        classifier.baselines = 20
        classifier.seed = 5
        let result = try classifier.run(model, items: items, prependBOS: true)

        // Exactly the two planted heads matter; each alone restores most of the clean answer.
        XCTAssertEqual(result.heads.map(\.head.description).sorted(), ["0.0", "1.0"], result.heads.map { "\($0.head) \($0.effect)" }.description)
        for head in result.heads { XCTAssertGreaterThan(head.effect, 0.5, "\(head.head)") }
        let byName = Dictionary(uniqueKeysWithValues: result.heads.map { ($0.head.description, $0) })
        let previous = try XCTUnwrap(byName["0.0"]), induction = try XCTUnwrap(byName["1.0"])
        XCTAssertEqual(previous.role, .previousToken, previous.reason)
        XCTAssertEqual(induction.role, .induction, induction.reason)
        XCTAssertGreaterThan(try XCTUnwrap(previous.evidence.previousToken), 0.8)
        XCTAssertGreaterThan(try XCTUnwrap(induction.evidence.induction), 0.5)
        // The induction head copies through its OV: its own token is in the top 5 nearly everywhere.
        XCTAssertGreaterThan(try XCTUnwrap(induction.evidence.copy), 0.9)

        // The untouched heads barely move the metric.
        for cell in result.patch.raw.indices {
            let label = result.patch.labels[cell]
            if label != "0.0" && label != "1.0" { XCTAssertLessThan(abs(result.patch.values[cell]!), 0.1, label) }
        }

        // The candidate circuit keeps both heads everywhere and scores above its random baselines.
        XCTAssertEqual(result.circuit.heads, [Circuit.Head(layer: 0, head: 0): .all, Circuit.Head(layer: 1, head: 0): .all])
        let baselines = try XCTUnwrap(result.score.baselines)
        XCTAssertEqual(baselines.n, 20)
        XCTAssertGreaterThan(result.score.score, baselines.mean + baselines.sd, "\(result.score.score) vs \(baselines.values)")
        for value in baselines.values { XCTAssertLessThanOrEqual(value, result.score.score + 1e-6) }
        XCTAssertGreaterThan(result.score.fraction, 0.8)
    }

    func testTopKKeepsTheStrongestAndLeavesTheRestUnnamed() throws {
        let (model, items) = try planted()
        let two = try HeadClassifier(selection: .topK(2)).run(model, items: items, prependBOS: true)
        XCTAssertEqual(two.heads.map(\.head.description).sorted(), ["0.0", "1.0"])
        // All eight: the six untouched heads come after the planted ones and none takes a planted role.
        let all = try HeadClassifier(selection: .topK(8)).run(model, items: items, prependBOS: true)
        XCTAssertEqual(all.heads.count, 8)
        XCTAssertEqual(Set(all.heads.prefix(2).map(\.head.description)), ["0.0", "1.0"])
        for head in all.heads.dropFirst(2) {
            XCTAssertFalse([HeadRole.previousToken, .induction].contains(head.role), "\(head.head): \(head.role) \(head.reason)")
        }
    }

    func testRoleRules() {
        let t = RoleThresholds()
        XCTAssertEqual(t.patternRole(HeadEvidence(previousToken: 0.9, induction: 0.1)).role, .previousToken)
        XCTAssertEqual(t.patternRole(HeadEvidence(previousToken: 0.5, induction: 0.5)).role, .induction, "induction is the more specific pattern")
        XCTAssertEqual(t.patternRole(HeadEvidence(duplicateToken: 0.7)).role, .duplicateDetector)
        // The study's 9.1: copy 0.59 with most attention on the numbers: a mover; with a higher next score: a successor.
        XCTAssertEqual(t.patternRole(HeadEvidence(copy: 0.59, next: 0.2, endAttention: 0.8)).role, .mover)
        XCTAssertEqual(t.patternRole(HeadEvidence(copy: 0.4, next: 0.6, endAttention: 0.8)).role, .successor)
        XCTAssertEqual(t.patternRole(HeadEvidence(copy: 0.4, next: 0.6, endAttention: 0.1)).role, .unclassified)
        XCTAssertEqual(t.patternRole(HeadEvidence(sameFamily: 0.7)).role, .familyDetector)
        XCTAssertEqual(t.patternRole(HeadEvidence(previousToken: 0.1, sameFamily: 0.2, copy: 0.1)).role, .unclassified)
        let negative = t.role(effect: -0.1, evidence: HeadEvidence(induction: 0.9))
        XCTAssertEqual(negative.role, .suppressor)
        XCTAssertEqual(negative.like, .induction)
        XCTAssertNil(HeadRole.suppressor.circuitPositions)
        XCTAssertEqual(HeadRole.mover.circuitPositions, .only([-1]))
    }

    func testWrittenCircuitFileReadsBack() throws {
        let circuit = Circuit(name: "c", heads: [Circuit.Head(layer: 9, head: 1): .only([-1]), Circuit.Head(layer: 0, head: 10): .all],
                              description: "quote \" and\nnewline: ok")
        let read = try Circuit.parse(circuit.fileText, path: "c.yaml")
        XCTAssertEqual(read.heads, circuit.heads)
        XCTAssertEqual(read.description, circuit.description)
    }

    func testNoHeadAboveTheThresholdIsAnError() throws {
        let (model, items) = try planted()
        XCTAssertThrowsError(try HeadClassifier(selection: .threshold(50)).run(model, items: items, prependBOS: true)) { error in
            let message = (error as? UserFacingError)?.message ?? "\(error)"
            XCTAssertTrue(message.contains("--threshold 50") && message.contains("strongest is head"), message)
        }
    }
}

/// `scalpel classify` end to end.
final class ClassifyCommandTests: CLITestCase {
    var modelPath: String { ClassifyTests.modelURL.path }

    func testTableJSONCircuitFileAndPage() throws {
        let json = try scalpel(["classify", "--model", modelPath, "--dataset", ClassifyTests.datasetPath, "--threshold", "0.2",
                                "--baselines", "10", "--seed", "2", "--format", "json",
                                "--circuit-out", "c.yaml", "--html", "c.html", "--plot", "c.svg", "-o", "c.h5"])
        XCTAssertEqual(json.status, 0, json.stderr)
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let heads = try XCTUnwrap(object["heads"] as? [[String: Any]])
        XCTAssertEqual(Set(heads.map { "\($0["head"]!) \($0["role"]!)" }), ["0.0 previous-token", "1.0 induction"])
        XCTAssertEqual((object["selection"] as? [String: Any])?["by"] as? String, "threshold")
        let baselines = try XCTUnwrap(object["baselines"] as? [String: Any])
        XCTAssertEqual((baselines["values"] as? [Any])?.count, 10)
        XCTAssertGreaterThan(try XCTUnwrap(object["score"] as? Double), try XCTUnwrap(baselines["mean"] as? Double))

        // The circuit file scores the same with `scalpel circuit`.
        let circuit = try scalpel(["circuit", "c.yaml", "--model", modelPath, "--dataset", ClassifyTests.datasetPath, "--format", "json"])
        XCTAssertEqual(circuit.status, 0, circuit.stderr)
        let scored = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(circuit.stdout.utf8)) as? [String: Any])
        XCTAssertEqual(try XCTUnwrap(scored["score"] as? Double), try XCTUnwrap(object["score"] as? Double), accuracy: 1e-5)  // packed with baselines or alone

        let page = try String(contentsOf: scratch.appendingPathComponent("c.html"), encoding: .utf8)
        XCTAssertTrue(page.contains("<svg") && page.contains("previous-token") && page.contains("random circuits"), "page with pictures and table")
        XCTAssertFalse(page.contains("<?xml"), "inline SVG without XML declarations")
        XCTAssertTrue(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("c.svg").path))

        // The HDF5 file holds the same heads, roles, effects and score.
        let file = try HDF5File.open(scratch.appendingPathComponent("c.h5"))
        let root = try file.root
        XCTAssertEqual(try root.stringAttribute("format"), "scalpel-classify")
        XCTAssertEqual(try root.readStrings("heads/head"), heads.map { $0["head"] as! String })
        XCTAssertEqual(try root.readStrings("heads/role"), heads.map { $0["role"] as! String })
        let effects = try root.readTensor("heads/effect")
        for (i, head) in heads.enumerated() { XCTAssertEqual(Double(effects[flat: i]), head["effect"] as! Double, accuracy: 1e-6) }
        XCTAssertEqual(try root.group("circuit").doubleAttribute("score"), try XCTUnwrap(object["score"] as? Double), accuracy: 1e-12)
        XCTAssertEqual(try root.readTensor("scores/induction").shape, [2, 4])

        let table = try scalpel(["classify", "--model", modelPath, "--dataset", ClassifyTests.datasetPath, "--top-k", "2", "--baselines", "5"])
        XCTAssertEqual(table.status, 0, table.stderr)
        XCTAssertTrue(table.stdout.contains("previous-token") && table.stdout.contains("induction") && table.stdout.contains("z ="), table.stdout)
    }

    func testBadInput() throws {
        let unknown = try scalpel(["classify", "--model", modelPath, "--dataset", "no-such-family"])
        XCTAssertEqual(unknown.status, 1)
        XCTAssertTrue(unknown.stderr.contains("no-such-family"), unknown.stderr)

        let none = try scalpel(["classify", "--model", modelPath, "--dataset", ClassifyTests.datasetPath, "--threshold", "50", "--circuit-out", "c.yaml"])
        XCTAssertEqual(none.status, 1)
        XCTAssertTrue(none.stderr.contains("--threshold 50") && none.stderr.contains("--top-k"), none.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("c.yaml").path), "nothing written")

        let both = try scalpel(["classify", "--dataset", "digits", "--threshold", "0.1", "--top-k", "3"])
        XCTAssertEqual(both.status, 1)
        XCTAssertTrue(both.stderr.contains("not both"), both.stderr)

        // C(8, 2) = 28 circuits of two heads with `all`: 29 baselines cannot be drawn.
        let many = try scalpel(["classify", "--model", modelPath, "--dataset", ClassifyTests.datasetPath, "--threshold", "0.2",
                                "--baselines", "29", "--html", "p.html"])
        XCTAssertEqual(many.status, 1)
        XCTAssertTrue(many.stderr.contains("at most 28"), many.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: scratch.appendingPathComponent("p.html").path), "nothing written")

        try "keep me".write(to: scratch.appendingPathComponent("old.yaml"), atomically: true, encoding: .utf8)
        let exists = try scalpel(["classify", "--model", modelPath, "--dataset", ClassifyTests.datasetPath, "--circuit-out", "old.yaml"])
        XCTAssertEqual(exists.status, 1)
        XCTAssertTrue(exists.stderr.contains("old.yaml") && exists.stderr.contains("--force"), exists.stderr)
        XCTAssertEqual(try String(contentsOf: scratch.appendingPathComponent("old.yaml"), encoding: .utf8), "keep me")
        let forced = try scalpel(["classify", "--model", modelPath, "--dataset", ClassifyTests.datasetPath, "--threshold", "0.2", "--baselines", "3",
                                  "--circuit-out", "old.yaml", "--force"])
        XCTAssertEqual(forced.status, 0, forced.stderr)
        XCTAssertTrue(try String(contentsOf: scratch.appendingPathComponent("old.yaml"), encoding: .utf8).contains("\"1.0\": all"))
    }

    func testReusesAMergedPatchResult() throws {
        let d = ClassifyTests.datasetPath
        for k in 1...2 {
            let part = try scalpel(["patch", "--model", modelPath, "--dataset", d, "--target", "z", "--shard", "\(k)/2", "-o", "p\(k).h5"])
            XCTAssertEqual(part.status, 0, part.stderr)
        }
        XCTAssertEqual(try scalpel(["merge", "p1.h5", "p2.h5", "-o", "z.h5"]).status, 0)
        let fresh = try scalpel(["classify", "--model", modelPath, "--dataset", d, "--threshold", "0.2", "--format", "json"])
        let reused = try scalpel(["classify", "--model", modelPath, "--dataset", d, "--threshold", "0.2", "--format", "json", "--patch-result", "z.h5"])
        XCTAssertEqual(reused.status, 0, reused.stderr)
        func summary(_ text: String) throws -> [String] {
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            let heads = try XCTUnwrap(object["heads"] as? [[String: Any]])
            return heads.map { "\($0["head"]!) \($0["role"]!) \(String(format: "%.4f", $0["effect"] as! Double))" } + ["\(object["circuit"]!) \(object["score"]!)"]
        }
        XCTAssertEqual(try summary(reused.stdout), try summary(fresh.stdout))

        // One part alone is not a whole patching; both parts are, and give the unmerged run's classification.
        let partial = try scalpel(["classify", "--model", modelPath, "--dataset", d, "--patch-result", "p1.h5"])
        XCTAssertEqual(partial.status, 1)
        XCTAssertTrue(partial.stderr.contains("missing shard 2/2") && partial.stderr.contains("give all 2 to classify --patch-result"), partial.stderr)
        let parts = try scalpel(["classify", "--model", modelPath, "--dataset", d, "--threshold", "0.2", "--format", "json", "--patch-result", "p2.h5", "p1.h5"])
        XCTAssertEqual(parts.status, 0, parts.stderr)
        XCTAssertEqual(parts.stdout, fresh.stdout, "the parts' exact values give the unsharded run's JSON")
        let otherModel = try scalpel(["classify", "--dataset", "digits", "--patch-result", "z.h5"])
        XCTAssertEqual(otherModel.status, 1)
        XCTAssertTrue(otherModel.stderr.contains("another model"), otherModel.stderr)
        let noBOS = try scalpel(["classify", "--model", modelPath, "--dataset", d, "--no-bos", "--patch-result", "z.h5"])
        XCTAssertEqual(noBOS.status, 1)
        XCTAssertTrue(noBOS.stderr.contains("other prompts"), noBOS.stderr)
        XCTAssertEqual(try scalpel(["patch", "--model", modelPath, "--dataset", d, "--target", "v", "-o", "v.h5"]).status, 0)
        let other = try scalpel(["classify", "--model", modelPath, "--dataset", d, "--patch-result", "v.h5"])
        XCTAssertEqual(other.status, 1)
        XCTAssertTrue(other.stderr.contains("target v") && other.stderr.contains("--target z"), other.stderr)
    }
}
