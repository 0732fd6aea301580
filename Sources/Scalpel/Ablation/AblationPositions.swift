import Foundation

/// The positions of a prompt where an ablation writes. Indices count from 0; a negative index
/// counts from the end (-1, also written `end`, is the last token), so one list fits prompts of
/// any length. `allBut` is what a kept head is ablated at: everywhere except where it keeps its own.
public enum AblationPositions: Sendable, Equatable, CustomStringConvertible {
    case all
    case only([Int])
    case allBut([Int])

    /// The positions written in a prompt of `length` tokens; listed ones outside it are left out
    /// (`Model.checkAblations` reports them before a run).
    public func resolve(length: Int) -> [Int] {
        func place(_ list: [Int]) -> Set<Int> { Set(list.map { $0 < 0 ? length + $0 : $0 }.filter { (0..<length).contains($0) }) }
        switch self {
        case .all: return Array(0..<length)
        case let .only(list): return place(list).sorted()
        case let .allBut(list): let kept = place(list); return (0..<length).filter { !kept.contains($0) }
        }
    }

    /// The first listed position that does not exist in a prompt of `length` tokens.
    public func firstOutOfRange(length: Int) -> Int? {
        switch self {
        case .all: return nil
        case let .only(list), let .allBut(list): return list.first { !(0..<length).contains($0 < 0 ? length + $0 : $0) }
        }
    }

    /// The syntax `parse` reads: `all`, `0,-1`, `all but -1`. Archives store it.
    public var description: String {
        switch self {
        case .all: return "all"
        case let .only(list): return list.map(String.init).joined(separator: ",")
        case let .allBut(list): return "all but " + list.map(String.init).joined(separator: ",")
        }
    }

    /// Reads `description`'s syntax; `end` stands for -1. Nil for anything else, an empty list or
    /// a position listed twice.
    public init?(_ text: String) {
        if text == "all" { self = .all; return }
        let (prefix, build): (String, ([Int]) -> AblationPositions) = text.hasPrefix("all but ") ? ("all but ", { .allBut($0) }) : ("", { .only($0) })
        guard let list = Self.list(text.dropFirst(prefix.count).split(separator: ",", omittingEmptySubsequences: false).map(String.init)) else { return nil }
        self = build(list)
    }

    /// Position entries as written in a plan (`0`, `-1`, `end`): nil unless each is one, at least one
    /// is given and none twice.
    static func list(_ entries: [String]) -> [Int]? {
        let positions = entries.map { $0.trimmingCharacters(in: .whitespaces) }.map { $0 == "end" ? -1 : Int($0) }
        guard !positions.isEmpty, positions.allSatisfy({ $0 != nil }) else { return nil }
        let list = positions.map { $0! }
        return Set(list).count == list.count ? list : nil
    }
}
