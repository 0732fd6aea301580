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
