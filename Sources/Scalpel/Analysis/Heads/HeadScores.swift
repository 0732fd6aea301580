import Foundation

/// A head of a model, `9.1` = layer 9, head 1.
public struct HeadIndex: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var layer: Int
    public var head: Int

    public init(layer: Int, head: Int) { self.layer = layer; self.head = head }

    public var description: String { "\(layer).\(head)" }

    public static func < (a: HeadIndex, b: HeadIndex) -> Bool { (a.layer, a.head) < (b.layer, b.head) }

    /// Parses `9.1`; nil when it is not two non-negative integers joined by a dot.
    public init?(_ text: String) {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let layer = Int(parts[0]), let head = Int(parts[1]), layer >= 0, head >= 0,
              parts.allSatisfy({ $0.allSatisfy(\.isASCII) }) else { return nil }
        self.init(layer: layer, head: head)
    }

    /// Parses `9.1,4.4`, checking each head exists in `model`.
    public static func list(_ text: String, in model: Model) throws -> [HeadIndex] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { part in
            guard let head = HeadIndex(String(part)) else { throw HeadsError.badHead(text: String(part)) }
            try head.check(in: model)
            return head
        }
    }

    /// Throws unless the model has this layer and this head in it (a block with attention).
    public func check(in model: Model) throws {
        guard layer < model.blocks.count else { throw HeadsError.layerOutOfRange(head: self, layers: model.blocks.count) }
        guard let attention = model.blocks[layer].attention else { throw HeadsError.noAttention(layer: layer) }
        guard head < attention.nHead else { throw HeadsError.headOutOfRange(head: self, heads: attention.nHead) }
    }
}

/// One number per head of a model, on a [layer, head] grid: a detector's scores, a copy score.
/// Cells of heads a block does not have (an MLP-only block, or a stitched block with fewer heads)
/// are nil.
public struct HeadGrid: Sendable, Equatable {
    public var layers: Int
    public var heads: Int
    /// Row-major [layer, head].
    public var values: [Double?]

    public static let dims = ["layer", "head"]

    public init(layers: Int, heads: Int, values: [Double?]) {
        precondition(values.count == layers * heads, "one value per head")
        self.layers = layers; self.heads = heads; self.values = values
    }

    /// The grid of `model`: as many layers as blocks, as many heads as the widest attention half.
    public init(model: Model) {
        let heads = model.blocks.compactMap { $0.attention?.nHead }.max() ?? 0
        self.init(layers: model.blocks.count, heads: heads, values: Array(repeating: nil, count: model.blocks.count * heads))
    }

    public subscript(head: HeadIndex) -> Double? {
        get { values[head.layer * heads + head.head] }
        set { values[head.layer * heads + head.head] = newValue }
    }

    /// Every head the model has, layer by layer.
    public static func heads(of model: Model) -> [HeadIndex] {
        model.blocks.enumerated().flatMap { layer, block in (0..<(block.attention?.nHead ?? 0)).map { HeadIndex(layer: layer, head: $0) } }
    }

    /// The `count` heads of highest value (nil cells last, ties by head order).
    public func top(_ count: Int) -> [(head: HeadIndex, value: Double)] {
        var cells: [(HeadIndex, Double)] = []
        for layer in 0..<layers { for head in 0..<heads { if let v = values[layer * heads + head], v.isFinite { cells.append((HeadIndex(layer: layer, head: head), v)) } } }
        return Array(cells.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.prefix(count)).map { (head: $0.0, value: $0.1) }
    }
}

public enum HeadsError: UserFacingError, Equatable {
    case badHead(text: String)
    case layerOutOfRange(head: HeadIndex, layers: Int)
    case headOutOfRange(head: HeadIndex, heads: Int)
    case noAttention(layer: Int)
    case promptTooShort(index: Int, length: Int)
    case nothingToScore(detector: String, reason: String)
    case missingAnswer(item: Int)
    case tooFewPoints(count: Int)
    case noPositions
    case unknownDetector(text: String, part: String)
    case repeatedDetector(String)

    public var message: String {
        switch self {
        case let .badHead(text): return "\"\(text)\" is not a head: write layer.head, e.g. 9.1 (several separated by commas)."
        case let .layerOutOfRange(head, layers): return "Head \(head): the model has \(layers) layers (0…\(layers - 1))."
        case let .headOutOfRange(head, heads): return "Head \(head): layer \(head.layer) has \(heads) heads (0…\(heads - 1))."
        case let .noAttention(layer): return "Layer \(layer) has no attention (an MLP-only block), so it has no heads."
        case let .promptTooShort(index, length):
            return "Prompt \(index + 1) has \(length) token\(length == 1 ? "" : "s"); head detectors need at least 2 (TransformerLens's detect_head too)."
        case let .nothingToScore(detector, reason): return "Nothing to score for \(detector): \(reason)"
        case let .missingAnswer(item):
            return "Item \(item + 1) has no answer: the \"next\" score at the last position needs the token that follows it. Give answers (the study's families have them)."
        case let .tooFewPoints(count):
            return "The writing scatter has \(count) point\(count == 1 ? "" : "s"); Pearson's r and its p-value need at least 3."
        case let .unknownDetector(text, part):
            return "--detect \"\(SVG.visibleText(text))\": \"\(SVG.visibleText(part))\" is not a detector. Give previous-token, duplicate-token, induction or same-family, several separated by commas, or all."
        case let .repeatedDetector(name): return "--detect names \(name) twice."
        case .noPositions: return "No positions to score: every prompt is only its <|endoftext|> token. Give longer prompts."
        }
    }
}
