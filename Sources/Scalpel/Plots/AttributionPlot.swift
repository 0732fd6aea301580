import Foundation

/// The pictures of a direct logit attribution: by component, the study's Figure 1 (attention and
/// MLP output per layer, one line each); by layer, the accumulated residual's value per row; by
/// head, a layer × head heat map; by neuron, one strip per layer with its top five neurons labelled.
/// Signed values use the diverging scale centred on 0.
public enum AttributionPlot {
    public static func svg(_ result: AttributionResult, title: String) -> String {
        let yLabel = result.direction.hasPrefix("token") ? "attribution (logit)" : "attribution (logit difference)"
        switch result.grouping {
        case .component:
            func series(_ suffix: String, _ name: String) -> (name: String, points: [(x: Double, y: Double)]) {
                let points = result.labels.indices.compactMap { i -> (x: Double, y: Double)? in
                    guard result.labels[i].hasSuffix(suffix), let layer = Int(result.labels[i].dropLast(suffix.count)) else { return nil }
                    return (x: Double(layer), y: result.values[i] ?? .nan)
                }
                return (name, points)
            }
            return LinePlot.svg(series: [series("_attn_out", "attention"), series("_mlp_out", "MLP")].filter { !$0.points.isEmpty },
                                xLabel: "layer", yLabel: yLabel, title: title)
        case .layer:
            let points = result.values.indices.map { (x: Double($0), y: result.values[$0] ?? .nan) }
            return LinePlot.svg(series: [(name: "accumulated residual", points: points)],
                                xLabel: "residual (0 = \(result.labels.first ?? ""), \(result.labels.count - 1) = \(result.labels.last ?? ""))",
                                yLabel: yLabel, title: title)
        case .head, .neuron:
            let columns = result.shape[1]
            var map = HeatMap(title: title, rowLabels: result.axisLabels[0],
                              columnLabels: result.grouping == .head ? result.axisLabels[1] : result.axisLabels[1].map { "N\($0)" },
                              values: result.values, xLabel: result.dims[1], yLabel: "layer")
            if result.grouping == .neuron {
                for row in 0..<result.shape[0] {
                    let cells = (0..<columns).map { row * columns + $0 }.filter { result.values[$0] != nil }
                    map.marked += cells.sorted { abs(result.values[$0]!) > abs(result.values[$1]!) }.prefix(5)
                }
            }
            return HeatMap.svg([map], legend: yLabel)
        }
    }
}
