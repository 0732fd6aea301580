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

    /// Runs `prompts` through `model` in batches and writes everything to `target`.
    public func write(model: Model, texts: [String], prompts: [[Int]], to target: OutputTarget,
                      progress: ((Int) -> Void)? = nil) throws {
        let points = try hooks.resolve(in: model)
        let maxLength = prompts.map(\.count).max() ?? 0
        try ScalpelFile.write(to: target, format: "scalpel-activations", attributes: attributes) { root in
            try Self.writePrompts(root, texts: texts, prompts: prompts)
            let group = try root.createGroup("activations")
            var datasets: [HookPoint: HDF5Dataset] = [:]
            for start in stride(from: 0, to: prompts.count, by: batchSize) {
                let batch = Array(prompts[start..<min(start + batchSize, prompts.count)])
                let cache = try model.run(batch, capture: hooks, logitsAt: .last).cache
                for point in points {
                    guard let values = cache[point] else { continue }
                    let rowShape = point.shape(positions: maxLength, in: model)
                    if datasets[point] == nil {
                        let dims = ["prompt"] + point.dims.map(\.rawValue)
                        let dataset = try group.createAppendable(point.name, .float32, rowShape: rowShape, dims: dims, gzip: gzip)
                        try dataset.setAttribute("padding", "NaN at positions past prompts/lengths")
                        datasets[point] = dataset
                    }
                    for tensor in values { try datasets[point]?.append(Self.padded(tensor, rowShape: rowShape, tokenwise: point.isTokenwise)) }
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

    /// One prompt's activation padded with NaN to the file's row shape.
    static func padded(_ tensor: Tensor, rowShape: [Int], tokenwise: Bool) -> Tensor {
        let row = [1] + rowShape
        guard Array(tensor.shape) != rowShape else { return tensor.reshaped(row) }
        return Tensor(shape: row) { out in
            for i in out.indices { out[i] = .nan }
            let source = tensor.pointer
            if !tokenwise {  // [head, n, n] into [head, max, max]
                let heads = tensor.shape[0], n = tensor.shape[1], m = rowShape[1]
                for h in 0..<heads { for q in 0..<n { for k in 0..<n { out[(h * m + q) * m + k] = source[(h * n + q) * n + k] } } }
            } else {  // [n, rest] into [max, rest]: the leading rows
                for i in 0..<tensor.count { out[i] = source[i] }
            }
        }
    }
}
