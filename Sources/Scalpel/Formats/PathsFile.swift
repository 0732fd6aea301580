import Foundation

/// `scalpel paths -o FILE.h5`: the representations, the offsets and every path point, labelled.
///
/// - `representations/<family>/items`, `values`, `<hook>` (e.g. `hook_resid_post`) [layer, item, d_model]
/// - `offsets/<direction>/delta` [layer, d_model]: the mean offset over all pairs
/// - `paths/<direction>/…` one entry per point: `layer`, `alpha`, `source`, `target`, `expected`,
///   `decode_rank`, `propagated_rank`, `decode_top` [point, k], `propagated_top` [point, k]
public enum PathsFile {
    /// Writes a finished search (`PathSweep.record`); computes nothing. `shard`: this process is
    /// part K of N of a sharded search of `units` (direction, layer) steps, and the record's points
    /// are its units' only.
    public static func write(_ record: PathSweep.Record, to target: OutputTarget, attributes: [String: String],
                             shard: ShardRun? = nil, units: Int = 0) throws {
        let mark = try shard.map { run in
            try PartialFile.Mark(kind: .paths, run: run, total: units, indices: run.shard.indices(of: units), attributes: attributes,
                                 payload: PathsPayload(record))
        }
        try ScalpelFile.write(to: target, format: "scalpel-paths", attributes: attributes, partial: mark) { root in
            try root.setAttribute("template", record.template.rawValue)
            try root.setAttribute("leave_one_out", record.leaveOneOut ? 1 : 0)
            try root.setAttribute("layers", record.layers)
            try root.setAttribute("hook", record.hook.rawValue)
            try root.writeTensor("alphas", Tensor(shape: [record.alphas.count], data: record.alphas.map(Float.init)), dims: ["alpha"])
            for family in record.families {
                let group = try root.createGroup("representations/\(family.name)")
                try group.writeStrings("items", family.items, dims: ["item"])
                try group.writeInt32("values", family.values.map(Int32.init), shape: [family.values.count], dims: ["item"])
                try group.writeTensor(record.hook.rawValue, family.representations, dims: ["layer", "item", "d_model"])
            }
            for offset in record.offsets {
                let key = groupName(offset.direction)
                let offsets = try root.createGroup("offsets/\(key)")
                try offsets.setAttribute("direction", offset.direction)
                try offsets.writeTensor("delta", offset.delta, dims: ["layer", "d_model"])
                let mine = offset.points
                let group = try root.createGroup("paths/\(key)")
                try group.setAttribute("direction", offset.direction)
                let n = mine.count, k = mine.first?.decode.top.count ?? 0
                try group.writeInt32("layer", mine.map { Int32($0.layer) }, shape: [n], dims: ["point"])
                try group.writeTensor("alpha", Tensor(shape: [n], data: mine.map { Float($0.alpha) }), dims: ["point"])
                try group.writeStrings("source", mine.map(\.source), dims: ["point"])
                try group.writeStrings("target", mine.map(\.target), dims: ["point"])
                try group.writeInt32("expected", mine.map { Int32($0.expected) }, shape: [n], dims: ["point"])
                try group.writeInt32("decode_rank", mine.map { Int32($0.decode.rank) }, shape: [n], dims: ["point"])
                try group.writeInt32("propagated_rank", mine.map { Int32($0.propagated.rank) }, shape: [n], dims: ["point"])
                try group.writeInt32("decode_top", mine.flatMap { $0.decode.top.map(Int32.init) }, shape: [n, k], dims: ["point", "k"])
                try group.writeInt32("propagated_top", mine.flatMap { $0.propagated.top.map(Int32.init) }, shape: [n, k], dims: ["point", "k"])
            }
        }
    }

    /// The group of a direction under `offsets/` and `paths/`: "digits → words" is `digits_to_words`.
    static func groupName(_ direction: String) -> String {
        direction.replacingOccurrences(of: " → ", with: "_to_").replacingOccurrences(of: " ", with: "_")
    }
}
