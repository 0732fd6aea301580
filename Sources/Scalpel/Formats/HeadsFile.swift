import Foundation

/// Results of `scalpel heads` as HDF5 (`-o FILE.h5`, format `scalpel-heads`): the prompts (text,
/// token ids and strings, answers) and a `heads/` group whose attribute `analysis` says which:
/// - `detect`: `values` float32 [layer, head] for one detector, [detector, layer, head] with
///   `detector_labels` for several; attributes `detector` (the names, comma-separated), `exclude_bos`,
///   `exclude_current_token`, `families`;
/// - `copy-scores`: `copy`, `next` float32 [layer, head], `copy_hits`, `next_hits` int32 [layer, head],
///   the scored rows `row_prompt`, `row_pos`, `row_token`, `row_next` int32 [position], and per table
///   head `top_tokens_L_H` int32 [position, k]; attributes `positions`, `sign`, `k`;
/// - `writing`: `prompt`, `pos`, `token` int32 and `attention`, `projection` float32 [point];
///   attributes `head`, `r`, `p_value` (NaN when undefined).
/// Labelled axes are HDF5 dimension scales (`layer`, `head`, `position`, `point`).
public enum HeadsFile {
    /// Detector grids, one per detector of `detection` (in its order). `partial`: a shard's mark.
    public static func write(_ grids: [HeadGrid], detection: HeadDetection, prompts: PromptsGroup, to target: OutputTarget,
                             attributes: [String: String], partial: PartialFile.Mark? = nil) throws {
        precondition(grids.count == detection.detectors.count, "one grid per detector")
        try ScalpelFile.write(to: target, format: "scalpel-heads", attributes: attributes, partial: partial) { root in
            try prompts.write(root)
            let group = try root.createGroup("heads")
            try group.setAttribute("analysis", "detect")
            try group.setAttribute("detector", detection.detectors.map(\.rawValue).joined(separator: ","))
            try group.setAttribute("exclude_bos", detection.excludeBOS ? 1 : 0)
            try group.setAttribute("exclude_current_token", detection.excludeCurrentToken ? 1 : 0)
            if let families = detection.families, detection.detectors.contains(.sameFamily) {
                try group.setAttribute("families", families.names.joined(separator: ","))
            }
            if grids.count == 1 {
                _ = try group.writeTensor("values", tensor(grids[0]), dims: HeadGrid.dims)
            } else {
                let data = grids.flatMap { $0.values.map { Float($0 ?? .nan) } }
                _ = try group.writeTensor("values", Tensor(shape: [grids.count, grids[0].layers, grids[0].heads], data: data),
                                          dims: ["detector"] + HeadGrid.dims)
                try group.writeStrings("detector_labels", detection.detectors.map(\.rawValue), dims: ["detector"])
            }
            try root.attachDimensionScales(to: ["prompts", "heads"])
        }
    }

    public static func write(_ result: CopyScores.Result, prompts: PromptsGroup, to target: OutputTarget, attributes: [String: String],
                             partial: PartialFile.Mark? = nil) throws {
        try ScalpelFile.write(to: target, format: "scalpel-heads", attributes: attributes, partial: partial) { root in
            try prompts.write(root)
            let group = try root.createGroup("heads")
            try group.setAttribute("analysis", "copy-scores")
            try group.setAttribute("positions", result.positions)
            try group.setAttribute("sign", Double(result.sign))
            try group.setAttribute("k", result.k)
            _ = try group.writeTensor("copy", tensor(result.copy), dims: HeadGrid.dims)
            _ = try group.writeTensor("next", tensor(result.next), dims: HeadGrid.dims)
            let shape = [result.copy.layers, result.copy.heads]
            func hits(_ grid: HeadGrid) -> [Int32] { grid.values.map { Int32((($0 ?? -1) * Double(result.positions)).rounded()) } }
            _ = try group.writeInt32("copy_hits", hits(result.copy), shape: shape, dims: HeadGrid.dims)
            _ = try group.writeInt32("next_hits", hits(result.next), shape: shape, dims: HeadGrid.dims)
            let n = result.rows.count
            _ = try group.writeInt32("row_prompt", result.rows.map { Int32($0.prompt) }, shape: [n], dims: ["position"])
            _ = try group.writeInt32("row_pos", result.rows.map { Int32($0.pos) }, shape: [n], dims: ["position"])
            _ = try group.writeInt32("row_token", result.rows.map { Int32($0.token) }, shape: [n], dims: ["position"])
            _ = try group.writeInt32("row_next", result.rows.map { Int32($0.next) }, shape: [n], dims: ["position"])
            for (head, table) in result.tables.sorted(by: { $0.key < $1.key }) {
                _ = try group.writeInt32("top_tokens_\(head.layer)_\(head.head)", table.flatMap { $0.map(Int32.init) }, shape: [n, result.k], dims: ["position", "k"])
            }
            try root.attachDimensionScales(to: ["prompts", "heads"])
        }
    }

    public static func write(_ result: WritingScatter.Result, prompts: PromptsGroup, to target: OutputTarget, attributes: [String: String]) throws {
        try ScalpelFile.write(to: target, format: "scalpel-heads", attributes: attributes) { root in
            try prompts.write(root)
            let group = try root.createGroup("heads")
            try group.setAttribute("analysis", "writing")
            try group.setAttribute("head", result.head.description)
            try group.setAttribute("r", result.r ?? .nan)
            try group.setAttribute("p_value", result.pValue ?? .nan)
            let n = result.points.count
            _ = try group.writeInt32("prompt", result.points.map { Int32($0.prompt) }, shape: [n], dims: ["point"])
            _ = try group.writeInt32("pos", result.points.map { Int32($0.pos) }, shape: [n], dims: ["point"])
            _ = try group.writeInt32("token", result.points.map { Int32($0.token) }, shape: [n], dims: ["point"])
            _ = try group.writeTensor("attention", Tensor(shape: [n], data: result.points.map { Float($0.attention) }), dims: ["point"])
            _ = try group.writeTensor("projection", Tensor(shape: [n], data: result.points.map { Float($0.projection) }), dims: ["point"])
            try root.attachDimensionScales(to: ["prompts", "heads"])
        }
    }

    static func tensor(_ grid: HeadGrid) -> Tensor {
        Tensor(shape: [grid.layers, grid.heads], data: grid.values.map { Float($0 ?? .nan) })
    }
}
