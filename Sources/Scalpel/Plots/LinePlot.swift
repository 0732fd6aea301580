import Foundation

/// A generic line chart as a self-contained SVG: one coloured line per series (Tableau 10, dashed
/// once the colours run out), dots at the points when there are few, a legend on the right.
public enum LinePlot {
    /// - Parameter logY: a log10 y axis from 1 to the next power of ten above the data, for values
    ///   of at least 1 such as rank + 1 (`yRange` is then ignored).
    public static func svg(series: [(name: String, points: [(x: Double, y: Double)])], xLabel: String, yLabel: String,
                           title: String, yRange: ClosedRange<Double>? = nil, logY: Bool = false) -> String {
        let finite = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        let xData = (finite.map(\.x).min() ?? 0)...(finite.map(\.x).max() ?? 1)
        let yData = (finite.map(\.y).min() ?? 0)...(finite.map(\.y).max() ?? 1)
        let xDomain = SVG.niceRange(xData, count: 6)
        let xStep = SVG.niceStep(xDomain, count: 6)
        let xTickValues = SVG.niceTicks(xDomain, count: 6)
        let yDomain: ClosedRange<Double>, yTickValues: [Double], yTickLabels: [String]
        if logY {
            let decades = max(1, Int(log10(max(yData.upperBound, 1)).rounded(.up)))
            yDomain = 1...pow(10, Double(decades))
            yTickValues = (0...decades).map { pow(10, Double($0)) }
            yTickLabels = (0...decades).map(SVG.decadeLabel)
        } else {
            yDomain = yRange ?? SVG.niceRange(yData, count: 5)
            yTickValues = SVG.niceTicks(yDomain, count: 5)
            let yStep = SVG.niceStep(yDomain, count: 5)
            yTickLabels = yTickValues.map { SVG.tickLabel($0, step: yStep) }
        }

        let names = series.map { SVG.truncate(SVG.visibleText($0.name), maxChars: 32) }
        let legendWidth = series.isEmpty ? 0 : 44 + (names.map { SVG.textWidth($0, size: 11) }.max() ?? 0)
        let yTickWidth = yTickLabels.map { SVG.textWidth($0, size: 10) }.max() ?? 0
        let plot = SVG.Frame(x: 16 + 16 + yTickWidth + 12, y: 58, width: 520, height: 300)
        let xTicks = xTickValues.map { (value: $0, label: SVG.tickLabel($0, step: xStep)) }
        let spacing = plot.width / Double(max(xTicks.count - 1, 1))
        let tickLayout = SVG.tickLayout(labels: xTicks.map(\.label), spacing: spacing, size: 10)
        let legendHeight = Double(series.count) * 18
        let width = max(plot.right + 24 + legendWidth + 8, 16 + SVG.textWidth(title, size: 16) + 16)
        let height = max(plot.bottom + tickLayout.height + 30, plot.y + legendHeight + 10)
        var svg = SVG(width: width.rounded(.up), height: height.rounded(.up))

        let x = SVG.Scale(domain: xDomain, from: plot.x, to: plot.right)
        let y = SVG.Scale(domain: yDomain, from: plot.bottom, to: plot.y, log: logY)
        svg.text(title, x: 16, y: 28, size: 16, bold: true)
        svg.axes(plot, xTicks: xTicks.map { (x: x($0.value), label: $0.label) },
                 yTicks: zip(yTickValues, yTickLabels).map { (y: y($0), label: $1) },
                 xLabel: xLabel, yLabel: yLabel, xLayout: tickLayout)

        for (i, item) in series.enumerated() {
            let color = SVG.palette[i % SVG.palette.count]
            let dash: String? = i < SVG.palette.count ? nil : ["6 3", "2 3", "8 3 2 3"][(i / SVG.palette.count - 1) % 3]
            // Points outside a given y range are pinned to its edge rather than drawn off the chart.
            let pixels = item.points.map { point -> (x: Double, y: Double) in
                guard point.x.isFinite, point.y.isFinite else { return (x: .nan, y: .nan) }
                return (x: x(point.x), y: y(min(max(point.y, yDomain.lowerBound), yDomain.upperBound)))
            }
            svg.polyline(pixels, stroke: color, width: 2, dash: dash, className: "series", tooltip: names[i])
            if item.points.count <= 40 {
                for (point, pixel) in zip(item.points, pixels) where pixel.x.isFinite && pixel.y.isFinite {
                    svg.circle(cx: pixel.x, cy: pixel.y, r: 2.5, fill: color,
                               tooltip: "\(names[i]): (\(SVG.num(point.x)), \(String(format: "%.4g", point.y)))")
                }
            }
            let ly = plot.y + 6 + Double(i) * 18
            svg.line(x1: plot.right + 24, y1: ly, x2: plot.right + 48, y2: ly, stroke: color, width: 2, dash: dash)
            svg.text(names[i], x: plot.right + 54, y: ly + 4, size: 11, fill: "#333")
        }
        return svg.render()
    }
}
