import XCTest
@testable import Scalpel

/// Circuits: ARENA parity on the fixture models (Fixtures/circuits, tools/make_circuit_fixtures.py),
/// the two identities (every head = full model, no head = all-mean model), seeded baselines, files.
final class CircuitTests: XCTestCase {
    struct Case {
        let model: Model
        let items: ContrastItems
        let meansPrompts: [[Int]]
        let full: Double
        let circuits: [(name: String, circuit: Circuit, perPosition: Double, pooled: Double)]
    }

    static func cases() throws -> [Case] {
        let url = TestFiles.fixtures.appendingPathComponent("circuits/cases.json")
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        let models = try XCTUnwrap(json["models"] as? [String: [String: Any]])
        return try models.keys.sorted().map { name in
            let entry = models[name]!
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let items = (entry["items"] as! [[String: Any]]).map {
                ContrastItem(clean: $0["clean"] as! [Int], corrupted: $0["corrupted"] as! [Int], answer: $0["answer"] as! Int, foil: $0["corrupted_answer"] as! Int)
            }
            let circuits = (entry["circuits"] as! [[String: Any]]).map { row -> (String, Circuit, Double, Double) in
                var heads: [Circuit.Head: AblationPositions] = [:]
                for (key, value) in row["heads"] as! [String: Any] {
                    heads[Circuit.Head(key)!] = (value as? String) == "all" ? .all : .only(value as! [Int])
                }
                let mlps = (row["mlps"] as? [String: Any]).map { listed in
                    Dictionary(uniqueKeysWithValues: listed.map { (Int($0.key)!, ($0.value as? String) == "all" ? AblationPositions.all : .only($0.value as! [Int])) })
                }
                return (row["name"] as! String, Circuit(name: row["name"] as! String, heads: heads, mlps: mlps), row["per_position"] as! Double, row["pooled"] as! Double)
            }
            return Case(model: model, items: try ContrastItems(name: name, items: items), meansPrompts: entry["means_prompts"] as! [[Int]],
                        full: entry["full"] as! Double, circuits: circuits)
        }
    }

    func testMatchesARENAMeanAblation() throws {
        for c in try Self.cases() {
            for kind in MeanKind.allCases {
                let scorer = try CircuitScorer(model: c.model, items: c.items, meansPrompts: c.meansPrompts, meansName: "means", meanKind: kind)
                XCTAssertEqual(try scorer.full(), c.full, accuracy: 1e-4, "\(c.items.name) full")
                // One by one, and all packed in one run: the same numbers.
                let packed = try scorer.score(c.circuits.map(\.circuit))
                for (i, expected) in c.circuits.enumerated() {
                    let reference = kind == .perPosition ? expected.perPosition : expected.pooled
                    XCTAssertEqual(try scorer.score(expected.circuit), reference, accuracy: 1e-4, "\(c.items.name) \(expected.name) \(kind)")
                    XCTAssertEqual(packed[i], reference, accuracy: 1e-4, "\(c.items.name) \(expected.name) \(kind) packed")
                }
            }
        }
    }

    func testEveryHeadIsTheFullModelAndNoHeadIsTheAllMeanModel() throws {
        for c in try Self.cases() {
            let scorer = try CircuitScorer(model: c.model, items: c.items, meansPrompts: c.meansPrompts, meansName: "means")
            XCTAssertEqual(try scorer.score(Circuit.everyHead(of: c.model)), try scorer.full(), "every head kept: exactly the full model")
            // The all-mean model built as weights (the surgeon's baked ablations) scores as the empty circuit.
            let empty = Circuit(name: "empty", heads: [:])
            let baked = try scorer.ablatedModel(empty)
            let run = try baked.run(c.items.items.map(\.clean))
            // To float rounding: the scorer projects the means once per position (RunSpan.replacedHeads).
            XCTAssertEqual(try scorer.score(empty), CausalMetric.logitDiff.mean(run.logits, items: c.items.items, columns: nil), accuracy: 1e-5)
            XCTAssertEqual(scorer.ablations(empty).values.reduce(0) { $0 + $1.count }, c.model.circuitHeads.count)
        }
    }

    func testBaselinesAreReproducibleDistinctAndBounded() throws {
        let c = try Self.cases().first { $0.items.name == "tiny-hub" }!
        let scorer = try CircuitScorer(model: c.model, items: c.items, meansPrompts: c.meansPrompts, meansName: "means")
        let circuit = Circuit(heads: [Circuit.Head(layer: 0, head: 1): .all, Circuit.Head(layer: 1, head: 2): .only([-1])])
        let a = try CircuitResult.compute(circuit, scorer: scorer, baselines: 12, seed: 7)
        let b = try CircuitResult.compute(circuit, scorer: scorer, baselines: 12, seed: 7)
        XCTAssertEqual(a.baselines?.values, b.baselines?.values)
        let other = try CircuitResult.compute(circuit, scorer: scorer, baselines: 12, seed: 8)
        XCTAssertNotEqual(a.baselines?.values, other.baselines?.values)
        let drawn = try RandomCircuits.draw(like: circuit, from: c.model.circuitHeads, count: 12, seed: 7)
        XCTAssertEqual(Set(drawn.map(\.headsText)).count, 12, "distinct")
        for random in drawn {
            XCTAssertEqual(random.size, 2)
            XCTAssertEqual(random.heads.values.map(\.description).sorted(), ["-1", "all"], "the circuit's position lists, dealt")
            // Packed baselines equal a run of each alone.
            XCTAssertEqual(try scorer.score(random), a.baselines!.values[drawn.firstIndex(of: random)!], accuracy: 1e-5)
        }
        // 8 heads: C(8, 2) head pairs × 2 ways to deal [end] and all.
        XCTAssertEqual(RandomCircuits.possible(like: circuit, heads: 8), 56)
        XCTAssertEqual(try RandomCircuits.draw(like: circuit, from: c.model.circuitHeads, count: 56, seed: 1).count, 56)
        XCTAssertThrowsError(try RandomCircuits.draw(like: circuit, from: c.model.circuitHeads, count: 57, seed: 1)) {
            XCTAssertEqual($0 as? CircuitError, .tooManyBaselines(asked: 57, possible: 56, size: 2, heads: 8))
        }
        XCTAssertEqual(RandomCircuits.possible(like: Circuit(heads: [:]), heads: 8), 1)
        let twenty = Circuit(heads: Dictionary(uniqueKeysWithValues: (0..<20).map { (Circuit.Head(layer: 0, head: $0), AblationPositions.all) }))
        XCTAssertEqual(RandomCircuits.possible(like: twenty, heads: 144), Int.max, "C(144, 20) ≈ 1.3e24: capped")
        XCTAssertEqual(RandomCircuits.possible(like: twenty, heads: 24), 10626, "C(24, 20)")
    }

    func testBadCircuitsAndMeans() throws {
        let c = try Self.cases().first { $0.items.name == "tiny-hub" }!
        let scorer = try CircuitScorer(model: c.model, items: c.items, meansPrompts: c.meansPrompts, meansName: "means")
        XCTAssertThrowsError(try scorer.validate(Circuit(name: "x", heads: [Circuit.Head(layer: 7, head: 0): .all]))) {
            XCTAssertTrue(($0 as? CircuitError)?.message.contains("head 7.0 does not exist") == true, "\($0)")
        }
        XCTAssertThrowsError(try scorer.validate(Circuit(name: "x", heads: [Circuit.Head(layer: 0, head: 9): .all])))
        XCTAssertThrowsError(try scorer.validate(Circuit(name: "x", heads: [Circuit.Head(layer: 0, head: 1): .only([6])]))) {
            XCTAssertEqual($0 as? CircuitError, .positionOutOfRange(circuit: "x", head: "0.1", position: 6, length: 6))
        }
        XCTAssertThrowsError(try CircuitScorer(model: c.model, items: c.items, meansPrompts: [[999, 1, 2]], meansName: "short")) {
            XCTAssertEqual($0 as? CircuitError, .meansLengthMismatch(scored: c.items.name, scoredLength: 6, means: "short", meansLength: 3))
        }
        // Pooled means fit any length.
        XCTAssertNoThrow(try CircuitScorer(model: c.model, items: c.items, meansPrompts: [[999, 1, 2]], meansName: "short", meanKind: .pooled))
    }

    func testCircuitFiles() throws {
        let circuit = try Circuit.parse("""
        description: demo
        heads: {"9.1": [end], "7.10": all, "8.8": [3, 4]}
        """, path: "c.yaml")
        XCTAssertEqual(circuit.heads, [Circuit.Head(layer: 9, head: 1): .only([-1]), Circuit.Head(layer: 7, head: 10): .all,
                                       Circuit.Head(layer: 8, head: 8): .only([3, 4])])
        XCTAssertEqual(circuit.description, "demo")
        XCTAssertEqual(circuit.name, "c")
        XCTAssertTrue(try Circuit.parse("heads: {}", path: "e.yaml").isEmpty)
        func refuses(_ text: String, _ words: [String]) {
            XCTAssertThrowsError(try Circuit.parse(text, path: "bad.yaml")) { error in
                let message = (error as? UserFacingError)?.message ?? "\(error)"
                for word in words { XCTAssertTrue(message.contains(word), "\(message) lacks \(word)") }
            }
        }
        refuses("heads: {\"9.1\": [end]}\nextra: 1", ["bad.yaml:2", "extra", "unknown field"])
        refuses("heads: {\"9\": all}", ["bad.yaml:1", "heads.9", "layer.head"])
        refuses("heads: {\"9.1\": [end, -1]}", ["heads.9.1", "none twice"])
        refuses("heads: {\"9.1\": some}", ["heads.9.1"])
        refuses("heads: [9.1]", ["heads", "mapping"])
        refuses("description: x", ["heads", "missing"])
        // Every ready circuit file of the repository parses.
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("circuits")
        let files = try XCTUnwrap(FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)?.compactMap { $0 as? URL }.filter { $0.pathExtension == "yaml" })
        XCTAssertGreaterThanOrEqual(files.count, 11)
        for file in files where !file.path.contains("/datasets/") { XCTAssertNoThrow(try Circuit.load(file.path), file.path) }
    }

    func testMLPCircuitsBakeIntoArchivesAndRefuseWhatIsMissing() throws {
        let c = try Self.cases().first { $0.items.name == "tiny-hub" }!
        let circuit = try Circuit.parse("""
        heads: {"0.1": all, "1.0": [end]}
        mlps: {"1": [end]}
        """, path: "m.yaml")
        XCTAssertEqual(circuit.mlps, [1: .only([-1])])
        XCTAssertEqual(circuit.mlpsText, "{\"1\": [end]}")
        XCTAssertNil(try Circuit.parse("heads: {}", path: "e.yaml").mlps, "no mlps: every MLP kept")
        XCTAssertEqual(try Circuit.parse("heads: {}\nmlps: {}", path: "e.yaml").mlps, [:], "mlps: {} ablates every MLP")
        for kind in MeanKind.allCases {
            let scorer = try CircuitScorer(model: c.model, items: c.items, meansPrompts: c.meansPrompts, meansName: "means", meanKind: kind)
            // Baked into the model and through an archive: the run-time score.
            let baked = try scorer.ablatedModel(circuit)
            XCTAssertNotNil(baked.blocks[0].mlp?.outputAblation)
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("circuit-mlp-\(UUID().uuidString).h5")
            defer { try? FileManager.default.removeItem(at: url) }
            try ModelArchive.write(baked, plan: nil, to: try OutputTarget(url.path, overwrite: false))
            let loaded = try ModelArchive.load(from: url)
            XCTAssertEqual(loaded.blocks[1].mlp?.outputAblation?.positions, .allBut([-1]))
            let expected = try scorer.score(circuit)
            for model in [baked, loaded] {
                let run = try model.run(c.items.items.map(\.clean))
                XCTAssertEqual(CausalMetric.logitDiff.mean(run.logits, items: c.items.items, columns: nil), expected, accuracy: 1e-5)  // the scorer shares the BOS row: other row counts, other rounding
            }
            // Without the ablations, as run-time patches: the same.
            let patched = try loaded.withoutAblations.run(c.items.items.map(\.clean), interventions: loaded.ablationInterventions)
            XCTAssertEqual(CausalMetric.logitDiff.mean(patched.logits, items: c.items.items, columns: nil), expected, accuracy: 1e-5)  // the scorer shares the BOS row: other row counts, other rounding
            // Random baselines keep the circuit's MLPs.
            for random in try RandomCircuits.draw(like: circuit, from: c.model.circuitHeads, count: 5, seed: 3) { XCTAssertEqual(random.mlps, circuit.mlps) }
            // An MLP the model lacks, a position outside the prompts.
            XCTAssertThrowsError(try scorer.validate(Circuit(name: "x", heads: [:], mlps: [2: .all]))) {
                XCTAssertEqual($0 as? CircuitError, .noSuchMLP(circuit: "x", layer: 2, layers: "0–1"))
                XCTAssertTrue(($0 as? CircuitError)?.message.contains("MLP 2 does not exist") == true)
            }
            XCTAssertThrowsError(try scorer.validate(Circuit(name: "x", heads: [:], mlps: [0: .only([6])]))) {
                XCTAssertEqual($0 as? CircuitError, .mlpPositionOutOfRange(circuit: "x", layer: 0, position: 6, length: 6))
            }
        }
        func refuses(_ text: String, _ words: [String]) {
            XCTAssertThrowsError(try Circuit.parse(text, path: "bad.yaml")) { error in
                let message = (error as? UserFacingError)?.message ?? "\(error)"
                for word in words { XCTAssertTrue(message.contains(word), "\(message) lacks \(word)") }
            }
        }
        refuses("heads: {}\nmlps: {\"9.1\": all}", ["bad.yaml:2", "mlps.9.1", "layer number"])
        refuses("heads: {}\nmlps: [9]", ["mlps", "mapping"])
        refuses("heads: {}\nmlps: {\"9\": [end, end]}", ["mlps.9", "none twice"])
        refuses("heads: {}\nmlps: {\"-1\": all}", ["mlps.-1"])
    }

    func testSharedPrefixIsReusedAndChangesNothing() throws {
        for c in try Self.cases() {
            let scorer = try CircuitScorer(model: c.model, items: c.items, meansPrompts: c.meansPrompts, meansName: "means")
            let n = c.items.items[0].length
            let end = Circuit(heads: [Circuit.Head(layer: 1, head: 2): .only([-1])], mlps: [1: .only([-1])])
            let randoms = try RandomCircuits.draw(like: end, from: c.model.circuitHeads, count: 6, seed: 4)
            // Kept only at the last position: every earlier position is one run's, reused.
            XCTAssertEqual(try scorer.sharedPrefix([end] + randoms)?.lengths, Array(repeating: n - 1, count: c.items.items.count))
            let middle = Circuit(heads: [Circuit.Head(layer: 0, head: 1): .only([2, -1])])
            XCTAssertEqual(try scorer.sharedPrefix([end, middle])?.lengths, nil, "different MLPs: nothing shared")
            XCTAssertEqual(try scorer.sharedPrefix([middle])?.lengths, Array(repeating: 2, count: c.items.items.count))
            XCTAssertNil(try scorer.sharedPrefix([Circuit.everyHead(of: c.model)]))
            // With the prefix or computing every position: the same scores (to float rounding).
            let withPrefix = try scorer.score([end] + randoms), without = try scorer.runBatch([end] + randoms)
            for (a, b) in zip(withPrefix, without) { XCTAssertEqual(a, b, accuracy: 1e-5) }
            XCTAssertEqual(try scorer.score(middle), try scorer.runBatch([middle])[0], accuracy: 1e-5)
        }
    }
}
