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

    /// Sizes above this are refused: no GPT-2 comes near, and products of two sizes still fit an Int.
    public static let maximumSize = 1 << 24

    /// Reads and validates `config.json`.
    public static func load(from url: URL) throws -> GPT2Config {
        let data = try InputFile.read(url.path, missingHint: "A checkpoint folder needs config.json next to model.safetensors.")
        guard let object = try? JSONSerialization.jsonObject(with: data), let json = object as? [String: Any] else {
            throw ConfigError.notJSON(path: url.path)
        }
        if let key = JSONKeys.firstDuplicate(in: data) { throw ConfigError.duplicateField(path: url.path, field: key) }
        return try GPT2Config(json: json, path: url.path)
    }

    /// The fields Scalpel uses are checked strictly (type and range); the many other fields that
    /// `transformers` writes (`initializer_range`, `task_specific_params`, …) are ignored.
    init(json: [String: Any], path: String) throws {
        func bad(_ key: String, _ expected: String) -> ConfigError {
            .badField(path: path, field: key, value: json[key].map(JSONNumbers.describe) ?? "missing", expected: expected)
        }
        func isAbsent(_ key: String) -> Bool { json[key] == nil || json[key] is NSNull }
        func int(_ key: String, default value: Int? = nil, minimum: Int = 1) throws -> Int {
            if isAbsent(key), let value { return value }
            guard let v = JSONNumbers.integer(json[key]), v >= minimum, v <= Self.maximumSize else {
                throw bad(key, "an integer from \(minimum) to \(Self.maximumSize)")
            }
            return v
        }
        func string(_ key: String) throws -> String? {
            if isAbsent(key) { return nil }
            guard let text = json[key] as? String else { throw bad(key, "a string") }
            return text
        }
        func flag(_ key: String) throws -> Bool? {
            if isAbsent(key) { return nil }
            guard let value = JSONNumbers.boolean(json[key]) else { throw bad(key, "true or false") }
            return value
        }
        if let type = try string("model_type"), type != "gpt2" {
            throw ConfigError.unsupportedArchitecture(path: path, found: "model_type \"\(type)\"")
        }
        if !isAbsent("architectures") {
            guard let architectures = json["architectures"] as? [String] else { throw bad("architectures", "a list of strings such as [\"GPT2LMHeadModel\"]") }
            if let other = architectures.first(where: { !$0.hasPrefix("GPT2") }) {
                throw ConfigError.unsupportedArchitecture(path: path, found: "architecture \"\(other)\"")
            }
        }
        let activation = try string("activation_function") ?? "gelu_new"
        guard activation == "gelu_new" else {
            throw ConfigError.unsupportedActivation(path: path, found: activation)
        }
        for key in ["scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"] where try flag(key) == true {
            throw ConfigError.unsupportedOption(path: path, field: key)
        }
        if try flag("scale_attn_weights") == false {
            throw ConfigError.unsupportedOption(path: path, field: "scale_attn_weights")
        }
        let nEmbd = try int("n_embd"), nHead = try int("n_head")
        guard nEmbd % nHead == 0 else {
            throw ConfigError.badField(path: path, field: "n_head", value: "\(nHead)",
                                       expected: "a divisor of n_embd (\(nEmbd))")
        }
        // An absent epsilon is GPT-2's 1e-5; a present one (null included) must be usable as a Float.
        var epsilon: Float = 1e-5
        if json["layer_norm_epsilon"] != nil {
            guard let value = JSONNumbers.number(json["layer_norm_epsilon"]), Float(value) > 0, Float(value).isFinite else {
                throw bad("layer_norm_epsilon", "a positive number such as 1e-05")
            }
            epsilon = Float(value)
        }
        let vocabSize = try int("vocab_size")
        let bosTokenID = isAbsent("bos_token_id") ? nil : try int("bos_token_id", minimum: 0)
        if let bosTokenID, bosTokenID >= vocabSize {
            throw bad("bos_token_id", "a token id below vocab_size (\(vocabSize))")
        }
        self.init(nLayer: try int("n_layer", minimum: 0), nEmbd: nEmbd, nHead: nHead,
                  nInner: try int("n_inner", default: 4 * nEmbd),
                  nPositions: try int("n_positions", default: try int("n_ctx", default: 1024)),
                  vocabSize: vocabSize, layerNormEpsilon: epsilon, bosTokenID: bosTokenID)
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
    case duplicateField(path: String, field: String)
    case unsupportedArchitecture(path: String, found: String)
    case unsupportedActivation(path: String, found: String)
    case unsupportedOption(path: String, field: String)

    public var message: String {
        switch self {
        case let .notJSON(path):
            return "\(path): not a JSON object. A checkpoint's config.json must be the file transformers writes."
        case let .badField(path, field, value, expected):
            return "\(path): field \"\(field)\" is \(value); expected \(expected)."
        case let .duplicateField(path, field):
            return "\(path): field \"\(field)\" is given twice. Keep one of them."
        case let .unsupportedArchitecture(path, found):
            return "\(path): \(found) is not supported. Scalpel runs GPT-2-family models (model_type \"gpt2\", GPT2LMHeadModel)."
        case let .unsupportedActivation(path, found):
            return "\(path): activation_function \"\(found)\" is not supported. Scalpel implements GPT-2's \"gelu_new\" only."
        case let .unsupportedOption(path, field):
            return "\(path): \"\(field)\" changes attention in a way Scalpel does not implement. Use a standard GPT-2 config."
        }
    }
}

/// JSONSerialization gives integers, floats and booleans alike as NSNumber (`true` reads as 1);
/// these tell them apart.
enum JSONNumbers {
    private static let booleanType = type(of: NSNumber(value: true))

    /// An integer written as one (`12`, not `12.0` or `true`) that fits an Int.
    static func integer(_ value: Any?) -> Int? {
        guard let number = value as? NSNumber, type(of: number) != booleanType, !(number is NSDecimalNumber) else { return nil }
        switch String(cString: number.objCType) {
        case "i", "l", "q", "s": return number.intValue
        case "I", "L", "Q", "S": return Int(exactly: number.uint64Value)
        default: return nil
        }
    }

    /// A finite number, integer or not (not a boolean).
    static func number(_ value: Any?) -> Double? {
        guard let number = value as? NSNumber, type(of: number) != booleanType, number.doubleValue.isFinite else { return nil }
        return number.doubleValue
    }

    static func boolean(_ value: Any?) -> Bool? {
        guard let number = value as? NSNumber, type(of: number) == booleanType else { return nil }
        return number.boolValue
    }

    /// A value as the user wrote it, for messages.
    static func describe(_ value: Any) -> String {
        if let flag = boolean(value) { return flag ? "true" : "false" }
        if let text = value as? String { return "\"\(text)\"" }
        if value is NSNull { return "null" }
        return "\(value)"
    }
}

/// Finds a key given twice in one JSON object, which JSONSerialization silently resolves to the
/// last. Runs on text that already parsed as JSON, so it only tracks strings and nesting.
enum JSONKeys {
    static func firstDuplicate(in data: Data) -> String? {
        let bytes = [UInt8](data)
        // Per open object: its keys so far, and whether the next string is a key.
        var objects: [(keys: Set<[UInt8]>, expectingKey: Bool)] = []
        var inObject: [Bool] = []  // per open container: object (true) or array
        var i = 0
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "{"): inObject.append(true); objects.append(([], true))
            case UInt8(ascii: "["): inObject.append(false)
            case UInt8(ascii: "}"): inObject.removeLast(); objects.removeLast()
            case UInt8(ascii: "]"): inObject.removeLast()
            case UInt8(ascii: ","): if inObject.last == true { objects[objects.count - 1].expectingKey = true }
            case UInt8(ascii: "\""):
                var end = i + 1
                while end < bytes.count && bytes[end] != UInt8(ascii: "\"") { end += bytes[end] == UInt8(ascii: "\\") ? 2 : 1 }
                if inObject.last == true, objects[objects.count - 1].expectingKey {
                    let key = Array(bytes[(i + 1)..<min(end, bytes.count)])
                    if !objects[objects.count - 1].keys.insert(key).inserted { return String(decoding: key, as: UTF8.self) }
                    objects[objects.count - 1].expectingKey = false
                }
                i = end
            default: break
            }
            i += 1
        }
        return nil
    }
}
