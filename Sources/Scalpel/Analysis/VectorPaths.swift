import Foundation

/// Vector-arithmetic paths between item families (docs/paths.md).
///
/// Each item's representation is its residual-stream vector at a hook (`blocks.{L}.hook_resid_post`)
/// at the item's position, read in a context template. A direction is a mean offset — between aligned
/// families (digit → word) or from each item to the next (March → April) — always computed leaving out
/// the pair under test. Points r + αΔ are judged decode-only (logit lens at that layer) and propagated
/// (written into the residual stream at that layer and run through the rest of the model).
public struct VectorPaths {
    public enum Template: String, Codable, Sendable, CaseIterable {
        /// `<|endoftext|> item`: the expected token is the target item itself.
        case alone
        /// The item at the end of its own sequence ("1 2 3 4" for 4): the expected token is the item after the target.
        case sequence
    }

    public var template = Template.sequence
    public var alphas: [Double] = stride(from: 0.0, through: 2.0, by: 0.25).map { $0 }
    /// Layers (block indices) whose `hook_resid_post` is used; nil means every block.
    public var layers: [Int]?
    public var leaveOneOut = true
    public var topK = 5
    /// Which residual-stream hook of each block is read and written: `hook_resid_pre`,
    /// `hook_resid_mid` or `hook_resid_post`.
    public var hook = HookPoint.Kind.residPost
    public static let hooks: [HookPoint.Kind] = [.residPre, .residMid, .residPost]

    /// The hook point of `layer`; `hook` must be one of `hooks`.
    func hookPoint(_ layer: Int) throws -> HookPoint {
        guard Self.hooks.contains(hook), let point = HookPoint(hook, block: layer) else {
            throw HookError.noMatch(pattern: hook.rawValue, suggestions: Self.hooks.map(\.rawValue))
        }
        return point
    }

    public init() {}

    /// One family's usable items, their prompts and token positions; multi-token items are skipped.
    public struct Items: Sendable {
        public var family: SequenceFamily
        public var items: [String]
        public var values: [Int]
        public var prompts: [[Int]]
        /// The token id of each item (" 3").
        public var ids: [Int]
        /// The token expected from each item's representation (itself, or the next item's).
        public var expected: [Int?]
        public var skipped: [String]
    }

    public func items(_ family: SequenceFamily, model: Model) throws -> Items {
        let tokenizer = try model.requireTokenizer()
        var result = Items(family: family, items: [], values: [], prompts: [], ids: [], expected: [], skipped: [])
        var ids: [String: Int] = [:]
        for item in family.items {
            let tokens = tokenizer.encode(" " + item)
            if tokens.count == 1 { ids[item] = tokens[0] } else { result.skipped.append(item) }
        }
        for (index, item) in family.items.enumerated() {
            guard let id = ids[item] else { continue }
            var prompt = [model.bosID]
            switch template {
            case .alone: prompt.append(id)
            case .sequence:
                let window = family.items[max(0, index - 3)...index]
                prompt += window.count == 1 ? [id] : tokenizer.encode(window.joined(separator: " "))
                guard prompt.last == id else { result.skipped.append(item); continue }
            }
            result.items.append(item)
            result.values.append(family.values[index])
            result.prompts.append(prompt)
            result.ids.append(id)
            let next = index + 1 < family.items.count ? ids[family.items[index + 1]] : nil
            result.expected.append(template == .alone ? id : next)
        }
        return result
    }

    /// Representations already computed by this search (and its copies), so that every direction and
    /// the HDF5 writer share them.
    final class Memo: @unchecked Sendable {
        var representations: [String: [Int: Tensor]] = [:]
    }
    let memo = Memo()

    /// Representations [items, d] per layer (at `hook`), read at the last position of each item's prompt.
    public func representations(_ items: Items, model: Model, layers: [Int]) throws -> [Int: Tensor] {
        // The prompts, hook and model determine a representation completely.
        let key = "\(model.name)|\(model.blocks.count)|\(hook.rawValue)|\(items.prompts)"
        if let known = memo.representations[key], layers.allSatisfy({ known[$0] != nil }) { return known }
        let computed = try computeRepresentations(items, model: model, layers: layers)
        memo.representations[key] = computed
        return computed
    }

    func computeRepresentations(_ items: Items, model: Model, layers: [Int]) throws -> [Int: Tensor] {
        let hooks = try layers.map(hookPoint)
        let cache = try model.run(items.prompts, capture: HookFilter(hooks)).cache
        var out: [Int: Tensor] = [:]
        for (layer, hook) in zip(layers, hooks) { out[layer] = try cache.lastPositions(hook) }
        return out
    }

    /// A direction's test cases: source item index, target item index (in the target family), and the
    /// (source, target) pairs the direction is averaged over.
    public struct Direction: Sendable {
        public var name: String
        public var from: Items
        public var to: Items
        /// (source index in `from`, target index in `to`) for every aligned pair.
        public var pairs: [(Int, Int)]
    }

    /// Aligned pairs across two families by value (3 ↔ three ↔ March ↔ Wednesday).
    public static func offset(from a: Items, to b: Items) -> Direction {
        let pairs = a.values.enumerated().compactMap { i, v in b.values.firstIndex(of: v).map { (i, $0) } }
        return Direction(name: "\(a.family.name) → \(b.family.name)", from: a, to: b, pairs: pairs)
    }

    /// Each item to the next one of the same family (by value + 1).
    public static func next(_ family: Items) -> Direction {
        let pairs = family.values.enumerated().compactMap { i, v in family.values.firstIndex(of: v + 1).map { (i, $0) } }
        return Direction(name: "\(family.family.name) next", from: family, to: family, pairs: pairs)
    }

    /// Δ for testing `pair`: mean of (target − source) over the other pairs (or all pairs without leave-one-out).
    func delta(_ direction: Direction, excluding pair: Int, source: Tensor, target: Tensor, d: Int) -> [Float]? {
        let used = direction.pairs.indices.filter { !leaveOneOut || $0 != pair }
        guard !used.isEmpty else { return nil }
        var sum = [Double](repeating: 0, count: d)
        for k in used {
            let (i, j) = direction.pairs[k]
            for c in 0..<d { sum[c] += Double(target[flat: j * d + c]) - Double(source[flat: i * d + c]) }
        }
        return sum.map { Float($0 / Double(used.count)) }
    }

    /// Every path point of a direction at every layer and α, judged both ways.
    public func run(_ direction: Direction, model: Model) throws -> [PathPoint] {
        let layers = self.layers ?? Array(model.blocks.indices)
        let d = model.dModel
        let sourceReps = try representations(direction.from, model: model, layers: layers)
        let targetReps = try representations(direction.to, model: model, layers: layers)
        var points: [PathPoint] = []
        for layer in layers {
            // Every (pair, α) point of this layer: vectors for the lens, prompts + replacements for propagation.
            var vectors: [Float] = [], prompts: [[Int]] = [], meta: [(pair: Int, alpha: Double, expected: Int)] = []
            for (k, (i, j)) in direction.pairs.enumerated() {
                guard let expected = direction.to.expected[j],
                      let delta = delta(direction, excluding: k, source: sourceReps[layer]!, target: targetReps[layer]!, d: d) else { continue }
                for alpha in alphas {
                    for c in 0..<d { vectors.append(sourceReps[layer]![flat: i * d + c] + Float(alpha) * delta[c]) }
                    prompts.append(direction.from.prompts[i])
                    meta.append((k, alpha, expected))
                }
            }
            guard !meta.isEmpty else { continue }
            let stacked = Tensor(shape: [meta.count, d], data: vectors)
            let decoded = model.unembedRows(model.finalLayerNorm(stacked, cachedScales: nil, addBias: true))
            let propagated = try model.run(prompts, interventions: [(HookFilter([try hookPoint(layer)]), { _, p, activation in
                let last = activation.shape[0] - 1
                activation.replaceRows(at: last, with: stacked.rows(p..<(p + 1)))
            })]).logits
            for (n, m) in meta.enumerated() {
                let (i, j) = direction.pairs[m.pair]
                let decodeRow = UnsafeBufferPointer(start: decoded.pointer + n * model.vocabSize, count: model.vocabSize)
                points.append(PathPoint(direction: direction.name, source: direction.from.items[i], target: direction.to.items[j],
                                        layer: layer, alpha: m.alpha, expected: m.expected,
                                        decode: PathJudgement(decodeRow, expected: m.expected, topK: topK),
                                        propagated: propagated[n].buffer.withMemoryRebound(to: Float.self) {
                                            PathJudgement($0, expected: m.expected, topK: topK)
                                        }))
            }
        }
        return points
    }
}

/// How one point decodes: the expected token's rank and the top tokens.
public struct PathJudgement: Codable, Sendable {
    public var rank: Int
    public var top: [Int]

    init(_ logits: UnsafeBufferPointer<Float>, expected: Int, topK: Int) {
        let row = LogitRow(logits, probabilities: .none)
        rank = row.rank(of: expected)
        top = row.top(topK)
    }
}

public struct PathPoint: Codable, Sendable {
    public var direction: String
    public var source: String
    public var target: String
    public var layer: Int
    public var alpha: Double
    public var expected: Int
    public var decode: PathJudgement
    public var propagated: PathJudgement
}

/// Accuracy of one direction at one layer and α: top-1 and top-5 of reaching the expected token, and its mean rank.
public struct PathSummary: Codable, Sendable {
    public var direction: String
    public var layer: Int
    public var alpha: Double
    public var count: Int
    public var decodeTop1: Double
    public var decodeTop5: Double
    public var decodeMeanRank: Double
    public var propagatedTop1: Double
    public var propagatedTop5: Double
    public var propagatedMeanRank: Double

    public static func summarize(_ points: [PathPoint]) -> [PathSummary] {
        let groups = Dictionary(grouping: points) { "\($0.direction)|\($0.layer)|\($0.alpha)" }
        return groups.values.map { group in
            let n = Double(group.count)
            func rate(_ judge: (PathPoint) -> PathJudgement, _ k: Int) -> Double { Double(group.filter { judge($0).rank < k }.count) / n }
            func rank(_ judge: (PathPoint) -> PathJudgement) -> Double { group.reduce(0) { $0 + Double(judge($1).rank) } / n }
            return PathSummary(direction: group[0].direction, layer: group[0].layer, alpha: group[0].alpha, count: group.count,
                               decodeTop1: rate(\.decode, 1), decodeTop5: rate(\.decode, 5), decodeMeanRank: rank(\.decode),
                               propagatedTop1: rate(\.propagated, 1), propagatedTop5: rate(\.propagated, 5), propagatedMeanRank: rank(\.propagated))
        }.sorted { ($0.direction, $0.layer, $0.alpha) < ($1.direction, $1.layer, $1.alpha) }
    }
}

public enum PathsError: UserFacingError {
    case tooFewPairs(direction: String, pairs: Int)
    case layerOutOfRange(value: String, blocks: Int)

    public var message: String {
        switch self {
        case let .tooFewPairs(direction, pairs):
            return "\(direction): only \(pairs) aligned pair\(pairs == 1 ? "" : "s") of single-token items; a leave-one-out direction needs at least 2. Choose families that share values."
        case let .layerOutOfRange(value, blocks):
            return "--layers: \(value) is not a block of this model (0–\(blocks - 1))."
        }
    }
}
