import Foundation

/// Patching results as HDF5 (`scalpel patch -o FILE.h5`): the items (clean and corrupted prompts and
/// tokens, answers, foils) and a `patch/` group with `values` (normalised) and `raw` over labelled
/// axes, a string dataset of labels per axis, and the clean and corrupted metrics as attributes.
public enum PatchFile {
    /// `prompts`: the clean prompts with their answers, corrupted prompts and foils; the corrupted
    /// prompts' tokens are added as `prompts/corrupted_tokens`.
    public static func write(_ result: PatchResult, prompts: PromptsGroup, corruptedTokens: [[Int]], to target: OutputTarget,
                             attributes: [String: String], shard: ShardRun? = nil) throws {
        // One shard's part (`--shard K/N`): the raw metric of the cells it computed, bit for bit, for `merge`.
        let mark = try shard.map { run -> PartialFile.Mark in
            let indices = result.raw.indices.filter { result.raw[$0] != nil }
            let payload = PatchPayload(target: result.target, direction: result.direction.rawValue, metric: result.metric.rawValue,
                                       dims: result.dims, shape: result.shape, axisLabels: result.axisLabels,
                                       clean: result.clean.bitPattern, corrupted: result.corrupted.bitPattern,
                                       raw: indices.map { result.raw[$0]!.bitPattern },
                                       prompts: PromptsPayload(prompts), corruptedTokens: corruptedTokens)
            return try PartialFile.Mark(kind: .patch, run: run, total: result.raw.count, indices: indices, attributes: attributes, payload: payload)
        }
        try ScalpelFile.write(to: target, format: "scalpel-patch", attributes: attributes, partial: mark) { root in
            try prompts.write(root)
            try PromptsGroup.writeTokens("corrupted_tokens", corruptedTokens, in: try root.group("prompts"))

            let patch = try root.createGroup("patch")
            try patch.setAttribute("target", result.target)
            try patch.setAttribute("direction", result.direction.rawValue)
            try patch.setAttribute("metric", result.metric.rawValue)
            try patch.setAttribute("clean", result.clean)
            try patch.setAttribute("corrupted", result.corrupted)
            try patch.setAttribute("normalizable", result.isNormalizable ? 1 : 0)
            try patch.writeTensor("raw", Tensor(shape: result.shape, data: result.raw.map { Float($0 ?? .nan) }), dims: result.dims)
            try patch.writeTensor("values", Tensor(shape: result.shape, data: result.values.map { Float($0 ?? .nan) }), dims: result.dims)
            for (dim, labels) in zip(result.dims, result.axisLabels) { try patch.writeStrings("\(dim)_labels", labels, dims: [dim]) }
            try root.attachDimensionScales(to: ["prompts", "patch"])
        }
    }
}
