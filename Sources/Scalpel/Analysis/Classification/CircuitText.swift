import Foundation

extension Circuit {
    /// The circuit as a circuit file (circuits/README.md) that `Circuit.parse` reads back to the same
    /// heads and positions: a `description` (JSON-quoted, which YAML reads as a double-quoted
    /// scalar) and `heads` one per line, in head order, `end` for the last position.
    public var fileText: String {
        var out = "# Written by scalpel classify. Score it with: scalpel circuit FILE --dataset D\n"
        out += "description: \(JSONText.quote(description))\n"
        guard !heads.isEmpty else { return out + "heads: {}\n" }
        out += "heads:\n"
        for head in heads.keys.sorted() {
            switch heads[head]! {
            case .all: out += "  \"\(head)\": all\n"
            case let .only(list): out += "  \"\(head)\": [\(list.map { $0 == -1 ? "end" : String($0) }.joined(separator: ", "))]\n"
            case let .allBut(list):
                // Circuit files and classify never make this (a file cannot say "all but"); kept visible as a comment.
                out += "  \"\(head)\": all  # in memory: all but \(list)\n"
            }
        }
        return out
    }
}
