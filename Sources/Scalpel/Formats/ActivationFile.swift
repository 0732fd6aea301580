import Foundation

/// The activation file of DESIGN.md: the prompts (`PromptsGroup`), and `activations/<hook name>`
/// float32 [prompt, pos, …] with dimension labels, one prompt per chunk, optionally gzip-compressed.
/// Positions past a prompt's length are NaN.
/// Root attributes name the model, its files' SHA-256, the plan, tool version and command line.
/// Every labelled dimension is a netCDF-4 dimension, for xarray (`attachDimensionScales`).
///
/// The writer runs nothing: it appends the batches of an `ActivationTrace` as they are finished,
/// so memory stays bounded by the model plus a batch, however many prompts there are.
public struct ActivationFile {
    public var gzip: Int?
    public var attributes: [String: String] = [:]

    public init(gzip: Int? = nil) {
        self.gzip = gzip
    }

    /// Writes the prompts, then lets `fill` append batches; the file appears at `target` only when
    /// `fill` returns, so a failed run leaves nothing behind.
    public func write(prompts: PromptsGroup, to target: OutputTarget,
                      _ fill: (_ append: (ActivationTrace.Batch) throws -> Void) throws -> Void) throws {
        try ScalpelFile.write(to: target, format: "scalpel-activations", attributes: attributes) { root in
            try prompts.write(root)
            let group = try root.createGroup("activations")
            var datasets: [HookPoint: HDF5Dataset] = [:]
            try fill { batch in
                for point in batch.points {
                    guard let values = batch.cache[point], let rowShape = batch.rowShapes[point] else { continue }
                    if datasets[point] == nil {
                        let dims = ["prompt"] + point.dims.map(\.rawValue)
                        let dataset = try group.createAppendable(point.name, .float32, rowShape: rowShape, dims: dims, gzip: gzip)
                        try dataset.setAttribute("padding", "NaN at positions past prompts/lengths")
                        datasets[point] = dataset
                    }
                    for tensor in values { try datasets[point]?.append(Self.padded(tensor, rowShape: rowShape, tokenwise: point.isTokenwise)) }
                }
            }
            try root.attachDimensionScales(to: ["prompts", "activations"])
        }
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
