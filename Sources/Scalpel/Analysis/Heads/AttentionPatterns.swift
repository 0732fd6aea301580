import Foundation

extension HeadIndex {
    /// A comma-separated list such as `9.1,6.1`, in the order given (`heads --pattern`). Syntax only:
    /// ranges are checked against a model by `AttentionPatterns.validate`. Repeated heads are refused.
    public static func list(_ text: String) throws -> [HeadIndex] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        var heads: [HeadIndex] = []
        for part in parts {
            let numbers = part.split(separator: ".", omittingEmptySubsequences: false)
            guard numbers.count == 2, numbers.allSatisfy({ !$0.isEmpty && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) }),
                  let layer = Int(numbers[0]), let head = Int(numbers[1]), layer <= 100_000, head <= 100_000 else {
                throw AttentionPatternError.badHeadList(text, part: part)
            }
            let id = HeadIndex(layer: layer, head: head)
            guard !heads.contains(id) else { throw AttentionPatternError.repeatedHead(id.description) }
            heads.append(id)
        }
        return heads
    }
}

public enum AttentionPatternError: UserFacingError, Equatable {
    case badHeadList(String, part: String)
    case repeatedHead(String)
    case layerOutOfRange(head: String, blocks: Int)
    case noAttention(head: String)
    case headOutOfRange(head: String, heads: Int)
    case destinationOutOfRange(dest: Int, length: Int)
    case unequalLengths(item: Int, length: Int, firstLength: Int)
    case emptyPrompt(item: Int)
    case noPrompts

    public var message: String {
        switch self {
        case let .badHeadList(text, part):
            return "--pattern \"\(SVG.visibleText(text))\": \"\(SVG.visibleText(part))\" is not a head. Give layer.head pairs separated by commas, e.g. 9.1,6.1."
        case let .repeatedHead(head):
            return "--pattern names head \(head) twice."
        case let .layerOutOfRange(head, blocks):
            return "Head \(head): the model has \(blocks) blocks (layers 0…\(blocks - 1))."
        case let .noAttention(head):
            return "Head \(head): block \(head.split(separator: ".")[0]) of this model has no attention half."
        case let .headOutOfRange(head, heads):
            return "Head \(head): layer \(head.split(separator: ".")[0]) has \(heads) heads (0…\(heads - 1))."
        case let .destinationOutOfRange(dest, length):
            return "--dest \(dest) is outside the prompt's \(length) tokens (give 0…\(length - 1), or -1…-\(length) from the end)."
        case let .unequalLengths(item, length, firstLength):
            return "Attention patterns are averaged position by position, so every item needs the same number of tokens: item 1 has \(firstLength), item \(item) has \(length). Give one length (or one --prompt)."
        case let .emptyPrompt(item):
            return "Item \(item) has no tokens (an empty prompt without <|endoftext|>): there is no attention to show."
        case .noPrompts:
            return "There are no prompts to run."
        }
    }
}

/// The attention patterns (`blocks.L.attn.hook_pattern`, [head, query, key]) of chosen heads over a
/// prompt, or averaged over the items of a dataset whose items all have the same number of tokens
/// (position by position; token labels are the first item's). Each prompt's own patterns are kept
/// too (`perPrompt`).
public struct AttentionPatterns: Sendable {
    public var heads: [HeadIndex]
    /// Token ids of every prompt (all the same length).
    public var prompts: [[Int]]
    /// The first prompt's token strings: the labels of the query and key axes.
    public var tokenStrings: [String]
    /// Mean over prompts, row-major [head, query, key]; cells with key > query are 0 (causal mask).
    public var values: [Float]
    /// Per prompt, row-major [prompt, head, query, key], exactly the captured `hook_pattern` values.
    public var perPrompt: [Float]

    public var length: Int { tokenStrings.count }
    public var promptCount: Int { prompts.count }
    public var shape: [Int] { [heads.count, length, length] }
    public static let dims = ["head", "query_pos", "key_pos"]

    /// Attention of head `h` (its index in `heads`) from `query` to `key`, averaged over prompts.
    public func weight(head h: Int, query: Int, key: Int) -> Float {
        values[(h * length + query) * length + key]
    }

    /// Head `h`'s attention from destination `query` over every source position 0..<length.
    public func row(head h: Int, query: Int) -> [Float] {
        let start = (h * length + query) * length
        return Array(values[start..<start + length])
    }

    /// Head `h`'s attention to source `key` from every destination position.
    public func column(head h: Int, key: Int) -> [Float] {
        (0..<length).map { weight(head: h, query: $0, key: key) }
    }

    /// A destination position from `--dest`: 0-based, or negative from the end (-1 = last).
    public func destination(_ dest: Int?) throws -> Int { try Self.destination(dest, length: length) }

    /// `--dest` resolved against prompts of `length` tokens (nil = the last position).
    public static func destination(_ dest: Int?, length: Int) throws -> Int {
        let d = dest ?? -1
        let resolved = d < 0 ? length + d : d
        guard (0..<length).contains(resolved) else { throw AttentionPatternError.destinationOutOfRange(dest: d, length: length) }
        return resolved
    }

    /// The `count` source positions head `h` attends to most from `query`, largest first (ties by position).
    public func topSources(head h: Int, query: Int, count: Int) -> [(position: Int, weight: Float)] {
        let row = row(head: h, query: query)
        let key = row.map { $0.isNaN ? -Float.infinity : $0 }  // a damaged model's NaN ranks last
        return row.indices.filter { $0 <= query }
            .sorted { key[$0] != key[$1] ? key[$0] > key[$1] : $0 < $1 }
            .prefix(count).map { ($0, row[$0]) }
    }

    /// Checks the heads against the model: the layer exists, has attention, and has the head.
    public static func validate(_ heads: [HeadIndex], in model: Model) throws {
        for id in heads {
            guard id.layer < model.blocks.count else { throw AttentionPatternError.layerOutOfRange(head: id.description, blocks: model.blocks.count) }
            guard let attention = model.blocks[id.layer].attention else { throw AttentionPatternError.noAttention(head: id.description) }
            guard id.head < attention.nHead else { throw AttentionPatternError.headOutOfRange(head: id.description, heads: attention.nHead) }
        }
    }

    /// Checks that the prompts can be averaged position by position: at least one, all of one length.
    public static func validate(prompts: [[Int]]) throws {
        guard let first = prompts.first else { throw AttentionPatternError.noPrompts }
        if let empty = prompts.firstIndex(where: \.isEmpty) { throw AttentionPatternError.emptyPrompt(item: empty + 1) }
        if let bad = prompts.firstIndex(where: { $0.count != first.count }) {
            throw AttentionPatternError.unequalLengths(item: bad + 1, length: prompts[bad].count, firstLength: first.count)
        }
    }

    /// Runs the model on the prompts (`batchSize` at a time), capturing only the layers the heads need.
    public static func collect(_ model: Model, prompts: [[Int]], heads: [HeadIndex], batchSize: Int = 16,
                               progress: ((Int) -> Void)? = nil) throws -> AttentionPatterns {
        try validate(heads, in: model)
        try validate(prompts: prompts)
        let n = prompts[0].count, cells = n * n
        let layers = Array(Set(heads.map(\.layer))).sorted()
        let filter = HookFilter(layers.map { HookPoint.pattern($0) })
        var perPrompt: [Float] = []
        perPrompt.reserveCapacity(prompts.count * heads.count * cells)
        var start = 0
        while start < prompts.count {
            let batch = Array(prompts[start..<min(start + max(batchSize, 1), prompts.count)])
            let result = try model.run(batch, capture: filter)
            for p in batch.indices {
                for id in heads {
                    let pattern = try result.cache.require(.pattern(id.layer), prompt: p)
                    precondition(pattern.shape == [model.blocks[id.layer].attention!.nHead, n, n], "hook_pattern is [head, query, key]")
                    let buffer = pattern.buffer
                    perPrompt.append(contentsOf: buffer[(id.head * cells)..<((id.head + 1) * cells)])
                }
            }
            start += batch.count
            progress?(start)
        }
        let block = heads.count * cells
        var values: [Float]
        if prompts.count == 1 {
            values = perPrompt
        } else {
            var sums = [Double](repeating: 0, count: block)
            for p in 0..<prompts.count {
                for i in 0..<block { sums[i] += Double(perPrompt[p * block + i]) }
            }
            values = sums.map { Float($0 / Double(prompts.count)) }
        }
        return AttentionPatterns(heads: heads, prompts: prompts, tokenStrings: prompts[0].map(model.tokenText),
                                 values: values, perPrompt: perPrompt)
    }
}
