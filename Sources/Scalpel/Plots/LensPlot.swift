import Foundation

/// The logit-lens picture as a self-contained SVG: a heat map of the top-1 probability (viridis) with
/// the top-1 token written in each cell, one row per lens row (first layer at the top, final at the
/// bottom), one column per position (one prompt) or per prompt (several prompts, last selected
/// position). When prompts have a target, panels below show the target's probability and rank per row.
public enum LensPlot {
    /// - Parameters:
    ///   - tokenText: the text of a token id (`model.tokenText`), for the input tokens labelling columns.
    ///   - maxColumns: columns beyond this are left out, and a caption says so.
    public static func svg(_ result: LensResult, title: String, tokenText: (Int) -> String = { "#\($0)" },
                           maxColumns: Int = 64) -> String {
        let (all, kind) = columns(result, tokenText: tokenText)
        let shown = Array(all.prefix(max(1, maxColumns)))
        let rowLabels = result.rowLabels
        let subtitle = "\(result.model) · logit lens, ln_final \(result.normalization.rawValue) · colour: top-1 probability · text: top-1 token"

        let cellSize = 11.0, charWidth = cellSize * 0.6, cellHeight = 22.0
        let left = max(64, 24 + ((rowLabels + ["next token"]).map { SVG.textWidth($0, size: 11) }.max() ?? 0))
        guard !shown.isEmpty, !result.rows.isEmpty else {
            var svg = SVG(width: max(360, SVG.textWidth(title, size: 16) + 32), height: 90)
            svg.text(title, x: 16, y: 26, size: 16, bold: true)
            svg.text("No lens cells to show.", x: 16, y: 56, size: 12, fill: "#555")
            return svg.render()
        }

        // Cell width from the longest top-1 token shown (at most 9 characters).
        let longest = shown.flatMap { column in
            result.rows.indices.compactMap { r in topToken(result, column, row: r).map { SVG.visibleToken($0.token).count } }
        }.max() ?? 1
        let cellWidth = min(max(Double(min(longest, 9)) * charWidth + 10, 34), 9 * charWidth + 10)
        let heatWidth = Double(shown.count) * cellWidth, heatHeight = Double(result.rows.count) * cellHeight

        // Column labels: upright when they fit, else turned by −45°.
        let labelWidest = shown.map { SVG.textWidth($0.label, size: cellSize) }.max() ?? 0
        let turned = labelWidest + 6 > cellWidth
        let labelBand = turned ? labelWidest * 0.71 + 14 : cellSize + 8
        let heatTop = 74 + labelBand
        let heatBottom = heatTop + heatHeight

        // Under the map: the expected token per column, then captions.
        let expectedRow = shown.contains { $0.expected != nil }
        var captions: [String] = []
        if expectedRow {
            captions.append(kind == .positions
                ? "Bold: the top-1 token is the next input token (or the target at the last position)."
                : "Bold: the top-1 token is the prompt's target.")
        }
        if all.count > shown.count {
            captions.append("Showing the first \(shown.count) of \(all.count) \(kind == .positions ? "positions" : "prompts").")
        }
        let belowMap = (expectedRow ? 22.0 : 0) + Double(captions.count) * 15 + (captions.isEmpty ? 0 : 6)
        let barHeight = max(heatHeight, 110)
        var bottom = max(heatBottom + belowMap, heatTop + barHeight + 4)

        // Target panels.
        let targeted = result.prompts.filter { $0.target != nil && !$0.positions.isEmpty && $0.cells.count == result.rows.count }
        let panelWidth = min(max(heatWidth, 360), 720)
        let panelHeight = 150.0
        let rowSpacing = result.rows.count > 1 ? panelWidth / Double(result.rows.count - 1) : panelWidth
        let rowTicks = SVG.tickLayout(labels: rowLabels, spacing: rowSpacing, size: 10)
        let panelBlock = 16 + panelHeight + rowTicks.height + 22 + 20
        let panelsTop = bottom + 24
        if !targeted.isEmpty { bottom = panelsTop + 2 * panelBlock }

        let legendWidth = 180.0
        var width = left + heatWidth + 90
        width = max(width, left + heatWidth - cellWidth / 2 + (turned ? labelWidest * 0.71 + 12 : 0))
        width = max(width, 16 + max(SVG.textWidth(title, size: 16), SVG.textWidth(subtitle, size: 11)) + 16)
        width = max(width, 16 + (captions.map { SVG.textWidth($0, size: 11) }.max() ?? 0) + 16)
        if !targeted.isEmpty { width = max(width, left + panelWidth + legendWidth) }
        var svg = SVG(width: width.rounded(.up), height: (bottom + 12).rounded(.up))

        svg.text(title, x: 16, y: 26, size: 16, bold: true)
        svg.text(subtitle, x: 16, y: 44, size: 11, fill: "#555")
        svg.text(kind == .positions ? "input token at each position" : "prompt (last selected position)",
                 x: left, y: 64, size: 11, fill: "#555")

        // Column labels.
        for (c, column) in shown.enumerated() {
            let x = left + (Double(c) + 0.5) * cellWidth
            if turned {
                svg.text(column.label, x: x - 2, y: heatTop - 6, size: cellSize, font: .mono, rotate: -45)
            } else {
                svg.text(column.label, x: x, y: heatTop - 6, size: cellSize, anchor: .middle, font: .mono)
            }
        }
        // Rows: label, then one cell per column.
        for r in result.rows.indices {
            let y = heatTop + Double(r) * cellHeight
            svg.text(rowLabels[r], x: left - 8, y: y + cellHeight / 2 + 4, size: 11, anchor: .end)
            for (c, column) in shown.enumerated() {
                let cell = result.prompts[column.prompt].cells[r][column.slot]
                let top = cell.top.first
                let fill = SVG.viridis(top?.prob ?? .nan)
                let x = left + Double(c) * cellWidth
                svg.rect(x: x, y: y, width: cellWidth, height: cellHeight, fill: fill, stroke: "#ffffff",
                         strokeWidth: 1, className: "cell", tooltip: tooltip(cell, row: rowLabels[r], column: column))
                if let top {
                    let maxChars = max(1, Int((cellWidth - 6) / charWidth))
                    svg.text(SVG.truncate(SVG.visibleToken(top.token), maxChars: maxChars), x: x + cellWidth / 2,
                             y: y + cellHeight / 2 + cellSize * 0.35, size: cellSize, anchor: .middle,
                             fill: SVG.textColor(on: fill), bold: column.expected == top.id, font: .mono)
                }
            }
        }
        // Expected tokens under the map.
        var y = heatBottom
        if expectedRow {
            y += 16
            svg.text(kind == .positions ? "next token" : "target", x: left - 8, y: y, size: 11, anchor: .end, fill: "#555")
            for (c, column) in shown.enumerated() {
                guard let text = column.expectedText else { continue }
                let maxChars = max(1, Int((cellWidth - 4) / charWidth))
                svg.text(SVG.truncate(SVG.visibleToken(text), maxChars: maxChars), x: left + (Double(c) + 0.5) * cellWidth,
                         y: y, size: cellSize, anchor: .middle, fill: "#333", font: .mono)
            }
            y += 6
        }
        for caption in captions {
            y += 15
            svg.text(caption, x: 16, y: y, size: 11, fill: "#555")
        }
        colorBar(&svg, x: left + heatWidth + 18, y: heatTop, height: barHeight)

        if !targeted.isEmpty {
            let xs = result.rows.indices.map { r in
                result.rows.count > 1 ? left + Double(r) * rowSpacing : left + panelWidth / 2
            }
            let xTicks = result.rows.indices.map { (x: xs[$0], label: rowLabels[$0]) }
            let summary = result.summary
            // Probability panel.
            var frame = SVG.Frame(x: left, y: panelsTop + 16, width: panelWidth, height: panelHeight)
            svg.text("Target probability by lens row", x: 16, y: panelsTop + 4, size: 12, bold: true)
            let p = SVG.Scale(domain: 0...1, from: frame.bottom, to: frame.y)
            svg.axes(frame, xTicks: xTicks, yTicks: [0, 0.25, 0.5, 0.75, 1].map { (y: p($0), label: SVG.tickLabel($0, step: 0.25)) },
                     xLabel: "lens row", yLabel: "p(target)", xLayout: rowTicks)
            for prompt in targeted {
                let points = result.rows.indices.map { (x: xs[$0], y: p(prompt.cells[$0].last?.target?.prob ?? .nan)) }
                svg.polyline(points, stroke: "#8c8c8c", width: 1, opacity: 0.55, className: "prompt",
                             tooltip: SVG.visibleText(prompt.prompt))
            }
            let top1 = summary.indices.map { (x: xs[$0], y: p(summary[$0].targetTop1 ?? .nan)) }
            svg.polyline(top1, stroke: "#4e79a7", width: 1.5, dash: "5 3", className: "top1")
            let mean = summary.indices.map { (x: xs[$0], y: p(summary[$0].meanTargetProb ?? .nan)) }
            svg.polyline(mean, stroke: "#d62728", width: 3, className: "mean")
            legend(&svg, x: frame.right + 16, y: frame.y + 6, items: [
                ("each prompt (\(targeted.count))", "#8c8c8c", 1, nil),
                ("mean p(target)", "#d62728", 3, nil),
                ("share with target top-1", "#4e79a7", 1.5, "5 3"),
            ])

            // Rank panel: ranks are 0-based, so rank + 1 is drawn, and the log scale has the top token at 1.
            let rankTop = panelsTop + panelBlock
            frame = SVG.Frame(x: left, y: rankTop + 16, width: panelWidth, height: panelHeight)
            svg.text("Target rank by lens row (rank + 1, log scale: 1 = top-1)", x: 16, y: rankTop + 4, size: 12, bold: true)
            let worst = targeted.flatMap { $0.cells.compactMap { $0.last?.target?.rank } }.max() ?? 0
            let decades = max(1, Int(log10(Double(worst + 1)).rounded(.up)))
            let rank = SVG.Scale(domain: 1...pow(10, Double(decades)), from: frame.bottom, to: frame.y, log: true)
            let rankTicks = (0...decades).map { (y: rank(pow(10, Double($0))), label: SVG.decadeLabel($0)) }
            svg.axes(frame, xTicks: xTicks, yTicks: rankTicks, xLabel: "lens row", yLabel: "rank + 1", xLayout: rowTicks)
            for prompt in targeted {
                let points = result.rows.indices.map { r in
                    (x: xs[r], y: prompt.cells[r].last?.target.map { rank(Double($0.rank + 1)) } ?? .nan)
                }
                svg.polyline(points, stroke: "#8c8c8c", width: 1, opacity: 0.55, className: "prompt",
                             tooltip: SVG.visibleText(prompt.prompt))
            }
            let meanRank = summary.indices.map { (x: xs[$0], y: summary[$0].meanTargetRank.map { rank($0 + 1) } ?? .nan) }
            svg.polyline(meanRank, stroke: "#d62728", width: 3, className: "mean")
            legend(&svg, x: frame.right + 16, y: frame.y + 6, items: [
                ("each prompt (\(targeted.count))", "#8c8c8c", 1, nil),
                ("mean rank + 1", "#d62728", 3, nil),
            ])
        }
        return svg.render()
    }

    // MARK: Columns

    enum ColumnKind { case positions, prompts }

    struct Column {
        var prompt: Int
        var slot: Int
        var label: String
        var detail: String
        var expected: Int?
        var expectedText: String?
    }

    /// One prompt: its selected positions. Several: one column per prompt at its last selected position.
    static func columns(_ result: LensResult, tokenText: (Int) -> String) -> ([Column], ColumnKind) {
        let usable = result.prompts.indices.filter { p in
            let prompt = result.prompts[p]
            return !prompt.positions.isEmpty && prompt.cells.count == result.rows.count
                && prompt.cells.allSatisfy { $0.count == prompt.positions.count }
        }
        if usable.count == 1 {
            let p = usable[0], prompt = result.prompts[p]
            let columns = prompt.positions.enumerated().map { slot, position -> Column in
                let token = position < prompt.tokens.count ? prompt.tokens[position] : nil
                let label = token.map { SVG.truncate(SVG.visibleToken(tokenText($0)), maxChars: 14) } ?? "pos \(position)"
                let next = position + 1 < prompt.tokens.count ? prompt.tokens[position + 1] : nil
                let expected = next ?? prompt.target
                let expectedText = next.map(tokenText)
                    ?? prompt.target.map { prompt.cells.last?[slot].target?.token ?? tokenText($0) }
                return Column(prompt: p, slot: slot, label: label, detail: "position \(position) (\(label))",
                              expected: expected, expectedText: expectedText)
            }
            return (columns, .positions)
        }
        let columns = usable.map { p -> Column in
            let prompt = result.prompts[p], slot = prompt.positions.count - 1
            let text = SVG.visibleText(prompt.prompt).trimmingCharacters(in: .whitespaces)
            return Column(prompt: p, slot: slot, label: SVG.truncateHead(text, maxChars: 18),
                          detail: "prompt \(p): \(SVG.truncateHead(text, maxChars: 60)), position \(prompt.positions[slot])",
                          expected: prompt.target,
                          expectedText: prompt.target.map { prompt.cells.last?[slot].target?.token ?? tokenText($0) })
        }
        return (columns, .prompts)
    }

    static func topToken(_ result: LensResult, _ column: Column, row: Int) -> TopToken? {
        result.prompts[column.prompt].cells[row][column.slot].top.first
    }

    /// Hover text: the row and column, the top-k tokens with probabilities, the target's score.
    static func tooltip(_ cell: LensCell, row: String, column: Column) -> String {
        var lines = ["\(row) · \(column.detail)"]
        // Ranks are 0-based, as in every table and file.
        for (rank, score) in cell.top.enumerated() {
            lines.append("rank \(rank): \(SVG.visibleToken(score.token))  \(String(format: "%.3f", score.prob))")
        }
        if let target = cell.target {
            lines.append("target \(SVG.visibleToken(target.token)): p \(String(format: "%.3f", target.prob)), rank \(target.rank)")
        }
        if let diff = cell.logitDiff { lines.append("logit diff \(String(format: "%.2f", diff))") }
        return lines.joined(separator: "\n")
    }

    // MARK: Pieces

    static func colorBar(_ svg: inout SVG, x: Double, y: Double, height: Double) {
        let stops = (0...8).map { (offset: Double($0) / 8, color: SVG.viridis(Double($0) / 8)) }
        svg.linearGradient(id: "viridis", stops: stops, vertical: true)
        svg.rect(x: x, y: y, width: 12, height: height, fill: "url(#viridis)", stroke: "#888", strokeWidth: 0.5,
                 className: "colorbar")
        for v in [0, 0.25, 0.5, 0.75, 1.0] {
            let ty = y + height * (1 - v)
            svg.line(x1: x + 12, y1: ty, x2: x + 15, y2: ty, stroke: "#444")
            svg.text(SVG.tickLabel(v, step: 0.25), x: x + 18, y: ty + 3.5, size: 10, fill: "#444")
        }
        svg.text("top-1 probability", x: x + 52, y: y + height / 2, size: 11, anchor: .middle, fill: "#555", rotate: 90)
    }

    static func legend(_ svg: inout SVG, x: Double, y: Double, items: [(String, String, Double, String?)]) {
        for (i, item) in items.enumerated() {
            let ly = y + Double(i) * 16
            svg.line(x1: x, y1: ly, x2: x + 22, y2: ly, stroke: item.1, width: item.2, dash: item.3)
            svg.text(item.0, x: x + 28, y: ly + 3.5, size: 10, fill: "#333")
        }
    }
}
