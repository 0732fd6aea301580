import Foundation

/// Pictures of attention patterns (`scalpel heads pattern --plot`): one query × key heat map per head
/// (viridis on 0…1, token labels on both axes, the causally masked cells grey), then the multi-head
/// view of the study's figures: for one destination token, each head's attention over the source
/// tokens as bars in the head's own colour.
public enum AttentionPlot {
    /// Colour of the cells a query cannot attend to (key after query).
    public static let maskedColor = "#d9d9d9"

    /// The colour of head `index` (its place in the list) in the multi-head view and the HTML viewer.
    public static func headColor(_ index: Int) -> String { SVG.palette[index % SVG.palette.count] }

    public static func svg(_ patterns: AttentionPatterns, destination: Int, title: String) -> String {
        SVG.stackVertically([heatMaps(patterns, title: title), multiHead(patterns, destination: destination)])
    }

    /// Per-head query × key heat maps, four to a row.
    public static func heatMaps(_ patterns: AttentionPatterns, title: String) -> String {
        let n = patterns.length
        let labels = patterns.tokenStrings.map { SVG.truncate(SVG.visibleToken($0), maxChars: 12) }
        let cell = max(4, min(22, 420 / Double(max(n, 1))))
        let labelWidth = (labels.map { SVG.textWidth($0, size: 10) }.max() ?? 10) + 8
        let showLabels = cell >= 9
        let side = Double(n) * cell
        let panelWidth = (showLabels ? labelWidth : 20) + side + 30
        let panelHeight = 22 + side + (showLabels ? labelWidth * 0.87 + 10 : 20) + 16
        let perRow = min(4, max(patterns.heads.count, 1))
        let rows = (patterns.heads.count + perRow - 1) / perRow
        let top = 48.0
        var svg = SVG(width: max(Double(perRow) * panelWidth + 20, 360), height: top + Double(rows) * panelHeight + 40)
        svg.text(title, x: 12, y: 22, size: 14, bold: true)
        let averaged = patterns.promptCount > 1 ? " · mean over \(patterns.promptCount) prompts" : ""
        svg.text("attention pattern per head (query ↓ × key →)\(averaged)", x: 12, y: 38, size: 11, fill: "#444")
        for (h, head) in patterns.heads.enumerated() {
            let x0 = 10 + Double(h % perRow) * panelWidth + (showLabels ? labelWidth : 20)
            let y0 = top + Double(h / perRow) * panelHeight + 22
            svg.text("head \(head)", x: x0, y: y0 - 6, size: 12, fill: headColor(h), bold: true)
            for q in 0..<n {
                for k in 0..<n {
                    let x = x0 + Double(k) * cell, y = y0 + Double(q) * cell
                    if k > q {
                        svg.rect(x: x, y: y, width: cell, height: cell, fill: maskedColor)
                    } else {
                        let w = Double(patterns.weight(head: h, query: q, key: k))
                        svg.rect(x: x, y: y, width: cell, height: cell, fill: SVG.viridis(w),
                                 tooltip: "\(head) · \(SVG.visibleToken(patterns.tokenStrings[q])) (\(q)) → \(SVG.visibleToken(patterns.tokenStrings[k])) (\(k)): \(String(format: "%.4f", w))")
                    }
                }
                if showLabels {
                    svg.text(labels[q], x: x0 - 4, y: y0 + (Double(q) + 0.5) * cell + 3.5, size: 10, anchor: .end, fill: "#444", font: .mono)
                }
            }
            if showLabels {
                for k in 0..<n {
                    let x = x0 + (Double(k) + 0.5) * cell + 3
                    svg.text(labels[k], x: x, y: y0 + side + 6, size: 10, anchor: .end, fill: "#444", font: .mono, rotate: -60)
                }
            }
        }
        // The colour scale 0…1 and the masked colour.
        let legendY = svg.height - 26
        for i in 0..<100 { svg.rect(x: 20 + Double(i) * 2, y: legendY, width: 2, height: 10, fill: SVG.viridis(Double(i) / 99)) }
        svg.text("0", x: 20, y: legendY + 22, size: 9, anchor: .middle)
        svg.text("1", x: 220, y: legendY + 22, size: 9, anchor: .middle)
        svg.text("attention weight", x: 232, y: legendY + 9, size: 10)
        svg.rect(x: 340, y: legendY, width: 10, height: 10, fill: maskedColor)
        svg.text("masked (key after query)", x: 354, y: legendY + 9, size: 10)
        return svg.render()
    }

    /// For one destination position, each head's attention over the sources 0…destination as bars,
    /// one colour per head.
    public static func multiHead(_ patterns: AttentionPatterns, destination: Int) -> String {
        let sources = destination + 1, heads = patterns.heads.count
        let labels = patterns.tokenStrings.prefix(sources).map { SVG.truncate(SVG.visibleToken($0), maxChars: 12) }
        let group = max(8, min(14 * Double(heads) + 10, 640 / Double(sources)))
        let frame = SVG.Frame(x: 70, y: 56, width: group * Double(sources), height: 200)
        let layout = SVG.tickLayout(labels: labels, spacing: group, size: 10)
        var svg = SVG(width: max(frame.right + 150, 420), height: frame.bottom + layout.height + 40)
        let token = SVG.visibleToken(patterns.tokenStrings[destination])
        svg.text("Attention from \"\(token)\" (position \(destination)) over the source tokens", x: 12, y: 22, size: 14, bold: true)
        svg.text(patterns.promptCount > 1 ? "mean over \(patterns.promptCount) prompts; one colour per head" : "one colour per head",
                 x: 12, y: 38, size: 11, fill: "#444")
        let y = SVG.Scale(domain: 0...1, from: frame.bottom, to: frame.y)
        let ticks = [0.0, 0.25, 0.5, 0.75, 1.0]
        svg.axes(frame, xTicks: (0..<sources).map { (frame.x + (Double($0) + 0.5) * group, labels[$0]) },
                 yTicks: ticks.map { (y($0), SVG.tickLabel($0, step: 0.25)) }, xLabel: "source token", yLabel: "attention",
                 xLayout: layout)
        let barWidth = (group - 4) / Double(max(heads, 1))
        for (h, head) in patterns.heads.enumerated() {
            let row = patterns.row(head: h, query: destination)
            for k in 0..<sources {
                let w = Double(row[k])
                let top = y(min(max(w, 0), 1))
                svg.rect(x: frame.x + Double(k) * group + 2 + Double(h) * barWidth, y: top, width: barWidth, height: frame.bottom - top,
                         fill: headColor(h), tooltip: "\(head) · \(token) → \(SVG.visibleToken(patterns.tokenStrings[k])) (\(k)): \(String(format: "%.4f", w))")
            }
            svg.rect(x: frame.right + 16, y: frame.y + Double(h) * 18, width: 12, height: 12, fill: headColor(h))
            svg.text("head \(head)", x: frame.right + 32, y: frame.y + Double(h) * 18 + 10, size: 11)
        }
        return svg.render()
    }
}
