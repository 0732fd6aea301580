import Foundation

/// Pictures of a paths search: decode-only top-1 accuracy against layer (each layer at its best α),
/// one line per direction; and one path decoded step by step (the expected token's rank along α).
public enum PathsPlot {
    public static func svg(_ summaries: [PathSummary], points: [PathPoint], model: Model) -> String {
        let directions = Array(Set(summaries.map(\.direction))).sorted()
        let accuracy = directions.map { direction -> (name: String, points: [(x: Double, y: Double)]) in
            let rows = summaries.filter { $0.direction == direction }
            let layers = Array(Set(rows.map(\.layer))).sorted()
            return (direction, layers.map { layer in
                (Double(layer), rows.filter { $0.layer == layer }.map(\.decodeTop1).max() ?? 0)
            })
        }
        var parts = [LinePlot.svg(series: accuracy, xLabel: "block (hook_resid_post)", yLabel: "decode-only top-1 accuracy",
                                  title: "Reaching the expected item, best α per layer", yRange: 0...1)]
        // The first direction's first path at its best layer, step by step along α.
        if let direction = directions.first,
           let best = summaries.filter({ $0.direction == direction }).max(by: { $0.decodeTop1 < $1.decodeTop1 }),
           let source = points.first(where: { $0.direction == direction })?.source {
            let path = points.filter { $0.direction == direction && $0.layer == best.layer && $0.source == source }.sorted { $0.alpha < $1.alpha }
            let target = path.first?.target ?? ""
            // Ranks are 0-based; rank + 1 goes on the log axis, so the top token sits at 1.
            parts.append(LinePlot.svg(
                series: [("decode-only", path.map { ($0.alpha, Double($0.decode.rank + 1)) }),
                         ("propagated", path.map { ($0.alpha, Double($0.propagated.rank + 1)) })],
                xLabel: "α", yLabel: "rank + 1 of the expected token (log scale)",
                title: "\(direction): \(source) → \(target) at block \(best.layer)", logY: true))
        }
        return SVG.stackVertically(parts)
    }
}
