import Foundation

/// Patching results as HDF5 (`scalpel patch -o FILE.h5`): the items (clean and corrupted prompts and
/// tokens, answers, foils) and a `patch/` group with `values` (normalised) and `raw` over labelled
/// axes, a string dataset of labels per axis, and the clean and corrupted metrics as attributes.
public enum PatchFile {
    public struct Items: Sendable {
        public var clean: [String], corrupted: [String], answers: [String], foils: [String]
        public var cleanTokens: [[Int]], corruptedTokens: [[Int]]
        public init(clean: [String], corrupted: [String], answers: [String], foils: [String], cleanTokens: [[Int]], corruptedTokens: [[Int]]) {
            self.clean = clean; self.corrupted = corrupted; self.answers = answers; self.foils = foils
            self.cleanTokens = cleanTokens; self.corruptedTokens = corruptedTokens
        }
    }

    public static func write(_ result: PatchResult, items: Items, to target: OutputTarget, attributes: [String: String]) throws {
        try ScalpelFile.write(to: target, format: "scalpel-patch", attributes: attributes) { root in
            try ActivationFile.writePrompts(root, texts: items.clean, prompts: items.cleanTokens)
            let prompts = try root.group("prompts")
            try prompts.writeStrings("corrupted_text", items.corrupted, dims: ["prompt"])
            let width = items.corruptedTokens.map(\.count).max() ?? 0
            try prompts.writeInt32("corrupted_tokens", items.corruptedTokens.flatMap { $0.map(Int32.init) + Array(repeating: -1, count: width - $0.count) },
                                   shape: [items.corruptedTokens.count, width], dims: ["prompt", "pos"])
            try prompts.writeStrings("answer", items.answers, dims: ["prompt"])
            try prompts.writeStrings("foil", items.foils, dims: ["prompt"])

            let group = try root.createGroup("patch")
            try group.setAttribute("target", result.target)
            try group.setAttribute("direction", result.direction.rawValue)
            try group.setAttribute("metric", result.metric.rawValue)
            try group.setAttribute("clean", result.clean)
            try group.setAttribute("corrupted", result.corrupted)
            try group.setAttribute("normalizable", result.isNormalizable ? 1 : 0)
            try group.writeTensor("raw", Tensor(shape: result.shape, data: result.raw.map { Float($0 ?? .nan) }), dims: result.dims)
            try group.writeTensor("values", Tensor(shape: result.shape, data: result.values.map { Float($0 ?? .nan) }), dims: result.dims)
            for (dim, labels) in zip(result.dims, result.axisLabels) { try group.writeStrings("\(dim)_labels", labels, dims: [dim]) }
        }
    }
}
