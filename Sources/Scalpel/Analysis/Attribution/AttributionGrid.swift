import Foundation

/// The labelled grid of an attribution: its axes, a label per cell, and which cells exist.
struct AttributionGrid {
    var dims: [String]
    var shape: [Int]
    var labels: [String]
    var axisLabels: [[String]]
    /// false where the model has no such unit (a head of a block without attention).
    var exists: [Bool]
    /// The graph blocks of the rows of a [layer, …] grid.
    var layers: [Int] = []

    var cellCount: Int { labels.count }

    func cell(_ row: Int, _ column: Int) -> Int { row * shape[1] + column }

    init(_ attribution: LogitAttribution, grouping: AttributionGrouping, model: Model) {
        switch grouping {
        case .component, .layer:
            let kind: ResidualStack.Kind = grouping == .component ? .decomposed : .accumulated(includeMid: attribution.includeMid)
            labels = ResidualStack.components(kind, in: model).map(\.label)
            dims = [grouping == .component ? "component" : "layer"]
            shape = [labels.count]
            axisLabels = [labels]
            exists = labels.map { _ in true }
        case .head:
            layers = Array(model.blocks.indices)
            let heads = model.blocks.compactMap { $0.attention?.nHead }.max() ?? 0
            dims = ["layer", "head"]
            shape = [layers.count, heads]
            axisLabels = [layers.map { "L\($0)" }, (0..<heads).map(String.init)]
            labels = layers.flatMap { layer in (0..<heads).map { "\(layer).\($0)" } }
            exists = layers.flatMap { layer in (0..<heads).map { $0 < (model.blocks[layer].attention?.nHead ?? 0) } }
        case .neuron:
            layers = attribution.layers ?? []
            let widths = layers.map { model.blocks[$0].mlp?.outWeight.shape[0] ?? 0 }
            let neurons = widths.max() ?? 0
            dims = ["layer", "neuron"]
            shape = [layers.count, neurons]
            axisLabels = [layers.map { "L\($0)" }, (0..<neurons).map(String.init)]
            labels = layers.flatMap { layer in (0..<neurons).map { "L\(layer) N\($0)" } }
            exists = widths.flatMap { width in (0..<neurons).map { $0 < width } }
        }
    }
}
