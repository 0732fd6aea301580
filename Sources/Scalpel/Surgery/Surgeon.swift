import Foundation

/// Turns a plan into a model: checks it against the models, then edits the block list.
/// Edits return a new `Model` whose tensors share storage with the source models (no weight copies).
public enum Surgeon {
    /// The models a plan needs, loaded: the base (overridable by `--model`) and the `models:` it stitches from.
    public static func loadModels(for plan: Plan, baseOverride: String?) throws -> (base: Model, others: [String: Model]) {
        let base = try ModelLocation.load(named: baseOverride ?? plan.base, relativeTo: baseOverride == nil ? plan.folder : nil,
                                          field: "\(plan.origin), base")
        var others: [String: Model] = [:]
        for (name, path) in plan.models {
            others[name] = try ModelLocation.load(named: path, relativeTo: plan.folder, field: "\(plan.origin), models.\(name)")
        }
        return (base, others)
    }

    /// Checks every block, head and neuron of `plan` against the models, before any work.
    public static func validate(_ plan: Plan, base: Model, others: [String: Model]) throws {
        for (index, spec) in plan.blocks.enumerated() {
            let location = "\(plan.origin), blocks[\(index)]"
            let source = try model(for: spec, base: base, others: others, location: location)
            guard source.dModel == base.dModel else {
                throw PlanError.widthMismatch(location: location, model: spec.model ?? base.name, width: source.dModel, baseWidth: base.dModel)
            }
            for layer in [spec.layers.lowerBound, spec.layers.upperBound] where layer >= source.blocks.count {
                throw PlanError.layerOutOfRange(location: location, entry: spec.description, layer: layer, layers: source.blocks.count)
            }
        }
        for edit in plan.edits {
            switch edit.target {
            case let .ablateHeads(units), let .keepHeads(units):
                for unit in units {
                    guard unit.layer < base.blocks.count else {
                        throw PlanError.layerOutOfRange(location: edit.location, entry: unit.description, layer: unit.layer, layers: base.blocks.count)
                    }
                    let heads = base.blocks[unit.layer].attention?.nHead ?? base.config.nHead
                    guard unit.index < heads else {
                        throw PlanError.headOutOfRange(location: edit.location, entry: unit.description, heads: heads)
                    }
                }
            case let .ablateNeurons(units):
                for unit in units {
                    guard unit.layer < base.blocks.count else {
                        throw PlanError.layerOutOfRange(location: edit.location, entry: unit.description, layer: unit.layer, layers: base.blocks.count)
                    }
                    let neurons = base.blocks[unit.layer].mlp?.dMLP ?? base.config.nInner
                    guard unit.index < neurons else {
                        throw PlanError.neuronOutOfRange(location: edit.location, entry: unit.description, neurons: neurons)
                    }
                }
            case let .circuit(circuit):
                // Against the base here; against the graph built so far when the edit is applied.
                do { try CircuitMeans.validate(circuit, model: base, lengths: []) } catch let error as CircuitError {
                    throw PlanError.circuit(location: edit.location, reason: error.message)
                }
            }
            let longest = base.config.nPositions
            if let position = edit.positions?.first(where: { $0 >= longest || $0 < -longest }) {
                throw PlanError.badValue(location: "\(edit.location).positions", value: "\(position)",
                                         expected: "a position the model has: 0…\(longest - 1), or -\(longest)…-1 from the end")
            }
            if let name = edit.dataset, (try? DatasetFiles.resolve(name)) == nil {
                throw PlanError.unknownDataset(location: edit.location, name: name)
            }
        }
    }

    /// The token-id prompts a mean ablation averages over: by default its dataset's clean prompts.
    public typealias MeanPrompts = (_ edit: Edit, _ model: Model) throws -> [[Int]]

    public static let datasetPrompts: MeanPrompts = { edit, model in
        let dataset = try DatasetFiles.resolve(edit.dataset!)
        return try dataset.items.map { try model.encode(prompt: $0.prompt) }
    }

    /// Validates and builds. Mean ablations run the graph built so far on their prompts.
    public static func build(_ plan: Plan, base: Model, others: [String: Model] = [:],
                             meanPrompts: MeanPrompts = datasetPrompts) throws -> Model {
        try validate(plan, base: base, others: others)
        var model = base
        model.blocks = try plan.blocks.enumerated().flatMap { index, spec in
            let source = try self.model(for: spec, base: base, others: others, location: "\(plan.origin), blocks[\(index)]")
            return spec.layers.map { select(spec.part, of: source.blocks[$0]) }
        }
        model.config.nLayer = model.blocks.count
        for edit in plan.edits { model = try apply(edit, to: model, baseName: base.name, meanPrompts: meanPrompts) }
        return model
    }

    static func model(for spec: BlockSpec, base: Model, others: [String: Model], location: String) throws -> Model {
        guard let name = spec.model else { return base }
        guard let other = others[name] else { throw PlanError.unknownModel(location: location, name: name, known: others.keys.sorted()) }
        return other
    }

    /// Keeps one half of a block, or the MLP without its LayerNorm.
    static func select(_ part: BlockSpec.Part, of block: Block) -> Block {
        var block = block
        switch part {
        case .whole: break
        case .attention: block.mlp = nil
        case .mlp: block.attention = nil
        case .mlpWithoutLayerNorm: block.attention = nil; block.mlp?.ln = nil
        }
        return block
    }

    static func apply(_ edit: Edit, to model: Model, baseName: String, meanPrompts: MeanPrompts) throws -> Model {
        if case let .circuit(circuit) = edit.target { return try applyCircuit(circuit, edit: edit, to: model, meanPrompts: meanPrompts) }
        var model = model
        // Blocks of the new graph that came from each base layer (a layer may appear more than once).
        func blocks(fromLayer layer: Int, needing half: String) throws -> [Int] {
            let found = model.blocks.indices.filter { model.blocks[$0].source == BlockSource(model: baseName, layer: layer) }
            let usable = found.filter { half == "attn" ? model.blocks[$0].attention != nil : model.blocks[$0].mlp != nil }
            guard !usable.isEmpty else {
                throw PlanError.badValue(location: edit.location, value: "layer \(layer)",
                                         expected: "a layer whose \(half == "attn" ? "attention" : "MLP") is in the block list")
            }
            return usable
        }
        // Means of the graph built so far (earlier edits applied, this one not), once per edit.
        let means = try edit.mode == .mean ? MeanActivations.compute(model: model, prompts: try meanPrompts(edit, model), hooks: meanHooks(edit, model)) : nil
        func ablation(_ hook: HookPoint, unit: Int, at positions: AblationPositions) throws -> Ablation {
            do {
                return Ablation(try means?.replacement(edit.means, hook: hook, unit: unit) ?? .zero, at: positions)
            } catch let error as MeanActivationsError {
                throw PlanError.means(location: edit.location, reason: error.message)  // which edit asked for them
            }
        }
        let listed = edit.positions.map { AblationPositions.only($0) } ?? .all
        switch edit.target {
        case let .ablateHeads(units), let .keepHeads(units):
            // Each target with the positions it is ablated at.
            var targets: [(block: Int, head: Int, positions: AblationPositions)] = []
            if case .keepHeads = edit.target {
                let kept = Set(units)
                for (i, block) in model.blocks.enumerated() {
                    guard let attention = block.attention else { continue }
                    let keptHere = block.source.model == baseName ? kept.filter { $0.layer == block.source.layer }.map(\.index) : []
                    // Every head of this block, which may have more or fewer than the base model's;
                    // a kept head with listed positions keeps its own activation only there.
                    for head in 0..<attention.nHead {
                        if !keptHere.contains(head) { targets.append((i, head, .all)) }
                        else if let positions = edit.positions { targets.append((i, head, .allBut(positions))) }
                    }
                }
            } else {
                for unit in units { targets += try blocks(fromLayer: unit.layer, needing: "attn").map { ($0, unit.index, listed) } }
                for target in targets where target.head >= model.blocks[target.block].attention!.nHead {
                    throw PlanError.headOutOfRange(location: edit.location, entry: "\(model.blocks[target.block].source.layer).\(target.head)",
                                                   heads: model.blocks[target.block].attention!.nHead)
                }
            }
            let ablations = try targets.map { try ablation(.z($0.block), unit: $0.head, at: $0.positions) }
            for (target, ablation) in zip(targets, ablations) {
                model.blocks[target.block].attention!.headAblations[target.head] = ablation
            }
        case .circuit: break  // applyCircuit
        case let .ablateNeurons(units):
            var targets: [(block: Int, neuron: Int)] = []
            for unit in units { targets += try blocks(fromLayer: unit.layer, needing: "mlp").map { ($0, unit.index) } }
            for target in targets where target.neuron >= model.blocks[target.block].mlp!.dMLP {
                throw PlanError.neuronOutOfRange(location: edit.location, entry: "\(model.blocks[target.block].source.layer).\(target.neuron)",
                                                 neurons: model.blocks[target.block].mlp!.dMLP)
            }
            let ablations = try targets.map { try ablation(.mlpPost($0.block), unit: $0.neuron, at: listed) }
            for (target, ablation) in zip(targets, ablations) {
                model.blocks[target.block].mlp!.neuronAblations[target.neuron] = ablation
            }
        }
        return model
    }

    /// A circuit's mean ablation, built in: the same means (`CircuitMeans`, over the edit's dataset on
    /// the graph built so far) and the same ablations as `scalpel circuit --save-model` writes.
    static func applyCircuit(_ circuit: Circuit, edit: Edit, to model: Model, meanPrompts: MeanPrompts) throws -> Model {
        do {
            try CircuitMeans.validate(circuit, model: model, lengths: [])
            let prompts = try meanPrompts(edit, model)
            // Per-position means fit one prompt length: the circuit's positions must exist in it.
            let lengths = Set(prompts.map(\.count))
            if edit.means == .perPosition, lengths.count == 1 { try CircuitMeans.validate(circuit, model: model, lengths: Array(lengths)) }
            let means = try MeanActivations.compute(model: model, prompts: prompts, hooks: CircuitMeans.hooks(of: model))
            return try CircuitMeans(model: model, means: means, kind: edit.means).bake(circuit, into: model)
        } catch let error as CircuitError {
            throw PlanError.circuit(location: edit.location, reason: error.message)
        } catch let error as MeanActivationsError {
            throw PlanError.means(location: edit.location, reason: error.message)
        }
    }

    /// The hooks an edit's means are needed at: `hook_z` of every attention block (keep_heads may
    /// ablate any head), or `mlp.hook_post` of every MLP block.
    static func meanHooks(_ edit: Edit, _ model: Model) -> [HookPoint] {
        if case .ablateNeurons = edit.target { return model.blocks.indices.filter { model.blocks[$0].mlp != nil }.map { .mlpPost($0) } }
        return model.blocks.indices.filter { model.blocks[$0].attention != nil }.map { .z($0) }
    }
}
