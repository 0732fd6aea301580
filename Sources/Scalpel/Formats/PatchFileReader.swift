import Foundation

extension PatchFile {
    /// What a patching result file holds (`scalpel patch -o`, or `scalpel merge` of its shards),
    /// read back for reuse (`scalpel classify --patch-result`).
    public struct Stored {
        public var result: PatchResult
        /// The clean and corrupted prompts' token ids, per item.
        public var tokens: [[Int]]
        public var corruptedTokens: [[Int]]
        /// The file's root attributes (model, model_sha256, command_line, …).
        public var modelSHA256: String?
    }

    /// One complete patch file (`read(_:)`), or every partial file of one sharded patching run
    /// (`scalpel classify --shard` or `scalpel patch --shard`), checked as `scalpel merge` checks them
    /// and assembled in memory with their exact raw metrics (`ShardMerge.patchResult`).
    public static func read(_ paths: [String]) throws -> Stored {
        if paths.count == 1 {
            do { return try read(paths[0]) } catch PatchFileError.partial { return try ShardMerge.patchResult(paths) }
        }
        return try ShardMerge.patchResult(paths)
    }

    /// Reads a patch file. Raw metrics come back as the file stores them (float32); a cell the
    /// file leaves empty (NaN: no such unit) is nil. A shard's partial file is refused: merge first.
    public static func read(_ path: String) throws -> Stored {
        guard FileManager.default.fileExists(atPath: path) else {
            throw FileError.missing(path: path, hint: "Give a file written by `scalpel patch --target z -o FILE.h5` (or `scalpel merge` of its shards).")
        }
        let file = try HDF5File.open(URL(fileURLWithPath: path))
        defer { try? file.close() }
        let root = try file.root
        let format = root.hasAttribute("format") ? try root.stringAttribute("format") : "none"
        if format == PartialFile.format { throw PatchFileError.partial(path: path) }
        guard format == "scalpel-patch" else { throw PatchFileError.notAPatchFile(path: path, format: format) }
        func need<T>(_ what: String, _ read: () throws -> T) throws -> T {
            do { return try read() } catch { throw PatchFileError.damaged(path: path, what: what) }
        }
        let patch = try need("the patch group") { try root.group("patch") }
        let target = try need("patch/target") { try patch.stringAttribute("target") }
        let directionText = try need("patch/direction") { try patch.stringAttribute("direction") }
        let metricText = try need("patch/metric") { try patch.stringAttribute("metric") }
        guard let direction = PatchDirection(rawValue: directionText) else { throw PatchFileError.damaged(path: path, what: "patch/direction") }
        guard let metric = CausalMetric(rawValue: metricText) else { throw PatchFileError.damaged(path: path, what: "patch/metric") }
        let clean = try need("patch/clean") { try patch.doubleAttribute("clean") }
        let corrupted = try need("patch/corrupted") { try patch.doubleAttribute("corrupted") }
        let raw = try need("patch/raw") { try patch.readTensor("raw") }
        // Stacked targets (every-head, v,pattern) have a leading target axis: dims left empty, which classify refuses.
        let dims = PatchTarget(rawValue: target).map { $0.dims(byPosition: raw.shape.count == 3) }.flatMap { $0.count == raw.shape.count ? $0 : nil } ?? []
        var axisLabels: [[String]] = []
        guard !dims.isEmpty else {
            return Stored(result: PatchResult(target: target, direction: direction, metric: metric, dims: [], shape: raw.shape, raw: [],
                                              clean: clean, corrupted: corrupted, labels: [], axisLabels: []), tokens: [], corruptedTokens: [], modelSHA256: nil)
        }
        for dim in dims { axisLabels.append(try need("patch/\(dim)_labels") { try patch.readStrings("\(dim)_labels") }) }
        let values = (0..<raw.count).map { i -> Double? in let v = raw[flat: i]; return v.isNaN ? nil : Double(v) }
        var labels: [String] = []
        if dims == ["layer", "head"] {
            for l in 0..<raw.shape[0] { for h in 0..<raw.shape[1] { labels.append("\(axisLabels[0][l].dropFirst()).\(h)") } }
        } else {
            labels = (0..<raw.count).map { "cell \($0)" }
        }
        func tokens(_ name: String) throws -> [[Int]] {
            let (ids, shape) = try need("prompts/\(name)") { try root.readInt32("prompts/\(name)") }
            guard shape.count == 2 else { throw PatchFileError.damaged(path: path, what: "prompts/\(name)") }
            return (0..<shape[0]).map { row in ids[(row * shape[1])..<((row + 1) * shape[1])].filter { $0 >= 0 }.map(Int.init) }
        }
        let result = PatchResult(target: target, direction: direction, metric: metric, dims: dims, shape: raw.shape, raw: values,
                                 clean: clean, corrupted: corrupted, labels: labels, axisLabels: axisLabels)
        return Stored(result: result, tokens: try tokens("tokens"), corruptedTokens: try tokens("corrupted_tokens"),
                      modelSHA256: root.hasAttribute("model_sha256") ? try? root.stringAttribute("model_sha256") : nil)
    }
}

public enum PatchFileError: UserFacingError, Equatable {
    case partial(path: String)
    case notAPatchFile(path: String, format: String)
    case damaged(path: String, what: String)

    public var message: String {
        switch self {
        case let .partial(path):
            return "\(path) is one shard's partial file. Merge every shard first: scalpel merge PARTS… -o FILE.h5, then give FILE.h5 (scalpel classify takes the parts themselves: --patch-result PARTS…)."
        case let .notAPatchFile(path, format):
            return "\(path) is not a patching result (its format is \"\(format)\"). Give a file written by `scalpel patch --target z -o FILE.h5`."
        case let .damaged(path, what):
            return "\(path): \(what) is missing or cannot be read; the patching result is damaged. Write it again with `scalpel patch -o`."
        }
    }
}
