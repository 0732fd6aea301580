import Foundation

/// The activation file of DESIGN.md: `prompts/text`, `prompts/tokens` (int32, padded with -1),
/// `prompts/lengths`, and `activations/<hook name>` float32 [prompt, pos, …] with dimension labels,
/// one prompt per chunk, optionally gzip-compressed. Positions past a prompt's length are NaN.
/// Root attributes name the model, plan, tool version and command line.
///
/// Activations are captured one batch of prompts at a time and appended, so memory stays bounded
/// by the model plus a batch, however many prompts there are.
public struct ActivationFile {
    public var hooks: HookFilter
    public var gzip: Int?
    public var batchSize = 16
    public var attributes: [String: String] = [:]

    public init(hooks: HookFilter, gzip: Int? = nil) {
        self.hooks = hooks
        self.gzip = gzip
    }

    /// Hook names a filter selects in `model`; every pattern must match something.
    public static func resolve(_ filter: HookFilter, in model: Model) throws -> [String] {
        if let (pattern, suggestions) = filter.unmatched(in: model).first {
            throw HookError.noMatch(pattern: pattern, suggestions: suggestions)
        }
        return HookName.all(in: model).filter(filter.matches)
    }

    /// Runs `prompts` through `model` in batches and writes everything to `target`.
    public func write(model: Model, texts: [String], prompts: [[Int]], to target: OutputTarget,
                      progress: ((Int) -> Void)? = nil) throws {
        let names = try Self.resolve(hooks, in: model)
        let maxLength = prompts.map(\.count).max() ?? 0
        try ScalpelFile.write(to: target, format: "scalpel-activations", attributes: attributes) { root in
            try Self.writePrompts(root, texts: texts, prompts: prompts)
            let group = try root.createGroup("activations")
            var datasets: [String: HDF5Dataset] = [:]
            for start in stride(from: 0, to: prompts.count, by: batchSize) {
                let batch = Array(prompts[start..<min(start + batchSize, prompts.count)])
                let cache = try model.run(batch, capture: HookFilter(names), logitsAt: .last).cache
                for name in names {
                    guard let values = cache[name] else { continue }
                    let layout = Self.layout(of: name, sample: values[0], maxLength: maxLength)
                    if datasets[name] == nil {
                        datasets[name] = try group.createAppendable(name, .float32, rowShape: layout.rowShape, dims: layout.dims, gzip: gzip)
                        try datasets[name]!.setAttribute("padding", "NaN at positions past prompts/lengths")
                    }
                    for tensor in values { try datasets[name]!.append(Self.padded(tensor, rowShape: layout.rowShape, isPattern: layout.isPattern)) }
                }
                progress?(start + batch.count)
            }
        }
    }

    /// `prompts/text`, `prompts/tokens` [prompt, pos] padded with -1, `prompts/lengths`.
    static func writePrompts(_ root: HDF5Group, texts: [String], prompts: [[Int]]) throws {
        let group = try root.createGroup("prompts")
        let maxLength = prompts.map(\.count).max() ?? 0
        try group.writeStrings("text", texts, dims: ["prompt"])
        let tokens = prompts.flatMap { $0.map(Int32.init) + Array(repeating: -1, count: maxLength - $0.count) }
        try group.writeInt32("tokens", tokens, shape: [prompts.count, maxLength], dims: ["prompt", "pos"])
        try group.writeInt32("lengths", prompts.map { Int32($0.count) }, shape: [prompts.count], dims: ["prompt"])
    }

    /// Row shape and dimension labels of a hook's dataset: attention hooks are [head, query, key],
    /// the others [pos, …].
    static func layout(of name: String, sample: Tensor, maxLength: Int) -> (rowShape: [Int], dims: [String], isPattern: Bool) {
        if name.hasSuffix("hook_pattern") || name.hasSuffix("hook_attn_scores") {
            return ([sample.shape[0], maxLength, maxLength], ["prompt", "head", "query_pos", "key_pos"], true)
        }
        let rest = Array(sample.shape.dropFirst())
        let labels: [String]
        switch rest.count {
        case 2: labels = ["head", "d_head"]
        case 1 where name.hasSuffix("hook_scale"): labels = ["one"]
        case 1 where name.contains("mlp.hook_"): labels = ["d_mlp"]
        default: labels = ["d_model"]
        }
        return ([maxLength] + rest, ["prompt", "pos"] + labels, false)
    }

    /// One prompt's activation padded with NaN to the file's row shape.
    static func padded(_ tensor: Tensor, rowShape: [Int], isPattern: Bool) -> Tensor {
        let row = [1] + rowShape
        guard Array(tensor.shape) != rowShape else { return tensor.reshaped(row) }
        return Tensor(shape: row) { out in
            for i in out.indices { out[i] = .nan }
            let source = tensor.pointer
            if isPattern {  // [head, n, n] into [head, max, max]
                let heads = tensor.shape[0], n = tensor.shape[1], m = rowShape[1]
                for h in 0..<heads { for q in 0..<n { for k in 0..<n { out[(h * m + q) * m + k] = source[(h * n + q) * n + k] } } }
            } else {  // [n, rest] into [max, rest]: the leading rows
                for i in 0..<tensor.count { out[i] = source[i] }
            }
        }
    }
}

public enum HookError: UserFacingError, Equatable {
    case noMatch(pattern: String, suggestions: [String])

    public var message: String {
        switch self {
        case let .noMatch(pattern, suggestions):
            return "No hook point matches \"\(pattern)\". Closest valid names: \(suggestions.joined(separator: ", ")). Names follow TransformerLens, e.g. blocks.0.hook_resid_post; * matches anything."
        }
    }
}
