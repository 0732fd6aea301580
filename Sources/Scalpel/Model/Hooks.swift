import Foundation

/// The hook points of a model, named as in TransformerLens (`blocks.9.attn.hook_z`).
///
/// Per prompt, token-wise hooks have shape [pos, …] (`hook_q` [pos, head, d_head], `mlp.hook_pre`
/// [pos, d_mlp], `hook_scale` [pos, 1]); `attn.hook_attn_scores` and `attn.hook_pattern` have shape
/// [head, query, key]. Hooks of a missing half (an MLP-only block has no `attn.*`) do not fire;
/// `hook_resid_pre`, `hook_resid_mid` and `hook_resid_post` fire for every block.
public enum HookName {
    public static let embed = "hook_embed"
    public static let posEmbed = "hook_pos_embed"
    public static let finalScale = "ln_final.hook_scale"
    public static let finalNormalized = "ln_final.hook_normalized"

    public static func block(_ i: Int, _ suffix: String) -> String { "blocks.\(i).\(suffix)" }
    public static func residPre(_ i: Int) -> String { block(i, "hook_resid_pre") }
    public static func residMid(_ i: Int) -> String { block(i, "hook_resid_mid") }
    public static func residPost(_ i: Int) -> String { block(i, "hook_resid_post") }

    static let attentionSuffixes = ["ln1.hook_scale", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_attn_scores",
                                    "attn.hook_pattern", "attn.hook_z", "hook_attn_out"]
    static let mlpSuffixes = ["ln2.hook_scale", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out"]

    /// Every hook point of `model`, in the order they fire.
    public static func all(in model: Model) -> [String] {
        var names = [embed, posEmbed]
        for (i, block) in model.blocks.enumerated() {
            names.append(residPre(i))
            if block.attention != nil { names += attentionSuffixes.map { self.block(i, $0) } }
            names.append(residMid(i))
            if let mlp = block.mlp {
                names += mlpSuffixes.filter { $0 != "ln2.hook_scale" || mlp.ln != nil }.map { self.block(i, $0) }
            }
            names.append(residPost(i))
        }
        return names + [finalScale, finalNormalized]
    }
}

/// A set of hook names and glob patterns (`*` matches any run of characters, including dots):
/// `blocks.*.hook_resid_post`, `blocks.9.attn.hook_pattern`.
public struct HookFilter: Sendable, Equatable {
    public var patterns: [String]

    public init(_ patterns: [String]) { self.patterns = patterns }
    public static let none = HookFilter([])

    /// Parses a comma-separated list (`--hooks`); an empty list or entry is an error.
    public init(list: String) throws {
        patterns = list.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !patterns.contains(where: \.isEmpty) else { throw HookFilterError.emptyPattern(list: list) }
    }

    public var isEmpty: Bool { patterns.isEmpty }

    public func matches(_ name: String) -> Bool {
        patterns.contains { Self.glob($0, name) }
    }

    /// The patterns that match no hook of `model`, each with the valid names closest to it.
    public func unmatched(in model: Model) -> [(pattern: String, suggestions: [String])] {
        let names = HookName.all(in: model)
        return patterns.filter { pattern in !names.contains { Self.glob(pattern, $0) } }
            .map { pattern in (pattern, Self.closest(to: pattern, among: names)) }
    }

    /// Whether `text` matches `pattern`, where `*` matches any run of characters. Greedy, with one
    /// backtrack point (the last star): O(pattern × text) at worst, where trying every split at
    /// every star took exponential time (8 stars ran past a minute).
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let pattern = Array(pattern.utf8), text = Array(text.utf8)
        let star = UInt8(ascii: "*")
        var p = 0, t = 0
        var lastStar: Int?, textAtLastStar = 0
        while t < text.count {
            if p < pattern.count && pattern[p] == star {
                lastStar = p; textAtLastStar = t; p += 1       // let the star match nothing, for now
            } else if p < pattern.count && pattern[p] == text[t] {
                p += 1; t += 1
            } else if let lastStar {
                p = lastStar + 1; textAtLastStar += 1; t = textAtLastStar  // the star takes one more character
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == star { p += 1 }
        return p == pattern.count
    }

    static func closest(to pattern: String, among names: [String], count: Int = 3) -> [String] {
        let generic = Set(names.map { $0.replacingOccurrences(of: #"blocks\.\d+\."#, with: "blocks.*.", options: .regularExpression) })
        let candidates = generic.union(names)
        let scored: [(name: String, distance: Int)] = candidates.map { ($0, editDistance($0, pattern)) }
        let ranked = scored.sorted { ($0.distance, $0.name) < ($1.distance, $1.name) }
        return ranked.prefix(count).map { $0.name }
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
        var previous = Array(0...b.count)
        for i in 1...a.count {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return previous[b.count]
    }
}

public enum HookFilterError: UserFacingError, Equatable {
    case emptyPattern(list: String)

    public var message: String {
        switch self {
        case let .emptyPattern(list):
            return "--hooks \"\(list)\" has an empty entry. Give hook names or globs separated by commas, "
                + "e.g. --hooks \"blocks.*.hook_resid_post,blocks.9.attn.hook_pattern\"."
        }
    }
}

/// Reads or replaces the activation at a hook point during a run: called with the hook's name,
/// the prompt's index in the batch and that prompt's activation, which it may modify in place.
public typealias Intervention = (_ hook: String, _ prompt: Int, _ activation: inout Tensor) -> Void

/// Activations captured during a run, per hook name and prompt.
public struct ActivationCache: Sendable {
    public private(set) var values: [String: [Tensor]] = [:]
    public private(set) var order: [String] = []

    public var names: [String] { order }

    public subscript(hook: String, prompt: Int) -> Tensor? { values[hook]?[prompt] }
    public subscript(hook: String) -> [Tensor]? { values[hook] }

    mutating func append(_ hook: String, _ tensor: Tensor) {
        if values[hook] == nil { order.append(hook); values[hook] = [] }
        values[hook]!.append(tensor)
    }
}
