import Foundation

/// A labelled heat map of a signed grid, coloured on a diverging scale centred on 0 (blue
/// negative, white 0, red positive), with a tooltip per cell. Patching and attribution draw with it.
public struct HeatMap: Sendable {
    public var title: String
    public var rowLabels: [String]
    public var columnLabels: [String]
    /// Row-major [rows, columns]; nil cells are drawn grey.
    public var values: [Double?]
    public var xLabel: String
    public var yLabel: String
    /// Cells labelled with their text above the strip (for wide grids such as neurons, the top ones).
    public var marked: [Int] = []

    public init(title: String, rowLabels: [String], columnLabels: [String], values: [Double?], xLabel: String, yLabel: String) {
        self.title = title; self.rowLabels = rowLabels; self.columnLabels = columnLabels
        self.values = values; self.xLabel = xLabel; self.yLabel = yLabel
    }

    /// Red for positive, blue for negative, white at 0; `t` in −1…1 (clamped).
    public static func diverging(_ t: Double) -> String {
        guard t.isFinite else { return "#dddddd" }
        let s = min(max(t, -1), 1)
        let (r, g, b): (Double, Double, Double) = s >= 0 ? (0xb2, 0x18, 0x2b) : (0x21, 0x66, 0xac)
        let w = abs(s)
        return SVG.hex(255 + (r - 255) * w, 255 + (g - 255) * w, 255 + (b - 255) * w)
    }

    /// The SVG of several heat maps side by side, sharing one colour scale.
    public static func svg(_ maps: [HeatMap], legend: String) -> String {
        let limit = maps.flatMap { $0.values.compactMap { $0 } }.filter(\.isFinite).map(abs).max() ?? 1
        let scale = limit > 0 ? limit : 1
        var panels: [(HeatMap, SVG.Frame)] = []
        let cell = maps.map { $0.columnLabels.count > 64 ? 600 / Double($0.columnLabels.count) : 22 }
        let left = 16 + (maps.flatMap(\.rowLabels).map { SVG.textWidth($0, size: 10) }.max() ?? 20) + 14
        var x = left
        let top = 56.0
        for (i, map) in maps.enumerated() {
            let height = Double(map.rowLabels.count) * (map.columnLabels.count > 64 ? 22 : cell[i])
            let frame = SVG.Frame(x: x, y: top, width: Double(map.columnLabels.count) * cell[i], height: height)
            panels.append((map, frame))
            x = frame.right + left
        }
        let bottomLabels = maps.flatMap(\.columnLabels).map { SVG.textWidth($0, size: 10) }.max() ?? 20
        let height = (panels.map { $0.1.bottom }.max() ?? top) + min(bottomLabels, 80) + 70
        var svg = SVG(width: x + 40, height: height)
        svg.rect(x: 0, y: 0, width: svg.width, height: svg.height, fill: "#ffffff")
        for (map, frame) in panels {
            svg.text(map.title, x: frame.x, y: 24, size: 14, bold: true)
            let rows = map.rowLabels.count, columns = map.columnLabels.count
            let w = frame.width / Double(max(columns, 1)), h = frame.height / Double(max(rows, 1))
            for r in 0..<rows {
                for c in 0..<columns {
                    let value = map.values[r * columns + c]
                    let text = value.map { String(format: "%.4g", $0) } ?? "n/a"
                    svg.rect(x: frame.x + Double(c) * w, y: frame.y + Double(r) * h, width: w, height: h,
                             fill: value.map { diverging($0 / scale) } ?? "#dddddd",
                             tooltip: "\(map.rowLabels[r]) · \(map.columnLabels[c]): \(text)")
                }
                svg.text(map.rowLabels[r], x: frame.x - 6, y: frame.y + (Double(r) + 0.5) * h + 3.5, size: 10, anchor: .end, fill: "#444")
            }
            // Column labels: every one when they fit, otherwise only the marked cells' columns.
            if columns <= 64 {
                for c in 0..<columns {
                    svg.text(SVG.truncate(map.columnLabels[c], maxChars: 14), x: frame.x + (Double(c) + 0.5) * w + 3, y: frame.bottom + 8,
                             size: 10, anchor: .end, fill: "#444", rotate: -60)
                }
            }
            for cellIndex in map.marked {
                let r = cellIndex / columns, c = cellIndex % columns
                let cx = frame.x + (Double(c) + 0.5) * w
                svg.line(x1: cx, y1: frame.y + Double(r) * h, x2: cx, y2: frame.y + Double(r + 1) * h, stroke: "#000000")
                svg.text(map.columnLabels[c], x: cx, y: frame.y + Double(r) * h - 2, size: 9, anchor: .middle)
            }
            svg.text(map.xLabel, x: frame.x + frame.width / 2, y: frame.bottom + min(bottomLabels, 80) + 24, size: 11, anchor: .middle)
            svg.text(map.yLabel, x: frame.x - left + 12, y: frame.y + frame.height / 2, size: 11, anchor: .middle, rotate: -90)
        }
        // The colour scale: −limit … 0 … +limit.
        let legendY = height - 26
        for i in 0..<100 {
            svg.rect(x: left + Double(i) * 2, y: legendY, width: 2, height: 10, fill: diverging(Double(i) / 49.5 - 1))
        }
        svg.text(String(format: "%.3g", -scale), x: left, y: legendY + 22, size: 9, anchor: .middle)
        svg.text("0", x: left + 100, y: legendY + 22, size: 9, anchor: .middle)
        svg.text(String(format: "%.3g", scale), x: left + 200, y: legendY + 22, size: 9, anchor: .middle)
        svg.text(legend, x: left + 212, y: legendY + 9, size: 10)
        return svg.render()
    }
}
