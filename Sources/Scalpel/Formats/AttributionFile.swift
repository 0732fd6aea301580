import Foundation

/// Attribution results as HDF5 (`scalpel attribute -o FILE.h5`): the prompts (tokens, token
/// strings, answers and foils when there are some) and an `attribution/` group with `values` over
/// labelled axes, a string dataset of labels per axis, and the total, the model's actual value, the
/// ln_final bias term and the remainder as attributes, with the sentence that relates them.
public enum AttributionFile {
    public static func write(_ result: AttributionResult, prompts: PromptsGroup, to target: OutputTarget,
                             attributes: [String: String]) throws {
        try ScalpelFile.write(to: target, format: "scalpel-attribution", attributes: attributes) { root in
            try prompts.write(root)
            let group = try root.createGroup("attribution")
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
            try root.attachDimensionScales(to: ["prompts", "attribution"])
        }
    }
}
