import Foundation

/// Activation patching (TransformerLens `patching` semantics): run the items' corrupted prompts,
/// put back one activation from the clean run (or the reverse with `.noise`), and measure the metric.
/// One patched run per grid cell, each patching that cell for every item at once.
///
/// The result equals one full forward pass per cell (`.plain`, TransformerLens's way), but the
/// default `.packed` strategy computes much less, without changing what is computed:
/// - a patched run starts at the patched block from the unpatched run's cached residual; when the
///   patch only changes the block's output (mlp_post, mlp_out, resid_post), at the next block from
///   the patched output;
/// - positions before the first one the patch changes are the unpatched run's: they are not
///   recomputed, their keys and values are read from its cache (`KeyValuePrefix`);
/// - a patch that changes nothing (the clean and corrupted activations are equal there) gives the
///   unpatched run's metric without running;
/// - many cells run as one packed batch, at most `rowsPerBatch` computed rows at a time;
/// - only the metric's logit columns are unembedded, at the last position.
public struct PatchSweep: Sendable {
    public enum Strategy: String, Sendable { case packed, plain }

    public var target: PatchTarget
    /// z/q/k/v per position as well as head; pattern per destination position.
    public var byPosition = false
    /// The layers swept (graph block indices); nil for all.
    public var layers: [Int]?
    public var direction = PatchDirection.denoise
    public var metric = CausalMetric.logitDiff
    public var strategy = Strategy.packed
    /// Compute only this shard's share (`--shard K/N`); the other cells stay nil in the result. The
    /// units dealt out are the packed batches (plain: the cells), so that every cell is computed in
    /// the same batch as in the unsharded run, bit for bit: batch j of the l-th swept layer belongs
    /// to unit `shardOffset + l + j` (the rotation spreads layers of one batch over the shards).
    public var shard: Shard?
    /// Where this sweep's units start (the layers of earlier sweeps stacked in one grid).
    public var shardOffset = 0
    /// Bounds memory: rows computed per packed batch (a row is one position of one prompt).
    public var rowsPerBatch = 4096

    public init(target: PatchTarget, byPosition: Bool = false, layers: [Int]? = nil,
                direction: PatchDirection = .denoise, metric: CausalMetric = .logitDiff) {
        self.target = target; self.byPosition = byPosition; self.layers = layers
        self.direction = direction; self.metric = metric
    }

    /// Checks the sweep against the model and the items before any work.
    public func validate(_ model: Model, items: ContrastItems) throws {
        for layer in layers ?? [] where !model.blocks.indices.contains(layer) {
            throw PatchError.layerOutOfRange(layer: layer, layers: model.blocks.count)
        }
        let positional = target.unit == .position || byPosition
        if positional { _ = try items.commonLength() }
        if !target.hookExists(in: model) { throw PatchError.noSuchHook(target: target.rawValue) }
    }

    public func run(_ model: Model, on items: ContrastItems, progress: ((Int, Int) -> Void)? = nil) throws -> PatchResult {
        try validate(model, items: items)
        let runs = try Runs(sweep: self, model: model, items: items.items)
        let grid = Grid(sweep: self, model: model, items: items.items)
        var raw = [Double?](repeating: nil, count: grid.cellCount)
        for (done, layer) in grid.layers.enumerated() {
            let cells = grid.cells(layer: layer)
            switch strategy {
            case .plain:
                for (cell, unit) in cells where shard?.contains(shardOffset + cell) ?? true { raw[cell] = try runs.plain(unit) }
            case .packed:
                let keep = { (batch: Int) in self.shard?.contains(self.shardOffset + done + batch) ?? true }
                for (cell, value) in try runs.packed(cells, layer: layer, keep: keep) { raw[cell] = value }
            }
            progress?(done + 1, grid.layers.count)
        }
        return PatchResult(target: target.rawValue, direction: direction, metric: metric, dims: grid.dims, shape: grid.shape,
                           raw: raw, clean: runs.cleanMetric, corrupted: runs.corruptedMetric,
                           labels: grid.labels, axisLabels: grid.axisLabels)
    }
}

extension PatchSweep {
    /// The number of cells of the sweep's grid on `model` (before any work).
    public func cellCount(_ model: Model, items: ContrastItems) -> Int {
        Grid(sweep: self, model: model, items: items.items).cellCount
    }
}

extension PatchTarget {
    /// Whether some block of the model has this hook (an MLP-only graph has no `z`).
    func hookExists(in model: Model) -> Bool { model.blocks.indices.contains { hook($0).exists(in: model) } }
}

/// The grid of a sweep: its axes, labels, and the patch unit of every cell.
struct Grid {
    let dims: [String]
    var shape: [Int] = []
    var axisLabels: [[String]] = []
    var labels: [String] = []
    let layers: [Int]
    private var cellsByLayer: [Int: [(cell: Int, unit: PatchUnit)]] = [:]

    var cellCount: Int { shape.reduce(1, *) }

    func cells(layer: Int) -> [(cell: Int, unit: PatchUnit)] { cellsByLayer[layer] ?? [] }

    init(sweep: PatchSweep, model: Model, items: [ContrastItem]) {
        let target = sweep.target
        dims = target.dims(byPosition: sweep.byPosition)
        layers = sweep.layers ?? Array(model.blocks.indices)
        let layerNames = layers.map { "L\(model.blocks[$0].source.layer)" }
        let length = items[0].length
        let maxHeads = layers.map { model.blocks[$0].attention?.nHead ?? 0 }.max() ?? 0
        let maxNeurons = layers.map { model.blocks[$0].mlp?.dMLP ?? 0 }.max() ?? 0
        let positions = (0..<length).map { "\($0)" }

        // Every cell of the grid in row-major order, with its unit (nil when the block lacks it).
        var entries: [(layer: Int, unit: PatchUnit?, label: String)] = []
        for (l, layer) in layers.enumerated() {
            let block = model.blocks[layer], name = layerNames[l], source = block.source.layer
            let exists = target.hook(layer).exists(in: model)
            let heads = block.attention?.nHead ?? 0, dHead = block.attention?.dHead ?? 0
            func head(_ h: Int, position: Int?) -> PatchUnit? {
                guard exists, h < heads else { return nil }
                return target == .pattern ? PatchUnit(layer: layer, position: position, head: h)
                                          : PatchUnit(layer: layer, position: position, columns: (h * dHead)..<((h + 1) * dHead))
            }
            switch dims {
            case ["layer", "pos"]:
                for p in 0..<length { entries.append((layer, exists ? PatchUnit(layer: layer, position: p) : nil, "\(name) pos \(p)")) }
            case ["layer", "head"]:
                for h in 0..<maxHeads { entries.append((layer, head(h, position: nil), "\(source).\(h)")) }
            case ["layer", "pos", "head"]:
                for p in 0..<length { for h in 0..<maxHeads { entries.append((layer, head(h, position: p), "\(source).\(h) pos \(p)")) } }
            case ["layer", "head", "dest_pos"]:
                for h in 0..<maxHeads { for p in 0..<length { entries.append((layer, head(h, position: p), "\(source).\(h) dest \(p)")) } }
            default:  // layer × neuron
                let neurons = block.mlp?.dMLP ?? 0
                for n in 0..<maxNeurons {
                    entries.append((layer, exists && n < neurons ? PatchUnit(layer: layer, columns: n..<(n + 1)) : nil, "\(name) N\(n)"))
                }
            }
        }
        for (cell, entry) in entries.enumerated() {
            labels.append(entry.label)
            if let unit = entry.unit { cellsByLayer[entry.layer, default: []].append((cell, unit)) }
        }
        let sizes: [String: (Int, [String])] = [
            "layer": (layers.count, layerNames), "pos": (length, positions), "dest_pos": (length, positions),
            "head": (maxHeads, (0..<maxHeads).map(String.init)), "neuron": (maxNeurons, (0..<maxNeurons).map { "N\($0)" }),
        ]
        shape = dims.map { sizes[$0]!.0 }
        axisLabels = dims.map { sizes[$0]!.1 }
    }
}

/// The two unpatched runs a sweep patches between, and the patched runs.
struct Runs {
    let sweep: PatchSweep
    let model: Model
    let items: [ContrastItem]
    /// The run that receives patches (corrupted when denoising) and the one they come from.
    let baseTokens: [[Int]], sourceTokens: [[Int]]
    let base: ActivationCache, source: ActivationCache
    let baseMetric: Double, sourceMetric: Double
    let columns: [Int]?

    var cleanMetric: Double { sweep.direction == .denoise ? sourceMetric : baseMetric }
    var corruptedMetric: Double { sweep.direction == .denoise ? baseMetric : sourceMetric }

    init(sweep: PatchSweep, model: Model, items: [ContrastItem]) throws {
        self.sweep = sweep; self.model = model; self.items = items
        let clean = items.map(\.clean), corrupted = items.map(\.corrupted)
        (baseTokens, sourceTokens) = sweep.direction == .denoise ? (corrupted, clean) : (clean, corrupted)
        let layers = sweep.layers ?? Array(model.blocks.indices)
        let targets = layers.map { sweep.target.hook($0) }.filter { $0.exists(in: model) }
        // The base run also keeps, for packed runs, each swept block's input and the keys and values from there on.
        let first = layers.min() ?? 0
        let starts = layers.flatMap { [HookPoint.residPre($0)] + (sweep.target.patchesBlockOutput ? [.residPost($0)] : []) }
        let keysValues = model.blocks.indices.filter { $0 >= first && model.blocks[$0].attention != nil }.flatMap { [HookPoint.k($0), .v($0)] }
        let baseRun = try model.run(baseTokens, capture: HookFilter(targets + (sweep.strategy == .packed ? starts + keysValues : [])))
        let sourceRun = try model.run(sourceTokens, capture: HookFilter(targets))
        base = baseRun.cache; source = sourceRun.cache
        columns = sweep.metric.columns(for: items)
        baseMetric = sweep.metric.mean(baseRun.logits, items: items, columns: nil)
        sourceMetric = sweep.metric.mean(sourceRun.logits, items: items, columns: nil)
    }

    private func activation(_ cache: ActivationCache, _ hook: HookPoint, item: Int) throws -> Tensor {
        guard let tensor = cache[hook, item] else { throw PatchError.notCaptured(hook: hook.name) }
        return tensor
    }

    /// One full forward pass of every item with the unit patched (TransformerLens's way).
    func plain(_ unit: PatchUnit) throws -> Double {
        let hook = sweep.target.hook(unit.layer)
        let sources = try items.indices.map { try activation(source, hook, item: $0) }
        let run = try model.run(baseTokens, interventions: [(HookFilter([hook]), { _, p, activation in
            unit.apply(to: &activation, from: sources[p], first: 0)
        })])
        return sweep.metric.mean(run.logits, items: items, columns: nil)
    }

    /// Every cell of one layer, packed: a variant is one cell's patch applied to every item.
    /// `keep(j)`: whether to run the layer's j-th packed batch (a shard runs its own); cells whose
    /// patch changes nothing are reported whatever `keep` says.
    func packed(_ cells: [(cell: Int, unit: PatchUnit)], layer: Int, keep: (Int) -> Bool = { _ in true }) throws -> [(Int, Double)] {
        let hook = sweep.target.hook(layer)
        let baseActs = try items.indices.map { try activation(base, hook, item: $0) }
        let sourceActs = try items.indices.map { try activation(source, hook, item: $0) }
        // Patches of a block's output start at the next block from the patched output; others at the block itself.
        let afterBlock = sweep.target.patchesBlockOutput
        let starts = try items.indices.map { try activation(base, afterBlock ? .residPost(layer) : .residPre(layer), item: $0) }

        var results: [(Int, Double)] = []
        // Per cell, per item: the first position its patch changes (nil: the patch changes nothing).
        var pending: [(cell: Int, unit: PatchUnit, first: [Int])] = []
        for (cell, unit) in cells {
            let firsts = items.indices.map { unit.firstDifference(base: baseActs[$0], source: sourceActs[$0]) }
            if firsts.allSatisfy({ $0 == nil }) { results.append((cell, baseMetric)); continue }
            // An item the patch leaves alone still needs its last position for the metric.
            pending.append((cell, unit, items.indices.map { min(firsts[$0] ?? items[$0].length - 1, items[$0].length - 1) }))
        }
        var batch: [(cell: Int, unit: PatchUnit, first: [Int])] = [], rows = 0, batches = 0
        func flush() throws {
            guard !batch.isEmpty else { return }
            if keep(batches) {
                results += try runBatch(batch, hook: hook, layer: layer, baseActs: baseActs, sourceActs: sourceActs, starts: starts)
            }
            batch = []; rows = 0; batches += 1
        }
        for variant in pending {
            let variantRows = items.indices.reduce(0) { $0 + items[$1].length - variant.first[$1] }
            if rows + variantRows > sweep.rowsPerBatch { try flush() }
            batch.append(variant); rows += variantRows
        }
        try flush()
        return results
    }

    private func runBatch(_ batch: [(cell: Int, unit: PatchUnit, first: [Int])], hook: HookPoint, layer: Int,
                          baseActs: [Tensor], sourceActs: [Tensor], starts: [Tensor]) throws -> [(Int, Double)] {
        let n = items.count
        let afterBlock = sweep.target.patchesBlockOutput
        // Prompt v·n + i of the batch is item i under variant v.
        var prompts: [[Int]] = [], residual: [Tensor] = [], firsts: [Int] = [], sources: [Int] = []
        for variant in batch {
            for i in items.indices {
                prompts.append(baseTokens[i])
                var rows = starts[i].rows(variant.first[i]..<items[i].length)
                if afterBlock {
                    patchOutput(&rows, unit: variant.unit, base: baseActs[i], source: sourceActs[i], first: variant.first[i])
                }
                residual.append(rows)
                firsts.append(variant.first[i]); sources.append(i)
            }
        }
        let units = batch.map(\.unit)
        let patches: [(HookFilter, Intervention)] = afterBlock ? [] : [(HookFilter([hook]), { _, p, activation in
            units[p / n].apply(to: &activation, from: sourceActs[p % n], first: firsts[p])
        })]
        let run = try model.run(prompts, interventions: patches,
                                span: RunSpan(start: ResidualStart(block: afterBlock ? layer + 1 : layer, residual: residual), columns: columns,
                                              prefix: KeyValuePrefix(lengths: firsts, sources: sources, cache: base)))
        return batch.enumerated().map { v, variant in
            (variant.cell, sweep.metric.mean(Array(run.logits[(v * n)..<((v + 1) * n)]), items: items, columns: columns))
        }
    }
}

extension Runs {
    /// Block L's patched output, from its unpatched one (rows `first…` of `hook_resid_post`): a
    /// neuron adds (source − base)·W_out[neuron] at each position; `mlp_out` adds source − base;
    /// `resid_post` is replaced. The same sums the block would compute, in another order.
    func patchOutput(_ rows: inout Tensor, unit: PatchUnit, base: Tensor, source: Tensor, first: Int) {
        let d = model.dModel, length = base.shape[0]
        let positions = (unit.position.map { [$0] } ?? Array(0..<length)).filter { $0 >= first }
        let out = rows.mutablePointer
        for position in positions {
            let row = out + (position - first) * d
            switch sweep.target {
            case .mlpPost:
                let neuron = unit.columns!.lowerBound, width = base.shape[1]
                let change = source[flat: position * width + neuron] - base[flat: position * width + neuron]
                guard change != 0, let weights = model.blocks[unit.layer].mlp?.outWeight.pointer else { continue }
                for c in 0..<d { row[c] += change * weights[neuron * d + c] }
            case .mlpOut:
                for c in 0..<d { row[c] += source[flat: position * d + c] - base[flat: position * d + c] }
            default:  // resid_post
                row.update(from: source.pointer + position * d, count: d)
            }
        }
    }
}

extension PatchTarget {
    /// Whether a patch changes block L's output only, so the patched run can start at block L + 1.
    var patchesBlockOutput: Bool { self == .mlpPost || self == .mlpOut || self == .residPost }
}

public enum PatchError: UserFacingError, Equatable {
    case layerOutOfRange(layer: Int, layers: Int)
    case noSuchHook(target: String)
    case notCaptured(hook: String)

    public var message: String {
        switch self {
        case let .layerOutOfRange(layer, layers):
            return "Layer \(layer) (--layers) is out of range: the model has \(layers) blocks (0…\(layers - 1))."
        case let .noSuchHook(target):
            return "No block of this model has what --target \(target) patches (an MLP-only graph has no heads, an attention-only one no neurons)."
        case let .notCaptured(hook):
            return "Internal: \(hook) was not captured by the unpatched run."
        }
    }
}
