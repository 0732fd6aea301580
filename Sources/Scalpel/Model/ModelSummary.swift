import Foundation

/// A readable printout of a model: its shape, and one line per block with the block's source.
public struct ModelSummary {
    public let text: String

    public init(_ model: Model) {
        let c = model.config
        var lines = [
            "model      \(model.name)",
            "shape      \(model.blocks.count) blocks, d_model \(c.nEmbd), \(c.nHead) heads × d_head \(c.dHead), d_mlp \(c.nInner)",
            "context    \(c.nPositions) positions, vocabulary \(c.vocabSize), LayerNorm eps \(c.layerNormEpsilon)",
            "parameters \(Self.grouped(model.parameterCount))\(model.tiedEmbeddings ? " (unembedding tied to the embedding)" : "")",
            "tokenizer  \(model.tokenizer == nil ? "none (token ids only)" : "GPT-2 byte-level BPE")",
            "",
            "embed      W_E [\(c.vocabSize), \(c.nEmbd)] + W_pos [\(c.nPositions), \(c.nEmbd)]",
        ]
        for (i, block) in model.blocks.enumerated() {
            var line = String(format: "block %-4d %@", i, Self.describe(block))
            // A block stitched from another model of the same width may have its own head count.
            if let attention = block.attention, attention.nHead != c.nHead {
                line += "   \(attention.nHead) heads × d_head \(attention.dHead)"
            }
            lines.append(line)
        }
        if model.blocks.isEmpty { lines.append("(no blocks: the embedding goes straight to the final LayerNorm)") }
        lines += ["ln_final", "unembed    W_U [\(c.nEmbd), \(c.vocabSize)]"]
        text = lines.joined(separator: "\n")
    }

    /// e.g. `attn + mlp      ← gpt2:L9` or `mlp (no ln2)   ← gpt2:L9.mlp`, with ablations.
    public static func describe(_ block: Block) -> String {
        var parts: [String] = []
        if block.attention != nil { parts.append("attn") }
        if let mlp = block.mlp { parts.append(mlp.ln == nil ? "mlp (no ln2)" : "mlp") }
        var text = (parts.isEmpty ? "(empty)" : parts.joined(separator: " + "))
            .padding(toLength: 16, withPad: " ", startingAt: 0)
        text += "← \(block.source)"
        if block.attention == nil, let mlp = block.mlp { text += mlp.ln == nil ? ".mlp.noln" : ".mlp" }
        if block.attention != nil && block.mlp == nil { text += ".attn" }
        if let ablations = block.attention?.headAblations, !ablations.isEmpty {
            let heads = ablations.keys.sorted().map { "\($0)" }.joined(separator: ",")
            text += "   heads ablated: \(heads)"
        }
        if let neurons = block.mlp?.neuronAblations, !neurons.isEmpty {
            text += "   neurons ablated: \(neurons.count)"
        }
        if let output = block.mlp?.outputAblation {
            text += "   MLP output mean-ablated at \(output.positions)"
        }
        return text
    }

    static func grouped(_ n: Int) -> String {
        let digits = Array(String(n))
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return out
    }
}

/// What `inspect --format json` prints: the facts of `ModelSummary` in a stable shape (snake_case
/// keys in sorted order; the config under `config.json`'s own names).
public struct ModelDescription: Encodable {
    public var model: String
    public var config: Config
    /// Counting tied matrices once.
    public var parameters: Int
    public var tiedEmbeddings: Bool
    /// Whether the model can read text (false: token ids only).
    public var tokenizer: Bool
    public var blocks: [BlockDescription]

    public struct Config: Encodable {
        var nLayer, nEmbd, nHead, nInner, nPositions, vocabSize: Int
        var layerNormEpsilon: Float
        var bosTokenId: Int?

        enum CodingKeys: String, CodingKey {
            case nLayer = "n_layer", nEmbd = "n_embd", nHead = "n_head", nInner = "n_inner", nPositions = "n_positions"
            case vocabSize = "vocab_size", layerNormEpsilon = "layer_norm_epsilon", bosTokenId = "bos_token_id"
        }

        // bos_token_id is written as null when absent, so that every description has the same keys.
        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(nLayer, forKey: .nLayer); try c.encode(nEmbd, forKey: .nEmbd); try c.encode(nHead, forKey: .nHead)
            try c.encode(nInner, forKey: .nInner); try c.encode(nPositions, forKey: .nPositions)
            try c.encode(vocabSize, forKey: .vocabSize); try c.encode(layerNormEpsilon, forKey: .layerNormEpsilon)
            try c.encode(bosTokenId, forKey: .bosTokenId)
        }
    }

    public struct BlockDescription: Encodable {
        /// Position in this model's graph (the `i` of `blocks.{i}.…` hook names).
        public var index: Int
        /// Where the block came from, e.g. `gpt2:L9` (the base model's layer numbering).
        public var source: String
        /// `attn,mlp`, `attn`, `mlp`, `mlp.noln`, or empty, as archives record them.
        public var parts: String
        /// The attention half's head count; null without one.
        public var nHeads: Int?
        public var ablatedHeads: [Int]
        public var ablatedNeurons: [Int]

        enum CodingKeys: String, CodingKey {
            case index, source, parts, nHeads = "n_heads", ablatedHeads = "ablated_heads", ablatedNeurons = "ablated_neurons"
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(index, forKey: .index); try c.encode(source, forKey: .source); try c.encode(parts, forKey: .parts)
            try c.encode(nHeads, forKey: .nHeads)
            try c.encode(ablatedHeads, forKey: .ablatedHeads); try c.encode(ablatedNeurons, forKey: .ablatedNeurons)
        }
    }

    enum CodingKeys: String, CodingKey {
        case model, config, parameters, tiedEmbeddings = "tied_embeddings", tokenizer, blocks
    }

    public init(_ model: Model) {
        let c = model.config
        self.model = model.name
        config = Config(nLayer: c.nLayer, nEmbd: c.nEmbd, nHead: c.nHead, nInner: c.nInner, nPositions: c.nPositions,
                        vocabSize: c.vocabSize, layerNormEpsilon: c.layerNormEpsilon, bosTokenId: c.bosTokenID)
        parameters = model.parameterCount
        tiedEmbeddings = model.tiedEmbeddings
        tokenizer = model.tokenizer != nil
        blocks = model.blocks.enumerated().map { i, block in
            BlockDescription(index: i, source: block.source.description, parts: block.parts, nHeads: block.attention?.nHead,
                             ablatedHeads: block.attention?.headAblations.keys.sorted() ?? [],
                             ablatedNeurons: block.mlp?.neuronAblations.keys.sorted() ?? [])
        }
    }
}
