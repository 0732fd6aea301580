import Foundation

/// Writes an edited model as a Hugging Face GPT-2 folder (`config.json`, `model.safetensors`,
/// `vocab.json`, `merges.txt`) that `GPT2LMHeadModel.from_pretrained` loads with the same logits.
///
/// What GPT-2 cannot express directly is folded into weights it has: a missing half becomes a zero
/// output projection and bias (so it adds nothing to the residual); an ablated head or neuron becomes
/// zero rows of its output projection, plus its mean's contribution in the bias for mean ablations.
/// A block without its LayerNorm, blocks of different MLP widths, and ablations that depend on the
/// position (restricted to some positions, or per-position means) are refused.
public enum HuggingFaceExport {
    public static func write(_ model: Model, to target: OutputTarget) throws {
        let tensors = try self.tensors(model)
        var config = model.config
        config.nLayer = model.blocks.count
        config.nInner = try mlpWidth(model)
        config.nHead = try headCount(model)
        var json = config.huggingFaceJSON
        json["tie_word_embeddings"] = model.tiedEmbeddings
        let configData = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try target.write { folder in
            try SafetensorsWriter.writeFile(tensors, metadata: ["format": "pt"], at: folder.appendingPathComponent("model.safetensors"))
            try configData.write(to: folder.appendingPathComponent("config.json"))
            if let tokenizer = model.tokenizer {
                try tokenizer.vocabData.write(to: folder.appendingPathComponent("vocab.json"))
                try tokenizer.mergesData.write(to: folder.appendingPathComponent("merges.txt"))
            }
        }
    }

    static func mlpWidth(_ model: Model) throws -> Int {
        let widths = Set(model.blocks.compactMap { $0.mlp?.dMLP })
        guard widths.count <= 1 else {
            throw HuggingFaceExportError.notExpressible(reason: "its MLPs have different widths (\(widths.sorted().map(String.init).joined(separator: ", "))); GPT-2's config has one n_inner.")
        }
        return widths.first ?? model.config.nInner
    }

    /// The one head count of every attention block (a block stitched from another model may differ).
    static func headCount(_ model: Model) throws -> Int {
        let counts = Set(model.blocks.compactMap { $0.attention?.nHead })
        guard counts.count <= 1 else {
            throw HuggingFaceExportError.notExpressible(reason: "its attention blocks have different head counts (\(counts.sorted().map(String.init).joined(separator: ", "))); GPT-2's config has one n_head.")
        }
        return counts.first ?? model.config.nHead
    }

    /// The model's tensors under Hugging Face names (`transformer.h.0.attn.c_attn.weight`, …).
    static func tensors(_ model: Model) throws -> [(name: String, tensor: Tensor)] {
        let d = model.dModel, inner = try mlpWidth(model)
        var out: [(name: String, tensor: Tensor)] = [
            ("transformer.wte.weight", model.embedding.tokens), ("transformer.wpe.weight", model.embedding.positions),
        ]
        let ones = Tensor(shape: [d], data: Array(repeating: 1, count: d)), zeros = Tensor(zeros: [d])
        for (i, block) in model.blocks.enumerated() {
            let h = "transformer.h.\(i)"
            if let mlp = block.mlp, mlp.ln == nil {
                throw HuggingFaceExportError.notExpressible(reason: "block \(i) (\(block.source).mlp.noln) has no LayerNorm before its MLP, and every GPT-2 MLP has one.")
            }
            try checkFoldable(block, index: i)
            if let attention = block.attention {
                let (weight, bias) = foldHeads(attention, dHead: attention.dHead)
                out += [("\(h).ln_1.weight", attention.ln.weight), ("\(h).ln_1.bias", attention.ln.bias),
                        ("\(h).attn.c_attn.weight", attention.qkvWeight), ("\(h).attn.c_attn.bias", attention.qkvBias),
                        ("\(h).attn.c_proj.weight", weight), ("\(h).attn.c_proj.bias", bias)]
            } else {
                out += [("\(h).ln_1.weight", ones), ("\(h).ln_1.bias", zeros),
                        ("\(h).attn.c_attn.weight", Tensor(zeros: [d, 3 * d])), ("\(h).attn.c_attn.bias", Tensor(zeros: [3 * d])),
                        ("\(h).attn.c_proj.weight", Tensor(zeros: [d, d])), ("\(h).attn.c_proj.bias", zeros)]
            }
            if let mlp = block.mlp, let ln = mlp.ln {
                let (weight, bias) = foldNeurons(mlp)
                out += [("\(h).ln_2.weight", ln.weight), ("\(h).ln_2.bias", ln.bias),
                        ("\(h).mlp.c_fc.weight", mlp.inWeight), ("\(h).mlp.c_fc.bias", mlp.inBias),
                        ("\(h).mlp.c_proj.weight", weight), ("\(h).mlp.c_proj.bias", bias)]
            } else {
                out += [("\(h).ln_2.weight", ones), ("\(h).ln_2.bias", zeros),
                        ("\(h).mlp.c_fc.weight", Tensor(zeros: [d, inner])), ("\(h).mlp.c_fc.bias", Tensor(zeros: [inner])),
                        ("\(h).mlp.c_proj.weight", Tensor(zeros: [inner, d])), ("\(h).mlp.c_proj.bias", zeros)]
            }
        }
        out += [("transformer.ln_f.weight", model.lnFinal.weight), ("transformer.ln_f.bias", model.lnFinal.bias)]
        if !model.tiedEmbeddings { out.append(("lm_head.weight", model.unembed)) }
        return out
    }

    /// A bias is added at every position, so only an ablation writing one constant at every
    /// position can be folded into one; the first that cannot is an error saying why.
    static func checkFoldable(_ block: Block, index i: Int) throws {
        let units = (block.attention?.headAblations ?? [:]).map { ("head \(block.source.layer).\($0.key)", $0.value) }
            + (block.mlp?.neuronAblations ?? [:]).map { ("neuron \(block.source.layer).\($0.key)", $0.value) }
            + (block.mlp?.outputAblation.map { [("MLP \(block.source.layer) output", $0)] } ?? [])
        for (unit, ablation) in units.sorted(by: { $0.0 < $1.0 }) where !ablation.isPositionIndependent {
            let what: String
            if case .perPositionMean = ablation.replacement { what = "is replaced by a different mean at each position" }
            else { what = "is ablated only at some positions (\(ablation.positions))" }
            throw HuggingFaceExportError.positionDependentAblation(block: i, unit: unit, what: what)
        }
    }

    /// attn_out = z W_O + b with head h's z fixed to m (0 for zero ablation) equals
    /// z' W_O' + b' where W_O' has head h's rows zeroed and b' = b + m · W_O[h rows].
    static func foldHeads(_ attention: AttentionHalf, dHead: Int) -> (Tensor, Tensor) {
        foldRows(weight: attention.outWeight, bias: attention.outBias,
                 rows: attention.headAblations.mapValues { constant($0, width: dHead) }, rowsPerUnit: dHead)
    }

    static func foldNeurons(_ mlp: MLPHalf) -> (Tensor, Tensor) {
        // A constant output everywhere: c_proj writes nothing and its bias is the constant.
        if let output = mlp.outputAblation {
            return (Tensor(zeros: mlp.outWeight.shape), Tensor(shape: mlp.outBias.shape, data: constant(output, width: mlp.outBias.count)))
        }
        return foldRows(weight: mlp.outWeight, bias: mlp.outBias, rows: mlp.neuronAblations.mapValues { constant($0, width: 1) }, rowsPerUnit: 1)
    }

    /// The constant a position-independent ablation writes (`checkFoldable` has refused the others).
    static func constant(_ ablation: Ablation, width: Int) -> [Float] {
        if case let .pooledMean(vector) = ablation.replacement { return vector.scalars }
        return Array(repeating: 0, count: width)
    }

    /// Zeroes the rows of each unit and adds value · rows to the bias (accumulated in Double).
    static func foldRows(weight: Tensor, bias: Tensor, rows: [Int: [Float]], rowsPerUnit: Int) -> (Tensor, Tensor) {
        guard !rows.isEmpty else { return (weight, bias) }
        var weight = weight
        let width = weight.shape[1]
        var newBias = bias.scalars.map(Double.init)
        let w = weight.mutablePointer
        for (unit, values) in rows.sorted(by: { $0.key < $1.key }) {
            for (k, value) in values.enumerated() {
                let row = w + (unit * rowsPerUnit + k) * width
                for c in 0..<width { newBias[c] += Double(value) * Double(row[c]) }
                row.update(repeating: 0, count: width)
            }
        }
        return (weight, Tensor(shape: bias.shape, data: newBias.map { Float($0) }))
    }
}

/// What GPT-2's Hugging Face architecture cannot express: the export's own error type.
public enum HuggingFaceExportError: UserFacingError, Equatable {
    /// GPT-2's layout has no place for what the edit made (`reason` says what, e.g. "its MLPs have
    /// different widths (…)").
    case notExpressible(reason: String)
    case positionDependentAblation(block: Int, unit: String, what: String)

    public var message: String {
        switch self {
        case let .notExpressible(reason):
            return "This model cannot be exported as a Hugging Face GPT-2: \(reason)"
        case let .positionDependentAblation(block, unit, what):
            return "This model cannot be exported as a Hugging Face GPT-2: in block \(block), \(unit) \(what). "
                + "GPT-2 can only hold an ablation as a constant added at every position (folded into the output bias). "
                + "Use the .h5 archive (`scalpel build`), or rebuild with pooled means at all positions."
        }
    }
}
