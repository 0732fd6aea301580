import Foundation

/// A GPT-2 model as a value: embedding → a list of blocks → final LayerNorm → unembedding.
///
/// Every part is an immutable-by-convention value holding tensors that share storage, so editing
/// the block list (see `Surgery/`) makes a new model without copying weights.
public struct Model: Sendable {
    public var config: GPT2Config
    /// Short name of the checkpoint the weights come from (used in block sources, e.g. `gpt2:L9.mlp`).
    public var name: String
    public var embedding: Embedding
    public var blocks: [Block]
    public var lnFinal: LayerNormParams
    /// Unembedding matrix W_U stored as [vocab, d_model] (Hugging Face's `lm_head.weight` layout).
    public var unembed: Tensor
    /// Whether `unembed` is the token embedding itself (GPT-2 ties them).
    public var tiedEmbeddings: Bool
    public var tokenizer: GPT2Tokenizer?
    /// The files the weights were read from (safetensors files or an archive), for provenance.
    public var sourceFiles: [URL] = []

    public var dModel: Int { config.nEmbd }
    public var vocabSize: Int { config.vocabSize }

    /// Number of parameters, counting tied matrices once.
    public var parameterCount: Int {
        var total = embedding.tokens.count + embedding.positions.count + lnFinal.count
        if !tiedEmbeddings { total += unembed.count }
        for block in blocks { total += block.parameterCount }
        return total
    }
}

public struct Embedding: Sendable {
    /// W_E [vocab, d_model] (`wte.weight`).
    public var tokens: Tensor
    /// W_pos [n_positions, d_model] (`wpe.weight`).
    public var positions: Tensor
}

public struct LayerNormParams: Sendable {
    public var weight: Tensor
    public var bias: Tensor
    var count: Int { weight.count + bias.count }
}

/// One transformer block: an attention half and an MLP half, each optional, and where it came from.
public struct Block: Sendable {
    public var attention: AttentionHalf?
    public var mlp: MLPHalf?
    public var source: BlockSource

    var parameterCount: Int { (attention?.parameterCount ?? 0) + (mlp?.parameterCount ?? 0) }

    /// The halves it has, as archives record them: `attn,mlp`, `attn`, `mlp`, `mlp.noln`, or empty.
    public var parts: String {
        var parts: [String] = []
        if attention != nil { parts.append("attn") }
        if let mlp { parts.append(mlp.ln == nil ? "mlp.noln" : "mlp") }
        return parts.joined(separator: ",")
    }
}

/// Where a block of an edited graph came from, e.g. `gpt2:L9.mlp`.
public struct BlockSource: Sendable, Equatable, CustomStringConvertible {
    public var model: String
    public var layer: Int
    public var description: String { "\(model):L\(layer)" }

    public init(model: String, layer: Int) { self.model = model; self.layer = layer }

    /// Parses `gpt2:L9`.
    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), text[text.index(after: colon)...].hasPrefix("L"),
              let layer = Int(text[text.index(colon, offsetBy: 2)...]) else { return nil }
        self.init(model: String(text[..<colon]), layer: layer)
    }
}

/// Attention half: pre-LayerNorm, fused QKV projection (HF `c_attn`), output projection (HF `c_proj`).
public struct AttentionHalf: Sendable {
    public var ln: LayerNormParams
    /// [d_model, 3·d_model]: columns are q | k | v, each laid out (head, d_head).
    public var qkvWeight: Tensor
    public var qkvBias: Tensor
    /// [d_model, d_model]: rows laid out (head, d_head).
    public var outWeight: Tensor
    public var outBias: Tensor
    /// This block's own head count: a block stitched from another model of the same width may
    /// have a different one than the model's config.
    public var nHead: Int
    /// Heads whose output `z` is replaced (by zeros or a mean, at all or some positions), by head.
    public var headAblations: [Int: Ablation] = [:]

    /// d_model / n_heads.
    public var dHead: Int { outBias.count / nHead }

    var parameterCount: Int { ln.count + qkvWeight.count + qkvBias.count + outWeight.count + outBias.count }
}

/// MLP half: pre-LayerNorm (absent in the study's "no ln2" variant), `c_fc`, gelu_new, `c_proj`.
public struct MLPHalf: Sendable {
    public var ln: LayerNormParams?
    /// [d_model, d_mlp]
    public var inWeight: Tensor
    public var inBias: Tensor
    /// [d_mlp, d_model]
    public var outWeight: Tensor
    public var outBias: Tensor
    /// Neurons whose activation (`hook_post`) is replaced (by zero or a mean, at all or some
    /// positions), by neuron; a mean is one value wide.
    public var neuronAblations: [Int: Ablation] = [:]
    /// The half's whole output (`hook_mlp_out`, d_model wide, as unit 0) replaced by a mean at some
    /// positions: a circuit's mean-ablated MLP (circuits/README.md, `mlps:`).
    public var outputAblation: Ablation?

    public var dMLP: Int { inBias.count }
    var parameterCount: Int { (ln?.count ?? 0) + inWeight.count + inBias.count + outWeight.count + outBias.count }
}
