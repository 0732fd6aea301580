import Foundation

/// The HDF5 model archive of DESIGN.md: config, tokenizer, weights in TransformerLens shapes, each
/// block's source and parts, the plan text and the source checkpoints' SHA-256.
///
/// Weights are stored exactly (float32), so a loaded archive gives bit-identical logits to the
/// graph it was saved from. Head and neuron ablations are stored as the values written in place of
/// the unit (`attn/ablated_heads` + `attn/ablation_values`, `mlp/ablated_neurons` + `mlp/ablation_values`).
/// With tied embeddings `unembed/W_U` is a hard link to `embed/W_E` and so has W_E's shape [d_vocab, d_model]
/// (root attribute `tied_embeddings` = 1); untied, it is [d_model, d_vocab] as in TransformerLens.
public enum ModelArchive {
    public static let format = "scalpel-model"
    public static let formatVersion = 1

    public static func write(_ model: Model, plan: Plan?, to target: OutputTarget, commandLine: String = "") throws {
        let source = try provenance(model)
        let config = model.config.huggingFaceJSON.merging(["n_layer": model.blocks.count]) { $1 }
        let attributes = [
            "config": String(decoding: try JSONSerialization.data(withJSONObject: config, options: [.sortedKeys]), as: UTF8.self),
            "name": model.name, "plan": plan?.text ?? "", "source": source, "command_line": commandLine,
        ]
        try ScalpelFile.write(to: target, format: format, attributes: attributes) { root in
            try root.setAttribute("format_version", formatVersion)
            try root.setAttribute("tied_embeddings", model.tiedEmbeddings ? 1 : 0)
            if let tokenizer = model.tokenizer {
                let group = try root.createGroup("tokenizer")
                try group.writeStrings("vocab", [String(decoding: tokenizer.vocabData, as: UTF8.self)])
                try group.writeStrings("merges", [String(decoding: tokenizer.mergesData, as: UTF8.self)])
            }
            let embed = try root.createGroup("embed")
            try embed.writeTensor("W_E", model.embedding.tokens, dims: ["d_vocab", "d_model"])
            try embed.writeTensor("W_pos", model.embedding.positions, dims: ["n_ctx", "d_model"])
            let blocks = try root.createGroup("blocks")
            for (i, block) in model.blocks.enumerated() {
                try writeBlock(block, into: try blocks.createGroup("\(i)"), dModel: model.dModel)
            }
            let lnFinal = try root.createGroup("ln_final")
            try lnFinal.writeTensor("w", model.lnFinal.weight, dims: ["d_model"])
            try lnFinal.writeTensor("b", model.lnFinal.bias, dims: ["d_model"])
            let unembed = try root.createGroup("unembed")
            if model.tiedEmbeddings {
                try root.linkHard(from: "embed/W_E", to: "unembed/W_U")
            } else {
                try unembed.writeTensor("W_U", transpose(model.unembed), dims: ["d_model", "d_vocab"])
            }
        }
    }

    static func writeBlock(_ block: Block, into group: HDF5Group, dModel d: Int) throws {
        try group.setAttribute("source", block.source.description)
        var parts: [String] = []
        if let attention = block.attention {
            parts.append("attn")
            let h = attention.nHead, dh = d / h
            let ln = try group.createGroup("ln1")
            try ln.writeTensor("w", attention.ln.weight, dims: ["d_model"])
            try ln.writeTensor("b", attention.ln.bias, dims: ["d_model"])
            let attn = try group.createGroup("attn")
            for (k, name) in ["Q", "K", "V"].enumerated() {
                // c_attn [d, 3d] columns k·d + head·dh + j  →  W_[head, i, j]
                let w = Tensor(shape: [h, d, dh]) { out in
                    let src = attention.qkvWeight.pointer
                    for head in 0..<h { for i in 0..<d { for j in 0..<dh {
                        out[(head * d + i) * dh + j] = src[i * 3 * d + k * d + head * dh + j]
                    } } }
                }
                try attn.writeTensor("W_\(name)", w, dims: ["n_heads", "d_model", "d_head"])
                let b = Tensor(shape: [h, dh], data: Array(attention.qkvBias.scalars[(k * d)..<((k + 1) * d)]))
                try attn.writeTensor("b_\(name)", b, dims: ["n_heads", "d_head"])
            }
            try attn.writeTensor("W_O", attention.outWeight.reshaped([h, dh, d]), dims: ["n_heads", "d_head", "d_model"])
            try attn.writeTensor("b_O", attention.outBias, dims: ["d_model"])
            let ablated = attention.headAblations.keys.sorted()
            if !ablated.isEmpty {
                try attn.writeInt32("ablated_heads", ablated.map { Int32($0) }, shape: [ablated.count], dims: ["ablated"])
                let values = ablated.flatMap { head -> [Float] in
                    if case let .mean(v) = attention.headAblations[head]! { return v.scalars }
                    return Array(repeating: 0, count: dh)
                }
                try attn.writeTensor("ablation_values", Tensor(shape: [ablated.count, dh], data: values), dims: ["ablated", "d_head"])
            }
        }
        if let mlp = block.mlp {
            parts.append(mlp.ln == nil ? "mlp.noln" : "mlp")
            if let lnParams = mlp.ln {
                let ln = try group.createGroup("ln2")
                try ln.writeTensor("w", lnParams.weight, dims: ["d_model"])
                try ln.writeTensor("b", lnParams.bias, dims: ["d_model"])
            }
            let g = try group.createGroup("mlp")
            try g.writeTensor("W_in", mlp.inWeight, dims: ["d_model", "d_mlp"])
            try g.writeTensor("b_in", mlp.inBias, dims: ["d_mlp"])
            try g.writeTensor("W_out", mlp.outWeight, dims: ["d_mlp", "d_model"])
            try g.writeTensor("b_out", mlp.outBias, dims: ["d_model"])
            let ablated = mlp.neuronAblations.keys.sorted()
            if !ablated.isEmpty {
                try g.writeInt32("ablated_neurons", ablated.map { Int32($0) }, shape: [ablated.count], dims: ["ablated"])
                try g.writeTensor("ablation_values", Tensor(shape: [ablated.count], data: ablated.map { mlp.neuronAblations[$0]! }), dims: ["ablated"])
            }
        }
        try group.setAttribute("parts", parts.joined(separator: ","))
    }

    public static func load(from url: URL) throws -> Model {
        let file: HDF5File
        do { file = try HDF5File.open(url) } catch let HDF5Error.notHDF5(_, reason) {
            throw ArchiveError.corrupt(path: url.path, reason: reason)
        }
        defer { try? file.close() }
        // Weights stored contiguously are borrowed from a memory map of the file, as with safetensors.
        let map = try? MappedFile(path: url.path, missingHint: "")
        let root = try file.root
        let path = url.path
        guard root.hasAttribute("format"), try root.stringAttribute("format") == format else {
            throw ArchiveError.notAnArchive(path: path)
        }
        let version = try root.intAttribute("format_version")
        guard version == formatVersion else { throw ArchiveError.version(path: path, found: version, supported: formatVersion) }
        do {
            guard let json = (try? JSONSerialization.jsonObject(with: Data(try root.stringAttribute("config").utf8))) as? [String: Any] else {
                throw ArchiveError.corrupt(path: path, reason: "the config attribute is not a JSON object")
            }
            var config = try GPT2Config(json: json, path: "\(path) (config attribute)")
            let d = config.nEmbd
            var tokenizer: GPT2Tokenizer?
            if root.exists("tokenizer") {
                tokenizer = try GPT2Tokenizer(vocabData: Data(try root.readStrings("tokenizer/vocab")[0].utf8),
                                              mergesData: Data(try root.readStrings("tokenizer/merges")[0].utf8),
                                              origin: "\(path) (tokenizer)")
            }
            let reader = Reader(map: map, path: path)
            let embedding = Embedding(tokens: try reader.read(root, "embed/W_E", [config.vocabSize, d]),
                                      positions: try reader.read(root, "embed/W_pos", [config.nPositions, d]))
            let blockNames = try root.group("blocks").childNames().compactMap(Int.init).sorted()
            guard blockNames == Array(0..<blockNames.count) else { throw ArchiveError.corrupt(path: path, reason: "blocks are not numbered 0…n-1") }
            let blocks = try blockNames.map { try readBlock(try root.group("blocks/\($0)"), config: config, reader: reader) }
            config.nLayer = blocks.count
            let tied = (try? root.intAttribute("tied_embeddings")) == 1
            let unembed = tied ? embedding.tokens : transpose(try reader.read(root, "unembed/W_U", [d, config.vocabSize]))
            let lnFinal = LayerNormParams(weight: try reader.read(root, "ln_final/w", [d]), bias: try reader.read(root, "ln_final/b", [d]))
            return Model(config: config, name: (try? root.stringAttribute("name")) ?? url.deletingPathExtension().lastPathComponent,
                         embedding: embedding, blocks: blocks, lnFinal: lnFinal, unembed: unembed, tiedEmbeddings: tied,
                         tokenizer: tokenizer, sourceFiles: [url])
        } catch let error as HDF5Error {
            throw ArchiveError.corrupt(path: path, reason: error.message)
        }
    }

    static func readBlock(_ group: HDF5Group, config: GPT2Config, reader: Reader) throws -> Block {
        let path = reader.path
        func read(_ group: HDF5Group, _ name: String, _ shape: [Int], _ where_: String) throws -> Tensor {
            try reader.read(group, name, shape)
        }
        let where_ = "\(path) \(group.path)"
        guard let source = BlockSource(try group.stringAttribute("source")) else {
            throw ArchiveError.corrupt(path: path, reason: "\(group.path): attribute source is not of the form model:L<layer>")
        }
        let parts = try group.stringAttribute("parts").split(separator: ",").map(String.init)
        let d = config.nEmbd, h = config.nHead, dh = config.dHead
        var block = Block(attention: nil, mlp: nil, source: source)
        if parts.contains("attn") {
            let qs = try ["Q", "K", "V"].map { try read(group, "attn/W_\($0)", [h, d, dh], where_) }
            let qkv = Tensor(shape: [d, 3 * d]) { out in
                for (k, w) in qs.enumerated() { let src = w.pointer
                    for head in 0..<h { for i in 0..<d { for j in 0..<dh {
                        out[i * 3 * d + k * d + head * dh + j] = src[(head * d + i) * dh + j]
                    } } }
                }
            }
            let bias = try ["Q", "K", "V"].flatMap { try read(group, "attn/b_\($0)", [h, dh], where_).scalars }
            var attention = AttentionHalf(
                ln: LayerNormParams(weight: try read(group, "ln1/w", [d], where_), bias: try read(group, "ln1/b", [d], where_)),
                qkvWeight: qkv, qkvBias: Tensor(shape: [3 * d], data: bias),
                outWeight: try read(group, "attn/W_O", [h, dh, d], where_).reshaped([d, d]),
                outBias: try read(group, "attn/b_O", [d], where_), nHead: h)
            if group.exists("attn/ablated_heads") {
                let heads = try group.readInt32("attn/ablated_heads").values.map(Int.init)
                let values = try read(group, "attn/ablation_values", [heads.count, dh], where_)
                for (n, head) in heads.enumerated() {
                    let v = values.rows(n..<(n + 1)).reshaped([dh])
                    attention.headAblations[head] = v.buffer.allSatisfy { $0 == 0 } ? .zero : .mean(v)
                }
            }
            block.attention = attention
        }
        if let mlpPart = parts.first(where: { $0.hasPrefix("mlp") }) {
            let inner = try group.dataset("mlp/b_in").shape.first ?? config.nInner
            var mlp = MLPHalf(
                ln: mlpPart == "mlp.noln" ? nil : LayerNormParams(weight: try read(group, "ln2/w", [d], where_), bias: try read(group, "ln2/b", [d], where_)),
                inWeight: try read(group, "mlp/W_in", [d, inner], where_), inBias: try read(group, "mlp/b_in", [inner], where_),
                outWeight: try read(group, "mlp/W_out", [inner, d], where_), outBias: try read(group, "mlp/b_out", [d], where_))
            if group.exists("mlp/ablated_neurons") {
                let neurons = try group.readInt32("mlp/ablated_neurons").values.map(Int.init)
                let values = try read(group, "mlp/ablation_values", [neurons.count], where_)
                for (n, neuron) in neurons.enumerated() { mlp.neuronAblations[neuron] = values[flat: n] }
            }
            block.mlp = mlp
        }
        return block
    }

    /// Reads a float32 dataset of a known shape, borrowing it from the file's memory map when it is
    /// stored contiguously and aligned.
    struct Reader {
        let map: MappedFile?
        let path: String

        func read(_ group: HDF5Group, _ name: String, _ shape: [Int]) throws -> Tensor {
            guard group.exists(name) else { throw ArchiveError.corrupt(path: path, reason: "\(group.path)/\(name) is missing") }
            let dataset = try group.dataset(name)
            let found = try dataset.shape
            guard found == shape else {
                throw ArchiveError.corrupt(path: path, reason: "\(group.path)/\(name) has shape \(found), expected \(shape)")
            }
            let count = shape.reduce(1, *)
            if let map, let base = map.base, let offset = dataset.contiguousFloat32Offset,
               offset % 4 == 0, offset + count * 4 <= map.count, count > 0 {
                let pointer = (base + offset).assumingMemoryBound(to: Float.self)
                return Tensor(shape: shape, storage: FloatStorage(borrowing: pointer, count: count, owner: map))
            }
            return try dataset.readTensor()
        }
    }

    static func transpose(_ m: Tensor) -> Tensor {
        let rows = m.shape[0], cols = m.shape[1]
        return Tensor(shape: [cols, rows]) { out in
            let src = m.pointer
            for r in 0..<rows { for c in 0..<cols { out[c * rows + r] = src[r * cols + c] } }
        }
    }

    /// JSON naming each source file and its SHA-256.
    static func provenance(_ model: Model) throws -> String {
        let files = try model.sourceFiles.map { ["path": $0.path, "sha256": try SHA256.hex(ofFile: $0)] }
        let data = try JSONSerialization.data(withJSONObject: ["model": model.name, "files": files], options: [.sortedKeys, .withoutEscapingSlashes])
        return String(decoding: data, as: UTF8.self)
    }
}

public enum ArchiveError: UserFacingError, Equatable {
    case notAnArchive(path: String)
    case version(path: String, found: Int, supported: Int)
    case corrupt(path: String, reason: String)

    public var message: String {
        switch self {
        case let .notAnArchive(path):
            return "\(path): not a Scalpel model archive (no format = \"scalpel-model\" attribute). Build one with `scalpel build PLAN -o FILE.h5`."
        case let .version(path, found, supported):
            return "\(path): archive format version \(found), but this Scalpel reads version \(supported). Rebuild the archive with this version (`scalpel build`)."
        case let .corrupt(path, reason):
            return "\(path): damaged or truncated archive (\(reason)). Rebuild it with `scalpel build`."
        }
    }
}

/// The version written into files Scalpel makes.
public enum ScalpelVersion {
    public static let string = "0.1.0"
}
