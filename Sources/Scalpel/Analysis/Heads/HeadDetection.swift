import Foundation

/// What kind of head a detector looks for (DESIGN.md "Causal analyses", `scalpel heads --detect`).
public enum HeadDetector: String, CaseIterable, Sendable {
    /// Attends from each token to the one before it.
    case previousToken = "previous-token"
    /// Attends from a token to earlier copies of the same token.
    case duplicateToken = "duplicate-token"
    /// Attends from a token to the token after an earlier copy of it.
    case induction
    /// Attends from a token to earlier tokens of its own family (the study's "similarity detection").
    case sameFamily = "same-family"

    /// TransformerLens's name (`head_detector.HEAD_NAMES`); nil for Scalpel's own `same-family`.
    public var transformerLensName: String? {
        switch self {
        case .previousToken: return "previous_token_head"
        case .duplicateToken: return "duplicate_token_head"
        case .induction: return "induction_head"
        case .sameFamily: return nil
        }
    }
}

/// Which family a token belongs to, for the `same-family` detector: token id → family index, and
/// the families' names. Tokens of no family (BOS, punctuation, spaces) score nothing.
public struct TokenFamilies: Sendable {
    public var names: [String]
    public var family: [Int: Int]

    public init(names: [String], family: [Int: Int]) { self.names = names; self.family = family }

    /// The default: each token of the prompts is put in a family by its text, leading spaces
    /// ignored: `numbers` (only digits: " 1", "42"), `capitalised` (letters, the first upper case:
    /// names, months, days), `words` (only lower-case letters); any other token (BOS, punctuation,
    /// spaces, mixed text) is in none. So digits attend to digits and names to names.
    public static func byText(tokens: [[Int]], text: (Int) -> String) -> TokenFamilies {
        let names = ["numbers", "capitalised", "words"]
        var family: [Int: Int] = [:]
        for id in Set(tokens.joined()) {
            let word = text(id).trimmingCharacters(in: .whitespaces)
            guard !word.isEmpty else { continue }
            if word.unicodeScalars.allSatisfy({ CharacterSet.decimalDigits.contains($0) }) { family[id] = 0 }
            else if word.unicodeScalars.allSatisfy({ CharacterSet.letters.contains($0) }) {
                family[id] = word.first!.isUppercase ? 1 : 2
            }
        }
        return TokenFamilies(names: names, family: family)
    }

    /// Families from a families file (`SequenceFamilies.load`): a token belongs to the family one of
    /// whose items is its text, leading spaces ignored (" March" and "March" are both months).
    /// A text in several families belongs to the first.
    public static func from(_ families: [SequenceFamily], tokens: [[Int]], text: (Int) -> String) -> TokenFamilies {
        var family: [Int: Int] = [:]
        for id in Set(tokens.joined()) {
            let word = text(id).trimmingCharacters(in: .whitespaces)
            if let index = families.firstIndex(where: { $0.items.contains(word) }) { family[id] = index }
        }
        return TokenFamilies(names: families.map(\.name), family: family)
    }
}

/// Head detectors over every head of a model, as TransformerLens's `head_detector.detect_head` with
/// error measure `mul` for the first three: per prompt, with A a head's pattern [query, key] and D the
/// detector's 0/1 pattern of the prompt's tokens, column 0 of A zeroed with `excludeBOS` and its
/// diagonal with `excludeCurrentToken`, score = Σ(A ⊙ D) / Σ A; the result is the mean over prompts.
/// D (lower triangular, from the token ids including BOS): previous token D[i, i−1] = 1; duplicate
/// token D[i, j] = 1 for j < i with tok[j] = tok[i]; induction D[i, j] = 1 for 1 ≤ j ≤ i with
/// tok[j−1] = tok[i] (TransformerLens includes j = i).
///
/// `same-family` is Scalpel's: for every query position i whose token has a family and that has an
/// earlier token of the same family, the share of i's attention (after the same exclusions) on
/// earlier tokens j < i of that family; the score is the mean over all such query positions of all
/// prompts.
///
/// Several detectors share one forward pass: the patterns of every layer are captured once per batch
/// of `batchSize` prompts and every detector reads them.
public struct HeadDetection: Sendable {
    public var detectors: [HeadDetector]
    public var excludeBOS: Bool
    public var excludeCurrentToken: Bool
    /// Needed by `same-family`; ignored by the others.
    public var families: TokenFamilies?
    /// Prompts per forward pass. Shards deal whole batches (`--shard`), so a prompt's scores are
    /// computed in the same batch, and have the same bits, sharded or not.
    public static let batchSize = 16

    public init(detectors: [HeadDetector], excludeBOS: Bool = false, excludeCurrentToken: Bool = false, families: TokenFamilies? = nil) {
        precondition(!detectors.isEmpty, "at least one detector")
        self.detectors = detectors; self.excludeBOS = excludeBOS; self.excludeCurrentToken = excludeCurrentToken; self.families = families
    }

    public init(detector: HeadDetector, excludeBOS: Bool = false, excludeCurrentToken: Bool = false, families: TokenFamilies? = nil) {
        self.init(detectors: [detector], excludeBOS: excludeBOS, excludeCurrentToken: excludeCurrentToken, families: families)
    }

    /// Parses `--detect`: one detector, several separated by commas (order kept, repeats refused),
    /// or `all` (the four, in their declaration order).
    public static func parse(_ text: String) throws -> [HeadDetector] {
        if text.trimmingCharacters(in: .whitespaces) == "all" { return HeadDetector.allCases }
        var out: [HeadDetector] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            guard let detector = HeadDetector(rawValue: part) else { throw HeadsError.unknownDetector(text: text, part: part) }
            guard !out.contains(detector) else { throw HeadsError.repeatedDetector(detector.rawValue) }
            out.append(detector)
        }
        return out
    }

    /// D of one prompt, row-major [n, n] (the first three detectors).
    public static func detectionPattern(_ detector: HeadDetector, tokens: [Int]) -> [Bool] {
        let n = tokens.count
        var d = Array(repeating: false, count: n * n)
        for i in 0..<n {
            switch detector {
            case .previousToken: if i > 0 { d[i * n + i - 1] = true }
            case .duplicateToken: for j in 0..<i where tokens[j] == tokens[i] { d[i * n + j] = true }
            case .induction: for j in stride(from: 1, through: i, by: 1) where tokens[j - 1] == tokens[i] { d[i * n + j] = true }
            case .sameFamily: break
            }
        }
        return d
    }

    /// Checks the prompts can be scored: each has 2 tokens or more (as TransformerLens asks), and
    /// for every detector at least one prompt has something to detect (a repeat for duplicate and
    /// induction heads, two tokens of one family for `same-family`).
    public func check(_ prompts: [[Int]]) throws {
        if prompts.isEmpty { throw RunError.emptyBatch }
        for (index, prompt) in prompts.enumerated() where prompt.count < 2 { throw HeadsError.promptTooShort(index: index, length: prompt.count) }
        for detector in detectors {
            switch detector {
            case .previousToken: continue
            case .duplicateToken, .induction:
                if !prompts.contains(where: { Self.detectionPattern(detector, tokens: $0).contains(true) }) {
                    throw HeadsError.nothingToScore(detector: detector.rawValue, reason: "no prompt repeats a token, so there is no "
                        + (detector == .induction ? "earlier copy to look after" : "earlier copy to attend to")
                        + ". Give prompts with a repeat (e.g. --random-repeated 20 --seed 0).")
                }
            case .sameFamily:
                guard let families else { throw HeadsError.nothingToScore(detector: detector.rawValue, reason: "no token families were given.") }
                if !prompts.contains(where: { !sameFamilyQueries($0, families: families).isEmpty }) {
                    throw HeadsError.nothingToScore(detector: detector.rawValue, reason: "no prompt has two tokens of one family (families: \(families.names.joined(separator: ", "))). Give prompts with several items of a family, or a --families file.")
                }
            }
        }
    }

    /// Query positions of a prompt that `same-family` scores, with the earlier positions of their family.
    func sameFamilyQueries(_ tokens: [Int], families: TokenFamilies) -> [(query: Int, keys: [Int])] {
        var out: [(Int, [Int])] = []
        for i in tokens.indices {
            guard let f = families.family[tokens[i]] else { continue }
            let keys = (0..<i).filter { families.family[tokens[$0]] == f && !(excludeBOS && $0 == 0) }
            if !keys.isEmpty { out.append((i, keys)) }
        }
        return out
    }

    /// Every detector's grid over all the prompts (BOS included when wanted), in `detectors` order.
    public func run(_ model: Model, prompts: [[Int]]) throws -> [HeadGrid] {
        try scores(model, prompts: prompts).grids()
    }

    /// Per-prompt scores of the prompts at `selected` (default all; a shard's share, whole batches of
    /// `batchSize`) — the whole list is checked, so every shard refuses the same runs.
    public func scores(_ model: Model, prompts: [[Int]], selected: [Int]? = nil,
                       progress: ((Int, Int) -> Void)? = nil) throws -> DetectionScores {
        for (index, prompt) in prompts.enumerated() where prompt.count > model.config.nPositions {
            throw RunError.promptTooLong(index: index, length: prompt.count, limit: model.config.nPositions)
        }
        try check(prompts)
        let selected = selected ?? Array(prompts.indices)
        let layers = model.blocks.indices.filter { model.blocks[$0].attention != nil }
        let shape = HeadGrid(model: model)
        var out = DetectionScores(detectors: detectors, layers: shape.layers, heads: shape.heads, prompts: selected)
        let cells = shape.values.count, width = detectors.count * cells
        out.sums = Array(repeating: 0, count: selected.count * width)
        out.counts = Array(repeating: 0, count: selected.count * width)
        guard let last = layers.last else { return out }
        let hooks = HookFilter(layers.map { HookPoint.pattern($0) })
        // The batches of the whole run (prompt p in batch p / batchSize) that hold selected prompts.
        var start = 0
        while start < selected.count {
            let batchNumber = selected[start] / Self.batchSize
            var end = start
            while end < selected.count && selected[end] / Self.batchSize == batchNumber { end += 1 }
            let batch = selected[start..<end].map { prompts[$0] }
            let result = try model.run(batch, capture: hooks, span: RunSpan(stop: .pattern(last)))
            for (b, tokens) in batch.enumerated() {
                let row = (start + b) * width
                for (d, detector) in detectors.enumerated() {
                    let pattern = detector == .sameFamily ? [] : Self.detectionPattern(detector, tokens: tokens)
                    let queries = detector == .sameFamily ? sameFamilyQueries(tokens, families: families!) : []
                    for layer in layers {
                        let captured = try result.cache.require(.pattern(layer), prompt: b)
                        for head in 0..<model.blocks[layer].attention!.nHead {
                            let slot = row + d * cells + layer * shape.heads + head
                            let (sum, count) = score(captured.pointer + head * tokens.count * tokens.count, n: tokens.count,
                                                     detector: detector, pattern: pattern, queries: queries)
                            out.sums[slot] = sum
                            out.counts[slot] = count
                        }
                    }
                }
            }
            start = end
            progress?(start, selected.count)
        }
        return out
    }

    /// One head on one prompt: (Σ score, how many scores) — (Σ(A ⊙ D)/ΣA, 1) for TransformerLens's
    /// detectors, (Σ shares, query positions) for `same-family`.
    func score(_ a: UnsafePointer<Float>, n: Int, detector: HeadDetector, pattern d: [Bool],
               queries: [(query: Int, keys: [Int])]) -> (Double, Int) {
        func kept(_ i: Int, _ j: Int) -> Double {
            if excludeBOS && j == 0 { return 0 }
            if excludeCurrentToken && i == j { return 0 }
            return Double(a[i * n + j])
        }
        if detector == .sameFamily {
            var sum = 0.0
            for (i, keys) in queries {
                let total = (0...i).reduce(0.0) { $0 + kept(i, $1) }
                let same = keys.reduce(0.0) { $0 + kept(i, $1) }
                sum += total > 0 ? same / total : 0
            }
            return (sum, queries.count)
        }
        var hit = 0.0, total = 0.0
        for i in 0..<n {
            for j in 0...i {
                let v = kept(i, j)
                total += v
                if d[i * n + j] { hit += v }
            }
        }
        return (hit / total, 1)
    }

    /// Seeded random repeated tokens, TransformerLens's usual induction test: `count` prompts
    /// `[BOS] + r + r`, r `length` ids drawn uniformly from 0 ..< vocab − 1 (never the last id, GPT-2's
    /// BOS) by `SeededRandom(seed:)` (splitmix64) as `next() % (vocab − 1)`, prompt after prompt.
    public static func randomRepeatedPrompts(count: Int, length: Int, seed: UInt64, vocabSize: Int, bos: Int?) -> [[Int]] {
        var random = SeededRandom(seed: seed)
        return (0..<count).map { _ in
            let half = (0..<length).map { _ in Int(random.next() % UInt64(vocabSize - 1)) }
            return (bos.map { [$0] } ?? []) + half + half
        }
    }
}

/// Detector scores of every head on each prompt of (part of) a run, before the mean over prompts:
/// what a shard computes and what `merge` adds up, in prompt order, to the unsharded grids.
public struct DetectionScores: Sendable, Equatable {
    public var detectors: [HeadDetector]
    public var layers: Int
    public var heads: Int
    /// The run's prompts these scores are of, increasing.
    public var prompts: [Int]
    /// Per prompt, per detector, per head (row-major [prompt, detector, layer, head]): the sum of its
    /// scores and how many there are (0 for a head the block does not have).
    public var sums: [Double] = []
    public var counts: [Int] = []

    public init(detectors: [HeadDetector], layers: Int, heads: Int, prompts: [Int], sums: [Double] = [], counts: [Int] = []) {
        self.detectors = detectors; self.layers = layers; self.heads = heads; self.prompts = prompts
        self.sums = sums; self.counts = counts
    }

    /// Each detector's mean over the prompts: Σ sums / Σ counts, summed prompt after prompt; nil
    /// where nothing was scored.
    public func grids() -> [HeadGrid] {
        let cells = layers * heads, width = detectors.count * cells
        return detectors.indices.map { d in
            var grid = HeadGrid(layers: layers, heads: heads, values: Array(repeating: nil, count: cells))
            for cell in 0..<cells {
                var sum = 0.0, count = 0
                for p in prompts.indices { sum += sums[p * width + d * cells + cell]; count += counts[p * width + d * cells + cell] }
                grid.values[cell] = count > 0 ? sum / Double(count) : nil
            }
            return grid
        }
    }

    /// The scores of several parts of one run, as one (prompts in increasing order).
    public static func joined(_ parts: [DetectionScores]) -> DetectionScores {
        let first = parts[0], width = first.detectors.count * first.layers * first.heads
        var rows: [(prompt: Int, part: Int, local: Int)] = []
        for (i, part) in parts.enumerated() { for (j, p) in part.prompts.enumerated() { rows.append((p, i, j)) } }
        rows.sort { $0.prompt < $1.prompt }
        var out = DetectionScores(detectors: first.detectors, layers: first.layers, heads: first.heads, prompts: rows.map(\.prompt))
        for row in rows {
            out.sums += parts[row.part].sums[(row.local * width)..<((row.local + 1) * width)]
            out.counts += parts[row.part].counts[(row.local * width)..<((row.local + 1) * width)]
        }
        return out
    }
}
