import Foundation

/// The picture of a patching result: per target a heat map with layers down and the last axis
/// across (positions with their tokens, heads, destinations or neurons); a 3-axis grid draws one
/// row per (layer, second axis). Neuron strips label their top five neurons.
public enum PatchPlot {
    public static func svg(_ result: PatchResult, positionTokens: [String], title: String) -> String {
        let stacked = result.dims.first == "target"
        let targets = stacked ? result.axisLabels[0] : [result.target]
        let dims = Array(result.dims.dropFirst(stacked ? 1 : 0)), labels = Array(result.axisLabels.dropFirst(stacked ? 1 : 0))
        let panelSize = dims.map { _ in 1 }.indices.reduce(1) { $0 * labels[$1].count }
        let columns = labels[labels.count - 1].count
        let values = result.isNormalizable ? result.values : result.raw.map { $0.map { $0 - result.corrupted } }
        func axisText(_ dim: String, _ labels: [String]) -> [String] {
            dim == "pos" || dim == "dest_pos" ? labels.indices.map { "\($0) \(SVG.visibleToken(positionTokens[safe: $0] ?? ""))" } : labels
        }
        var rowLabels = axisText(dims[0], labels[0])
        if dims.count == 3 {
            let second = axisText(dims[1], labels[1])
            rowLabels = rowLabels.flatMap { first in second.map { "\(first) · \(dims[1] == "head" ? "H" : "")\($0)" } }
        }
        let maps = targets.enumerated().map { t, target -> HeatMap in
            let part = Array(values[(t * panelSize)..<((t + 1) * panelSize)])
            var map = HeatMap(title: stacked ? target : "\(title) · \(target)", rowLabels: rowLabels,
                              columnLabels: axisText(dims[dims.count - 1], labels[labels.count - 1]), values: part,
                              xLabel: dims[dims.count - 1].replacingOccurrences(of: "_", with: " "), yLabel: dims[0])
            if dims.last == "neuron" {
                for row in rowLabels.indices {
                    let cells = (0..<columns).map { row * columns + $0 }.filter { part[$0] != nil }
                    map.marked += cells.sorted { abs(part[$0]!) > abs(part[$1]!) }.prefix(5)
                }
            }
            return map
        }
        let legend = result.isNormalizable ? "normalised \(result.metric.rawValue): 1 = clean restored" : "\(result.metric.rawValue) − corrupted"
        return HeatMap.svg(maps, legend: legend)
    }
}

extension Array {
    subscript(safe index: Int) -> Element? { indices.contains(index) ? self[index] : nil }
}
