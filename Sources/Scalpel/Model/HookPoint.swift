import Foundation

/// A point of the forward pass where an activation can be read or replaced.
///
/// Hook points are named as in TransformerLens (`blocks.9.attn.hook_z`), so users can move between
/// the two. The names are spelled only in `Kind`'s raw values: `name` derives a point's name and
/// `init?(name:)` parses it back. `dims` labels the axes of the activation a hook gives per prompt.
public enum HookPoint: Hashable, Sendable, CustomStringConvertible {
    case embed, posEmbed
    case residPre(Int)
    case ln1Scale(Int), ln1Normalized(Int)
    case q(Int), k(Int), v(Int), attnScores(Int), pattern(Int), z(Int), result(Int)
    case attnOut(Int), residMid(Int)
    case ln2Scale(Int), ln2Normalized(Int)
    case mlpPre(Int), mlpPost(Int), mlpOut(Int)
    case residPost(Int)
    case finalScale, finalNormalized

    /// A hook point without its block. The raw value is the name, after `blocks.{i}.` for a block's
    /// hooks. Cases are in the order the hooks fire.
    public enum Kind: String, CaseIterable, Sendable {
        case embed = "hook_embed", posEmbed = "hook_pos_embed"
        case residPre = "hook_resid_pre"
        case ln1Scale = "ln1.hook_scale", ln1Normalized = "ln1.hook_normalized"
        case q = "attn.hook_q", k = "attn.hook_k", v = "attn.hook_v"
        case attnScores = "attn.hook_attn_scores", pattern = "attn.hook_pattern", z = "attn.hook_z"
        case result = "attn.hook_result", attnOut = "hook_attn_out"
        case residMid = "hook_resid_mid"
        case ln2Scale = "ln2.hook_scale", ln2Normalized = "ln2.hook_normalized"
        case mlpPre = "mlp.hook_pre", mlpPost = "mlp.hook_post", mlpOut = "hook_mlp_out"
        case residPost = "hook_resid_post"
        case finalScale = "ln_final.hook_scale", finalNormalized = "ln_final.hook_normalized"

        /// Whether hooks of this kind fire in `block`: hooks of a missing half do not (an MLP-only
        /// block has no `attn.*`, an MLP without LayerNorm no `ln2.*`); the residual hooks always do,
        /// and the model-wide kinds (`hook_embed`, `ln_final.*`) are no block's.
        public func fires(in block: Block) -> Bool {
            switch self {
            case .embed, .posEmbed, .finalScale, .finalNormalized: return false
            case .residPre, .residMid, .residPost: return true
            case .ln1Scale, .ln1Normalized, .q, .k, .v, .attnScores, .pattern, .z, .result, .attnOut:
                return block.attention != nil
            case .ln2Scale, .ln2Normalized: return block.mlp?.ln != nil
            case .mlpPre, .mlpPost, .mlpOut: return block.mlp != nil
            }
        }

        /// Whether the kind belongs to a block (`blocks.{i}.…`) rather than to the whole model.
        public var isPerBlock: Bool {
            switch self {
            case .embed, .posEmbed, .finalScale, .finalNormalized: return false
            default: return true
            }
        }

        /// The axes of one prompt's activation. Attention scores and patterns are [head, query, key];
        /// every other hook is token-wise, [pos, …].
        public var dims: [Axis] {
            switch self {
            case .embed, .posEmbed, .residPre, .ln1Normalized, .attnOut, .residMid, .ln2Normalized, .mlpOut,
                 .residPost, .finalNormalized:
                return [.pos, .dModel]
            case .ln1Scale, .ln2Scale, .finalScale: return [.pos, .one]
            case .q, .k, .v, .z: return [.pos, .head, .dHead]
            case .attnScores, .pattern: return [.head, .queryPos, .keyPos]
            case .result: return [.pos, .head, .dModel]
            case .mlpPre, .mlpPost: return [.pos, .dMLP]
            }
        }
    }

    /// An axis of a hook's activation; the raw value is its label in files (`dims` attributes).
    public enum Axis: String, Sendable {
        case pos, queryPos = "query_pos", keyPos = "key_pos", head, dHead = "d_head", dModel = "d_model",
             dMLP = "d_mlp", one
    }

    public var kind: Kind { parts.kind }

    /// The block of a block's hook; nil for `hook_embed`, `hook_pos_embed` and `ln_final.*`.
    public var block: Int? { parts.block }

    private var parts: (kind: Kind, block: Int?) {
        switch self {
        case .embed: return (.embed, nil)
        case .posEmbed: return (.posEmbed, nil)
        case let .residPre(i): return (.residPre, i)
        case let .ln1Scale(i): return (.ln1Scale, i)
        case let .ln1Normalized(i): return (.ln1Normalized, i)
        case let .q(i): return (.q, i)
        case let .k(i): return (.k, i)
        case let .v(i): return (.v, i)
        case let .attnScores(i): return (.attnScores, i)
        case let .pattern(i): return (.pattern, i)
        case let .z(i): return (.z, i)
        case let .result(i): return (.result, i)
        case let .attnOut(i): return (.attnOut, i)
        case let .residMid(i): return (.residMid, i)
        case let .ln2Scale(i): return (.ln2Scale, i)
        case let .ln2Normalized(i): return (.ln2Normalized, i)
        case let .mlpPre(i): return (.mlpPre, i)
        case let .mlpPost(i): return (.mlpPost, i)
        case let .mlpOut(i): return (.mlpOut, i)
        case let .residPost(i): return (.residPost, i)
        case .finalScale: return (.finalScale, nil)
        case .finalNormalized: return (.finalNormalized, nil)
        }
    }

    /// The hook point of `kind` in `block`; nil when a block is given for a model-wide kind or
    /// missing for a block's kind.
    public init?(_ kind: Kind, block: Int?) {
        guard kind.isPerBlock == (block != nil) else { return nil }
        let i = block ?? 0
        switch kind {
        case .embed: self = .embed
        case .posEmbed: self = .posEmbed
        case .residPre: self = .residPre(i)
        case .ln1Scale: self = .ln1Scale(i)
        case .ln1Normalized: self = .ln1Normalized(i)
        case .q: self = .q(i)
        case .k: self = .k(i)
        case .v: self = .v(i)
        case .attnScores: self = .attnScores(i)
        case .pattern: self = .pattern(i)
        case .z: self = .z(i)
        case .result: self = .result(i)
        case .attnOut: self = .attnOut(i)
        case .residMid: self = .residMid(i)
        case .ln2Scale: self = .ln2Scale(i)
        case .ln2Normalized: self = .ln2Normalized(i)
        case .mlpPre: self = .mlpPre(i)
        case .mlpPost: self = .mlpPost(i)
        case .mlpOut: self = .mlpOut(i)
        case .residPost: self = .residPost(i)
        case .finalScale: self = .finalScale
        case .finalNormalized: self = .finalNormalized
        }
    }

    /// The TransformerLens name, e.g. `blocks.9.attn.hook_z` or `ln_final.hook_scale`.
    public var name: String {
        let (kind, block) = parts
        return block.map { "blocks.\($0).\(kind.rawValue)" } ?? kind.rawValue
    }

    public var description: String { name }

    /// Parses a TransformerLens name; nil for anything that is not exactly a hook point's name.
    public init?(name: String) {
        if let kind = Kind(rawValue: name) {
            self.init(kind, block: nil)
            return
        }
        let parts = name.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "blocks", let block = Int(parts[1]), block >= 0,
              String(block) == parts[1],  // one spelling per hook: no "+3" or "03"
              let kind = Kind(rawValue: String(parts[2])) else { return nil }
        self.init(kind, block: block)
    }

    public var dims: [Axis] { kind.dims }

    /// Whether the activation is [pos, …] (all but attention scores and patterns).
    public var isTokenwise: Bool { dims.first == .pos }

    /// Every hook point of `model`, in the order they fire.
    public static func all(in model: Model) -> [HookPoint] {
        var points: [HookPoint] = [.embed, .posEmbed]
        for (i, block) in model.blocks.enumerated() {
            points += Kind.allCases.filter { $0.fires(in: block) }.compactMap { HookPoint($0, block: i) }
        }
        return points + [.finalScale, .finalNormalized]
    }

    /// Whether this hook point fires when `model` runs.
    public func exists(in model: Model) -> Bool {
        guard let block else { return true }
        return model.blocks.indices.contains(block) && kind.fires(in: model.blocks[block])
    }

    /// The shape of one prompt's activation of `positions` tokens in `model` (`dims` as sizes).
    /// Heads and widths are the hook's own block's, which stitching may make differ between blocks.
    public func shape(positions: Int, in model: Model) -> [Int] {
        let block = self.block.flatMap { model.blocks.indices.contains($0) ? model.blocks[$0] : nil }
        return dims.map { axis in
            switch axis {
            case .pos, .queryPos, .keyPos: return positions
            case .one: return 1
            case .dModel: return model.dModel
            case .head: return block?.attention?.nHead ?? 0
            case .dHead: return block?.attention?.dHead ?? 0
            case .dMLP: return block?.mlp?.dMLP ?? 0
            }
        }
    }
}
