import Foundation

/// `scalpel paths -o FILE.h5`: the representations, the offsets and every path point, labelled.
///
/// - `representations/<family>/items`, `values`, `<hook>` (e.g. `hook_resid_post`) [layer, item, d_model]
/// - `offsets/<direction>/delta` [layer, d_model]: the mean offset over all pairs
/// - `paths/<direction>/…` one entry per point: `layer`, `alpha`, `source`, `target`, `expected`,
///   `decode_rank`, `propagated_rank`, `decode_top` [point, k], `propagated_top` [point, k]
public enum PathsFile {
    public static func write(search: VectorPaths, directions: [VectorPaths.Direction], points: [PathPoint], model: Model,
                             to target: OutputTarget, attributes: [String: String]) throws {
        let layers = search.layers ?? Array(model.blocks.indices)
        let d = model.dModel
        var families: [String: VectorPaths.Items] = [:]
        for direction in directions { families[direction.from.family.name] = direction.from; families[direction.to.family.name] = direction.to }
        var representations: [String: [Int: Tensor]] = [:]
        for (name, items) in families { representations[name] = try search.representations(items, model: model, layers: layers) }
        try ScalpelFile.write(to: target, format: "scalpel-paths", attributes: attributes) { root in
            try root.setAttribute("template", search.template.rawValue)
            try root.setAttribute("leave_one_out", search.leaveOneOut ? 1 : 0)
            try root.setAttribute("layers", layers)
            try root.setAttribute("hook", search.hook.rawValue)
            try root.writeTensor("alphas", Tensor(shape: [search.alphas.count], data: search.alphas.map(Float.init)), dims: ["alpha"])
            for (name, items) in families.sorted(by: { $0.key < $1.key }) {
                let group = try root.createGroup("representations/\(name)")
                try group.writeStrings("items", items.items, dims: ["item"])
                try group.writeInt32("values", items.values.map(Int32.init), shape: [items.values.count], dims: ["item"])
                let stacked = layers.flatMap { representations[name]![$0]!.scalars }
                try group.writeTensor(search.hook.rawValue, Tensor(shape: [layers.count, items.items.count, d], data: stacked), dims: ["layer", "item", "d_model"])
            }
            for direction in directions {
                let key = direction.name.replacingOccurrences(of: " → ", with: "_to_").replacingOccurrences(of: " ", with: "_")
                let offsets = try root.createGroup("offsets/\(key)")
                try offsets.setAttribute("direction", direction.name)
                let deltas = layers.flatMap { layer -> [Float] in
                    let source = representations[direction.from.family.name]![layer]!, target = representations[direction.to.family.name]![layer]!
                    var sum = [Double](repeating: 0, count: d)
                    for (i, j) in direction.pairs { for c in 0..<d { sum[c] += Double(target[flat: j * d + c]) - Double(source[flat: i * d + c]) } }
                    return sum.map { Float($0 / Double(max(direction.pairs.count, 1))) }
                }
                try offsets.writeTensor("delta", Tensor(shape: [layers.count, d], data: deltas), dims: ["layer", "d_model"])
                let mine = points.filter { $0.direction == direction.name }
                let group = try root.createGroup("paths/\(key)")
                try group.setAttribute("direction", direction.name)
                let n = mine.count, k = mine.first?.decode.top.count ?? 0
                try group.writeInt32("layer", mine.map { Int32($0.layer) }, shape: [n], dims: ["point"])
                try group.writeTensor("alpha", Tensor(shape: [n], data: mine.map { Float($0.alpha) }), dims: ["point"])
                try group.writeStrings("source", mine.map(\.source), dims: ["point"])
                try group.writeStrings("target", mine.map(\.target), dims: ["point"])
                try group.writeInt32("expected", mine.map { Int32($0.expected) }, shape: [n], dims: ["point"])
                try group.writeInt32("decode_rank", mine.map { Int32($0.decode.rank) }, shape: [n], dims: ["point"])
                try group.writeInt32("propagated_rank", mine.map { Int32($0.propagated.rank) }, shape: [n], dims: ["point"])
                try group.writeInt32("decode_top", mine.flatMap { $0.decode.top.map(Int32.init) }, shape: [n, k], dims: ["point", "k"])
                try group.writeInt32("propagated_top", mine.flatMap { $0.propagated.top.map(Int32.init) }, shape: [n, k], dims: ["point", "k"])
            }
        }
    }
}
