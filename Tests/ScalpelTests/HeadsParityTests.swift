import XCTest
@testable import Scalpel

/// `scalpel heads` analyses against references: head detectors against TransformerLens's
/// `detect_head` (`Fixtures/attribution/`, tools/make_attribution_fixtures.py), copy and next scores
/// and the writing scatter against a PyTorch script following the study's notebook on Hugging Face
/// weights (`Fixtures/heads/`, tools/make_head_score_fixtures.py), p-values against scipy.
final class HeadsParityTests: XCTestCase {
    static let variants: [String: (bos: Bool, current: Bool)] = [
        "plain": (false, false), "exclude_bos": (true, false), "exclude_current": (false, true), "exclude_bos_current": (true, true)]
    static let detectors: [String: HeadDetector] = [
        "previous_token_head": .previousToken, "duplicate_token_head": .duplicateToken, "induction_head": .induction]

    func testDetectorsMatchTransformerLens() throws {
        let folder = TestFiles.fixtures.appendingPathComponent("attribution")
        let cases = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("cases.json"))) as? [String: Any])
        let models = try XCTUnwrap(cases["models"] as? [String: [String: Any]])
        var compared = 0, refused = 0
        for (name, info) in models.sorted(by: { $0.key < $1.key }) {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let tensors = try SafetensorsFile(url: folder.appendingPathComponent("\(name).safetensors"))
            let sets = try XCTUnwrap(info["detector_prompts"] as? [String: [[Int]]])
            for (tlName, detector) in Self.detectors {
                for (variant, exclude) in Self.variants {
                    for (set, prompts) in sets {
                        var runs: [(String, [[Int]])] = [(set, prompts)]
                        if variant == "plain" { runs.append(("\(set)_first", [prompts[0]])) }
                        for (key, prompts) in runs {
                            let expected = try tensors.tensor("\(name)/heads/\(tlName)/\(variant)/\(key)")
                            let detection = HeadDetection(detector: detector, excludeBOS: exclude.bos, excludeCurrentToken: exclude.current)
                            let what = "\(name) \(tlName) \(variant) \(key)"
                            if !prompts.contains(where: { HeadDetection.detectionPattern(detector, tokens: $0).contains(true) }) {
                                // Nothing to detect: TransformerLens scores 0 everywhere; Scalpel says so instead.
                                XCTAssertTrue(expected.scalars.allSatisfy { $0 == 0 }, what)
                                XCTAssertThrowsError(try detection.run(model, prompts: prompts), what)
                                refused += 1
                                continue
                            }
                            let grid = try detection.run(model, prompts: prompts)[0]
                            XCTAssertEqual([grid.layers, grid.heads], expected.shape, what)
                            for (i, value) in grid.values.enumerated() {
                                XCTAssertEqual(try XCTUnwrap(value), Double(expected[flat: i]), accuracy: 1e-5, "\(what) cell \(i)")
                            }
                            compared += 1
                        }
                    }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(compared, 2 * 3 * 4 * 2 + 2)
        // The three detectors from one forward pass give each one's fixture too.
        for (name, info) in models.sorted(by: { $0.key < $1.key }) {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            let tensors = try SafetensorsFile(url: folder.appendingPathComponent("\(name).safetensors"))
            let sets = try XCTUnwrap(info["detector_prompts"] as? [String: [[Int]]])
            for (set, prompts) in sets where Self.detectors.allSatisfy({ d in prompts.contains { HeadDetection.detectionPattern(d.1, tokens: $0).contains(true) } }) {
                let grids = try HeadDetection(detectors: Self.detectors.map(\.1)).run(model, prompts: prompts)
                for ((tlName, _), grid) in zip(Self.detectors, grids) {
                    let expected = try tensors.tensor("\(name)/heads/\(tlName)/plain/\(set)")
                    for (i, value) in grid.values.enumerated() {
                        XCTAssertEqual(try XCTUnwrap(value), Double(expected[flat: i]), accuracy: 1e-5, "\(name) \(tlName) together, \(set) cell \(i)")
                    }
                    compared += 1
                }
            }
        }
        XCTAssertGreaterThanOrEqual(compared, 2 * 3 * 4 * 2 + 2 + 3)
        XCTAssertGreaterThan(refused, 0, "a single prompt without a repeat is refused for duplicate and induction heads")
    }

    func testRandomRepeatedPromptsAreSeededAndRepeated() {
        let a = HeadDetection.randomRepeatedPrompts(count: 3, length: 10, seed: 7, vocabSize: 1000, bos: 999)
        XCTAssertEqual(a, HeadDetection.randomRepeatedPrompts(count: 3, length: 10, seed: 7, vocabSize: 1000, bos: 999))
        XCTAssertNotEqual(a, HeadDetection.randomRepeatedPrompts(count: 3, length: 10, seed: 8, vocabSize: 1000, bos: 999))
        for prompt in a {
            XCTAssertEqual(prompt.count, 21)
            XCTAssertEqual(prompt[0], 999)
            XCTAssertEqual(Array(prompt[1...10]), Array(prompt[11...20]))
            XCTAssertTrue(prompt.dropFirst().allSatisfy { (0..<999).contains($0) })
        }
    }

    // MARK: copy, next, writing

    struct HeadCases {
        let json: [String: Any]
        init() throws {
            let url = TestFiles.fixtures.appendingPathComponent("heads/cases.json")
            json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        }
        var models: [String: [String: Any]] { json["models"] as! [String: [String: Any]] }
    }

    /// Prompts and answers of a fixture model; `noBOS` drops the leading BOS (as `--no-bos`).
    func prompts(_ info: [String: Any], noBOS: Bool) -> (tokens: [[Int]], answers: [Int]) {
        let list = info["prompts"] as! [[String: Any]]
        return (list.map { Array(($0["tokens"] as! [Int]).dropFirst(noBOS ? 1 : 0)) }, list.map { $0["answer"] as! Int })
    }

    /// One case of the copy-score fixture: a model, its prompts with or without BOS, a sign, and the
    /// study procedure's expected counts.
    struct CopyCase {
        let what: String, model: Model, tokens: [[Int]], answers: [Int], noBOS: Bool, sign: Float
        let positions: Int, copyHits: [[Int]], nextHits: [[Int]], top: [String: [[Int]]]

        /// The expected copy and next scores of `head`.
        func expected(_ head: HeadIndex) -> (copy: Double, next: Double) {
            (Double(copyHits[head.layer][head.head]) / Double(positions), Double(nextHits[head.layer][head.head]) / Double(positions))
        }
    }

    /// Every fixture model × BOS or not × sign 1 and −1 (2 × 2 × 2 cases).
    func copyCases() throws -> [CopyCase] {
        var cases: [CopyCase] = []
        for (name, info) in try HeadCases().models.sorted(by: { $0.key < $1.key }) {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            for (variant, noBOS) in [("bos", false), ("no_bos", true)] {
                let (tokens, answers) = prompts(info, noBOS: noBOS)
                let expectedSets = info[variant] as! [String: Any]
                for (key, sign) in [("copy", Float(1)), ("copy_negative", Float(-1))] {
                    let expected = expectedSets[key] as! [String: Any]
                    cases.append(CopyCase(what: "\(name) \(variant) \(key)", model: model, tokens: tokens, answers: answers, noBOS: noBOS,
                                          sign: sign, positions: expected["positions"] as! Int, copyHits: expected["copy_hits"] as! [[Int]],
                                          nextHits: expected["next_hits"] as! [[Int]], top: expected["top"] as! [String: [[Int]]]))
                }
            }
        }
        return cases
    }

    func testCopyAndNextScoresMatchTheStudysProcedure() throws {
        var compared = 0
        for c in try copyCases() {
            let heads = HeadGrid.heads(of: c.model)
            let result = try CopyScores(sign: c.sign, tableHeads: heads).run(c.model, prompts: c.tokens, answers: c.answers, firstScored: c.noBOS ? 0 : 1)
            XCTAssertEqual(result.positions, c.positions)
            for head in heads {
                let what = "\(c.what) \(head)"
                XCTAssertEqual(result.copy[head], c.expected(head).copy, what + " copy")
                XCTAssertEqual(result.next[head], c.expected(head).next, what + " next")
                let table = try XCTUnwrap(result.tables[head])
                let reference = try XCTUnwrap(c.top[head.description])
                XCTAssertEqual(table.count, reference.count, what)
                for (row, (ours, theirs)) in zip(table, reference).enumerated() {
                    XCTAssertEqual(Set(ours), Set(theirs), "\(what) row \(row) top-5 tokens")
                }
                compared += 1
            }
        }
        XCTAssertEqual(compared, 2 * 2 * (8 + 12))
    }

    /// Without table heads the scores come from the early-exit scan (targets' logits first, the
    /// vocabulary in blocks, a target out once k tokens beat it): the same counts as the fixture's
    /// full top 5, with blocks of every size from a few tokens (many blocks, both routes) to one.
    func testCopyAndNextScoresByEarlyExitMatchTheStudysProcedure() throws {
        var compared = 0
        for c in try copyCases() {
            for block in [1, 3, 16, 50, 512] {
                var scores = CopyScores(sign: c.sign)
                scores.firstBlock = block
                let result = try scores.run(c.model, prompts: c.tokens, answers: c.answers, firstScored: c.noBOS ? 0 : 1)
                XCTAssertTrue(result.tables.isEmpty)
                for head in HeadGrid.heads(of: c.model) {
                    let what = "\(c.what) \(head) block \(block)"
                    XCTAssertEqual(result.copy[head], c.expected(head).copy, what + " copy")
                    XCTAssertEqual(result.next[head], c.expected(head).next, what + " next")
                }
                compared += 1
            }
        }
        XCTAssertEqual(compared, 2 * 2 * 2 * 5)
    }

    /// On the bundled (trained) model, where many positions are in the top 5, the early-exit counts
    /// equal those read from every head's full top-5 table.
    func testEarlyExitEqualsTheFullTopFiveOnTheBundledModel() throws {
        let model = try ModelLocation.load(nil)
        let items = try DatasetFiles.resolve("digits").items + DatasetFiles.resolve("months").items
        let tokens = try items.map { try model.encode(prompt: $0.prompt, prependBOS: true) }
        let answers = try items.map { try model.answerID($0.answer!) }
        var hits = 0
        for sign in [Float(1), -1] {
            let full = try CopyScores(sign: sign, tableHeads: HeadGrid.heads(of: model)).run(model, prompts: tokens, answers: answers, firstScored: 1)
            for block in [7, 512] {
                var scores = CopyScores(sign: sign)
                scores.firstBlock = block
                let fast = try scores.run(model, prompts: tokens, answers: answers, firstScored: 1)
                XCTAssertEqual(fast.copy, full.copy, "sign \(sign) block \(block)")
                XCTAssertEqual(fast.next, full.next, "sign \(sign) block \(block)")
            }
            hits += full.copy.values.compactMap { $0 }.filter { $0 > 0 }.count + full.next.values.compactMap { $0 }.filter { $0 > 0 }.count
        }
        XCTAssertGreaterThan(hits, 10, "heads with tokens in their top 5")
    }

    func testWritingScatterMatchesTheStudysProcedureAndScipy() throws {
        var compared = 0
        for (name, info) in try HeadCases().models.sorted(by: { $0.key < $1.key }) {
            let model = try Checkpoint.load(from: TestFiles.model(name))
            for (variant, noBOS) in [("bos", false), ("no_bos", true)] {
                let (tokens, _) = prompts(info, noBOS: noBOS)
                let writing = (info[variant] as! [String: Any])["writing"] as! [String: [String: Any]]
                for head in HeadGrid.heads(of: model) {
                    let expected = try XCTUnwrap(writing[head.description])
                    let result = try WritingScatter(head: head).run(model, prompts: tokens, firstScored: noBOS ? 0 : 1)
                    let what = "\(name) \(variant) \(head)"
                    let x = expected["attention"] as! [Double], y = expected["projection"] as! [Double]
                    XCTAssertEqual(result.points.count, x.count, what)
                    for (point, (ex, ey)) in zip(result.points, zip(x, y)) {
                        XCTAssertEqual(point.attention, ex, accuracy: 1e-5, what)
                        XCTAssertEqual(point.projection, ey, accuracy: 1e-4 * max(1, abs(ey)), what)
                    }
                    XCTAssertEqual(try XCTUnwrap(result.r), expected["r"] as! Double, accuracy: 1e-4, what + " r")
                    XCTAssertEqual(try XCTUnwrap(result.pValue), expected["p_value"] as! Double, accuracy: 1e-4, what + " p")
                    compared += 1
                }
            }
        }
        XCTAssertEqual(compared, 2 * (8 + 12))
    }

    func testIncompleteBetaAndPearsonPValuesMatchScipy() throws {
        let json = try HeadCases().json
        for entry in json["betainc"] as! [[String: Double]] {
            let value = Statistics.regularizedIncompleteBeta(a: entry["a"]!, b: entry["b"]!, x: entry["x"]!)
            XCTAssertEqual(value, entry["value"]!, accuracy: 1e-12 + 1e-10 * entry["value"]!, "I_\(entry["x"]!)(\(entry["a"]!), \(entry["b"]!))")
        }
        for entry in json["pearson_p"] as! [[String: Any]] {
            let n = entry["n"] as! Int, r = entry["r"] as! Double, expected = entry["p_value"] as! Double
            XCTAssertEqual(Statistics.pearsonPValue(r: r, n: n), expected, accuracy: 1e-12 + 1e-8 * expected, "n \(n) r \(r)")
        }
        XCTAssertEqual(Statistics.pearson([1, 2, 3, 4], [2, 4, 6, 8])!, 1, accuracy: 1e-12)
        XCTAssertNil(Statistics.pearson([1, 1, 1], [1, 2, 3]))
    }
}
