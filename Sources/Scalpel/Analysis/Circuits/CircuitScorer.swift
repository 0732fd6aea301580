import Foundation

/// Scores circuits by mean ablation (ARENA's IOI code, the study's section 7): the metric of the
/// scored items with every head outside the circuit replaced by its mean at every position and every
/// circuit head replaced by its mean outside its kept positions; with `mlps`, MLP outputs likewise.
///
/// The means are computed once, when the scorer is made, and shared by every circuit it scores
/// (the circuit and all its random baselines). Many circuits run as one packed batch: circuit v's
/// copy of item i is prompt v·n + i, and a run-time intervention on every `hook_z` (and
/// `hook_mlp_out` when some circuit lists MLPs) applies circuit
/// v's ablations to its prompts; only the metric's logit columns are computed, at the last position.
public struct CircuitScorer {
    public let model: Model
    public let items: ContrastItems
    public let metric: CausalMetric
    public let meanKind: MeanKind
    public let means: MeanActivations
    public let meansName: String
    /// Bounds memory: rows (positions of prompts) per packed run.
    public var rowsPerBatch = 4096
    let columns: [Int]?
    /// The means that replace heads and MLP outputs, per graph block.
    public let replacements: CircuitMeans

    /// Computes the means of every `hook_z` and `hook_mlp_out` of `model` over `meansPrompts`
    /// (pooled, or per position: then the means prompts and the scored items must share one token length).
    public init(model: Model, items: ContrastItems, meansPrompts: [[Int]], meansName: String,
                meanKind: MeanKind = .perPosition, metric: CausalMetric = .logitDiff) throws {
        let attentionBlocks = model.blocks.indices.filter { model.blocks[$0].attention != nil }
        guard !attentionBlocks.isEmpty else { throw CircuitError.noHeads }
        if meanKind == .perPosition {
            let scoredLength = try items.commonLength()
            let lengths = meansPrompts.map(\.count)
            if Set(lengths).count > 1 { throw MeanActivationsError.unequalLengths(lengths: lengths) }
            if let meansLength = lengths.first, meansLength != scoredLength {
                throw CircuitError.meansLengthMismatch(scored: items.name, scoredLength: scoredLength, means: meansName, meansLength: meansLength)
            }
        }
        let means = try MeanActivations.compute(model: model, prompts: meansPrompts, hooks: CircuitMeans.hooks(of: model))
        self.model = model; self.items = items; self.metric = metric; self.meanKind = meanKind
        self.means = means; self.meansName = meansName
        replacements = try CircuitMeans(model: model, means: means, kind: meanKind)
        columns = metric.columns(for: items.items)
    }

    /// Checks that every head and MLP of the circuit exists and every kept position exists in every scored prompt.
    public func validate(_ circuit: Circuit) throws {
        try CircuitMeans.validate(circuit, model: model, lengths: Set(items.items.map(\.length)).sorted())
    }

    /// The circuit's ablations, per graph block, per head (ARENA's keep-mask, as `Ablation`s).
    public func ablations(_ circuit: Circuit) -> [Int: [Int: Ablation]] { replacements.headAblations(circuit, model: model) }

    /// The circuit's MLP output ablations, per graph block (none when the circuit has no `mlps`).
    public func mlpAblations(_ circuit: Circuit) -> [Int: Ablation] { replacements.mlpAblations(circuit, model: model) }

    /// The model with the circuit's ablations built in (for an archive).
    public func ablatedModel(_ circuit: Circuit) throws -> Model {
        try validate(circuit)
        return replacements.bake(circuit, into: model)
    }

    /// The metric of the model as it is, run as circuits are (sharing the items' first tokens), so
    /// that keeping every head scores exactly this.
    public func full() throws -> Double {
        try runBatch([Circuit.everyHead(of: model)])[0]
    }

    public func score(_ circuit: Circuit) throws -> Double { try score([circuit])[0] }

    /// How many circuits one packed run holds (at most `rowsPerBatch` rows); shards split by these batches.
    public var circuitsPerBatch: Int {
        let rowsPerCircuit = items.items.reduce(0) { $0 + $1.length }
        return max(1, rowsPerBatch / max(rowsPerCircuit, 1))
    }

    /// Every circuit's score, in order, as packed batches of `circuitsPerBatch` circuits. With a
    /// shard, only its batches (batch j runs in shard j mod N + 1) are run, the others' scores are
    /// NaN: a batch packed as in the unsharded run gives the same bits.
    public func score(_ circuits: [Circuit], shard: Shard? = nil, progress: ((Int, Int) -> Void)? = nil) throws -> [Double] {
        for circuit in circuits { try validate(circuit) }
        let perBatch = circuitsPerBatch
        // Computed once from the whole list (not per batch), so every shard's batches run alike.
        let prefix = try sharedPrefix(circuits)
        var scores: [Double] = []
        var start = 0, batchIndex = 0
        while start < circuits.count {
            let batch = Array(circuits[start..<min(start + perBatch, circuits.count)])
            if shard?.contains(batchIndex) ?? true { scores += try runBatch(batch, prefix: prefix) } else { scores += batch.map { _ in .nan } }
            start += batch.count; batchIndex += 1
            progress?(start, circuits.count)
        }
        return scores
    }

    /// The first positions of each item that every circuit of the list computes identically: where no
    /// circuit keeps any head, every head of every layer gets its mean, and the MLPs are ablated alike
    /// (the circuits share their `mlps`, as baselines do). Their residuals are one run's (every head
    /// ablated), whose keys and values the circuits' runs then reuse (`KeyValuePrefix`): a circuit
    /// kept only at `end` computes one position per item instead of all. Nil when no position is shared.
    struct SharedPrefix { let lengths: [Int]; let cache: ActivationCache }

    func sharedPrefix(_ circuits: [Circuit]) throws -> SharedPrefix? {
        guard let first = circuits.first, circuits.allSatisfy({ $0.mlps == first.mlps }) else { return nil }
        let lengths = items.items.map { item -> Int in
            let n = item.length
            let kept = circuits.flatMap { $0.heads.values.map { $0.keptFirst(length: n) } }
            return min(kept.min() ?? n, n - 1)  // at least the last position is computed
        }
        guard lengths.contains(where: { $0 > 0 }) else { return nil }
        let allMean = Circuit(name: "every head ablated", heads: [:], mlps: first.mlps)
        let keysAndValues = HookFilter(replacements.heads.keys.sorted().flatMap { [HookPoint.k($0), .v($0)] })
        let run = try model.run(items.items.map(\.clean), capture: keysAndValues, interventions: interventions([allMean], first: { _ in 0 }),
                                span: RunSpan(columns: columns))
        return SharedPrefix(lengths: lengths, cache: run.cache)
    }

    /// Run-time patches applying circuit v's ablations to its copies of the items (prompts v·n …
    /// v·n + n − 1, n = `perCircuit`, all items by default); `first(p)`: the first position prompt p computes.
    func interventions(_ circuits: [Circuit], perCircuit: Int? = nil, first: @escaping (Int) -> Int) -> [(HookFilter, Intervention)] {
        let n = perCircuit ?? items.items.count
        let heads: [[Int: [Int: Ablation]]] = circuits.map { ablations($0) }
        let mlps: [[Int: Ablation]] = circuits.map { mlpAblations($0) }
        var interventions: [(HookFilter, Intervention)] = replacements.heads.keys.sorted().map { i in
            (HookFilter([.z(i)]), { _, p, z in
                guard let ablations = heads[p / n][i] else { return }
                ablations.apply(to: &z, unitWidth: z.shape[z.shape.count - 1], promptOffsets: [0, z.shape[0]], firstPositions: [first(p)])
            })
        }
        interventions += Set(mlps.flatMap(\.keys)).sorted().map { i in
            (HookFilter([.mlpOut(i)]), { hook, p, out in
                guard let ablation = mlps[p / n][i] else { return }
                Ablation.outputIntervention(ablation, first: first)(hook, p, &out)
            })
        }
        return interventions
    }

    /// Per block, per prompt of a packed run (circuit v's copies are prompts v·n …): the heads the
    /// circuit ablates at every position, whose queries, keys and values the run need not compute
    /// (`RunSpan.replacedHeads`); the interventions replace their z.
    func replacedHeads(_ circuits: [Circuit], perCircuit n: Int) -> [Int: [Set<Int>]] {
        let ablated = circuits.map { circuit in ablations(circuit).mapValues { Set($0.filter { $0.value.positions == .all }.keys) } }
        return Dictionary(uniqueKeysWithValues: replacements.heads.keys.map { i in
            (i, ablated.flatMap { Array(repeating: $0[i] ?? [], count: n) })
        })
    }

    /// The number of first tokens every item shares (BOS, at least, when it is prepended), when the
    /// items have one length (so a circuit ablates their positions alike); 0 otherwise.
    var commonTokens: Int {
        let prompts = items.items.map(\.clean)
        guard let first = prompts.first, prompts.allSatisfy({ $0.count == first.count }) else { return 0 }
        return Model.sharedFirstTokens(prompts)
    }

    func runBatch(_ circuits: [Circuit], prefix: SharedPrefix? = nil) throws -> [Double] {
        let common = commonTokens
        if common > 0, (prefix?.lengths.min() ?? 0) < common { return try runBatch(circuits, sharingFirstTokens: common) }
        let n = items.items.count
        let prompts = circuits.flatMap { _ in items.items.map(\.clean) }
        let first: (Int) -> Int = prefix.map { prefix in { prefix.lengths[$0 % n] } } ?? { _ in 0 }
        let span = RunSpan(columns: columns, prefix: prefix.map { prefix in
            KeyValuePrefix(lengths: prompts.indices.map { prefix.lengths[$0 % n] }, sources: prompts.indices.map { $0 % n }, cache: prefix.cache)
        }, replacedHeads: replacedHeads(circuits, perCircuit: n))
        let run = try model.run(prompts, interventions: interventions(circuits, first: first), span: span)
        return circuits.indices.map { v in metric.mean(Array(run.logits[(v * n)..<((v + 1) * n)]), items: items.items, columns: columns) }
    }

    /// Items sharing their first `common` tokens (BOS): within one circuit those positions are the
    /// same for every item, so each circuit runs its first item whole, and its other items compute
    /// only the positions after `common`, attending to that run's keys and values.
    func runBatch(_ circuits: [Circuit], sharingFirstTokens common: Int) throws -> [Double] {
        let n = items.items.count, rest = items.items.dropFirst().map(\.clean)
        let keysAndValues = HookFilter(replacements.heads.keys.sorted().flatMap { [HookPoint.k($0), .v($0)] })
        let firsts = try model.run(circuits.map { _ in items.items[0].clean }, capture: keysAndValues,
                                   interventions: interventions(circuits, perCircuit: 1, first: { _ in 0 }),
                                   span: RunSpan(columns: columns, replacedHeads: replacedHeads(circuits, perCircuit: 1)))
        let prompts = circuits.flatMap { _ in rest }
        let span = RunSpan(columns: columns, prefix: KeyValuePrefix(lengths: prompts.map { _ in common },
                                                                    sources: prompts.indices.map { $0 / (n - 1) }, cache: firsts.cache),
                           replacedHeads: replacedHeads(circuits, perCircuit: n - 1))
        let others = try model.run(prompts, interventions: interventions(circuits, perCircuit: n - 1, first: { _ in common }), span: span)
        return circuits.indices.map { v in
            metric.mean([firsts.logits[v]] + Array(others.logits[(v * (n - 1))..<((v + 1) * (n - 1))]), items: items.items, columns: columns)
        }
    }
}

extension AblationPositions {
    /// The first position a head kept at these positions keeps, in a prompt of `length` tokens
    /// (`length` when none).
    func keptFirst(length: Int) -> Int {
        switch self {
        case .all: return 0
        case let .only(list): return list.map { $0 < 0 ? length + $0 : $0 }.filter { (0..<length).contains($0) }.min() ?? length
        case let .allBut(list):
            let skipped = Set(list.map { $0 < 0 ? length + $0 : $0 })
            return (0..<length).first { !skipped.contains($0) } ?? length
        }
    }
}

/// The means that replace a model's heads (`hook_z`, per head) and MLP outputs (`hook_mlp_out`),
/// per graph block, and the ablations a circuit makes of them: shared by `CircuitScorer` (run-time
/// patches) and plans that build a circuit into a model (`Surgeon`, baked ablations), so both
/// write the same values.
public struct CircuitMeans: Sendable {
    /// Per block with attention, per head: the mean that replaces it.
    public let heads: [Int: [Ablation.Replacement]]
    /// Per block with an MLP: the mean that replaces its output.
    public let mlps: [Int: Ablation.Replacement]

    /// The hooks whose means a circuit needs: every `hook_z` and `hook_mlp_out`.
    public static func hooks(of model: Model) -> [HookPoint] {
        model.blocks.indices.flatMap { i in
            (model.blocks[i].attention == nil ? [] : [HookPoint.z(i)]) + (model.blocks[i].mlp == nil ? [] : [.mlpOut(i)])
        }
    }

    public init(model: Model, means: MeanActivations, kind: MeanKind) throws {
        var heads: [Int: [Ablation.Replacement]] = [:], mlps: [Int: Ablation.Replacement] = [:]
        for (i, block) in model.blocks.enumerated() {
            if let attention = block.attention {
                heads[i] = try (0..<attention.nHead).map { try means.replacement(kind, hook: .z(i), unit: $0) }
            }
            if block.mlp != nil { mlps[i] = try means.wholeReplacement(kind, hook: .mlpOut(i)) }
        }
        self.heads = heads; self.mlps = mlps
    }

    /// Checks that every head and MLP of the circuit exists in `model` and every kept position
    /// exists in prompts of each of `lengths` tokens.
    public static func validate(_ circuit: Circuit, model: Model, lengths: [Int]) throws {
        let heads = Set(model.circuitHeads)
        for head in circuit.heads.keys.sorted() where !heads.contains(head) {
            let layers = Array(Set(model.blocks.filter { $0.attention != nil }.map(\.source.layer))).sorted()
            let perLayer = model.blocks.compactMap { $0.source.layer == head.layer ? $0.attention?.nHead : nil }.max()
                ?? model.blocks.compactMap { $0.attention?.nHead }.max() ?? 0
            throw CircuitError.noSuchHead(circuit: circuit.name, head: head.description, heads: perLayer,
                                          layers: layers.count > 1 && layers == Array(layers[0]...layers.last!) ? "\(layers[0])–\(layers.last!)" : layers.map(String.init).joined(separator: ", "))
        }
        for head in circuit.heads.keys.sorted() {
            for length in lengths {
                if let position = circuit.heads[head]!.firstOutOfRange(length: length) {
                    throw CircuitError.positionOutOfRange(circuit: circuit.name, head: head.description, position: position, length: length)
                }
            }
        }
        let mlps = model.circuitMLPLayers
        for layer in (circuit.mlps ?? [:]).keys.sorted() {
            guard mlps.contains(layer) else {
                let contiguous = mlps.count > 1 && mlps == Array(mlps[0]...mlps.last!)
                throw CircuitError.noSuchMLP(circuit: circuit.name, layer: layer,
                                             layers: contiguous ? "\(mlps[0])–\(mlps.last!)" : mlps.map(String.init).joined(separator: ", "))
            }
            for length in lengths {
                if let position = circuit.mlps![layer]!.firstOutOfRange(length: length) {
                    throw CircuitError.mlpPositionOutOfRange(circuit: circuit.name, layer: layer, position: position, length: length)
                }
            }
        }
    }

    /// The circuit's head ablations, per graph block, per head (ARENA's keep-mask, as `Ablation`s).
    public func headAblations(_ circuit: Circuit, model: Model) -> [Int: [Int: Ablation]] {
        var result: [Int: [Int: Ablation]] = [:]
        for (i, heads) in self.heads {
            var block: [Int: Ablation] = [:]
            for (h, replacement) in heads.enumerated() {
                switch circuit.heads[Circuit.Head(layer: model.blocks[i].source.layer, head: h)] {
                case nil: block[h] = Ablation(replacement, at: .all)
                case .all?: break
                case let .only(kept)?: block[h] = Ablation(replacement, at: .allBut(kept))
                case let .allBut(list)?: block[h] = Ablation(replacement, at: .only(list))
                }
            }
            if !block.isEmpty { result[i] = block }
        }
        return result
    }

    /// The circuit's MLP output ablations, per graph block: none without `mlps`; else every MLP not
    /// listed everywhere, and a listed one outside its kept positions.
    public func mlpAblations(_ circuit: Circuit, model: Model) -> [Int: Ablation] {
        guard let kept = circuit.mlps else { return [:] }
        var result: [Int: Ablation] = [:]
        for (i, replacement) in mlps {
            switch kept[model.blocks[i].source.layer] {
            case nil: result[i] = Ablation(replacement, at: .all)
            case .all?: break
            case let .only(list)?: result[i] = Ablation(replacement, at: .allBut(list))
            case let .allBut(list)?: result[i] = Ablation(replacement, at: .only(list))
            }
        }
        return result
    }

    /// `model` with the circuit's ablations built in as weights-side ablations (an archive stores them).
    public func bake(_ circuit: Circuit, into model: Model) -> Model {
        var edited = model
        for (i, heads) in headAblations(circuit, model: model) {
            for (h, ablation) in heads { edited.blocks[i].attention!.headAblations[h] = ablation }
        }
        for (i, ablation) in mlpAblations(circuit, model: model) { edited.blocks[i].mlp!.outputAblation = ablation }
        return edited
    }
}

/// Random circuits of a circuit's size, for baselines.
public enum RandomCircuits {
    /// How many distinct circuits `circuit`'s random baselines are drawn from: k heads out of `heads`,
    /// times the distinct ways to give them the circuit's position lists. Int.max when larger.
    public static func possible(like circuit: Circuit, heads: Int) -> Int {
        let k = circuit.size
        guard k <= heads else { return 0 }
        var count = 1
        func times(_ a: Int, _ b: Int) -> Int { let (r, o) = a.multipliedReportingOverflow(by: b); return o ? Int.max : r }
        // C(heads, k) = ∏ (heads − i) / (i + 1); exact at every step.
        for i in 0..<k {
            if count == Int.max { return Int.max }
            let (r, o) = count.multipliedReportingOverflow(by: heads - i)
            if o { return Int.max }
            count = r / (i + 1)
        }
        // Distinct arrangements of the position lists: k! / ∏ multiplicity!.
        let multiplicities = Dictionary(grouping: circuit.heads.values.map(\.description), by: { $0 }).values.map(\.count)
        var arrangements = 1, placed = 0
        for m in multiplicities {
            for j in 1...max(m, 1) where m > 0 {
                placed += 1
                // multiply by placed / j, exactly: C(placed, m) built incrementally.
                let (r, o) = arrangements.multipliedReportingOverflow(by: placed)
                if o { return Int.max }
                arrangements = r / j
            }
        }
        return times(count, arrangements)
    }

    /// `count` distinct random circuits like `circuit`: as many heads, drawn uniformly without
    /// replacement from `heads`, and the circuit's position lists (`all`, `[end]`, …) dealt to
    /// them in a random order. Reproducible from `seed` (SeededRandom).
    public static func draw(like circuit: Circuit, from heads: [Circuit.Head], count: Int, seed: UInt64) throws -> [Circuit] {
        let possible = possible(like: circuit, heads: heads.count)
        guard count <= possible else {
            throw CircuitError.tooManyBaselines(asked: count, possible: possible, size: circuit.size, heads: heads.count)
        }
        var random = SeededRandom(seed: seed)
        let rules = circuit.heads.keys.sorted().map { circuit.heads[$0]! }
        var seen = Set<String>(), circuits: [Circuit] = []
        while circuits.count < count {
            var pool = heads
            for i in 0..<rules.count { pool.swapAt(i, Int.random(in: i..<pool.count, using: &random)) }
            let chosen = Array(pool[0..<rules.count])
            var dealt = rules
            dealt.shuffle(using: &random)
            // MLPs are not drawn: each baseline keeps the circuit's own MLPs (circuits/README.md).
            let candidate = Circuit(name: "random \(circuits.count + 1)", heads: Dictionary(uniqueKeysWithValues: zip(chosen, dealt)), mlps: circuit.mlps)
            guard seen.insert(candidate.headsText).inserted else { continue }
            circuits.append(candidate)
        }
        return circuits
    }
}

/// A circuit's score beside the full model's and its random baselines'.
public struct CircuitResult: Sendable {
    public struct Baselines: Sendable {
        public var seed: UInt64
        public var values: [Double]
        /// The random circuits the values are of, in order.
        public var circuits: [Circuit] = []
        public var n: Int { values.count }
        public var mean: Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }
        /// Sample standard deviation (n − 1, torch.std's default); nan below two values.
        public var sd: Double {
            guard values.count > 1 else { return .nan }
            let m = mean
            return (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count - 1)).squareRoot()
        }
    }

    public var circuit: Circuit
    public var dataset: String
    public var meansDataset: String
    public var meanKind: MeanKind
    public var metric: CausalMetric
    public var score: Double
    public var full: Double
    public var baselines: Baselines?
    public var fraction: Double { score / full }

    /// Scores `circuit` (and `baselines` random circuits like it, drawn with `seed`) with `scorer`.
    /// With a shard, only its batches of the list [circuit] + baselines are scored (`CircuitScorer.score`);
    /// the others' scores are NaN (the circuit's own is in batch 0, shard 1).
    public static func compute(_ circuit: Circuit, scorer: CircuitScorer, baselines: Int = 0, seed: UInt64 = 0, shard: Shard? = nil,
                               progress: ((Int, Int) -> Void)? = nil) throws -> CircuitResult {
        try scorer.validate(circuit)
        let randoms = baselines > 0 ? try RandomCircuits.draw(like: circuit, from: scorer.model.circuitHeads, count: baselines, seed: seed) : []
        let full = try scorer.full()
        let scores = try scorer.score([circuit] + randoms, shard: shard, progress: progress)
        return CircuitResult(circuit: circuit, dataset: scorer.items.name, meansDataset: scorer.meansName, meanKind: scorer.meanKind,
                             metric: scorer.metric, score: scores[0], full: full,
                             baselines: baselines > 0 ? Baselines(seed: seed, values: Array(scores.dropFirst()), circuits: randoms) : nil)
    }
}
