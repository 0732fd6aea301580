import Foundation

/// Logit-lens results as HDF5 (`scalpel lens -o FILE.h5`): the prompts group of the activation file
/// (`PromptsGroup`: tokens, token strings, answers, corrupted prompts) and a `lens/` group of
/// labelled datasets, [prompt, row, position(, k)], padded with -1 / NaN when prompts have
/// different numbers of selected positions. Labelled dimensions are netCDF-4 dimensions.
public enum LensFile {
    public static func write(_ result: LensResult, prompts promptsGroup: PromptsGroup, to target: OutputTarget,
                             attributes: [String: String], shard: ShardRun? = nil, wholeRun: Int = 0) throws {
        let prompts = result.prompts
        let rows = result.rows.count
        let width = prompts.map(\.positions.count).max() ?? 0
        let k = prompts.first?.cells.first?.first?.top.count ?? 0
        let hasTarget = prompts.contains { $0.target != nil }
        // One shard's part (`--shard K/N`, the shard's prompts of `wholeRun`): the exact result, for `merge`.
        let mark = try shard.map {
            try PartialFile.Mark(kind: .lens, run: $0, total: wholeRun, indices: $0.shard.indices(of: wholeRun, block: $0.block), attributes: attributes,
                                 payload: LensPayload(prompts: PromptsPayload(promptsGroup), result: result))
        }
        try ScalpelFile.write(to: target, format: "scalpel-activations", attributes: attributes, partial: mark) { root in
            try promptsGroup.write(root)
            let lens = try root.createGroup("lens")
            try lens.setAttribute("normalization", result.normalization.rawValue)
            try lens.setAttribute("model", result.model)
            try lens.writeStrings("rows", result.rows, dims: ["row"])
            try lens.writeStrings("row_labels", result.rowLabels, dims: ["row"])
            try lens.writeInt32("positions", prompts.flatMap { p in (0..<width).map { Int32($0 < p.positions.count ? p.positions[$0] : -1) } },
                                shape: [prompts.count, width], dims: ["prompt", "position"])

            // cell(p, r, j) for every prompt, row and selected position, padded.
            func grid<T>(_ pad: T, _ value: (LensCell) -> [T]) -> [T] {
                prompts.flatMap { p in (0..<rows).flatMap { r in (0..<width).flatMap { j -> [T] in
                    j < p.positions.count ? value(p.cells[r][j]) : Array(repeating: pad, count: value(p.cells[r][0]).count)
                } } }
            }
            let cellShape = [prompts.count, rows, width], cellDims = ["prompt", "row", "position"]
            try lens.writeInt32("top_ids", grid(-1) { $0.top.map { Int32($0.id) } }, shape: cellShape + [k], dims: cellDims + ["k"])
            try lens.writeTensor("top_probs", Tensor(shape: cellShape + [k], data: grid(Float.nan) { $0.top.map { Float($0.prob) } }), dims: cellDims + ["k"])
            try lens.writeTensor("top_logits", Tensor(shape: cellShape + [k], data: grid(Float.nan) { $0.top.map(\.logit) }), dims: cellDims + ["k"])
            if hasTarget {
                try lens.writeInt32("target_ids", prompts.map { Int32($0.target ?? -1) }, shape: [prompts.count], dims: ["prompt"])
                try lens.writeTensor("target_prob", Tensor(shape: cellShape, data: grid(Float.nan) { [$0.target.map { Float($0.prob) } ?? .nan] }), dims: cellDims)
                try lens.writeTensor("target_logit", Tensor(shape: cellShape, data: grid(Float.nan) { [$0.target?.logit ?? .nan] }), dims: cellDims)
                try lens.writeInt32("target_rank", grid(-1) { [Int32($0.target?.rank ?? -1)] }, shape: cellShape, dims: cellDims)
                try lens.writeTensor("logit_diff", Tensor(shape: cellShape, data: grid(Float.nan) { [$0.logitDiff ?? .nan] }), dims: cellDims)
                let summary = result.summary
                try lens.writeTensor("mean_target_prob", Tensor(shape: [rows], data: summary.map { Float($0.meanTargetProb ?? .nan) }), dims: ["row"])
                try lens.writeTensor("mean_logit_diff", Tensor(shape: [rows], data: summary.map { Float($0.meanLogitDiff ?? .nan) }), dims: ["row"])
            }
            try root.attachDimensionScales(to: ["prompts", "lens"])
        }
    }
}
