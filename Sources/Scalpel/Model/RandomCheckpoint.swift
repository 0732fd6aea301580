import Foundation

/// Writes a GPT-2 checkpoint with random weights, laid out exactly as the hub's `model.safetensors`
/// (no `transformer.` prefix, `h.N.attn.bias` causal-mask buffers, no `lm_head.weight`), for
/// benchmarks and tests. Initialised as Hugging Face does: N(0, 0.02) weights, residual projections
/// N(0, 0.02/sqrt(2·n_layer)), zero biases, unit LayerNorm weights.
public enum RandomCheckpoint {
    public static func write(config: GPT2Config, seed: UInt64, to target: OutputTarget,
                             tokenizerFolder: URL? = nil) throws {
        // The tokenizer files are read first, so that a wrong --tokenizer costs nothing and writes nothing.
        let tokenizerFiles = try tokenizerFolder.map { folder in
            try ["vocab.json", "merges.txt"].map { name -> (String, Data) in
                let source = folder.appendingPathComponent(name)
                return (name, try InputFile.read(source.path, missingHint: "--tokenizer must name a folder with vocab.json and merges.txt."))
            }
        } ?? []
        var rng = SeededRandom(seed: seed)
        let d = config.nEmbd, inner = config.nInner
        let residualStd = 0.02 / Float(2 * config.nLayer).squareRoot()
        func normal(_ shape: [Int], std: Float = 0.02) -> Tensor {
            Tensor(shape: shape) { buffer in for i in buffer.indices { buffer[i] = rng.normal() * std } }
        }
        func ones(_ n: Int) -> Tensor { Tensor(shape: [n], data: Array(repeating: 1, count: n)) }
        let mask = Tensor(shape: [1, 1, config.nPositions, config.nPositions]) { buffer in
            let n = config.nPositions
            for row in 0..<n { for col in 0...row { buffer[row * n + col] = 1 } }
        }
        var tensors: [(name: String, tensor: Tensor)] = [
            ("wte.weight", normal([config.vocabSize, d])), ("wpe.weight", normal([config.nPositions, d], std: 0.01)),
        ]
        for i in 0..<config.nLayer {
            let h = "h.\(i)"
            tensors += [
                ("\(h).ln_1.weight", ones(d)), ("\(h).ln_1.bias", Tensor(zeros: [d])),
                ("\(h).attn.bias", mask),
                ("\(h).attn.c_attn.weight", normal([d, 3 * d])), ("\(h).attn.c_attn.bias", Tensor(zeros: [3 * d])),
                ("\(h).attn.c_proj.weight", normal([d, d], std: residualStd)), ("\(h).attn.c_proj.bias", Tensor(zeros: [d])),
                ("\(h).ln_2.weight", ones(d)), ("\(h).ln_2.bias", Tensor(zeros: [d])),
                ("\(h).mlp.c_fc.weight", normal([d, inner])), ("\(h).mlp.c_fc.bias", Tensor(zeros: [inner])),
                ("\(h).mlp.c_proj.weight", normal([inner, d], std: residualStd)), ("\(h).mlp.c_proj.bias", Tensor(zeros: [d])),
            ]
        }
        tensors += [("ln_f.weight", ones(d)), ("ln_f.bias", Tensor(zeros: [d]))]

        let json = try JSONSerialization.data(withJSONObject: config.huggingFaceJSON, options: [.prettyPrinted, .sortedKeys])
        try target.write { folder in
            try SafetensorsWriter.writeFile(tensors, metadata: ["format": "pt"], at: folder.appendingPathComponent("model.safetensors"))
            try json.write(to: folder.appendingPathComponent("config.json"))
            for (name, data) in tokenizerFiles { try data.write(to: folder.appendingPathComponent(name)) }
        }
    }
}
