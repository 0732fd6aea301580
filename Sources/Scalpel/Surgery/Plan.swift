import Foundation
import Yams

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
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw FileError.missing(path: url.path, hint: "Give a plan file (see surgery-plans/) or --blocks \"0-7,9.mlp\".")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw FileError.notUTF8(path: url.path) }
        return try parse(text, origin: url.path, folder: url.deletingLastPathComponent())
    }

    public static func parse(_ text: String, origin: String, folder: URL? = nil) throws -> Plan {
        let document: Any?
        do { document = try Yams.load(yaml: text) } catch let error as YamlError {
            throw PlanError.notYAML(path: origin, line: DatasetFiles.yamlLine(error), reason: "\(error)")
        }
        guard let root = document as? [String: Any] else { throw PlanError.wrongType(location: origin, expected: "a mapping with `blocks:`") }
        let reader = FieldReader(origin: origin)
        for key in root.keys where !fields.contains(key) {
            throw PlanError.unknownField(location: reader.at(key), known: fields)
        }
        guard let blockList = root["blocks"] else { throw PlanError.missingField(location: reader.at("blocks")) }
        let blocks = try reader.strings(blockList, at: "blocks").enumerated().map { index, entry in
            guard let spec = BlockSpec(entry) else { throw PlanError.blockSyntax(location: reader.at("blocks[\(index)]"), entry: entry) }
            return spec
        }
        let models = try root["models"].map { try reader.stringMap($0, at: "models") } ?? [:]
        for spec in blocks {
            if let name = spec.model, models[name] == nil {
                throw PlanError.unknownModel(location: reader.at("blocks"), name: name, known: models.keys.sorted())
            }
        }
        let edits = try (root["edits"].map { try reader.list($0, at: "edits") } ?? []).enumerated().map { index, entry in
            try Edit(entry, reader: reader, location: "edits[\(index)]")
        }
        let checks = try (root["checks"].map { try reader.list($0, at: "checks") } ?? []).enumerated().map { index, entry in
            guard let map = entry as? [String: Any], let prompt = map["prompt"] as? String, !prompt.isEmpty else {
                throw PlanError.wrongType(location: reader.at("checks[\(index)]"), expected: "{prompt: TEXT, answer: TEXT}")
            }
            for key in map.keys where !["prompt", "answer"].contains(key) {
                throw PlanError.unknownField(location: reader.at("checks[\(index)].\(key)"), known: ["prompt", "answer"])
            }
            return PromptItem(prompt: prompt, answer: map["answer"] as? String)
        }
        let name = try root["name"].map { try reader.string($0, at: "name") }
            ?? URL(fileURLWithPath: origin).deletingPathExtension().lastPathComponent
        return Plan(name: name, description: try root["description"].map { try reader.string($0, at: "description") } ?? "",
                    base: try root["base"].map { try reader.string($0, at: "base") }, blocks: blocks, models: models,
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
    }
    public enum Mode: String, Sendable { case zero, mean }

    public var target: Target
    public var mode: Mode
    public var dataset: String?
    /// e.g. `plan.yaml, edits[0]`, for error messages.
    public var location: String

    static let fields = ["ablate_heads", "keep_heads", "ablate_neurons", "mode", "dataset"]

    init(_ entry: Any, reader: FieldReader, location: String) throws {
        let here = reader.at(location)
        guard let map = entry as? [String: Any] else {
            throw PlanError.wrongType(location: here, expected: "a mapping such as {ablate_heads: [\"9.1\"], mode: zero}")
        }
        for key in map.keys where !Self.fields.contains(key) {
            throw PlanError.unknownField(location: reader.at("\(location).\(key)"), known: Self.fields)
        }
        let kinds = ["ablate_heads", "keep_heads", "ablate_neurons"].filter { map[$0] != nil }
        guard kinds.count == 1, let kind = kinds.first else {
            throw PlanError.wrongType(location: here, expected: "exactly one of ablate_heads, keep_heads, ablate_neurons")
        }
        let units = try reader.strings(map[kind]!, at: "\(location).\(kind)").map { text in
            guard let unit = UnitRef(text) else {
                throw PlanError.badValue(location: reader.at("\(location).\(kind)"), value: text, expected: "layer.index, e.g. \"9.1\"")
            }
            return unit
        }
        switch kind {
        case "ablate_heads": target = .ablateHeads(units)
        case "keep_heads": target = .keepHeads(units)
        default: target = .ablateNeurons(units)
        }
        let modeText = try map["mode"].map { try reader.string($0, at: "\(location).mode") } ?? "zero"
        guard let mode = Mode(rawValue: modeText) else {
            throw PlanError.badValue(location: reader.at("\(location).mode"), value: modeText, expected: "zero or mean")
        }
        self.mode = mode
        dataset = try map["dataset"].map { try reader.string($0, at: "\(location).dataset") }
        if mode == .mean && dataset == nil { throw PlanError.datasetNeeded(location: here) }
        self.location = here
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

/// Typed access to a YAML tree, with errors that name the file and field.
struct FieldReader {
    let origin: String
    func at(_ field: String) -> String { "\(origin), \(field)" }

    func string(_ value: Any, at field: String) throws -> String {
        if let text = value as? String { return text }
        if let number = value as? Int { return String(number) }
        throw PlanError.wrongType(location: at(field), expected: "a string")
    }
    func list(_ value: Any, at field: String) throws -> [Any] {
        guard let list = value as? [Any] else { throw PlanError.wrongType(location: at(field), expected: "a list") }
        return list
    }
    func strings(_ value: Any, at field: String) throws -> [String] {
        try list(value, at: field).enumerated().map { try string($1, at: "\(field)[\($0)]") }
    }
    func stringMap(_ value: Any, at field: String) throws -> [String: String] {
        guard let map = value as? [String: Any] else { throw PlanError.wrongType(location: at(field), expected: "a mapping of name: path") }
        return try map.mapValues { try string($0, at: field) }
    }
}
