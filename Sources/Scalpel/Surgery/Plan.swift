import Foundation
import Yams  // Node, the composed document

/// A surgery plan (DESIGN.md "Surgery plans"): which blocks to keep, from which models, and which
/// heads or neurons to ablate. Parsing checks every field; `Surgeon` checks ranges against the models.
public struct Plan: Sendable {
    public var name: String
    public var description: String
    /// The base model: a checkpoint folder, a `.h5` archive, `bundled`, or a name in `$SCALPEL_MODELS`.
    public var base: String?
    public var blocks: [BlockSpec]
    /// Second models for `name:i` blocks, by name.
    public var models: [String: String]
    public var edits: [Edit]
    public var checks: [PromptItem]
    /// The plan's YAML text, stored in archives so a model records how it was made.
    public var text: String
    /// Where the plan came from, for error messages: a file path or `--blocks`.
    public var origin: String
    /// Relative model paths in a plan file are resolved against the plan's folder.
    public var folder: URL?

    static let fields = ["name", "description", "base", "blocks", "models", "edits", "checks"]

    /// A plan from the command line's `--blocks` (no edits or checks).
    public static func inline(blocks: String) throws -> Plan {
        let specs = try BlockSpec.parseList(blocks)
        let yaml = "blocks: [\(specs.map { "\"\($0)\"" }.joined(separator: ", "))]\n"
        return Plan(name: "blocks-" + specs.map(\.description).joined(separator: "+"), description: "--blocks \(blocks)",
                    base: nil, blocks: specs, models: [:], edits: [], checks: [], text: yaml, origin: "--blocks", folder: nil)
    }

    public static func load(_ url: URL) throws -> Plan {
        let text = try InputFile.readText(url.path, missingHint: "Give a plan file (see surgery-plans/) or --blocks \"0-7,9.mlp\".")
        return try parse(text, origin: url.path, folder: url.deletingLastPathComponent())
    }

    public static func parse(_ text: String, origin: String, folder: URL? = nil) throws -> Plan {
        let reader = YAMLFields(path: origin)
        guard let root = try YAMLFile.compose(text, path: origin) else {
            throw YAMLFileError.missingField(location: reader.location(nil, "blocks"))
        }
        let fields = try reader.mapping(root, at: "", known: Self.fields, expected: "a mapping with `blocks:`")
        let blockList = try reader.required(fields, "blocks", in: root, at: "")
        let blockNodes = try reader.list(blockList, at: "blocks")
        let blocks = try blockNodes.enumerated().map { index, node in
            let entry = try reader.string(node, at: "blocks[\(index)]")
            guard let spec = BlockSpec(entry) else { throw PlanError.blockSyntax(location: reader.location(node, "blocks[\(index)]"), entry: entry) }
            return spec
        }
        var models: [String: String] = [:]
        if let node = fields["models"] {
            guard let mapping = node.mapping else { throw reader.unexpected(node, at: "models", expected: "a mapping of name: path") }
            for (key, value) in mapping {
                let name = try reader.string(key, at: "models")
                models[name] = try reader.string(value, at: "models.\(name)")
            }
        }
        for (index, (spec, node)) in zip(blocks, blockNodes).enumerated() {
            if let name = spec.model, models[name] == nil {
                throw PlanError.unknownModel(location: reader.location(node, "blocks[\(index)]"), name: name, known: models.keys.sorted())
            }
        }
        let edits = try (fields["edits"].map { try reader.list($0, at: "edits") } ?? []).enumerated().map { index, node in
            try Edit(node, reader: reader, field: "edits[\(index)]", folder: folder)
        }
        let checks = try (fields["checks"].map { try reader.list($0, at: "checks") } ?? []).enumerated().map { index, node in
            let field = "checks[\(index)]"
            let entries = try reader.mapping(node, at: field, known: ["prompt", "answer"], expected: "{prompt: TEXT, answer: TEXT}")
            let prompt = try reader.string(try reader.required(entries, "prompt", in: node, at: field), at: "\(field).prompt", numbersAsText: false)
            guard !prompt.isEmpty else { throw PlanError.badValue(location: reader.location(node, "\(field).prompt"), value: prompt, expected: "a non-empty prompt") }
            return PromptItem(prompt: prompt, answer: try entries["answer"].map { try reader.string($0, at: "\(field).answer", numbersAsText: false) })
        }
        let name = try fields["name"].map { try reader.string($0, at: "name", numbersAsText: false) }
            ?? URL(fileURLWithPath: origin).deletingPathExtension().lastPathComponent
        return Plan(name: name, description: try fields["description"].map { try reader.string($0, at: "description") } ?? "",
                    base: try fields["base"].map { try reader.string($0, at: "base") }, blocks: blocks, models: models,
                    edits: edits, checks: checks, text: text, origin: origin, folder: folder)
    }
}

/// An edit applied after the block list: ablate some heads, keep only some heads, or ablate neurons.
public struct Edit: Sendable {
    public enum Target: Sendable, Equatable {
        case ablateHeads([UnitRef])
        /// Ablate every head of the graph except these.
        case keepHeads([UnitRef])
        case ablateNeurons([UnitRef])
        /// Mean-ablate everything a circuit file does not keep (circuits/README.md): the model
        /// `scalpel circuit --save-model` writes.
        case circuit(Circuit)
    }
    public enum Mode: String, Sendable { case zero, mean }

    public var target: Target
    public var mode: Mode
    /// The positions listed (`positions: [0, -1, end]`), negative counting from the end; nil for all.
    /// Ablations write at these positions; `keep_heads` keeps its heads' own activation only here.
    public var positions: [Int]?
    /// Which mean `mode: mean` writes: pooled over every position (default) or per position.
    public var means: MeanKind
    /// A built-in dataset name, or a dataset file's path (a relative one already joined to the plan's folder).
    public var dataset: String?
    /// e.g. `plan.yaml, edits[0]`, for error messages.
    public var location: String

    static let fields = ["ablate_heads", "keep_heads", "ablate_neurons", "circuit", "mode", "dataset", "positions", "means"]

    init(_ node: Node, reader: YAMLFields, field: String, folder: URL?) throws {
        let here = reader.location(node, field)
        let entries = try reader.mapping(node, at: field, known: Self.fields, expected: "a mapping such as {ablate_heads: [\"9.1\"], mode: zero}")
        let kinds = ["ablate_heads", "keep_heads", "ablate_neurons", "circuit"].filter { entries[$0] != nil }
        guard kinds.count == 1, let kind = kinds.first, let unitList = entries[kind] else {
            throw YAMLFileError.unexpected(location: here, found: kinds.isEmpty ? "none of them" : kinds.joined(separator: " and "),
                                           expected: "exactly one of ablate_heads, keep_heads, ablate_neurons, circuit")
        }
        if kind == "circuit" {
            self = try Self.circuit(unitList, entries: entries, reader: reader, field: field, folder: folder)
            return
        }
        let units = try reader.strings(unitList, at: "\(field).\(kind)").map { text in
            guard let unit = UnitRef(text) else {
                throw PlanError.badValue(location: reader.location(unitList, "\(field).\(kind)"), value: text, expected: "layer.index, e.g. \"9.1\"")
            }
            return unit
        }
        switch kind {
        case "ablate_heads": target = .ablateHeads(units)
        case "keep_heads": target = .keepHeads(units)
        default: target = .ablateNeurons(units)
        }
        let modeText = try entries["mode"].map { try reader.string($0, at: "\(field).mode") } ?? "zero"
        guard let mode = Mode(rawValue: modeText) else {
            throw PlanError.badValue(location: reader.location(entries["mode"], "\(field).mode"), value: modeText, expected: "zero or mean")
        }
        self.mode = mode
        positions = try entries["positions"].flatMap { try Self.positions($0, reader: reader, field: "\(field).positions") }
        let meansText = try entries["means"].map { try reader.string($0, at: "\(field).means") } ?? MeanKind.pooled.rawValue
        guard let means = MeanKind(rawValue: meansText) else {
            throw PlanError.badValue(location: reader.location(entries["means"], "\(field).means"), value: meansText, expected: "pooled or per-position")
        }
        if entries["means"] != nil && mode != .mean {
            throw PlanError.badValue(location: reader.location(entries["means"], "\(field).means"), value: meansText, expected: "no `means:` without `mode: mean`")
        }
        self.means = means
        dataset = try entries["dataset"].map { Self.dataset(try reader.string($0, at: "\(field).dataset"), folder: folder) }
        if mode == .mean && dataset == nil { throw PlanError.datasetNeeded(location: here) }
        self.location = here
    }

    /// `circuit: FILE` (relative to the plan's folder), always a mean ablation (`mode: mean` may be
    /// written, `zero` is refused), per-position means unless `means: pooled`, `dataset` required,
    /// no `positions` (the circuit file lists them). The circuit file is read now, so its errors
    /// come before any work.
    private static func circuit(_ node: Node, entries: [String: Node], reader: YAMLFields, field: String, folder: URL?) throws -> Edit {
        let here = reader.location(node, field)
        let path = Self.dataset(try reader.string(node, at: "\(field).circuit"), folder: folder, always: true)
        let circuit = try Circuit.load(path)
        let modeText = try entries["mode"].map { try reader.string($0, at: "\(field).mode") } ?? "mean"
        guard modeText == "mean" else {
            throw PlanError.badValue(location: reader.location(entries["mode"], "\(field).mode"), value: modeText,
                                     expected: "mean (a circuit replaces what it does not keep by its mean), or no `mode:`")
        }
        if let node = entries["positions"] {
            throw PlanError.badValue(location: reader.location(node, "\(field).positions"), value: (try? reader.string(node, at: "\(field).positions")) ?? "[…]",
                                     expected: "no `positions:` with `circuit:` (the circuit file lists each head's positions)")
        }
        let meansText = try entries["means"].map { try reader.string($0, at: "\(field).means") } ?? MeanKind.perPosition.rawValue
        guard let means = MeanKind(rawValue: meansText) else {
            throw PlanError.badValue(location: reader.location(entries["means"], "\(field).means"), value: meansText, expected: "per-position or pooled")
        }
        guard let dataset = try entries["dataset"].map({ Self.dataset(try reader.string($0, at: "\(field).dataset"), folder: folder) }) else {
            throw PlanError.datasetNeeded(location: here)
        }
        return Edit(target: .circuit(circuit), mode: .mean, positions: nil, means: means, dataset: dataset, location: here)
    }

    init(target: Target, mode: Mode, positions: [Int]?, means: MeanKind, dataset: String?, location: String) {
        self.target = target; self.mode = mode; self.positions = positions; self.means = means; self.dataset = dataset; self.location = location
    }

    /// `positions: all` (nil), or a list of indices and `end`.
    static func positions(_ node: Node, reader: YAMLFields, field: String) throws -> [Int]? {
        let expected = "`all` or a list of positions: indices from 0, negative from the end, or `end`, none twice, e.g. [0, -1] or [end]"
        if node.sequence == nil, try reader.string(node, at: field) == "all" { return nil }
        guard node.sequence != nil else { throw reader.unexpected(node, at: field, expected: expected) }
        let entries = try reader.strings(node, at: field)
        guard let list = AblationPositions.list(entries) else {
            throw PlanError.badValue(location: reader.location(node, field), value: "[" + entries.joined(separator: ", ") + "]", expected: expected)
        }
        return list
    }

    /// A built-in name stays a name; a relative file path is read from the plan's folder, so a plan
    /// and its prompts move together.
    /// `always`: the text is a file path (a circuit file), never a built-in name.
    static func dataset(_ text: String, folder: URL?, always: Bool = false) -> String {
        guard let folder, !text.hasPrefix("/"), always || (StudyDatasets.named(text) == nil
              && (text.contains("/") || DatasetFiles.fileExtensions.contains(URL(fileURLWithPath: text).pathExtension))) else { return text }
        return folder.appendingPathComponent(text).path
    }
}

/// A head or neuron written `layer.index` ("9.1"), by the base model's layer numbering.
public struct UnitRef: Hashable, Sendable, CustomStringConvertible {
    public var layer: Int
    public var index: Int
    public init(layer: Int, index: Int) { self.layer = layer; self.index = index }
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let layer = Int(parts[0]), let index = Int(parts[1]), layer >= 0, index >= 0 else { return nil }
        self.layer = layer; self.index = index
    }
    public var description: String { "\(layer).\(index)" }
}
