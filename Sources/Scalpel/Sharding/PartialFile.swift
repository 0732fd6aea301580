import Foundation

/// Which sweep a run belongs to, and which part of it this process computes.
public struct ShardRun: Sendable, Hashable {
    public var shard: Shard
    /// The whole run's parameters (`ShardedRun.parameters`): equal for every part of one run.
    public var parameters: String
    /// Prompts per batch of a lens or trace: shards are dealt whole batches (`Shard.indices(of:block:)`).
    public var block: Int

    public init(shard: Shard, parameters: String, block: Int = 1) {
        self.shard = shard; self.parameters = parameters; self.block = block
    }
}

/// A partial file: what one shard of a sweep writes (DESIGN.md "Sweeps across machines").
///
/// It is the final format's file for the shard's share, written by the final format's writer (a
/// patch grid with NaN in other shards' cells; the shard's own prompts of a trace or lens), so it
/// reads on its own, with root attributes `format = "scalpel-partial"`, `final_format` (e.g.
/// `scalpel-patch`), `partial_kind` (`patch`, `trace`, `lens`), `shard` ("K/N"), `shard_index`,
/// `shard_count`, `shard_total` (cells or prompts of the whole run), `run_parameters`, and the usual
/// provenance (`model_sha256`, `command_line`, …); and a group `shard/` with `indices` (the whole
/// run's cells or prompts this part holds) and `payload` (what `merge` needs to call the final writer
/// with exactly the values one unsharded run has: doubles bit for bit, base64 of a binary property list).
public enum PartialFile {
    public static let format = "scalpel-partial"

    public enum Kind: String, Sendable, Codable {
        case patch, trace, lens
        case attribution
        case paths
        case heads
        case circuit
    }

    /// Root attributes a partial file adds; the others are the final file's.
    static let ownAttributes: Set<String> = ["format", "tool_version", "final_format", "partial_kind", "shard", "shard_index",
                                             "shard_count", "shard_total", "shard_block", "run_parameters", "provenance_keys"]

    /// What a writer adds to make its file a partial one.
    public struct Mark {
        var kind: Kind
        var run: ShardRun
        var total: Int
        /// The whole run's cells or prompts this part holds.
        var indices: [Int]
        var provenanceKeys: [String]
        var payload: Data

        init<P: Encodable>(kind: Kind, run: ShardRun, total: Int, indices: [Int], attributes: [String: String], payload: P) throws {
            self.kind = kind; self.run = run; self.total = total; self.indices = indices
            provenanceKeys = attributes.keys.sorted()
            let encoder = PropertyListEncoder()
            encoder.outputFormat = .binary
            self.payload = try encoder.encode(payload)
        }

        func write(_ root: HDF5Group, finalFormat: String) throws {
            try root.setAttribute("final_format", finalFormat)
            try root.setAttribute("partial_kind", kind.rawValue)
            try root.setAttribute("shard", run.shard.description)
            try root.setAttribute("shard_index", run.shard.index)
            try root.setAttribute("shard_count", run.shard.count)
            try root.setAttribute("shard_total", total)
            try root.setAttribute("shard_block", run.block)
            try root.setAttribute("run_parameters", run.parameters)
            try root.setAttribute("provenance_keys", provenanceKeys.joined(separator: ","))
            let group = try root.createGroup("shard")
            try group.writeInt32("indices", indices.map { Int32(clamping: $0) }, shape: [indices.count])
            try group.writeStrings("payload", [payload.base64EncodedString()])
        }
    }

    /// One partial file, opened and checked to be complete.
    public struct Part {
        public let path: String
        public let shard: Shard
        public let kind: Kind
        public let finalFormat: String
        public let parameters: String
        public let total: Int
        /// The whole run's cells (patch: those this part computed) or prompts (lens, trace) it holds.
        public let indices: [Int]
        /// The final file's root attributes (model, model_sha256, plan, command_line, …).
        public let attributes: [String: String]
        let file: HDF5File
        let payload: Data

        public static func open(_ path: String) throws -> Part {
            let url = URL(fileURLWithPath: path)
            guard FileManager.default.fileExists(atPath: path) else { throw FileError.missing(path: path, hint: "Give the partial files written with --shard.") }
            let file = try HDF5File.open(url)
            let root = try file.root
            let format = root.hasAttribute("format") ? try root.stringAttribute("format") : "none"
            guard format == PartialFile.format else { throw ShardError.notPartial(path: path, format: format) }
            func need<T>(_ read: () throws -> T, _ what: String) throws -> T {
                do { return try read() } catch { throw ShardError.inconsistent(path: path, reason: "\(what) cannot be read") }
            }
            let kindText = try need({ try root.stringAttribute("partial_kind") }, "partial_kind")
            guard let kind = Kind(rawValue: kindText) else { throw ShardError.inconsistent(path: path, reason: "unknown partial_kind \"\(kindText)\"") }
            let shard = try need({ try Shard(index: try root.intAttribute("shard_index"), count: try root.intAttribute("shard_count")) }, "shard_index/shard_count")
            let keys = try need({ try root.stringAttribute("provenance_keys") }, "provenance_keys").split(separator: ",").map(String.init)
            var attributes: [String: String] = [:]
            for key in keys where !PartialFile.ownAttributes.contains(key) { attributes[key] = try need({ try root.stringAttribute(key) }, key) }
            let total = try need({ try root.intAttribute("shard_total") }, "shard_total")
            let indices = try need({ try root.readInt32("shard/indices").values.map(Int.init) }, "shard/indices")
            let block = try need({ try root.intAttribute("shard_block") }, "shard_block")
            guard kind == .patch ? indices.allSatisfy({ (0..<total).contains($0) }) : indices == shard.indices(of: total, block: block) else {
                throw ShardError.inconsistent(path: path, reason: "shard/indices are not shard \(shard)'s share of \(total)")
            }
            let text = try need({ try root.readStrings("shard/payload") }, "shard/payload")
            guard text.count == 1, let payload = Data(base64Encoded: text[0]) else { throw ShardError.inconsistent(path: path, reason: "shard/payload is damaged") }
            return Part(path: path, shard: shard, kind: kind, finalFormat: try need({ try root.stringAttribute("final_format") }, "final_format"),
                        parameters: try need({ try root.stringAttribute("run_parameters") }, "run_parameters"),
                        total: total, indices: indices, attributes: attributes, file: file, payload: payload)
        }

        func decode<P: Decodable>(_ type: P.Type) throws -> P {
            do { return try PropertyListDecoder().decode(type, from: payload) } catch {
                throw ShardError.inconsistent(path: path, reason: "shard/payload cannot be decoded")
            }
        }

        /// Row `local` of `activations/<name>`, or nil when this part has no such dataset.
        func activationRow(_ name: String, _ local: Int) throws -> Tensor {
            try file.root.dataset("activations/\(name)").readTensor(rows: local..<(local + 1))
        }

        public func close() { try? file.close() }
    }
}

/// The prompts group's contents, exactly, for a partial file's payload.
/// What a contrast sweep's parts must share: the prompts and their corruptions.
struct ContrastInputs: Equatable {
    var prompts: PromptsPayload
    var corruptedTokens: [[Int]]
}

struct PromptsPayload: Codable, Equatable {
    var items: [PromptItem]
    var tokens: [[Int]]
    var tokenStrings: [[String]]

    init(_ group: PromptsGroup) { items = group.items; tokens = group.tokens; tokenStrings = group.tokenStrings }

    var group: PromptsGroup { PromptsGroup(items: items, tokens: tokens, tokenStrings: tokenStrings) }

    /// The whole run's prompts from its parts' (`slots[p]`: which part holds prompt p, and where).
    static func interleaved(_ parts: [PromptsPayload], slots: [(part: Int, local: Int)]) -> PromptsPayload {
        var out = PromptsPayload(items: [], tokens: [], tokenStrings: [])
        for (i, local) in slots {
            let part = parts[i]
            out.items.append(part.items[local]); out.tokens.append(part.tokens[local]); out.tokenStrings.append(part.tokenStrings[local])
        }
        return out
    }

    private init(items: [PromptItem], tokens: [[Int]], tokenStrings: [[String]]) {
        self.items = items; self.tokens = tokens; self.tokenStrings = tokenStrings
    }
}

/// A patch part's payload: the grid, the exact metrics, and the raw metric of the part's cells.
struct PatchPayload: Codable {
    var target: String, direction: String, metric: String
    var dims: [String], shape: [Int], axisLabels: [[String]]
    var clean: UInt64, corrupted: UInt64
    /// Bit patterns of the raw metric of the cells this part computed (`shard/indices`), in order.
    var raw: [UInt64]
    var prompts: PromptsPayload
    var corruptedTokens: [[Int]]
}

struct TracePayload: Codable {
    var prompts: PromptsPayload
    var gzip: Int?
}

struct LensPayload: Codable {
    var prompts: PromptsPayload
    var result: LensResult
}

/// `scalpel merge`: the parts of one sharded run into the file one unsharded run writes.
public enum ShardMerge {
    /// Checks that `paths` are every part of one run, once, then writes the final file to `target`;
    /// its `command_line` is the unsharded command with `-o` naming `output`. Returns the parts' kind.
    @discardableResult
    public static func merge(_ paths: [String], to target: OutputTarget, output: String) throws -> PartialFile.Kind {
        let ordered = try openRun(paths)
        defer { ordered.forEach { $0.close() } }
        let first = ordered[0]
        var attributes = first.attributes
        if let line = attributes["command_line"] { attributes["command_line"] = ShardedRun.unsharded(line, output: output) }
        switch first.kind {
        case .patch: try mergePatch(ordered, attributes: attributes, to: target)
        case .trace: try mergeTrace(ordered, attributes: attributes, to: target)
        case .lens: try mergeLens(ordered, attributes: attributes, to: target)
        case .attribution: try mergeAttribution(ordered, attributes: attributes, to: target)
        case .paths: try mergePaths(ordered, attributes: attributes, to: target)
        case .heads: try mergeHeads(ordered, attributes: attributes, to: target)
        case .circuit: try mergeCircuit(ordered, attributes: attributes, to: target)
        }
        return first.kind
    }

    /// Opens `paths` and checks that they are every part of one run, once (same kind, final format,
    /// run parameters, model, plan, N and size): the parts in shard order, open (the caller closes them).
    /// `finish` is what a missing part's message says to do with them all.
    static func openRun(_ paths: [String], for finish: ShardFinish = .merge) throws -> [PartialFile.Part] {
        guard !paths.isEmpty else { throw ShardError.noParts }
        var parts: [PartialFile.Part] = []
        var checked = false
        defer { if !checked { parts.forEach { $0.close() } } }
        for path in paths { parts.append(try PartialFile.Part.open(path)) }
        let first = parts[0]
        for part in parts.dropFirst() {
            let checks: [(String, String, String)] = [
                ("kind of sweep", part.kind.rawValue, first.kind.rawValue),
                ("final format", part.finalFormat, first.finalFormat),
                ("run parameters", part.parameters, first.parameters),
                ("model SHA-256", part.attributes["model_sha256"] ?? "", first.attributes["model_sha256"] ?? ""),
                ("plan", part.attributes["plan"] ?? "", first.attributes["plan"] ?? ""),
                ("number of shards N", "\(part.shard.count)", "\(first.shard.count)"),
                ("size of the whole run", "\(part.total)", "\(first.total)"),
            ]
            for (field, value, expected) in checks where value != expected {
                throw ShardError.foreign(path: part.path, first: first.path, field: field, value: "\"\(value)\"", expected: "\"\(expected)\"")
            }
        }
        let n = first.shard.count
        var byIndex: [Int: PartialFile.Part] = [:]
        for part in parts {
            if let other = byIndex[part.shard.index] {
                throw ShardError.duplicate(shard: part.shard.description, paths: [other.path, part.path])
            }
            byIndex[part.shard.index] = part
        }
        let missing = (1...n).filter { byIndex[$0] == nil }
        guard missing.isEmpty else {
            throw ShardError.missing(shards: missing.map { "\($0)/\(n)" }, count: n, have: byIndex.keys.sorted().map { "\($0)/\(n)" },
                                     finish: finish)
        }
        checked = true
        return (1...n).map { byIndex[$0]! }
    }

    static func mergePatch(_ parts: [PartialFile.Part], attributes: [String: String], to target: OutputTarget) throws {
        let (result, first) = try patchResult(parts)
        try PatchFile.write(result, prompts: first.prompts.group, corruptedTokens: first.corruptedTokens, to: target, attributes: attributes)
    }

    /// The parts of one sharded patching run (`scalpel patch --shard`, or `scalpel classify --shard`,
    /// whose parts are its head patching), checked as `merge` checks them and assembled in memory:
    /// the result one unsharded run computes, its raw metrics the exact doubles (a patch file stores
    /// float32). For `scalpel classify --patch-result PARTS…`.
    public static func patchResult(_ paths: [String]) throws -> PatchFile.Stored {
        let parts = try openRun(paths, for: .patchResult)
        defer { parts.forEach { $0.close() } }
        guard parts[0].kind == .patch else { throw ShardError.notPatching(path: parts[0].path, kind: parts[0].kind.rawValue) }
        let (result, payload) = try patchResult(parts)
        return PatchFile.Stored(result: result, tokens: payload.prompts.tokens, corruptedTokens: payload.corruptedTokens,
                                modelSHA256: parts[0].attributes["model_sha256"])
    }

    /// The whole run's values from checked parts: part i's `values[i]` (bit patterns, one per index it
    /// holds) placed at its indices, nil where no part computed. The parts must have scored the same
    /// inputs (`inputs[i]`: part i's prompts and corruptions), else one is foreign.
    static func gather<Inputs: Equatable>(_ parts: [PartialFile.Part], values: [[UInt64]], inputs: [Inputs], unit: String) throws -> [Double?] {
        var all = [Double?](repeating: nil, count: parts[0].total)
        for (i, part) in parts.enumerated() {
            guard inputs[i] == inputs[0] else {
                throw ShardError.foreign(path: part.path, first: parts[0].path, field: "prompts", value: "different", expected: "the same")
            }
            guard values[i].count == part.indices.count else {
                throw ShardError.inconsistent(path: part.path, reason: "its payload holds \(values[i].count) \(unit), not \(part.indices.count)")
            }
            for (j, index) in part.indices.enumerated() { all[index] = Double(bitPattern: values[i][j]) }
        }
        return all
    }

    /// The whole grid from checked parts, and the first part's payload (prompts, tokens).
    static func patchResult(_ parts: [PartialFile.Part]) throws -> (PatchResult, PatchPayload) {
        let payloads = try parts.map { try $0.decode(PatchPayload.self) }
        let first = payloads[0], total = parts[0].total
        for (part, payload) in zip(parts, payloads) where payload.shape.reduce(1, *) != total {
            throw ShardError.inconsistent(path: part.path, reason: "its grid has \(payload.shape.reduce(1, *)) cells, not \(total)")
        }
        let raw = try gather(parts, values: payloads.map(\.raw), inputs: payloads.map { ContrastInputs(prompts: $0.prompts, corruptedTokens: $0.corruptedTokens) }, unit: "cells")
        guard let direction = PatchDirection(rawValue: first.direction), let metric = CausalMetric(rawValue: first.metric) else {
            throw ShardError.inconsistent(path: parts[0].path, reason: "unknown direction or metric")
        }
        let result = PatchResult(target: first.target, direction: direction, metric: metric, dims: first.dims, shape: first.shape,
                                 raw: raw, clean: Double(bitPattern: first.clean), corrupted: Double(bitPattern: first.corrupted),
                                 labels: Array(repeating: "", count: total), axisLabels: first.axisLabels)
        return (result, first)
    }

    /// For each prompt of the whole run, the part holding it and its place there.
    static func promptSlots(_ parts: [PartialFile.Part]) throws -> [(part: Int, local: Int)] {
        var slots = [(part: Int, local: Int)?](repeating: nil, count: parts[0].total)
        for (i, part) in parts.enumerated() { for (j, p) in part.indices.enumerated() { slots[p] = (i, j) } }
        guard let missing = slots.firstIndex(where: { $0 == nil }) else { return slots.map { $0! } }
        throw ShardError.inconsistent(path: parts[0].path, reason: "no part holds prompt \(missing) (parts of runs with different batch sizes?)")
    }

    static func mergeLens(_ parts: [PartialFile.Part], attributes: [String: String], to target: OutputTarget) throws {
        let payloads = try parts.map { try $0.decode(LensPayload.self) }
        let slots = try promptSlots(parts)
        for (part, payload) in zip(parts, payloads) where payload.result.prompts.count != part.indices.count || payload.prompts.items.count != part.indices.count {
            throw ShardError.inconsistent(path: part.path, reason: "its payload holds \(payload.result.prompts.count) prompts, not \(part.indices.count)")
        }
        var result = payloads[0].result
        result.prompts = slots.map { payloads[$0.part].result.prompts[$0.local] }
        let group = PromptsPayload.interleaved(payloads.map(\.prompts), slots: slots).group
        try LensFile.write(result, prompts: group, to: target, attributes: attributes)
    }

    static func mergeTrace(_ parts: [PartialFile.Part], attributes: [String: String], to target: OutputTarget) throws {
        let payloads = try parts.map { try $0.decode(TracePayload.self) }
        let slots = try promptSlots(parts)
        for (part, payload) in zip(parts, payloads) where payload.prompts.items.count != part.indices.count {
            throw ShardError.inconsistent(path: part.path, reason: "its payload holds \(payload.prompts.items.count) prompts, not \(part.indices.count)")
        }
        let group = PromptsPayload.interleaved(payloads.map(\.prompts), slots: slots).group
        // Every hook any part captured, with its row shape.
        var hooks: [String: [Int]] = [:]
        for part in parts {
            let root = try part.file.root
            guard root.exists("activations") else { continue }
            for name in try root.group("activations").childNames() where hooks[name] == nil {
                hooks[name] = Array(try root.dataset("activations/\(name)").shape.dropFirst())
            }
        }
        var file = ActivationFile(gzip: payloads[0].gzip)
        file.attributes = attributes
        try file.writeRows(prompts: group, to: target) { append in
            for name in hooks.keys.sorted() {
                guard let point = HookPoint(name: name) else { throw ShardError.inconsistent(path: parts[0].path, reason: "unknown hook \(name)") }
                for (part, local) in slots { try append(point, hooks[name]!, try parts[part].activationRow(name, local)) }
            }
        }
    }
}
