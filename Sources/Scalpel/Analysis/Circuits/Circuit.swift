import Foundation
import Yams

/// A circuit (DESIGN.md, "Causal analyses" → `scalpel circuit`): attention heads and the positions
/// where each keeps its own activation. Mean-ablated as ARENA's IOI code does: a head outside the
/// circuit gets its mean at every position; a circuit head keeps its own `z` at its listed positions
/// and gets its mean everywhere else (`all` keeps it everywhere). Heads are named by the base
/// model's layer numbering (`9.1`), as in plans.
///
/// MLPs: without `mlps` (nil) every MLP keeps its output everywhere, as before MLPs could be
/// listed. With `mlps` (even `{}`), the circuit lists the MLPs it keeps, by layer, with their
/// positions; every other MLP's output (`hook_mlp_out`) gets its mean at every position, and a
/// listed MLP gets its mean outside its kept positions, exactly as heads are treated.
public struct Circuit: Sendable, Equatable {
    public struct Head: Hashable, Comparable, Sendable, CustomStringConvertible {
        public var layer: Int
        public var head: Int
        public init(layer: Int, head: Int) { self.layer = layer; self.head = head }
        public var description: String { "\(layer).\(head)" }
        public static func < (a: Head, b: Head) -> Bool { (a.layer, a.head) < (b.layer, b.head) }

        /// `9.1`; nil for anything else.
        public init?(_ text: String) {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, let layer = Int(parts[0]), let head = Int(parts[1]), layer >= 0, head >= 0,
                  parts.allSatisfy({ $0.allSatisfy(\.isASCII) }) else { return nil }
            self.init(layer: layer, head: head)
        }
    }

    /// Each circuit head and where it keeps its own activation: `.all`, or `.only(positions)`
    /// (indices from 0, negative from the end, -1 = `end`).
    public var heads: [Head: AblationPositions]
    /// MLPs kept, by base-model layer, and where each keeps its own output; nil keeps every MLP
    /// everywhere (nothing about MLPs in the file).
    public var mlps: [Int: AblationPositions]?
    public var name: String
    public var description: String

    public init(name: String = "circuit", heads: [Head: AblationPositions], mlps: [Int: AblationPositions]? = nil, description: String = "") {
        self.name = name; self.heads = heads; self.mlps = mlps; self.description = description
    }

    /// Whether the circuit says anything about MLPs (`mlps:` given): then unlisted MLPs are mean-ablated.
    public var ablatesMLPs: Bool { mlps != nil }

    public var size: Int { heads.count }
    public var isEmpty: Bool { heads.isEmpty }

    /// Every head of `model` kept at every position: scores exactly as the model does.
    public static func everyHead(of model: Model) -> Circuit {
        Circuit(name: "every-head", heads: Dictionary(uniqueKeysWithValues: model.circuitHeads.map { ($0, .all) }))
    }

    /// The circuit as written in a circuit file: `{"9.1": [-1], "7.10": all}` in head order.
    public var headsText: String {
        heads.keys.sorted().map { head in
            let keep = heads[head]!
            if case let .only(list) = keep { return "\"\(head)\": [\(list.map { $0 == -1 ? "end" : String($0) }.joined(separator: ", "))]" }
            return "\"\(head)\": all"
        }.joined(separator: ", ")
    }

    /// The kept MLPs as a circuit file writes them, `{"9": all, "10": [end]}`; nil without `mlps`.
    public var mlpsText: String? {
        mlps.map { mlps in
            "{" + mlps.keys.sorted().map { layer in
                if case let .only(list) = mlps[layer]! { return "\"\(layer)\": [\(list.map { $0 == -1 ? "end" : String($0) }.joined(separator: ", "))]" }
                return "\"\(layer)\": all"
            }.joined(separator: ", ") + "}"
        }
    }

    // MARK: Files

    static let fields = ["heads", "mlps", "description"]

    /// Reads a circuit file (circuits/README.md): `heads` (required; `{}` is the empty circuit),
    /// `description`. Errors name the file, line and field.
    public static func parse(_ text: String, path: String) throws -> Circuit {
        let reader = YAMLFields(path: path)
        guard let root = try YAMLFile.compose(text, path: path) else { throw CircuitError.emptyFile(path: path) }
        let entries = try reader.mapping(root, at: "", known: fields, expected: "a mapping with `heads` and optionally `mlps` and `description`")
        let headsNode = try reader.required(entries, "heads", in: root, at: "")
        var heads: [Head: AblationPositions] = [:]
        guard let mapping = headsNode.mapping else {
            throw reader.unexpected(headsNode, at: "heads", expected: "a mapping of heads to positions, e.g. {\"9.1\": [end], \"7.10\": all} ({} for none)")
        }
        for (key, value) in mapping {
            let keyText = key.scalar?.string ?? "\(key)"
            let field = "heads.\(keyText)"
            guard let head = Head(keyText) else {
                throw CircuitError.badHead(location: reader.location(key, field), text: keyText)
            }
            heads[head] = try positions(value, reader: reader, field: field)
        }
        var mlps: [Int: AblationPositions]?
        if let mlpsNode = entries["mlps"] {
            guard let mapping = mlpsNode.mapping else {
                throw reader.unexpected(mlpsNode, at: "mlps", expected: "a mapping of MLP layers to positions, e.g. {\"9\": all, \"10\": [end]} ({} ablates every MLP)")
            }
            var kept: [Int: AblationPositions] = [:]
            for (key, value) in mapping {
                let keyText = key.scalar?.string ?? "\(key)"
                guard let layer = Int(keyText), layer >= 0, keyText.allSatisfy(\.isASCII) else {
                    throw CircuitError.badMLP(location: reader.location(key, "mlps.\(keyText)"), text: keyText)
                }
                kept[layer] = try positions(value, reader: reader, field: "mlps.\(keyText)")
            }
            mlps = kept
        }
        let description = try entries["description"].map { try reader.string($0, at: "description") } ?? ""
        let name = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        return Circuit(name: name, heads: heads, mlps: mlps, description: description)
    }

    public static func load(_ path: String) throws -> Circuit {
        try parse(InputFile.readText(path, missingHint: "Give a circuit file (.yaml); see circuits/README.md."), path: path)
    }

    /// `all`, or a non-empty list of positions (`end`, indices, negative from the end), none twice.
    static func positions(_ node: Node, reader: YAMLFields, field: String) throws -> AblationPositions {
        let expected = "`all` or a list of positions: indices from 0, negative from the end, or `end`, none twice, e.g. [end] or [3, 4]"
        if let scalar = node.scalar, node.sequence == nil {
            guard scalar.string == "all" else { throw reader.unexpected(node, at: field, expected: expected) }
            return .all
        }
        guard let list = node.sequence else { throw reader.unexpected(node, at: field, expected: expected) }
        let entries = try list.enumerated().map { try reader.string($1, at: "\(field)[\($0)]") }
        guard let positions = AblationPositions.list(entries) else { throw reader.unexpected(node, at: field, expected: expected) }
        return .only(positions)
    }
}

extension Model {
    /// Every attention head of the graph by its base-model name (`layer.head`), in order, each once.
    public var circuitHeads: [Circuit.Head] {
        var seen = Set<Circuit.Head>(), heads: [Circuit.Head] = []
        for block in blocks {
            guard let attention = block.attention else { continue }
            for h in 0..<attention.nHead where seen.insert(Circuit.Head(layer: block.source.layer, head: h)).inserted {
                heads.append(Circuit.Head(layer: block.source.layer, head: h))
            }
        }
        return heads
    }

    /// The base-model layers of the graph's MLPs, in order, each once.
    public var circuitMLPLayers: [Int] {
        var seen = Set<Int>()
        return blocks.compactMap { $0.mlp != nil && seen.insert($0.source.layer).inserted ? $0.source.layer : nil }
    }
}

public enum CircuitError: UserFacingError, Equatable {
    case emptyFile(path: String)
    case badHead(location: String, text: String)
    case badMLP(location: String, text: String)
    case noSuchMLP(circuit: String, layer: Int, layers: String)
    case mlpPositionOutOfRange(circuit: String, layer: Int, position: Int, length: Int)
    case noSuchHead(circuit: String, head: String, heads: Int, layers: String)
    case positionOutOfRange(circuit: String, head: String, position: Int, length: Int)
    case meansLengthMismatch(scored: String, scoredLength: Int, means: String, meansLength: Int)
    case tooManyBaselines(asked: Int, possible: Int, size: Int, heads: Int)
    case noHeads

    public var message: String {
        switch self {
        case let .emptyFile(path): return "\(path): the circuit file is empty. Give at least `heads: {}` (see circuits/README.md)."
        case let .badHead(location, text):
            return "\(location): \"\(text)\" is not a head. Write heads as layer.head in quotes, e.g. \"9.1\"."
        case let .badMLP(location, text):
            return "\(location): \"\(text)\" is not an MLP. Write MLPs by their layer number in quotes, e.g. \"9\"."
        case let .noSuchMLP(circuit, layer, layers):
            return "Circuit \(circuit): MLP \(layer) does not exist in the model, which has MLPs in layers \(layers.isEmpty ? "(none)" : layers)."
        case let .mlpPositionOutOfRange(circuit, layer, position, length):
            return "Circuit \(circuit): MLP \(layer) keeps position \(position), outside the scored prompts of \(length) tokens "
                + "(use 0…\(length - 1), or -\(length)…-1 / end counted from the end)."
        case let .noSuchHead(circuit, head, heads, layers):
            return "Circuit \(circuit): head \(head) does not exist in the model, which has \(heads) heads per layer in layers \(layers)."
        case let .positionOutOfRange(circuit, head, position, length):
            return "Circuit \(circuit): head \(head) keeps position \(position), outside the scored prompts of \(length) tokens "
                + "(use 0…\(length - 1), or -\(length)…-1 / end counted from the end)."
        case let .meansLengthMismatch(scored, scoredLength, means, meansLength):
            return "Per-position means need the means prompts and the scored prompts to have one token length, but the scored dataset \(scored) "
                + "has \(scoredLength) tokens and the means dataset \(means) has \(meansLength). Use a means dataset of \(scoredLength)-token prompts, "
                + "or --pooled-means."
        case let .tooManyBaselines(asked, possible, size, heads):
            return "--baselines \(asked) asks for more random circuits than exist: \(possible) distinct circuit\(possible == 1 ? "" : "s") of \(size) "
                + "head\(size == 1 ? "" : "s") (with this circuit's position lists) can be drawn from the model's \(heads) heads. Ask for at most \(possible)."
        case .noHeads: return "The model has no attention heads: a circuit of heads cannot be scored on it."
        }
    }
}
