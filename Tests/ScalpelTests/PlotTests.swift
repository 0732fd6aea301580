import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import Scalpel

final class PlotTests: XCTestCase {
    // MARK: Lens plot

    func testSinglePromptHeatMapHasOneRectPerCell() throws {
        let result = Self.countingLens()
        let svg = LensPlot.svg(result, title: "Logit lens: 1 2 3 4 5", tokenText: Self.vocab)
        let doc = try XMLDoc(svg)
        XCTAssertEqual(doc.elements(class: "cell").count, 13 * 6)
        XCTAssertEqual(doc.elements(class: "cell").filter { $0.name == "rect" }.count, 13 * 6)
        XCTAssertTrue(doc.texts.contains("Logit lens: 1 2 3 4 5"))
        // Row labels top to bottom, and input tokens as column labels.
        XCTAssertTrue(doc.texts.contains("L0 pre"))
        XCTAssertTrue(doc.texts.contains("L11 pre"))
        XCTAssertTrue(doc.texts.contains("final"))
        XCTAssertTrue(doc.texts.contains("␣3"))
        XCTAssertTrue(doc.texts.contains("<|endoftext|>"))
        XCTAssertTrue(doc.texts.contains("next token"))
        // One target only at the last position: the panels are drawn (one prompt line and one mean per panel).
        XCTAssertEqual(doc.elements(class: "mean").count, 2)
        XCTAssertEqual(doc.elements(class: "prompt").count, 2)
        XCTAssertEqual(doc.elements(class: "colorbar").count, 1)
    }

    /// Rows name the block they came from: block 4 of `--blocks "0-3,5"` is layer 5.
    func testRowLabelsNameTheSourceBlock() throws {
        let base = try ModelLocation.load(nil)
        var lens = LogitLens()
        lens.includeMid = true
        XCTAssertEqual(lens.rowLabels(for: base).prefix(3), ["L0 pre", "L0 mid", "L1 pre"])
        let sliced = try Surgeon.build(try Plan.inline(blocks: "0-3,5"), base: base)
        XCTAssertEqual(sliced.blocks.map(\.source.description), ["bundled:L0", "bundled:L1", "bundled:L2", "bundled:L3", "bundled:L5"])
        lens.includeMid = false
        XCTAssertEqual(lens.rowLabels(for: sliced), ["L0 pre", "L1 pre", "L2 pre", "L3 pre", "L5 pre", "final"])
        let stitched = try Surgeon.build(try Plan.inline(blocks: "0,2"), base: base)
        XCTAssertEqual(lens.rowLabels(for: stitched), ["L0 pre", "L2 pre", "final"])
        // The picture uses the same labels.
        let result = try lens.run(sliced, prompts: [LensInput(text: "1 2 3 4", tokens: try sliced.encode(prompt: "1 2 3 4"))])
        let doc = try XMLDoc(LensPlot.svg(result, title: "sliced", tokenText: sliced.tokenText))
        XCTAssertTrue(doc.texts.contains("L5 pre"), "\(doc.texts)")
        XCTAssertFalse(doc.texts.contains("L4 pre"), "\(doc.texts)")
    }

    /// Ranks are 0-based; a log axis of ranks draws rank + 1 and says so.
    func testRankAxesSayRankPlusOne() throws {
        let lens = try XMLDoc(LensPlot.svg(Self.promptsLens(count: 3), title: "ranks"))
        XCTAssertTrue(lens.texts.contains("rank + 1"), "\(lens.texts)")
        let ranks = [(x: 0.0, y: 1.0), (x: 1, y: 10), (x: 2, y: 250)]
        let line = try XMLDoc(LinePlot.svg(series: [(name: "decode", points: ranks)], xLabel: "α", yLabel: "rank + 1",
                                           title: "log", logY: true))
        for tick in ["1", "10", "100", "1k", "rank + 1"] { XCTAssertTrue(line.texts.contains(tick), "\(tick): \(line.texts)") }
    }

    func testManyPromptsAreCappedWithCaption() throws {
        let result = Self.promptsLens(count: 70)
        let svg = LensPlot.svg(result, title: "Digits", tokenText: Self.vocab)
        let doc = try XMLDoc(svg)
        XCTAssertEqual(doc.elements(class: "cell").count, 64 * result.rows.count)
        XCTAssertTrue(doc.texts.contains("Showing the first 64 of 70 prompts."), "\(doc.texts)")
        XCTAssertTrue(doc.texts.contains("target"))
        XCTAssertEqual(doc.elements(class: "mean").count, 2)
        XCTAssertEqual(doc.elements(class: "prompt").count, 2 * 70)   // every prompt's line, capped map or not
        let few = try XMLDoc(LensPlot.svg(Self.promptsLens(count: 5), title: "Digits", tokenText: Self.vocab))
        XCTAssertEqual(few.elements(class: "cell").count, 5 * 13)
        XCTAssertFalse(few.texts.contains { $0.hasPrefix("Showing the first") })
    }

    func testWithoutTargetsNoPanels() throws {
        var result = Self.promptsLens(count: 3)
        for p in result.prompts.indices { result.prompts[p].target = nil }
        let doc = try XMLDoc(LensPlot.svg(result, title: "t", tokenText: Self.vocab))
        XCTAssertEqual(doc.elements(class: "cell").count, 3 * 13)
        XCTAssertEqual(doc.elements(class: "mean").count, 0)
    }

    func testHostileTokensAreEscaped() throws {
        let hostile = ["<|endoftext|>", "&", "\"", "\n", "\u{0}", " <b>'x'</b>"]
        let vocab = { (id: Int) in hostile[id % hostile.count] }
        let cells = (0..<3).map { r in
            hostile.indices.map { c in Self.cell([(hostile[(c + r) % hostile.count], 0.3 + 0.1 * Double(r))], id: (c + r) % hostile.count) }
        }
        let prompt = LensPrompt(prompt: "a \"b\" & <c>\n\u{0}", tokens: Array(hostile.indices), positions: Array(hostile.indices),
                                target: nil, foil: nil, cells: cells)
        let result = LensResult(model: "m<&>", rows: ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.1.hook_resid_post"],
                                rowLabels: ["L0 pre", "L1 pre", "final"], normalization: .recomputed, prompts: [prompt])
        let title = "Title with <tags> & \"quotes\" and \u{1}"
        let svg = LensPlot.svg(result, title: title, tokenText: vocab)
        let doc = try XMLDoc(svg)
        XCTAssertEqual(doc.elements(class: "cell").count, 3 * 6)
        XCTAssertFalse(svg.contains("<|endoftext|>"))
        XCTAssertFalse(svg.contains("<b>"))
        XCTAssertFalse(svg.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" })
        XCTAssertTrue(doc.texts.contains("<|endoftext|>"))
        XCTAssertTrue(doc.texts.contains("&"))
        XCTAssertTrue(doc.texts.contains("\""))
        XCTAssertTrue(doc.texts.contains("\\n"))
        XCTAssertTrue(doc.texts.contains("\\x00"))
        XCTAssertTrue(doc.texts.contains("␣<b>'x'</b>"), "\(doc.texts)")   // a column label
        XCTAssertTrue(doc.texts.contains("␣<b>'x'<…"), "\(doc.texts)")     // a cell, truncated
        XCTAssertTrue(doc.texts.contains("Title with <tags> & \"quotes\" and \\x01"))
        // Several hostile prompts: the prompt texts label the columns.
        let many = LensResult(model: "m", rows: result.rows, rowLabels: result.rowLabels, normalization: .cached, prompts: [prompt, prompt])
        let manyDoc = try XMLDoc(LensPlot.svg(many, title: "t", tokenText: vocab))
        XCTAssertTrue(manyDoc.texts.contains("a \"b\" & <c>\\n\\x00"), "\(manyDoc.texts)")
    }

    func testEscapeAndVisibleToken() {
        XCTAssertEqual(SVG.escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;")
        XCTAssertEqual(SVG.escape("a\u{0}b\u{1F}\n"), "a\\x00b\\x1F&#10;")
        XCTAssertEqual(SVG.visibleToken(" the"), "␣the")
        XCTAssertEqual(SVG.visibleToken("\n\n"), "\\n\\n")
        XCTAssertEqual(SVG.visibleToken("\t\u{7F}"), "\\t\\x7F")
        XCTAssertEqual(SVG.visibleToken(""), "∅")
        XCTAssertEqual(SVG.visibleText("1 2\n3"), "1 2\\n3")
        XCTAssertEqual(SVG.truncate("abcdef", maxChars: 4), "abc…")
        XCTAssertEqual(SVG.truncateHead("abcdef", maxChars: 4), "…def")
        XCTAssertEqual(SVG.num(1.005), "1")
        XCTAssertEqual(SVG.num(2.5), "2.5")
        XCTAssertEqual(SVG.num(-0.001), "0")
        XCTAssertEqual(SVG.tickLabel(0.25, step: 0.25), "0.25")
        XCTAssertEqual(SVG.tickLabel(0.5, step: 0.25), "0.50")
        XCTAssertEqual(SVG.niceTicks(0...1, count: 5), [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1])
        XCTAssertEqual(SVG.viridis(0), "#440154")
        XCTAssertEqual(SVG.viridis(1), "#fde725")
        XCTAssertEqual(SVG.textColor(on: SVG.viridis(0.1)), "#ffffff")
        XCTAssertEqual(SVG.textColor(on: SVG.viridis(0.95)), "#000000")
    }

    func testEmptyLensResultIsStillADocument() throws {
        let result = LensResult(model: "m", rows: ["blocks.0.hook_resid_pre"], rowLabels: ["final"], normalization: .recomputed, prompts: [])
        let doc = try XMLDoc(LensPlot.svg(result, title: "empty"))
        XCTAssertTrue(doc.texts.contains("empty"))
        XCTAssertEqual(doc.elements(class: "cell").count, 0)
    }

    func testLensPlotIsDeterministic() {
        let a = LensPlot.svg(Self.promptsLens(count: 12), title: "x", tokenText: Self.vocab)
        let b = LensPlot.svg(Self.promptsLens(count: 12), title: "x", tokenText: Self.vocab)
        XCTAssertEqual(a, b)
        XCTAssertEqual(LensPlot.svg(Self.countingLens(), title: "y", tokenText: Self.vocab),
                       LensPlot.svg(Self.countingLens(), title: "y", tokenText: Self.vocab))
    }

    // MARK: Line plot

    func testLinePlotOnePolylinePerSeries() throws {
        let series = Self.accuracySeries()
        let svg = LinePlot.svg(series: series, xLabel: "layer", yLabel: "accuracy", title: "Probe accuracy by layer",
                               yRange: 0...1)
        let doc = try XMLDoc(svg)
        XCTAssertEqual(doc.elements(class: "series").count, series.count)
        XCTAssertEqual(doc.elements.filter { $0.name == "polyline" }.count, series.count)
        XCTAssertTrue(doc.texts.contains("Probe accuracy by layer"))
        XCTAssertTrue(doc.texts.contains("layer"))
        XCTAssertTrue(doc.texts.contains("accuracy"))
        for item in series { XCTAssertTrue(doc.texts.contains(item.name)) }
        XCTAssertEqual(svg, LinePlot.svg(series: series, xLabel: "layer", yLabel: "accuracy",
                                         title: "Probe accuracy by layer", yRange: 0...1))
    }

    func testLinePlotEdgeCases() throws {
        // Hostile names, many series (colours cycle with dashes), a series with no finite points, one point.
        var series: [(name: String, points: [(x: Double, y: Double)])] = (0..<13).map { i in
            (name: "s\(i) <&>\"\n", points: (0..<5).map { (x: Double($0), y: Double($0 * i)) })
        }
        series.append((name: "nan", points: [(x: 1, y: .nan), (x: .infinity, y: 2)]))
        series.append((name: "one", points: [(x: 2, y: 3)]))
        let doc = try XMLDoc(LinePlot.svg(series: series, xLabel: "x & y", yLabel: "<y>", title: "edge \"cases\""))
        XCTAssertEqual(doc.elements(class: "series").count, 15)
        XCTAssertTrue(doc.texts.contains("s3 <&>\"\\n"))
        XCTAssertTrue(doc.texts.contains("x & y"))
        let empty = try XMLDoc(LinePlot.svg(series: [], xLabel: "x", yLabel: "y", title: "nothing"))
        XCTAssertEqual(empty.elements(class: "series").count, 0)
        let flat = try XMLDoc(LinePlot.svg(series: [(name: "flat", points: [(x: 0, y: 2), (x: 0, y: 2)])],
                                           xLabel: "x", yLabel: "y", title: "flat"))
        XCTAssertEqual(flat.elements(class: "series").count, 1)
    }

    /// Writes example figures to `$SCALPEL_PLOT_DIR` (when set) for looking at, e.g. after
    /// `rsvg-convert -o lens.png lens.svg`.
    func testWriteExamples() throws {
        guard let dir = ProcessInfo.processInfo.environment["SCALPEL_PLOT_DIR"] else {
            throw XCTSkip("set SCALPEL_PLOT_DIR to write example SVGs")
        }
        let url = URL(fileURLWithPath: dir)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        try LensPlot.svg(Self.countingLens(), title: "Logit lens — GPT-2 small on \"1 2 3 4 5\"", tokenText: Self.vocab)
            .write(to: url.appendingPathComponent("lens-single.svg"), atomically: true, encoding: .utf8)
        try LensPlot.svg(Self.promptsLens(count: 24), title: "Logit lens — next digit, 24 prompts", tokenText: Self.vocab)
            .write(to: url.appendingPathComponent("lens-prompts.svg"), atomically: true, encoding: .utf8)
        try LensPlot.svg(Self.promptsLens(count: 70, mid: true), title: "Logit lens with mid rows, 70 prompts", tokenText: Self.vocab)
            .write(to: url.appendingPathComponent("lens-capped.svg"), atomically: true, encoding: .utf8)
        try LinePlot.svg(series: Self.accuracySeries(), xLabel: "layer", yLabel: "accuracy",
                         title: "Probe accuracy by layer, one line per direction", yRange: 0...1)
            .write(to: url.appendingPathComponent("lines.svg"), atomically: true, encoding: .utf8)
    }

    // MARK: Fixtures built by hand

    static let words: [Int: String] = [
        50256: "<|endoftext|>", 16: "1", 362: " 2", 513: " 3", 604: " 4", 642: " 5", 718: " 6", 767: " 7",
        198: "\n", 262: " the", 11: ",", 13: ".", 290: " and", 286: " of", 532: " -", 1367: " 10",
    ]
    static let vocab: (Int) -> String = { words[$0] ?? "#\($0)" }
    static func id(_ text: String) -> Int { words.first { $0.value == text }!.key }

    static func cell(_ top: [(String, Double)], id: Int? = nil, target: (String, Double, Int)? = nil) -> LensCell {
        struct Raw: Encodable { var top: [TopToken]; var target: TokenScore? }
        let raw = Raw(top: top.enumerated().map { i, t in
            TopToken(id: i == 0 && id != nil ? id! : (words.first { $0.value == t.0 }?.key ?? 99_000 + i), token: t.0,
                     logit: Float(log(t.1)) + 10, prob: t.1)
        }, target: target.map { t in
            TokenScore(id: words.first { $0.value == t.0 }?.key ?? 99_999, token: t.0, rank: t.2,
                       logit: Float(log(t.1)) + 10, prob: t.1)
        })
        return try! JSONDecoder().decode(LensCell.self, from: JSONEncoder().encode(raw))
    }

    /// 13 rows (12 resid_pre + final) × 6 positions of "<|endoftext|>1 2 3 4 5", target " 6".
    static func countingLens() -> LensResult {
        let tokens = ["<|endoftext|>", "1", " 2", " 3", " 4", " 5"].map(id)
        let rows = ((0..<12).map(HookPoint.residPre) + [.residPost(11)]).map(\.name)
        // What a plausible lens says per position: early rows echo generic tokens, late rows count on.
        let early = ["\n", " the", ",", " the", " and", " the"]
        let middle = ["\n", ".", " 3", " 4", " 5", " 5"]
        let late = ["\n", " 2", " 3", " 4", " 5", " 6"]
        var cells: [[LensCell]] = []
        for r in 0..<13 {
            let f = Double(r) / 12
            cells.append((0..<6).map { c in
                let word = r < 4 ? early[c] : r < 8 ? middle[c] : late[c]
                let p = min(0.97, 0.04 + 0.9 * pow(f, 1.6) * (c == 0 ? 0.5 : 1))
                let second = word == " the" ? " 4" : " the"
                let target: (String, Double, Int)? = c == 5 ? (" 6", word == " 6" ? p : p * 0.2, word == " 6" ? 0 : max(1, 2000 >> r)) : nil
                return cell([(word, p), (second, p * 0.3), (",", p * 0.1)], target: target)
            })
        }
        let prompt = LensPrompt(prompt: "1 2 3 4 5", tokens: tokens, positions: Array(0..<6), target: id(" 6"), foil: nil, cells: cells)
        return LensResult(model: "gpt2", rows: rows, rowLabels: labels(rows), normalization: .recomputed, prompts: [prompt])
    }

    /// `count` prompts "a b c d" with target the next number, at the last position; optional mid rows.
    static func promptsLens(count: Int, mid: Bool = false) -> LensResult {
        var rows: [HookPoint] = []
        for i in 0..<12 { rows.append(.residPre(i)); if mid { rows.append(.residMid(i)) } }
        rows.append(.residPost(11))
        var random = SplitMix(seed: 7)
        let prompts = (0..<count).map { k -> LensPrompt in
            let start = k % 5 + 1
            let numbers = (start..<start + 4).map(String.init)
            let answer = " \(start + 4)"
            let cells = rows.indices.map { r -> [LensCell] in
                let f = Double(r) / Double(rows.count - 1)
                let p = min(0.98, max(0.01, pow(f, 2) * 0.9 + 0.08 * random.next()))
                let rank = f > 0.7 ? 0 : Int(pow(10, 4 * (1 - f) * random.next() + 0.3))
                let top = rank == 0 ? answer : (r < rows.count / 3 ? ["\n", " the", ","][r % 3] : " \(start + 3)")
                return [cell([(top, p), (" and", p / 4)], target: (answer, rank == 0 ? p : p / 5, rank))]
            }
            return LensPrompt(prompt: numbers.joined(separator: " "), tokens: [50256, 16, 362, 513, 604], positions: [4],
                              target: words.first { $0.value == answer }?.key ?? 99_999, foil: nil, cells: cells)
        }
        return LensResult(model: "gpt2", rows: rows.map(\.name), rowLabels: labels(rows.map(\.name)), normalization: .recomputed, prompts: prompts)
    }

    /// The labels `LogitLens.rowLabels` gives the rows of an unsliced model: "L3 pre", "L3 mid", "final".
    static func labels(_ rows: [String]) -> [String] {
        rows.enumerated().map { r, row in
            r == rows.count - 1 ? "final" : "L\(row.split(separator: ".")[1]) \(row.hasSuffix("resid_mid") ? "mid" : "pre")"
        }
    }

    static func accuracySeries() -> [(name: String, points: [(x: Double, y: Double)])] {
        ["digit → next digit", "digit → number word", "month → next month", "random direction"].enumerated().map { i, name in
            (name: name, points: (0...12).map { layer in
                let x = Double(layer)
                let y = i == 3 ? 0.1 + 0.02 * sin(x) : 1 / (1 + exp(-(x - 4 - Double(i) * 1.5))) * (0.95 - 0.1 * Double(i))
                return (x: x, y: y)
            })
        }
    }
}

/// A tiny deterministic generator for fixtures.
private struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> Double {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
    }
}

/// A parsed SVG: every element with its attributes, and every text node's content.
private struct XMLDoc {
    struct Element { var name: String; var attributes: [String: String] }
    var elements: [Element] = []
    var texts: [String] = []

    init(_ svg: String) throws {
        final class Collector: NSObject, XMLParserDelegate {
            var elements: [Element] = []
            var texts: [String] = []
            var current: String?
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String] = [:]) {
                elements.append(Element(name: name, attributes: attributes))
                current = name == "text" ? "" : nil
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { current? += string }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
                if name == "text", let text = current { texts.append(text) }
                current = nil
            }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let collector = Collector()
        parser.delegate = collector
        guard parser.parse() else {
            throw NSError(domain: "XMLDoc", code: 1, userInfo: [NSLocalizedDescriptionKey:
                "not well-formed XML: \(String(describing: parser.parserError)) at line \(parser.lineNumber)"])
        }
        XCTAssertEqual(collector.elements.first?.name, "svg")
        elements = collector.elements
        texts = collector.texts
    }

    func elements(class name: String) -> [Element] { elements.filter { $0.attributes["class"] == name } }
}
