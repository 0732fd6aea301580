import Foundation

/// The `prompts/` group of trace and lens files: what is needed to read their results without the
/// model (DESIGN.md "Output conventions").
/// - `text` [prompt], `tokens` [prompt, pos] int32 padded with -1, `lengths` [prompt];
/// - `token_strings` [prompt, pos]: each token's text, padded with "" like `tokens`;
/// - when any item has them: `answer`, `corrupted_prompt`, `corrupted_answer` [prompt] ("" for an
///   item without one).
public struct PromptsGroup {
    public var items: [PromptItem]
    public var tokens: [[Int]]
    public var tokenStrings: [[String]]

    public init(items: [PromptItem], tokens: [[Int]], tokenText: (Int) -> String) {
        precondition(items.count == tokens.count, "one item per tokenized prompt")
        self.items = items
        self.tokens = tokens
        tokenStrings = tokens.map { $0.map(tokenText) }
    }

    init(items: [PromptItem], tokens: [[Int]], tokenStrings: [[String]]) {
        self.items = items; self.tokens = tokens; self.tokenStrings = tokenStrings
    }

    func write(_ root: HDF5Group) throws {
        let group = try root.createGroup("prompts")
        let count = tokens.count, maxLength = tokens.map(\.count).max() ?? 0
        try group.writeStrings("text", items.map(\.prompt), dims: ["prompt"])
        try Self.writeTokens("tokens", tokens, in: group)
        try group.writeInt32("lengths", tokens.map { Int32($0.count) }, shape: [count], dims: ["prompt"])
        let strings = tokenStrings.flatMap { $0 + Array(repeating: "", count: maxLength - $0.count) }
        try group.writeStrings("token_strings", strings, shape: [count, maxLength], dims: ["prompt", "pos"])
        let optional: [(String, KeyPath<PromptItem, String?>)] = [
            ("answer", \.answer), ("corrupted_prompt", \.corruptedPrompt), ("corrupted_answer", \.corruptedAnswer)]
        for (name, field) in optional where items.contains(where: { $0[keyPath: field] != nil }) {
            try group.writeStrings(name, items.map { $0[keyPath: field] ?? "" }, dims: ["prompt"])
        }
    }

    /// Token ids [prompt, pos] as int32, padded with -1 to the longest prompt: `tokens`, and the
    /// `corrupted_tokens` that causal analyses add.
    static func writeTokens(_ name: String, _ tokens: [[Int]], in group: HDF5Group) throws {
        let width = tokens.map(\.count).max() ?? 0
        let padded = tokens.flatMap { $0.map(Int32.init) + Array(repeating: -1, count: width - $0.count) }
        try group.writeInt32(name, padded, shape: [tokens.count, width], dims: ["prompt", "pos"])
    }
}
