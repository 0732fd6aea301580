import Foundation

/// Direct logit attribution (DESIGN.md, "Causal analyses"): how much each part of the final
/// residual at the last position writes along an item's direction, dir = W_U[answer] − W_U[foil]
/// (or W_U[answer]), averaged over items.
///
/// A part x [d_model] is centred, divided by the final LayerNorm's scale (the cached one of the
/// whole residual by default, or its own with `.recomputed`), multiplied by ln_final.w and dotted
/// with dir. Centring and w go into the direction once per item,
/// ((x − mean x) / s) · (w ⊙ dir) = x · c / s with c = w ⊙ dir − mean(w ⊙ dir),
/// so heads and neurons are matrix products with c: per layer W_O · c and W_out · c, then one
/// multiply-add per unit. One forward pass per batch of prompts, capturing only the hooks read.
public struct LogitAttribution: Sendable {
    /// What the attribution is split by; several groupings share one forward pass per batch
    /// (`--by component,head,neuron`).
    public var groupings: [AttributionGrouping]
    /// The final LayerNorm's scale asked for (nil: the default, `.cached`); `.layer` always
    /// recomputes (with the bias: the logit lens).
    public var requestedNormalization: LogitLens.Normalization?
    /// `.neuron`: the layers whose neurons are attributed (graph block indices).
    public var layers: [Int]?
    /// `.layer`: the residual between attention and MLP of each block too (`0_mid`, …).
    public var includeMid = false
    /// Prompts per forward pass; bounds the memory of the captured activations. Also the unit of
    /// `--shard`: a batch's sums are the same bits whichever process computes them.
    public var batchSize = 32

    public init(by grouping: AttributionGrouping, normalization: LogitLens.Normalization? = nil, layers: [Int]? = nil) {
        self.init(by: [grouping], normalization: normalization, layers: layers)
    }

    public init(by groupings: [AttributionGrouping], normalization: LogitLens.Normalization? = nil, layers: [Int]? = nil) {
        self.groupings = groupings
        self.requestedNormalization = normalization
        self.layers = layers
    }

    /// The first (or only) grouping.
    public var grouping: AttributionGrouping { groupings[0] }
    /// The first grouping's scale.
    public var normalization: LogitLens.Normalization { normalization(for: grouping) }

    /// The final LayerNorm's scale a grouping uses.
    public func normalization(for grouping: AttributionGrouping) -> LogitLens.Normalization {
        grouping == .layer ? .recomputed : requestedNormalization ?? .cached
    }

    /// Checks the request against the model before any work.
    public func validate(_ model: Model) throws {
        guard !groupings.isEmpty else { throw AttributionError.noGrouping }
        if let repeated = groupings.first(where: { g in groupings.filter { $0 == g }.count > 1 }) {
            throw AttributionError.repeatedGrouping(repeated.rawValue)
        }
        for grouping in groupings {
            switch grouping {
            case .neuron:
                guard let layers, !layers.isEmpty else { throw AttributionError.layersNeeded }
                for layer in layers {
                    guard model.blocks.indices.contains(layer) else { throw AttributionError.layerOutOfRange(layer: layer, layers: model.blocks.count) }
                    guard model.blocks[layer].mlp != nil else { throw AttributionError.noMLP(layer: layer) }
                }
            case .head:
                guard model.blocks.contains(where: { $0.attention != nil }) else { throw AttributionError.noUnits(grouping: "head") }
            case .layer:
                guard requestedNormalization != .cached else { throw AttributionError.cachedLayer }
            case .component: break
            }
        }
    }

    /// The batches of prompts a run over `items` prompts computes, as ranges of item indices.
    public func batches(items: Int) -> [Range<Int>] {
        stride(from: 0, to: items, by: batchSize).map { $0..<min($0 + batchSize, items) }
    }

    /// The attribution averaged over all items (the first grouping's; `runAll` gives every grouping's).
    public func run(_ model: Model, on items: AttributionItems, progress: ((Int, Int) -> Void)? = nil) throws -> AttributionResult {
        try runAll(model, on: items, progress: progress)[0]
    }

    /// Every grouping's attribution averaged over all items, in the order of `groupings`.
    public func runAll(_ model: Model, on items: AttributionItems, progress: ((Int, Int) -> Void)? = nil) throws -> [AttributionResult] {
        try sums(model, on: items, progress: progress).averaged()
    }

    /// The per-batch sums of the batches `only` (indices into `batches(items:)`; nil: all), each
    /// batch from one forward pass capturing only the hooks the groupings read, unembedding only
    /// the answer and foil columns, and computing the items' shared first tokens once.
    public func sums(_ model: Model, on items: AttributionItems, only: [Int]? = nil,
                     progress: ((Int, Int) -> Void)? = nil) throws -> AttributionSums {
        try validate(model)
        let grids = groupings.map { AttributionGrid(self, grouping: $0, model: model) }
        var hooks: [HookPoint] = []
        for hook in groupings.flatMap({ hooksToCapture($0, model) }) where !hooks.contains(hook) { hooks.append(hook) }
        let capture = HookFilter(hooks)
        let columns = Array(Set(items.items.flatMap { [$0.answer] + ($0.foil.map { [$0] } ?? []) })).sorted()
        let all = batches(items: items.items.count)
        let chosen = only ?? Array(all.indices)
        var out: [AttributionSums.Batch] = []
        for (done, b) in chosen.enumerated() {
            let batch = Array(items.items[all[b]])
            let run = try model.runSharingFirstTokens(batch.map(\.tokens), capture: capture, columns: columns)
            let directions = Directions(batch, model: model)
            var actual = 0.0, bias = 0.0
            for (p, item) in batch.enumerated() {
                let logits = run.logits[p]
                func logit(_ token: Int) -> Double { Double(logits[flat: columns.firstIndex(of: token)!]) }
                actual += logit(item.answer) - (item.foil.map(logit) ?? 0)
                bias += directions.biasTerm[p]
            }
            var values: [[Double]] = []
            for (grouping, grid) in zip(groupings, grids) {
                var sums = [Double](repeating: 0, count: grid.cellCount)
                try accumulate(grouping, into: &sums, grid: grid, run: run, batch: batch, directions: directions, model: model)
                values.append(sums)
            }
            out.append(AttributionSums.Batch(index: b, items: batch.count, values: values, actual: actual, lnFinalBias: bias))
            progress?(done + 1, chosen.count)
        }
        let direction = items.isContrast ? "answer − corrupted_answer" : "token \"\(model.tokenText(items.items[0].answer))\""
        let layouts = zip(groupings, grids).map { grouping, grid in
            AttributionSums.Layout(grouping: grouping, normalization: normalization(for: grouping), dims: grid.dims, shape: grid.shape,
                                   labels: grid.labels, axisLabels: grid.axisLabels, exists: grid.exists)
        }
        return AttributionSums(layouts: layouts, direction: direction, batches: out)
    }

    /// The hooks a grouping reads, and ln_final's scale.
    func hooksToCapture(_ grouping: AttributionGrouping, _ model: Model) -> [HookPoint] {
        switch grouping {
        case .component: return ResidualStack.hooksToCapture(.decomposed, in: model) + [.finalScale]
        case .layer: return ResidualStack.hooksToCapture(.accumulated(includeMid: includeMid), in: model)
        case .head: return model.blocks.indices.filter { model.blocks[$0].attention != nil }.map { .z($0) } + [.finalScale]
        case .neuron: return (layers ?? []).map { .mlpPost($0) } + [.finalScale]
        }
    }

    private func accumulate(_ grouping: AttributionGrouping, into sums: inout [Double], grid: AttributionGrid, run: RunResult,
                            batch: [AttributionItem], directions: Directions, model: Model) throws {
        let cache = run.cache
        let eps = Double(model.config.layerNormEpsilon)
        let scaleKind = normalization(for: grouping)
        func scale(_ p: Int) throws -> Double {
            guard let scale = cache[.finalScale, p] else { throw ActivationCacheError.notCaptured(HookPoint.finalScale.name) }
            return Double(scale[flat: scale.count - 1])
        }
        let last = batch.indices.map { run.capturedRow(batch[$0].tokens.count - 1, prompt: $0) }  // the last position's captured row
        switch grouping {
        case .component:
            for p in batch.indices {
                let stack = try ResidualStack(.decomposed, cache: cache, prompt: p, positions: [last[p]], model: model)
                let s = try scale(p)
                for c in stack.labels.indices {  // stack.values [component, 1, d]
                    let divisor = scaleKind == .cached ? s : Vectors.layerNormScale(stack.values, row: c, eps: eps)
                    sums[c] += Vectors.dot(stack.values, row: c, directions.centredRows, row: p) / divisor
                }
            }
        case .layer:
            for p in batch.indices {
                let stack = try ResidualStack(.accumulated(includeMid: includeMid), cache: cache, prompt: p, positions: [last[p]], model: model)
                let normalised = try stack.finalLayerNorm(.recomputed, model: model, addBias: true)  // [rows, 1, d]
                for r in stack.labels.indices { sums[r] += Vectors.dot(normalised, row: r, directions.rawRows, row: p) }
            }
        case .head:
            for (row, layer) in grid.layers.enumerated() {
                guard let attention = model.blocks[layer].attention else { continue }
                let nHead = attention.nHead, dHead = attention.dHead, d = model.dModel
                // W_O [nHead·d_head, d] · cᵀ [d, items] = what one unit of z writes along each item's direction.
                let perUnit = directions.project(attention.outWeight, rows: nHead * dHead)  // [nHead·d_head, items]
                for p in batch.indices {
                    let z = try cache.rows(.z(layer), prompt: p, positions: [last[p]])  // [1, nHead·d_head]
                    let s = try scale(p)
                    for h in 0..<nHead {
                        var value = 0.0
                        for j in (h * dHead)..<((h + 1) * dHead) { value += Double(z[flat: j]) * Double(perUnit[flat: j * batch.count + p]) }
                        if scaleKind == .recomputed {
                            // The head's own output z_h · W_O[h] [d] gives its own scale.
                            var result = Tensor(zeros: [1, d])
                            withExtendedLifetime((z, attention.outWeight)) {
                                Kernels.matmul(z.pointer + h * dHead, attention.outWeight.pointer + h * dHead * d, bias: nil,
                                               into: result.mutablePointer, m: 1, k: dHead, n: d)
                            }
                            sums[grid.cell(row, h)] += value / Vectors.layerNormScale(result, row: 0, eps: eps)
                        } else {
                            sums[grid.cell(row, h)] += value / s
                        }
                    }
                }
            }
        case .neuron:
            for (row, layer) in grid.layers.enumerated() {
                let mlp = model.blocks[layer].mlp!
                let dMLP = mlp.outWeight.shape[0]
                // W_out [d_mlp, d] · cᵀ [d, items]: what each neuron writes along each item's direction per unit of activation.
                let perNeuron = directions.project(mlp.outWeight, rows: dMLP)  // [d_mlp, items]
                let neuronScales = scaleKind == .recomputed ? Vectors.rowVariances(mlp.outWeight, rows: dMLP) : []
                for p in batch.indices {
                    let post = try cache.rows(.mlpPost(layer), prompt: p, positions: [last[p]])  // [1, d_mlp]
                    let s = try scale(p)
                    for n in 0..<dMLP {
                        let a = Double(post[flat: n])
                        // Recomputed: the neuron's output a · W_out[n] has scale √(a² var(W_out[n]) + eps).
                        let divisor = scaleKind == .cached ? s : (a * a * neuronScales[n] + eps).squareRoot()
                        sums[grid.cell(row, n)] += a * Double(perNeuron[flat: n * batch.count + p]) / divisor
                    }
                }
            }
        }
    }
}

/// Per item of a batch: dir = W_U[answer] − W_U[foil] (or W_U[answer]) [d], the centred
/// c = w ⊙ dir − mean(w ⊙ dir) [d], and the bias term ln_final.b · dir no part writes.
struct Directions {
    /// [items, d]
    let rawRows: Tensor
    /// [items, d]
    let centredRows: Tensor
    let biasTerm: [Double]
    let d: Int

    init(_ items: [AttributionItem], model: Model) {
        let d = model.dModel
        self.d = d
        var raw = Tensor(zeros: [items.count, d]), centred = Tensor(zeros: [items.count, d])
        var bias: [Double] = []
        let w = model.lnFinal.weight, b = model.lnFinal.bias, unembed = model.unembed  // unembed [vocab, d]
        for (i, item) in items.enumerated() {
            let answer = unembed.pointer + item.answer * d
            let foil = item.foil.map { unembed.pointer + $0 * d }
            var mean = 0.0, biasTerm = 0.0
            for j in 0..<d {
                let dir = answer[j] - (foil?[j] ?? 0)
                raw.mutablePointer[i * d + j] = dir
                centred.mutablePointer[i * d + j] = w[flat: j] * dir
                mean += Double(w[flat: j] * dir)
                biasTerm += Double(b[flat: j]) * Double(dir)
            }
            let m = Float(mean / Double(d))
            for j in 0..<d { centred.mutablePointer[i * d + j] -= m }
            bias.append(biasTerm)
        }
        rawRows = raw; centredRows = centred; biasTerm = bias
    }

    /// weight [rows, d] · cᵀ [d, items] → [rows, items]: one matrix product for a layer.
    func project(_ weight: Tensor, rows: Int) -> Tensor {
        let items = centredRows.shape[0]
        var out = Tensor(zeros: [rows, items])
        withExtendedLifetime((weight, centredRows)) {
            Kernels.matmul(weight.pointer, centredRows.pointer, bias: nil, into: out.mutablePointer, m: rows, k: d, n: items, transposeB: true)
        }
        return out
    }
}

/// Rows of matrices in double precision. They read a matrix's storage while holding the matrix, so
/// a row of a temporary is never read after it is freed.
enum Vectors {
    /// row `i` of a [rows, d] (or [rows, 1, d]) matrix `a` · row `j` of `b`.
    static func dot(_ a: Tensor, row i: Int, _ b: Tensor, row j: Int) -> Double {
        let d = a.shape.last!
        precondition(b.shape.last! == d, "rows of different widths")
        return withExtendedLifetime((a, b)) {
            let x = a.pointer + i * d, y = b.pointer + j * d
            var sum = 0.0
            for k in 0..<d { sum += Double(x[k]) * Double(y[k]) }
            return sum
        }
    }

    /// √(var + eps) of row `i` (biased variance): a LayerNorm's scale of that row.
    static func layerNormScale(_ a: Tensor, row i: Int, eps: Double) -> Double {
        let d = a.shape.last!
        return withExtendedLifetime(a) {
            let x = UnsafeBufferPointer(start: a.pointer + i * d, count: d)
            let mean = x.reduce(0.0) { $0 + Double($1) } / Double(d)
            let variance = x.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(d)
            return (variance + eps).squareRoot()
        }
    }

    /// The biased variance of each row of a [rows, d] matrix.
    static func rowVariances(_ matrix: Tensor, rows: Int) -> [Double] {
        (0..<rows).map { r in
            let scale = layerNormScale(matrix, row: r, eps: 0)
            return scale * scale
        }
    }
}
