import Foundation

/// Loads a GPT-2 checkpoint folder in the Hugging Face layout: `config.json`, `model.safetensors`
/// (or shards listed in `model.safetensors.index.json`), and optionally `vocab.json` + `merges.txt`.
///
/// Tensor names may carry the `transformer.` prefix (files from `save_pretrained`) or not (hub files);
/// the hub's `h.N.attn.bias` / `h.N.attn.masked_bias` causal-mask buffers are ignored, and
/// `lm_head.weight` is tied to `wte.weight` when absent. F32 tensors are memory-mapped without copying.
public enum Checkpoint {
    /// - Parameter name: the model's short name, used in block sources (`gpt2:L9`); default the folder's name.
    public static func load(from directory: URL, name: String? = nil) throws -> Model {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: directory.path, isDirectory: &isFolder) else {
            throw FileError.missing(path: directory.path, hint: "Give --model a checkpoint folder (config.json + model.safetensors) or a .h5 archive.")
        }
        if case let .other(kind) = FileSystemEntry(directory.resolvingSymlinksInPath().path) {
            throw FileError.notRegular(path: directory.path, kind: kind)
        }
        guard isFolder.boolValue else { throw CheckpointError.notAFolder(path: directory.path) }
        let config = try GPT2Config.load(from: directory.appendingPathComponent("config.json"))
        let tensors = try TensorSource(directory: directory)
        var reader = WeightReader(tensors: tensors, config: config)
        var model = try reader.model(name: name ?? directory.standardizedFileURL.lastPathComponent)
        try reader.checkAllUsed()
        LoadWarnings.reportNonFinite(reader.nonFinite, in: directory.path)
        model.sourceFiles = tensors.files
        if fm.fileExists(atPath: directory.appendingPathComponent("vocab.json").path) {
            let tokenizer = try GPT2Tokenizer.load(from: directory)
            try tokenizer.checkFits(vocabSize: config.vocabSize, path: directory.appendingPathComponent("vocab.json").path)
            model.tokenizer = tokenizer
        }
        return model
    }
}

public enum CheckpointError: UserFacingError, Equatable {
    case notAFolder(path: String)
    case noWeights(path: String)
    case brokenIndex(path: String, reason: String)
    case missingTensor(path: String, name: String)
    case unexpectedTensor(path: String, name: String)
    case shapeMismatch(path: String, name: String, expected: [Int], found: [Int])
    /// Two tensors of the files that name one weight (`X` and `transformer.X`).
    case duplicateTensor(path: String, name: String, otherPath: String, otherName: String)

    public var message: String {
        switch self {
        case let .notAFolder(path):
            return "\(path) is a file. Give --model the checkpoint folder that holds it, or a .h5 archive."
        case let .noWeights(path):
            return "\(path): no model.safetensors or model.safetensors.index.json. Save the model with save_pretrained(safe_serialization=True)."
        case let .brokenIndex(path, reason):
            return "\(path): \(reason). Re-save the sharded checkpoint with save_pretrained."
        case let .missingTensor(path, name):
            return "\(path): tensor \"\(name)\" is missing. The checkpoint is incomplete or not a GPT-2 model."
        case let .unexpectedTensor(path, name):
            return "\(path): unexpected tensor \"\(name)\": not part of GPT2LMHeadModel. Is this a GPT-2 checkpoint?"
        case let .shapeMismatch(path, name, expected, found):
            return "\(path): tensor \"\(name)\" has shape \(found) but config.json implies \(expected). The config and the weights disagree."
        case let .duplicateTensor(path, name, otherPath, otherName):
            let place = path == otherPath ? path : "\(path) and \(otherPath)"
            return "\(place): tensors \"\(name)\" and \"\(otherName)\" are the same weight under two names (the `transformer.` prefix is optional). Keep one of them and re-save the checkpoint."
        }
    }
}

/// The tensors of a checkpoint, by canonical name (without `transformer.`), from one file or shards.
struct TensorSource {
    private var opened: [String: SafetensorsFile] = [:]
    var files: [URL] { opened.keys.sorted().map { URL(fileURLWithPath: $0) } }
    /// canonical name -> (file path, name inside the file)
    private(set) var locations: [String: (file: String, name: String)] = [:]

    init(directory: URL) throws {
        let single = directory.appendingPathComponent("model.safetensors")
        let index = directory.appendingPathComponent("model.safetensors.index.json")
        let fm = FileManager.default
        if fm.fileExists(atPath: single.path) {
            try add(file: single)
        } else if fm.fileExists(atPath: index.path) {
            let data = try InputFile.read(index.path, missingHint: "")
            guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = json["weight_map"] as? [String: String] else {
                throw CheckpointError.brokenIndex(path: index.path, reason: "no \"weight_map\" object of tensor name → file name")
            }
            for shard in Set(map.values).sorted() {
                guard !shard.contains("/") else {
                    throw CheckpointError.brokenIndex(path: index.path, reason: "shard \"\(shard)\" is not a file name in the same folder")
                }
                guard fm.fileExists(atPath: directory.appendingPathComponent(shard).path) else {
                    throw CheckpointError.brokenIndex(path: index.path, reason: "it names shard \"\(shard)\", which is not in \(directory.path)")
                }
                try add(file: directory.appendingPathComponent(shard))
            }
            for (name, shard) in map where locations[Self.canonical(name)]?.file != directory.appendingPathComponent(shard).path {
                throw CheckpointError.brokenIndex(path: index.path, reason: "tensor \"\(name)\" is not in shard \(shard)")
            }
        } else {
            throw CheckpointError.noWeights(path: directory.path)
        }
    }

    static func canonical(_ name: String) -> String {
        name.hasPrefix("transformer.") ? String(name.dropFirst("transformer.".count)) : name
    }

    private mutating func add(file url: URL) throws {
        let file = try SafetensorsFile(url: url)
        opened[url.path] = file
        for name in file.names {
            let canonical = Self.canonical(name)
            // `X` and `transformer.X` name one weight: which to use would be a silent guess.
            if let first = locations[canonical] {
                throw CheckpointError.duplicateTensor(path: first.file, name: first.name, otherPath: url.path, otherName: name)
            }
            locations[canonical] = (url.path, name)
        }
    }

    func contains(_ name: String) -> Bool { locations[name] != nil }

    func tensor(_ name: String) throws -> (Tensor, path: String)? {
        guard let location = locations[name], let file = opened[location.file] else { return nil }
        return (try file.tensor(location.name), location.file)
    }
}

/// Reads the named GPT-2 weights, checking every shape against the config.
struct WeightReader {
    let tensors: TensorSource
    let config: GPT2Config
    private var used: Set<String> = []
    /// Tensors holding NaN or ±Inf, by name, with how many such values.
    private(set) var nonFinite: [(name: String, count: Int, total: Int)] = []

    init(tensors: TensorSource, config: GPT2Config) {
        self.tensors = tensors
        self.config = config
    }

    mutating func read(_ name: String, _ shape: [Int]) throws -> Tensor {
        guard let (tensor, path) = try tensors.tensor(name) else {
            throw CheckpointError.missingTensor(path: tensors.locations.first?.value.file ?? "checkpoint", name: name)
        }
        guard tensor.shape == shape else {
            throw CheckpointError.shapeMismatch(path: path, name: name, expected: shape, found: tensor.shape)
        }
        used.insert(name)
        let bad = LoadWarnings.nonFiniteCount(tensor)
        if bad > 0 { nonFinite.append((name, bad, tensor.count)) }
        return tensor
    }

    mutating func layerNorm(_ prefix: String) throws -> LayerNormParams {
        LayerNormParams(weight: try read("\(prefix).weight", [config.nEmbd]), bias: try read("\(prefix).bias", [config.nEmbd]))
    }

    mutating func model(name: String) throws -> Model {
        let d = config.nEmbd, inner = config.nInner
        let embedding = Embedding(tokens: try read("wte.weight", [config.vocabSize, d]),
                                  positions: try read("wpe.weight", [config.nPositions, d]))
        var blocks: [Block] = []
        for i in 0..<config.nLayer {
            let h = "h.\(i)"
            let attention = AttentionHalf(
                ln: try layerNorm("\(h).ln_1"),
                qkvWeight: try read("\(h).attn.c_attn.weight", [d, 3 * d]), qkvBias: try read("\(h).attn.c_attn.bias", [3 * d]),
                outWeight: try read("\(h).attn.c_proj.weight", [d, d]), outBias: try read("\(h).attn.c_proj.bias", [d]),
                nHead: config.nHead)
            let mlp = MLPHalf(
                ln: try layerNorm("\(h).ln_2"),
                inWeight: try read("\(h).mlp.c_fc.weight", [d, inner]), inBias: try read("\(h).mlp.c_fc.bias", [inner]),
                outWeight: try read("\(h).mlp.c_proj.weight", [inner, d]), outBias: try read("\(h).mlp.c_proj.bias", [d]))
            blocks.append(Block(attention: attention, mlp: mlp, source: BlockSource(model: name, layer: i)))
        }
        let lnFinal = try layerNorm("ln_f")
        var unembed = embedding.tokens, tied = true
        if tensors.contains("lm_head.weight") {
            let head = try read("lm_head.weight", [config.vocabSize, d])
            tied = head.isIdentical(to: embedding.tokens)
            if !tied { unembed = head } else { nonFinite.removeAll { $0.name == "lm_head.weight" } }
        }
        return Model(config: config, name: name, embedding: embedding, blocks: blocks, lnFinal: lnFinal,
                     unembed: unembed, tiedEmbeddings: tied, tokenizer: nil)
    }

    /// Every tensor in the files must be a GPT-2 weight or one of the ignorable attention buffers.
    func checkAllUsed() throws {
        for (name, location) in tensors.locations.sorted(by: { $0.key < $1.key }) where !used.contains(name) {
            if name.range(of: #"^h\.\d+\.attn\.(bias|masked_bias)$"#, options: .regularExpression) != nil { continue }
            throw CheckpointError.unexpectedTensor(path: location.file, name: location.name)
        }
    }
}
