import Foundation

/// A set of hook names and glob patterns (`*` matches any run of characters, including dots):
/// `blocks.*.hook_resid_post`, `blocks.9.attn.hook_pattern`. A run resolves it once against the
/// model's hook points (`points(in:)`); the forward pass then only asks the resulting set.
public struct HookFilter: Sendable, Equatable {
    public var patterns: [String]

    public init(_ patterns: [String]) { self.patterns = patterns }
    /// Exactly these hook points.
    public init(_ points: [HookPoint]) { patterns = points.map(\.name) }
    public static let none = HookFilter([String]())

    /// Parses a comma-separated list (`--hooks`); an empty list or entry is an error.
    public init(list: String) throws {
        patterns = list.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !patterns.contains(where: \.isEmpty) else { throw HookFilterError.emptyPattern(list: list) }
    }

    public var isEmpty: Bool { patterns.isEmpty }

    public func matches(_ name: String) -> Bool {
        patterns.contains { Self.glob($0, name) }
    }

    /// The hook points of `model` this filter selects, in the order they fire.
    public func points(in model: Model) -> [HookPoint] {
        guard !patterns.isEmpty else { return [] }
        return HookPoint.all(in: model).filter { matches($0.name) }
    }

    /// As `points(in:)`, but every pattern must select something: the first that selects nothing
    /// is an error naming the valid names closest to it.
    public func resolve(in model: Model) throws -> [HookPoint] {
        if let (pattern, suggestions) = unmatched(in: model).first {
            throw HookError.noMatch(pattern: pattern, suggestions: suggestions)
        }
        return points(in: model)
    }

    /// The patterns that match no hook of `model`, each with the valid names closest to it.
    public func unmatched(in model: Model) -> [(pattern: String, suggestions: [String])] {
        let names = HookPoint.all(in: model).map(\.name)
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

public enum HookError: UserFacingError, Equatable {
    case noMatch(pattern: String, suggestions: [String])

    public var message: String {
        switch self {
        case let .noMatch(pattern, suggestions):
            return "No hook point matches \"\(pattern)\". Closest valid names: \(suggestions.joined(separator: ", ")). Names follow TransformerLens, e.g. blocks.0.hook_resid_post; * matches anything."
        }
    }
}

/// Reads or replaces the activation at a hook point during a run: called with the hook point,
/// the prompt's index in the batch and that prompt's activation, which it may modify in place.
public typealias Intervention = (_ hook: HookPoint, _ prompt: Int, _ activation: inout Tensor) -> Void

/// Activations captured during a run, per hook point and prompt.
public struct ActivationCache: Sendable {
    public private(set) var values: [HookPoint: [Tensor]] = [:]
    /// The captured hook points, in the order they fired.
    public private(set) var points: [HookPoint] = []

    public var names: [String] { points.map(\.name) }

    public subscript(hook: HookPoint, prompt: Int) -> Tensor? { values[hook]?[prompt] }
    public subscript(hook: HookPoint) -> [Tensor]? { values[hook] }

    /// By TransformerLens name, e.g. `cache["blocks.3.hook_resid_post", 0]`; nil for a name that
    /// is not captured or is no hook point at all.
    public subscript(name: String, prompt: Int) -> Tensor? { HookPoint(name: name).flatMap { self[$0, prompt] } }
    public subscript(name: String) -> [Tensor]? { HookPoint(name: name).flatMap { self[$0] } }

    mutating func append(_ hook: HookPoint, _ tensor: Tensor) {
        if values[hook] == nil { points.append(hook) }
        values[hook, default: []].append(tensor)
    }
}
