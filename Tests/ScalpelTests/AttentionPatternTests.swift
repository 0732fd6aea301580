import XCTest
@testable import Scalpel

/// The attention-pattern API, its pictures and the HTML viewer, on the bundled model (6 layers × 4 heads).
final class AttentionPatternTests: XCTestCase {
    static let model = Result { try ModelLocation.load(nil) }

    func model() throws -> Model { try Self.model.get() }

    func captured(_ model: Model, _ prompt: [Int], layer: Int) throws -> Tensor {
        try model.run([prompt], capture: HookFilter([HookPoint.pattern(layer)])).cache.require(.pattern(layer), prompt: 0)
    }

    func testShapesLabelsAndValuesAreTheCapturedPatterns() throws {
        let model = try model()
        let prompt = try model.encode(prompt: "1 2 3 4 5")
        let heads = try HeadIndex.list("5.1, 0.3")
        XCTAssertEqual(heads, [HeadIndex(layer: 5, head: 1), HeadIndex(layer: 0, head: 3)])
        let patterns = try AttentionPatterns.collect(model, prompts: [prompt], heads: heads)
        let n = prompt.count
        XCTAssertEqual(patterns.shape, [2, n, n])
        XCTAssertEqual(patterns.values.count, 2 * n * n)
        XCTAssertEqual(patterns.tokenStrings, prompt.map(model.tokenText))
        XCTAssertEqual(patterns.tokenStrings.first, "<|endoftext|>")
        for (h, head) in heads.enumerated() {
            let pattern = try captured(model, prompt, layer: head.layer)
            for q in 0..<n {
                for k in 0..<n {
                    XCTAssertEqual(patterns.weight(head: h, query: q, key: k), pattern[flat: (head.head * n + q) * n + k], "\(head) \(q) \(k)")
                }
                XCTAssertEqual(patterns.row(head: h, query: q).reduce(0, +), 1, accuracy: 1e-5)
                XCTAssertTrue(patterns.row(head: h, query: q)[(q + 1)...].allSatisfy { $0 == 0 }, "causal mask")
            }
        }
        XCTAssertEqual(try patterns.destination(nil), n - 1)
        XCTAssertEqual(try patterns.destination(-2), n - 2)
        XCTAssertEqual(try patterns.destination(0), 0)
        XCTAssertThrowsError(try patterns.destination(n)) { XCTAssertEqual($0 as? AttentionPatternError, .destinationOutOfRange(dest: n, length: n)) }
        XCTAssertThrowsError(try patterns.destination(-n - 1))
        let top = patterns.topSources(head: 0, query: n - 1, count: 3)
        XCTAssertEqual(top.count, 3)
        XCTAssertTrue(top[0].weight >= top[1].weight && top[1].weight >= top[2].weight)
    }

    func testADatasetIsAveragedPositionByPositionAndNeedsOneLength() throws {
        let model = try model()
        let prompts = try ["1 2 3 4", "5 6 7 8", "2 4 6 8"].map { try model.encode(prompt: $0) }
        let heads = [HeadIndex(layer: 2, head: 0)]
        let patterns = try AttentionPatterns.collect(model, prompts: prompts, heads: heads, batchSize: 2)
        XCTAssertEqual(patterns.promptCount, 3)
        XCTAssertEqual(patterns.perPrompt.count, 3 * patterns.values.count)
        XCTAssertEqual(patterns.tokenStrings, prompts[0].map(model.tokenText))
        let n = prompts[0].count
        var expected = [Double](repeating: 0, count: n * n)
        for prompt in prompts {
            let pattern = try captured(model, prompt, layer: 2)
            for i in 0..<(n * n) { expected[i] += Double(pattern[flat: i]) / 3 }
        }
        for i in 0..<(n * n) { XCTAssertEqual(Double(patterns.values[i]), expected[i], accuracy: 1e-6) }
        let unequal = try ["1 2 3", "1 2 3 4"].map { try model.encode(prompt: $0) }
        XCTAssertThrowsError(try AttentionPatterns.collect(model, prompts: unequal, heads: heads)) {
            XCTAssertEqual($0 as? AttentionPatternError, .unequalLengths(item: 2, length: unequal[1].count, firstLength: unequal[0].count))
            XCTAssertTrue(($0 as? AttentionPatternError)?.message.contains("item 2") == true)
        }
    }

    func testHeadListsAreCheckedAgainstTheModel() throws {
        let model = try model()
        for text in ["", "9", "9.", ".1", "1.2.3", "a.b", "1.-1", "1,2", "9.1,", " ", "٣.1", "99999999999999999999.1"] {
            XCTAssertThrowsError(try HeadIndex.list(text), text) { XCTAssertTrue($0 is AttentionPatternError, text) }
        }
        XCTAssertThrowsError(try HeadIndex.list("1.1,1.1")) { XCTAssertEqual($0 as? AttentionPatternError, .repeatedHead("1.1")) }
        XCTAssertThrowsError(try AttentionPatterns.validate([HeadIndex(layer: 6, head: 1)], in: model)) {
            XCTAssertEqual($0 as? AttentionPatternError, .layerOutOfRange(head: "6.1", blocks: 6))
        }
        XCTAssertThrowsError(try AttentionPatterns.validate([HeadIndex(layer: 0, head: 4)], in: model)) {
            XCTAssertEqual($0 as? AttentionPatternError, .headOutOfRange(head: "0.4", heads: 4))
        }
        XCTAssertNoThrow(try AttentionPatterns.validate([HeadIndex(layer: 5, head: 3)], in: model))
        XCTAssertThrowsError(try AttentionPatterns.validate(prompts: [[1, 2], []])) { XCTAssertEqual($0 as? AttentionPatternError, .emptyPrompt(item: 2)) }
        XCTAssertThrowsError(try AttentionPatterns.validate(prompts: [])) { XCTAssertEqual($0 as? AttentionPatternError, .noPrompts) }
    }

    /// Hand-made patterns over hostile token strings (the viewer and pictures need no model).
    func hostilePatterns() -> AttentionPatterns {
        let tokens = ["<|endoftext|>", "</script><b>x</b>", " \"q\" & 'a'", "\n", "<!--", "\u{2028}&amp;"]
        let n = tokens.count
        var values: [Float] = []
        for _ in 0..<2 {
            for q in 0..<n { for k in 0..<n { values.append(k <= q ? 1 / Float(q + 1) : 0) } }
        }
        return AttentionPatterns(heads: [HeadIndex(layer: 1, head: 2), HeadIndex(layer: 0, head: 0)], prompts: [Array(0..<n)],
                                 tokenStrings: tokens, values: values, perPrompt: values)
    }

    func embeddedJSON(_ html: String) throws -> [String: Any] {
        let open = "<script type=\"application/json\" id=\"attention-data\">"
        let start = try XCTUnwrap(html.range(of: open)).upperBound
        let end = try XCTUnwrap(html.range(of: "</script>", range: start..<html.endIndex)).lowerBound
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(html[start..<end].utf8)) as? [String: Any])
    }

    func testViewerEscapesTokensAndTitles() throws {
        let patterns = hostilePatterns()
        let html = AttentionViewer.html(patterns, destination: 5, title: "<i>title</i> & \"x\"", model: "m<odel")
        XCTAssertFalse(html.contains("<b>"), "a token's markup must not reach the page")
        XCTAssertFalse(html.contains("<i>"), "nor the title's")
        XCTAssertFalse(html.contains("<!--"))
        XCTAssertTrue(html.contains("<title>&lt;i&gt;title&lt;/i&gt; &amp; &quot;x&quot;</title>"))
        XCTAssertEqual(html.components(separatedBy: "</script>").count, 3, "only the two script elements close")
        XCTAssertFalse(html.contains("http://") || html.contains("https://") || html.contains("src="), "no network")
        let data = try embeddedJSON(html)
        XCTAssertEqual(data["tokens"] as? [String], patterns.tokenStrings)
        XCTAssertEqual(data["labels"] as? [String], patterns.tokenStrings.map(SVG.visibleToken))
        XCTAssertEqual(data["title"] as? String, "<i>title</i> & \"x\"")
        XCTAssertEqual(data["model"] as? String, "m<odel")
        XCTAssertEqual(data["destination"] as? Int, 5)
        let heads = try XCTUnwrap(data["heads"] as? [[String: Any]])
        XCTAssertEqual(heads.map { $0["label"] as? String }, ["1.2", "0.0"])
        XCTAssertEqual(heads.map { $0["color"] as? String }, [SVG.palette[0], SVG.palette[1]])
        XCTAssertEqual(AttentionViewer.html(patterns, destination: 5, title: "t", model: "m"),
                       AttentionViewer.html(patterns, destination: 5, title: "t", model: "m"), "deterministic")
    }

    func testViewerNumbersEqualTheTracesPatterns() throws {
        let model = try model()
        let prompt = try model.encode(prompt: "January February March")
        let heads = try HeadIndex.list("3.2,0.1,5.0")
        let patterns = try AttentionPatterns.collect(model, prompts: [prompt], heads: heads)
        let html = AttentionViewer.html(patterns, destination: prompt.count - 1, title: "t", model: model.name)
        let data = try embeddedJSON(html)
        let embedded = try XCTUnwrap(data["patterns"] as? [[[Any]]])
        XCTAssertEqual(embedded.count, heads.count)
        let n = prompt.count
        for (h, head) in heads.enumerated() {
            let pattern = try captured(model, prompt, layer: head.layer)
            XCTAssertEqual(embedded[h].count, n)
            for q in 0..<n {
                XCTAssertEqual(embedded[h][q].count, n)
                for k in 0..<n {
                    // The same Float, bit for bit, after the JSON round trip.
                    XCTAssertEqual((embedded[h][q][k] as? NSNumber)?.floatValue, pattern[flat: (head.head * n + q) * n + k], "\(head) \(q) \(k)")
                }
            }
        }
        XCTAssertEqual(data["tokens"] as? [String], prompt.map(model.tokenText))
    }

    func testPicturesHaveTokenLabelsMaskedCellsAndOneColourPerHead() throws {
        let patterns = hostilePatterns()
        let svg = AttentionPlot.svg(patterns, destination: 4, title: "Attention <test>")
        XCTAssertEqual(svg, AttentionPlot.svg(patterns, destination: 4, title: "Attention <test>"), "deterministic")
        XCTAssertTrue(svg.contains("head 1.2") && svg.contains("head 0.0"))
        XCTAssertTrue(svg.contains(AttentionPlot.maskedColor), "masked future cells")
        XCTAssertTrue(svg.contains(SVG.viridis(1)), "sequential colours")
        XCTAssertTrue(svg.contains("&lt;/script&gt;&lt;b&gt;x&lt;/b&gt;"), "token labels, escaped")
        XCTAssertFalse(svg.contains("<b>") || svg.contains("<test>"))
        XCTAssertTrue(svg.contains("␣&quot;q&quot;␣&amp;␣&apos;a&apos;"), "spaces made visible")
        XCTAssertTrue(svg.contains("\\n"), "a newline token shows as \\n")
        XCTAssertTrue(svg.contains("fill=\"\(SVG.palette[0])\"") && svg.contains("fill=\"\(SVG.palette[1])\""))
        XCTAssertTrue(svg.contains("Attention from &quot;&lt;!--&quot; (position 4)"), "the destination token in the title")
        // The multi-head view draws the sources 0…destination only: one bar per head and source.
        let bars = AttentionPlot.multiHead(patterns, destination: 4)
        XCTAssertEqual(bars.components(separatedBy: "<title>1.2 · ").count - 1, 5)
        XCTAssertEqual(bars.components(separatedBy: "<title>0.0 · ").count - 1, 5)
    }
}
