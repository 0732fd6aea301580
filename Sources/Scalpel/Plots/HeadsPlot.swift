import Foundation

/// Pictures of `scalpel heads`: layer × head grids of scores on a sequential scale (viridis, 0 … 1,
/// since every score is a share), each cell labelled with its value; and the writing-direction
/// scatter, one colour per token.
public enum HeadsPlot {
    /// Panels side by side (e.g. copy and next), layers down, heads across.
    public static func grids(_ panels: [(title: String, grid: HeadGrid)], title: String, legend: String) -> String {
        let cell = 34.0, top = 64.0, left = 64.0
        var x = left
        var frames: [SVG.Frame] = []
        for (_, grid) in panels {
            frames.append(SVG.Frame(x: x, y: top, width: Double(grid.heads) * cell, height: Double(grid.layers) * cell))
            x += Double(grid.heads) * cell + left
        }
        let height = (frames.map(\.bottom).max() ?? top) + 84
        var svg = SVG(width: max(x + 20, 16 + SVG.textWidth(title, size: 15) + 16, 360), height: height)
        svg.rect(x: 0, y: 0, width: svg.width, height: svg.height, fill: "#ffffff")
        svg.text(title, x: 16, y: 24, size: 15, bold: true)
        for ((name, grid), frame) in zip(panels, frames) {
            svg.text(name, x: frame.x, y: top - 22, size: 12, bold: true)
            for layer in 0..<grid.layers {
                for head in 0..<grid.heads {
                    let value = grid.values[layer * grid.heads + head]
                    let fill = value.map { SVG.viridis($0) } ?? "#dddddd"
                    let cx = frame.x + Double(head) * cell, cy = frame.y + Double(layer) * cell
                    svg.rect(x: cx, y: cy, width: cell, height: cell, fill: fill, stroke: "#ffffff",
                             tooltip: "\(layer).\(head): \(value.map { String(format: "%.4f", $0) } ?? "n/a")")
                    if let value {
                        svg.text(String(format: "%.2f", value), x: cx + cell / 2, y: cy + cell / 2 + 3.5, size: 9, anchor: .middle,
                                 fill: SVG.textColor(on: fill))
                    }
                }
                svg.text("L\(layer)", x: frame.x - 6, y: frame.y + (Double(layer) + 0.5) * cell + 3.5, size: 10, anchor: .end, fill: "#444")
            }
            for head in 0..<grid.heads {
                svg.text("H\(head)", x: frame.x + (Double(head) + 0.5) * cell, y: frame.y - 6, size: 10, anchor: .middle, fill: "#444")
            }
            svg.text("head", x: frame.x + frame.width / 2, y: frame.bottom + 16, size: 11, anchor: .middle)
            svg.text("layer", x: frame.x - 40, y: frame.y + frame.height / 2, size: 11, anchor: .middle, rotate: -90)
        }
        let legendY = height - 34
        for i in 0..<100 { svg.rect(x: left + Double(i) * 2, y: legendY, width: 2, height: 10, fill: SVG.viridis(Double(i) / 99)) }
        svg.text("0", x: left, y: legendY + 22, size: 9, anchor: .middle)
        svg.text("1", x: left + 200, y: legendY + 22, size: 9, anchor: .middle)
        svg.text(legend, x: left + 212, y: legendY + 9, size: 10)
        return svg.render()
    }

    /// The writing-direction scatter: attention (x) against projection (y), coloured by token.
    public static func writing(_ result: WritingScatter.Result, tokenText: (Int) -> String, title: String) -> String {
        let points = result.points.filter { $0.attention.isFinite && $0.projection.isFinite }
        let xDomain = SVG.niceRange(0...max(points.map(\.attention).max() ?? 1, 1e-6), count: 5)
        let yDomain = SVG.niceRange((points.map(\.projection).min() ?? 0)...(points.map(\.projection).max() ?? 1), count: 5)
        let tokens = Array(Set(points.map(\.token))).sorted()
        let colour = Dictionary(uniqueKeysWithValues: tokens.enumerated().map { ($1, SVG.palette[$0 % SVG.palette.count]) })
        let shown = tokens.prefix(20).map { (token: $0, name: SVG.truncate(SVG.visibleToken(tokenText($0)), maxChars: 16)) }
        let plot = SVG.Frame(x: 72, y: 58, width: 460, height: 320)
        let legendWidth = 40 + (shown.map { SVG.textWidth($0.name, size: 11) }.max() ?? 0)
        let xStep = SVG.niceStep(xDomain, count: 5), yStep = SVG.niceStep(yDomain, count: 5)
        let xTicks = SVG.niceTicks(xDomain, count: 5), yTicks = SVG.niceTicks(yDomain, count: 5)
        var svg = SVG(width: max(plot.right + 24 + legendWidth, 16 + SVG.textWidth(title, size: 15) + 16),
                      height: max(plot.bottom + 50, plot.y + Double(shown.count + 1) * 18 + 10))
        svg.rect(x: 0, y: 0, width: svg.width, height: svg.height, fill: "#ffffff")
        let x = SVG.Scale(domain: xDomain, from: plot.x, to: plot.right), y = SVG.Scale(domain: yDomain, from: plot.bottom, to: plot.y)
        svg.text(title, x: 16, y: 24, size: 15, bold: true)
        let stats = "r = \(result.r.map { String(format: "%.3f", $0) } ?? "n/a"), p = \(result.pValue.map { String(format: "%.3g", $0) } ?? "n/a"), n = \(result.points.count)"
        svg.text(stats, x: 16, y: 44, size: 11, fill: "#333")
        svg.axes(plot, xTicks: xTicks.map { (x: x($0), label: SVG.tickLabel($0, step: xStep)) },
                 yTicks: yTicks.map { (y: y($0), label: SVG.tickLabel($0, step: yStep)) },
                 xLabel: "attention from the last position", yLabel: "projection on the token's unembedding")
        for point in points {
            svg.circle(cx: x(point.attention), cy: y(point.projection), r: 3, fill: colour[point.token] ?? "#888",
                       tooltip: "prompt \(point.prompt) pos \(point.pos) \(SVG.visibleToken(tokenText(point.token))): (\(String(format: "%.4f", point.attention)), \(String(format: "%.4f", point.projection)))")
        }
        for (i, entry) in shown.enumerated() {
            let ly = plot.y + 6 + Double(i) * 18
            svg.circle(cx: plot.right + 30, cy: ly, r: 4, fill: colour[entry.token]!)
            svg.text(entry.name, x: plot.right + 40, y: ly + 4, size: 11, fill: "#333")
        }
        if tokens.count > shown.count { svg.text("… \(tokens.count - shown.count) more", x: plot.right + 24, y: plot.y + 6 + Double(shown.count) * 18 + 4, size: 11, fill: "#666") }
        return svg.render()
    }
}
