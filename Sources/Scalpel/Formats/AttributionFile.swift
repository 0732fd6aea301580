import Foundation

/// Attribution results as HDF5 (`scalpel attribute -o FILE.h5`): the prompts (tokens, token
/// strings, answers and foils when there are some) and an `attribution/` group with `values` over
/// labelled axes, a string dataset of labels per axis, and the total, the model's actual value, the
/// ln_final bias term and the remainder as attributes, with the sentence that relates them.
///
/// Several groupings of one run (`--by component,head,neuron`) go to `attribution/<by>/`, one group
/// each with exactly those contents and its own dimension scales (netCDF-4 group dimensions: a
/// head grid's `layer` has every block, a neuron grid's only the chosen ones); `attribution` then
/// has the attribute `by` listing them in order.
public enum AttributionFile {
    public static func write(_ result: AttributionResult, prompts: PromptsGroup, to target: OutputTarget,
                             attributes: [String: String]) throws {
        try write([result], prompts: prompts, to: target, attributes: attributes)
    }

    /// `shard`: this process is part K of N of a sharded run over `wholeRun` prompts; `sums` are
    /// its batches' exact sums, which `scalpel merge` adds up with the other parts'.
    public static func write(_ results: [AttributionResult], prompts: PromptsGroup, to target: OutputTarget, attributes: [String: String],
                             shard: ShardRun? = nil, sums: AttributionSums? = nil, wholeRun: Int = 0) throws {
        let mark = try shard.map { run -> PartialFile.Mark in
            guard let sums else { throw ShardError.inconsistent(path: target.path, reason: "a sharded attribution needs its batches' sums") }
            return try PartialFile.Mark(kind: .attribution, run: run, total: wholeRun, indices: run.shard.indices(of: wholeRun, block: run.block),
                                        attributes: attributes, payload: AttributionPayload(prompts: PromptsPayload(prompts), sums: sums))
        }
        try ScalpelFile.write(to: target, format: "scalpel-attribution", attributes: attributes, partial: mark) { root in
            try prompts.write(root)
            let group = try root.createGroup("attribution")
            if results.count == 1 {
                try writeResult(results[0], in: group)
                try root.attachDimensionScales(to: ["prompts", "attribution"])
            } else {
                try group.setAttribute("by", results.map(\.grouping.rawValue).joined(separator: ","))
                try root.attachDimensionScales(to: ["prompts"])
                for result in results {
                    let sub = try group.createGroup(result.grouping.rawValue)
                    try writeResult(result, in: sub)
                    try sub.attachDimensionScales(to: ["."])
                }
            }
        }
    }

    private static func writeResult(_ result: AttributionResult, in group: HDF5Group) throws {
        try group.setAttribute("by", result.grouping.rawValue)
        try group.setAttribute("ln", result.normalization.rawValue)
        try group.setAttribute("direction", result.direction)
        try group.setAttribute("items", result.items)
        try group.setAttribute("total", result.total)
        try group.setAttribute("actual", result.actual)
        try group.setAttribute("ln_final_bias", result.lnFinalBias)
        try group.setAttribute("remainder", result.remainder)
        try group.setAttribute("explanation", result.explanation)
        try group.writeTensor("values", Tensor(shape: result.shape, data: result.values.map { Float($0 ?? .nan) }), dims: result.dims)
        for (dim, labels) in zip(result.dims, result.axisLabels) { try group.writeStrings("\(dim)_labels", labels, dims: [dim]) }
    }
}
