import Foundation

/// `scalpel classify --html`: one self-contained page (inline SVG, no script, no external file) with
/// the table of kept heads, the patching heat map, the detector and OV score grids, and the random
/// baselines' histogram, drawn by the plots `patch`, `heads` and `circuit` draw.
public enum ClassifyPage {
    public static func html(_ c: Classification, model: String, positionTokens: [String], circuitFile: String?) -> String {
        let e = SVG.escape  // XML escaping is valid HTML text and attribute escaping
        let title = "scalpel classify · \(c.score.dataset) · \(model)"
        func f(_ v: Double?, _ format: String = "%.3f") -> String { v.map { $0.isFinite ? String(format: format, $0) : "n/a" } ?? "n/a" }
        var rows = ""
        for h in c.heads {
            let ev = h.evidence
            let role = h.role.rawValue + (h.like.map { " (\($0.rawValue))" } ?? "")
            let keep = h.role.circuitPositions.map { $0 == .all ? "all" : "end" } ?? "—"
            rows += "<tr><td>\(e(h.circuitHead.description))</td><td class=\"num\">\(f(h.effect))</td><td>\(e(role))</td><td>\(keep)</td>"
            for v in [ev.previousToken, ev.duplicateToken, ev.induction, ev.sameFamily, ev.copy, ev.next, ev.endAttention, ev.mover] {
                rows += "<td class=\"num\">\(f(v, "%.2f"))</td>"
            }
            rows += "<td class=\"why\">\(e(h.reason))</td></tr>\n"
        }
        let s = c.score
        var summary = String(format: "circuit score %.4f · full model %.4f · fraction %.4f", s.score, s.full, s.fraction)
        if let b = s.baselines {
            summary += String(format: " · %d random circuits of %d heads (seed %llu): mean %.4f, sd %.4f", b.n, s.circuit.size, b.seed, b.mean, b.sd)
            if let z = c.zScore { summary += String(format: ", z = %.2f", z) }
            if let p = c.percentile { summary += String(format: ", above %.0f%% of them", p * 100) }
        }
        let g = c.grids
        let detectorPanels = [("previous-token", g.previousToken), ("duplicate-token", g.duplicateToken), ("induction", g.induction),
                              ("same-family", g.sameFamily)].compactMap { name, grid in grid.map { (title: name, grid: $0) } }
        let detectors = detectorPanels.isEmpty ? "" : HeadsPlot.grids(detectorPanels, title: "Head detectors", legend: "share of attention")
        let scores = HeadsPlot.grids([("copy", g.copy), ("next", g.next), ("end attention", g.endAttention), ("mover", g.mover)],
                                     title: "OV copy and next scores, attention from the last position to the answer's family, mover = attention × copy",
                                     legend: "share")
        let patch = PatchPlot.svg(c.patch, positionTokens: positionTokens, title: "Head patching (z, all positions)")
        let histogram = CircuitPlot.svg(s, title: "Candidate circuit \(c.circuit.name) against random circuits")
        func inline(_ svg: String) -> String { svg.replacingOccurrences(of: #"<\?xml[^>]*\?>\n?"#, with: "", options: .regularExpression) }
        return """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>\(e(title))</title>
        <style>
        body { font-family: sans-serif; margin: 24px; color: #222; }
        table { border-collapse: collapse; font-size: 13px; }
        th, td { border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
        td.num { text-align: right; font-variant-numeric: tabular-nums; }
        td.why { color: #555; max-width: 420px; }
        figure { margin: 24px 0; overflow-x: auto; }
        code { background: #f4f4f4; padding: 1px 4px; }
        </style>
        </head>
        <body>
        <h1>\(e(title))</h1>
        <p>\(e(selectionText(c.selection))). Items: \(c.score.dataset); metric \(e(c.patch.metric.rawValue)); clean \(f(c.patch.clean, "%.4f")), corrupted \(f(c.patch.corrupted, "%.4f")).</p>
        <p><strong>\(e(summary))</strong></p>
        <p>Candidate circuit\(circuitFile.map { " (written to <code>\(e($0))</code>)" } ?? ""): <code>\(e("{" + c.circuit.headsText + "}"))</code></p>
        <table>
        <tr><th>head</th><th>patch effect</th><th>role</th><th>kept at</th><th>prev-token</th><th>duplicate</th><th>induction</th><th>same-family</th><th>copy</th><th>next</th><th>end attention</th><th>mover</th><th>why</th></tr>
        \(rows)</table>
        <p>Detectors on \(g.repeated.count) seeded random repeated token prompts (\(g.repeated.length) tokens, repeated once; seed \(g.repeated.seed)); same-family, copy, next and end attention on the dataset. Answer families: \(e(g.answerFamilies.joined(separator: ", ")))</p>
        <figure>\(inline(patch))</figure>
        <figure>\(inline(detectors))</figure>
        <figure>\(inline(scores))</figure>
        <figure>\(inline(histogram))</figure>
        </body>
        </html>

        """
    }

    public static func selectionText(_ selection: HeadClassifier.Selection) -> String {
        switch selection {
        case let .threshold(t): return String(format: "Kept: every head with |normalised patch effect| ≥ %g (--threshold)", t)
        case let .topK(k): return "Kept: the \(k) heads of largest |normalised patch effect| (--top-k)"
        }
    }
}
