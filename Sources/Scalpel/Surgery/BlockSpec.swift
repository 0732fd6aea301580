import Foundation

/// One entry of a plan's block list (DESIGN.md): `"0-7"` whole blocks, `"9"` one block, `"9.attn"` /
/// `"9.mlp"` half blocks, `"9.mlp.noln"` the MLP without its LayerNorm, `"other:9"` a block of a second
/// model. Parts also apply to ranges: `"0-7.attn"` keeps only the attention of blocks 0–7.
public struct BlockSpec: Equatable, Sendable, CustomStringConvertible {
    public enum Part: String, Sendable {
        case whole = ""
        case attention = "attn"
        case mlp = "mlp"
        case mlpWithoutLayerNorm = "mlp.noln"
    }

    /// The second model's name from the plan's `models:`, or nil for the base model.
    public var model: String?
    public var layers: ClosedRange<Int>
    public var part: Part

    public init(model: String? = nil, layers: ClosedRange<Int>, part: Part = .whole) {
        self.model = model; self.layers = layers; self.part = part
    }

    public var description: String {
        let prefix = model.map { "\($0):" } ?? ""
        let range = layers.count == 1 ? "\(layers.lowerBound)" : "\(layers.lowerBound)-\(layers.upperBound)"
        return prefix + range + (part == .whole ? "" : ".\(part.rawValue)")
    }

    /// Parses one entry; `nil` when the syntax is not one of the forms above.
    public init?(_ text: String) {
        var rest = Substring(text.trimmingCharacters(in: .whitespaces))
        if let colon = rest.firstIndex(of: ":") {
            let name = rest[..<colon]
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else { return nil }
            model = String(name)
            rest = rest[rest.index(after: colon)...]
        } else {
            model = nil
        }
        let numbers = rest.prefix { $0.isNumber || $0 == "-" }
        let suffix = rest.dropFirst(numbers.count)
        let bounds = numbers.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
        guard (1...2).contains(bounds.count), bounds.allSatisfy({ $0 != nil }) else { return nil }
        let low = bounds[0]!, high = bounds.last!!
        guard low <= high else { return nil }
        layers = low...high
        if suffix.isEmpty {
            part = .whole
        } else {
            guard suffix.hasPrefix("."), let part = Part(rawValue: String(suffix.dropFirst())), part != .whole else { return nil }
            self.part = part
        }
    }

    /// Parses a comma-separated list (`--blocks "0-7,9.mlp"`).
    public static func parseList(_ text: String) throws -> [BlockSpec] {
        guard !text.trimmingCharacters(in: .whitespaces).isEmpty else { throw PlanError.emptyBlockList(location: "--blocks") }
        return try text.split(separator: ",", omittingEmptySubsequences: false).map { entry in
            guard let spec = BlockSpec(String(entry)) else { throw PlanError.blockSyntax(location: "--blocks", entry: String(entry)) }
            return spec
        }
    }
}
