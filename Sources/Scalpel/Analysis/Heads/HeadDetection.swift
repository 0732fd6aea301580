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
/// error measure `mul` for the first three: per prompt (run alone; packing changes nothing), with A a
/// head's pattern [query, key] and D the detector's 0/1 pattern of the prompt's tokens, column 0 of A
/// zeroed with `excludeBOS` and its diagonal with `excludeCurrentToken`, score = Σ(A ⊙ D) / Σ A; the
/// result is the mean over prompts. D (lower triangular, from the token ids including BOS):
/// previous token D[i, i−1] = 1; duplicate token D[i, j] = 1 for j < i with tok[j] = tok[i];
/// induction D[i, j] = 1 for 1 ≤ j ≤ i with tok[j−1] = tok[i] (TransformerLens includes j = i).
///
/// `same-family` is Scalpel's: for every query position i whose token has a family and that has an
/// earlier token of the same family, the share of i's attention (after the same exclusions) on
/// earlier tokens j < i of that family; the score is the mean over all such query positions of all
/// prompts.
public struct HeadDetection: Sendable {
    public var detector: HeadDetector
    public var excludeBOS: Bool
    public var excludeCurrentToken: Bool
    /// Needed by `same-family`; ignored by the others.
    public var families: TokenFamilies?

    public init(detector: HeadDetector, excludeBOS: Bool = false, excludeCurrentToken: Bool = false, families: TokenFamilies? = nil) {
        self.detector = detector; self.excludeBOS = excludeBOS; self.excludeCurrentToken = excludeCurrentToken; self.families = families
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
    /// at least one prompt has something to detect (a repeat for duplicate and induction heads, two
    /// tokens of one family for `same-family`).
    public func check(_ prompts: [[Int]]) throws {
        if prompts.isEmpty { throw RunError.emptyBatch }
        for (index, prompt) in prompts.enumerated() where prompt.count < 2 { throw HeadsError.promptTooShort(index: index, length: prompt.count) }
        switch detector {
        case .previousToken: return
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

    /// Scores of every head of `model` on token-id prompts (BOS included when wanted).
    public func run(_ model: Model, prompts: [[Int]]) throws -> HeadGrid {
        for (index, prompt) in prompts.enumerated() where prompt.count > model.config.nPositions {
            throw RunError.promptTooLong(index: index, length: prompt.count, limit: model.config.nPositions)
        }
        try check(prompts)
        let layers = model.blocks.indices.filter { model.blocks[$0].attention != nil }
        var grid = HeadGrid(model: model)
        guard let last = layers.last else { return grid }
        let hooks = layers.map { HookPoint.pattern($0) }
        let result = try model.run(prompts, capture: HookFilter(hooks), span: RunSpan(stop: .pattern(last)))
        var sums = Array(repeating: 0.0, count: grid.values.count), counts = Array(repeating: 0, count: grid.values.count)
        for (p, tokens) in prompts.enumerated() {
            let n = tokens.count
            let d = detector == .sameFamily ? [] : Self.detectionPattern(detector, tokens: tokens)
            let queries = detector == .sameFamily ? sameFamilyQueries(tokens, families: families!) : []
            for layer in layers {
                let pattern = try result.cache.require(.pattern(layer), prompt: p)
                let nHead = model.blocks[layer].attention!.nHead
                for head in 0..<nHead {
                    let a = pattern.pointer + head * n * n
                    func kept(_ i: Int, _ j: Int) -> Double {
                        if excludeBOS && j == 0 { return 0 }
                        if excludeCurrentToken && i == j { return 0 }
                        return Double(a[i * n + j])
                    }
                    let cell = layer * grid.heads + head
                    if detector == .sameFamily {
                        for (i, keys) in queries {
                            let total = (0...i).reduce(0.0) { $0 + kept(i, $1) }
                            let same = keys.reduce(0.0) { $0 + kept(i, $1) }
                            sums[cell] += total > 0 ? same / total : 0
                            counts[cell] += 1
                        }
                    } else {
                        var hit = 0.0, total = 0.0
                        for i in 0..<n {
                            for j in 0...i {
                                let v = kept(i, j)
                                total += v
                                if d[i * n + j] { hit += v }
                            }
                        }
                        sums[cell] += hit / total
                        counts[cell] += 1
                    }
                }
            }
        }
        for layer in layers {
            for head in 0..<model.blocks[layer].attention!.nHead {
                let cell = layer * grid.heads + head
                grid.values[cell] = counts[cell] > 0 ? sums[cell] / Double(counts[cell]) : nil
            }
        }
        return grid
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
