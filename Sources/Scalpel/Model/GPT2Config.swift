import Foundation

/// The hyper-parameters of a GPT-2-family model, read from a Hugging Face `config.json`.
public struct GPT2Config: Equatable, Sendable {
    public var nLayer: Int
    public var nEmbd: Int
    public var nHead: Int
    /// Width of the MLP's hidden layer (`n_inner`, which defaults to 4 × n_embd when null).
    public var nInner: Int
    public var nPositions: Int
    public var vocabSize: Int
    public var layerNormEpsilon: Float
    public var bosTokenID: Int?

    public var dHead: Int { nEmbd / nHead }

    public init(nLayer: Int, nEmbd: Int, nHead: Int, nInner: Int? = nil, nPositions: Int, vocabSize: Int,
                layerNormEpsilon: Float = 1e-5, bosTokenID: Int? = nil) {
        self.nLayer = nLayer; self.nEmbd = nEmbd; self.nHead = nHead
        self.nInner = nInner ?? 4 * nEmbd
        self.nPositions = nPositions; self.vocabSize = vocabSize
        self.layerNormEpsilon = layerNormEpsilon; self.bosTokenID = bosTokenID
    }

    /// The published GPT-2 shapes, for `scalpel init --config NAME`.
    public static let presets: [String: GPT2Config] = [
        "gpt2": GPT2Config(nLayer: 12, nEmbd: 768, nHead: 12, nPositions: 1024, vocabSize: 50257, bosTokenID: 50256),
        "gpt2-medium": GPT2Config(nLayer: 24, nEmbd: 1024, nHead: 16, nPositions: 1024, vocabSize: 50257, bosTokenID: 50256),
        "gpt2-large": GPT2Config(nLayer: 36, nEmbd: 1280, nHead: 20, nPositions: 1024, vocabSize: 50257, bosTokenID: 50256),
        "gpt2-xl": GPT2Config(nLayer: 48, nEmbd: 1600, nHead: 25, nPositions: 1024, vocabSize: 50257, bosTokenID: 50256),
        "distilgpt2": GPT2Config(nLayer: 6, nEmbd: 768, nHead: 12, nPositions: 1024, vocabSize: 50257, bosTokenID: 50256),
    ]

    /// Reads and validates `config.json`.
    public static func load(from url: URL) throws -> GPT2Config {
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw FileError.missing(path: url.path, hint: "A checkpoint folder needs config.json next to model.safetensors.")
        }
        guard let object = try? JSONSerialization.jsonObject(with: data), let json = object as? [String: Any] else {
            throw ConfigError.notJSON(path: url.path)
        }
        return try GPT2Config(json: json, path: url.path)
    }

    init(json: [String: Any], path: String) throws {
        func int(_ key: String, default value: Int? = nil, minimum: Int = 1) throws -> Int {
            if let number = json[key] as? NSNumber, let v = Int(exactly: number.doubleValue), v >= minimum { return v }
            if json[key] == nil || json[key] is NSNull, let value { return value }
            throw ConfigError.badField(path: path, field: key, value: json[key].map { "\($0)" } ?? "missing",
                                       expected: minimum == 0 ? "a non-negative integer" : "a positive integer")
        }
        if let type = json["model_type"] as? String, type != "gpt2" {
            throw ConfigError.unsupportedArchitecture(path: path, found: "model_type \"\(type)\"")
        }
        if let architectures = json["architectures"] as? [String],
           let other = architectures.first(where: { !$0.hasPrefix("GPT2") }) {
            throw ConfigError.unsupportedArchitecture(path: path, found: "architecture \"\(other)\"")
        }
        let activation = json["activation_function"] as? String ?? "gelu_new"
        guard activation == "gelu_new" else {
            throw ConfigError.unsupportedActivation(path: path, found: activation)
        }
        for flag in ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"] where (json[flag] as? Bool) == true {
            throw ConfigError.unsupportedOption(path: path, field: flag)
        }
        if let scale = json["scale_attn_weights"] as? Bool, !scale {
            throw ConfigError.unsupportedOption(path: path, field: "scale_attn_weights")
        }
        let nEmbd = try int("n_embd"), nHead = try int("n_head")
        guard nEmbd % nHead == 0 else {
            throw ConfigError.badField(path: path, field: "n_head", value: "\(nHead)",
                                       expected: "a divisor of n_embd (\(nEmbd))")
        }
        let epsilon = (json["layer_norm_epsilon"] as? NSNumber)?.floatValue ?? 1e-5
        self.init(nLayer: try int("n_layer", minimum: 0), nEmbd: nEmbd, nHead: nHead,
                  nInner: try int("n_inner", default: 4 * nEmbd),
                  nPositions: try int("n_positions", default: (json["n_ctx"] as? Int) ?? 1024),
                  vocabSize: try int("vocab_size"), layerNormEpsilon: epsilon,
                  bosTokenID: json["bos_token_id"] as? Int)
    }

    /// The `config.json` that `transformers` writes for this shape.
    public var huggingFaceJSON: [String: Any] {
        var json: [String: Any] = [
            "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "n_layer": nLayer, "n_embd": nEmbd, "n_head": nHead, "n_inner": nInner,
            "n_positions": nPositions, "n_ctx": nPositions, "vocab_size": vocabSize,
            "layer_norm_epsilon": Double(layerNormEpsilon), "attn_pdrop": 0.0, "embd_pdrop": 0.0,
            "resid_pdrop": 0.0, "scale_attn_weights": true, "tie_word_embeddings": true,
            "torch_dtype": "float32", "use_cache": true,
        ]
        if let bosTokenID { json["bos_token_id"] = bosTokenID; json["eos_token_id"] = bosTokenID }
        return json
    }
}

public enum ConfigError: UserFacingError, Equatable {
    case notJSON(path: String)
    case badField(path: String, field: String, value: String, expected: String)
    case unsupportedArchitecture(path: String, found: String)
    case unsupportedActivation(path: String, found: String)
    case unsupportedOption(path: String, field: String)

    public var message: String {
        switch self {
        case let .notJSON(path):
            return "\(path): not a JSON object. A checkpoint's config.json must be the file transformers writes."
        case let .badField(path, field, value, expected):
            return "\(path): field \"\(field)\" is \(value); expected \(expected)."
        case let .unsupportedArchitecture(path, found):
            return "\(path): \(found) is not supported. Scalpel runs GPT-2-family models (model_type \"gpt2\", GPT2LMHeadModel)."
        case let .unsupportedActivation(path, found):
            return "\(path): activation_function \"\(found)\" is not supported. Scalpel implements GPT-2's \"gelu_new\" only."
        case let .unsupportedOption(path, field):
            return "\(path): \"\(field)\" changes attention in a way Scalpel does not implement. Use a standard GPT-2 config."
        }
    }
}
