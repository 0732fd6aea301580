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

    /// One shard's part of a trace (`--shard K/N`) and the number of prompts of the whole run: the
    /// file is then a partial file (`PartialFile`) holding the shard's prompts.
    public var shard: ShardRun?
    public var wholeRun = 0

    /// Writes the prompts, then lets `fill` append batches; the file appears at `target` only when
    /// `fill` returns, so a failed run leaves nothing behind.
    public func write(prompts: PromptsGroup, to target: OutputTarget,
                      _ fill: (_ append: (ActivationTrace.Batch) throws -> Void) throws -> Void) throws {
        try writeRows(prompts: prompts, to: target) { appendRow in
            try withoutActuallyEscaping(appendRow) { appendRow in
                try fill { batch in
                    for point in batch.points {
                        guard let values = batch.cache[point], let rowShape = batch.rowShapes[point] else { continue }
                        for tensor in values { try appendRow(point, rowShape, Self.padded(tensor, rowShape: rowShape, tokenwise: point.isTokenwise)) }
                    }
                }
            }
        }
    }

    /// Writes the prompts, then lets `fill` append rows: one prompt's activation at a hook point,
    /// already padded to `rowShape` ([1] + rowShape), prompts in order for each hook point.
    func writeRows(prompts: PromptsGroup, to target: OutputTarget,
                   _ fill: (_ append: (HookPoint, [Int], Tensor) throws -> Void) throws -> Void) throws {
        let mark = try shard.map {
            try PartialFile.Mark(kind: .trace, run: $0, total: wholeRun, indices: $0.shard.indices(of: wholeRun, block: $0.block), attributes: attributes,
                                 payload: TracePayload(prompts: PromptsPayload(prompts), gzip: gzip))
        }
        try ScalpelFile.write(to: target, format: "scalpel-activations", attributes: attributes, partial: mark) { root in
            try prompts.write(root)
            let group = try root.createGroup("activations")
            var datasets: [HookPoint: HDF5Dataset] = [:]
            try fill { point, rowShape, row in
                if datasets[point] == nil {
                    let dims = ["prompt"] + point.dims.map(\.rawValue)
                    let dataset = try group.createAppendable(point.name, .float32, rowShape: rowShape, dims: dims, gzip: gzip)
                    try dataset.setAttribute("padding", "NaN at positions past prompts/lengths")
                    datasets[point] = dataset
                }
                try datasets[point]?.append(row)
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
