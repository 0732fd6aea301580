import Foundation

/// `scalpel circuit --plot`: a histogram of the random baselines' scores, with the circuit's score
/// and the full model's marked by vertical lines.
public enum CircuitPlot {
    public static func svg(_ result: CircuitResult, title: String) -> String {
        let values = (result.baselines?.values ?? []).filter(\.isFinite)
        let marks = [result.score, result.full].filter(\.isFinite)
        let all = values + marks
        var low = all.min() ?? 0, high = all.max() ?? 1
        if high - low < 1e-9 { low -= 0.5; high += 0.5 }
        let pad = (high - low) * 0.05
        low -= pad; high += pad
        let bins = max(5, min(30, Int(Double(values.count).squareRoot().rounded(.up)) * 2))
        var counts = [Int](repeating: 0, count: bins)
        for v in values { counts[min(bins - 1, max(0, Int((v - low) / (high - low) * Double(bins))))] += 1 }
        let width = 640.0, height = 360.0, left = 60.0, right = 20.0, top = 50.0, bottom = 60.0
        let plotW = width - left - right, plotH = height - top - bottom
        let maxCount = max(1, counts.max() ?? 1)
        func x(_ v: Double) -> Double { left + (v - low) / (high - low) * plotW }
        var svg = SVG(width: width, height: height)
        svg.text(title, x: width / 2, y: 22, size: 14, anchor: .middle, bold: true)
        let baselines = result.baselines
        svg.text(baselines.map { String(format: "%d random circuits of %d heads (seed %llu): mean %.4f, sd %.4f", $0.n, result.circuit.size, $0.seed, $0.mean, $0.sd) }
                 ?? "no random baselines (--baselines N)", x: width / 2, y: 40, size: 11, anchor: .middle, fill: "#555")
        for (b, count) in counts.enumerated() where count > 0 {
            let x0 = left + Double(b) / Double(bins) * plotW, h = Double(count) / Double(maxCount) * plotH
            svg.rect(x: x0 + 1, y: top + plotH - h, width: plotW / Double(bins) - 2, height: h, fill: "#9ab",
                     tooltip: "\(count) circuit\(count == 1 ? "" : "s")")
        }
        svg.line(x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH)
        svg.line(x1: left, y1: top, x2: left, y2: top + plotH)
        for t in 0...4 {
            let v = low + (high - low) * Double(t) / 4
            svg.text(String(format: "%.2f", v), x: x(v), y: top + plotH + 16, size: 10, anchor: .middle)
        }
        svg.text("\(result.metric.rawValue) on \(result.dataset)", x: left + plotW / 2, y: height - 18, size: 12, anchor: .middle)
        svg.text("\(maxCount)", x: left - 6, y: top + 4, size: 10, anchor: .end)
        svg.text("circuits", x: 16, y: top + plotH / 2, size: 12, anchor: .middle, rotate: -90)
        for (value, label, colour) in [(result.score, "circuit \(String(format: "%.3f", result.score))", "#c0392b"),
                                       (result.full, "full \(String(format: "%.3f", result.full))", "#2c3e50")] where value.isFinite {
            svg.line(x1: x(value), y1: top, x2: x(value), y2: top + plotH, stroke: colour)
            let nearRight = x(value) > left + plotW * 0.75
            svg.text(label, x: x(value) + (nearRight ? -3 : 3), y: top + 12 + (label.hasPrefix("full") ? 14 : 0), size: 11,
                     anchor: nearRight ? .end : .start, fill: colour)
        }
        return svg.render()
    }
}
