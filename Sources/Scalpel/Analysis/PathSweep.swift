import Foundation

/// Which directions a path search covers.
public enum PathDirections: Sendable {
    /// Between two families, pairing items of the same value (digits → number words).
    case offset(from: String, to: String)
    /// Each item of a family to the next one (March → April).
    case next(family: String)
    /// Every ordered pair of families and every family's next direction, each with at least 2 pairs.
    case all
}

/// A path search over one or many directions, as `scalpel paths` runs it: resolves the families,
/// builds the directions, searches them layer by layer (so that a caller can show progress) and
/// summarises the points. The command only parses its flags into one and prints the result.
public struct PathSweep {
    public var search: VectorPaths
    /// Families from a user's file, besides the built-in ones.
    public var extraFamilies: [SequenceFamily]

    public init(search: VectorPaths, extraFamilies: [SequenceFamily] = []) {
        self.search = search
        self.extraFamilies = extraFamilies
    }

    /// The directions of `choice`. `note` hears which items of a family were skipped because they
    /// are not a single token of this model.
    public func directions(_ choice: PathDirections, model: Model, note: (String) -> Void = { _ in }) throws -> [VectorPaths.Direction] {
        func items(_ name: String) throws -> VectorPaths.Items {
            let items = try search.items(try SequenceFamilies.resolve(name, extra: extraFamilies), model: model)
            if !items.skipped.isEmpty { note("\(name): skipped \(items.skipped.joined(separator: ", ")) (not a single token here)") }
            return items
        }
        let directions: [VectorPaths.Direction]
        switch choice {
        case .all:
            // A sweep leaves out the directions with too few pairs instead of refusing them.
            let loaded = try (SequenceFamilies.all + extraFamilies).map(\.name).map(items)
            var all: [VectorPaths.Direction] = []
            for a in loaded { for b in loaded where a.family != b.family {
                let d = VectorPaths.offset(from: a, to: b)
                if d.pairs.count >= 2 { all.append(d) }
            } }
            return all + loaded.map(VectorPaths.next).filter { $0.pairs.count >= 2 }
        case let .next(family):
            directions = [VectorPaths.next(try items(family))]
        case let .offset(from, to):
            directions = [VectorPaths.offset(from: try items(from), to: try items(to))]
        }
        if let d = directions.first, d.pairs.count < 2 {
            throw PathsError.tooFewPairs(direction: d.name, pairs: d.pairs.count)
        }
        return directions
    }

    public struct Result {
        public var directions: [VectorPaths.Direction]
        public var points: [PathPoint]
        public var summaries: [PathSummary]
    }

    /// The units of work of a search over `directions`: one per (direction, layer), direction-major
    /// (unit d · layers + l). A unit is computed in one go (one decode and one propagated batch of
    /// its points), so `--shard K/N` deals units: the points are the same bits in any process.
    public func units(_ directions: [VectorPaths.Direction], model: Model) -> Int {
        directions.count * (search.layers ?? Array(model.blocks.indices)).count
    }

    /// Searches every direction at every layer (with `shard`, only that part's units);
    /// `progress(done, total)` is called after each (direction, layer) step.
    public func run(_ directions: [VectorPaths.Direction], model: Model, shard: Shard? = nil,
                    progress: (_ done: Int, _ total: Int) -> Void = { _, _ in }) throws -> Result {
        let layers = search.layers ?? Array(model.blocks.indices)
        let mine = Set(shard?.indices(of: units(directions, model: model)) ?? Array(0..<units(directions, model: model)))
        var points: [PathPoint] = []
        var done = 0
        for (d, direction) in directions.enumerated() {
            let todo = layers.indices.filter { mine.contains(d * layers.count + $0) }
            guard !todo.isEmpty else { continue }
            // Every layer's representations in one run, as a whole-direction search reads them; the
            // one-layer searches below find them in the search's memo. Either way the points are
            // those of `search.run(direction)` bit for bit: capturing changes no number.
            _ = try search.representations(direction.from, model: model, layers: layers)
            _ = try search.representations(direction.to, model: model, layers: layers)
            for l in todo {
                var step = search
                step.layers = [layers[l]]
                points += try step.run(direction, model: model)
                done += 1
                progress(done, mine.count)
            }
        }
        return Result(directions: directions, points: points, summaries: PathSummary.summarize(points))
    }

    /// What `paths -o` stores besides the points: each family's representations and each
    /// direction's mean offset over all its pairs, per layer.
    public func record(_ result: Result, model: Model) throws -> Record {
        let layers = search.layers ?? Array(model.blocks.indices)
        let d = model.dModel
        var families: [String: VectorPaths.Items] = [:]
        for direction in result.directions { families[direction.from.family.name] = direction.from; families[direction.to.family.name] = direction.to }
        var representations: [String: [Tensor]] = [:]
        for (name, items) in families {
            let byLayer = try search.representations(items, model: model, layers: layers)
            representations[name] = try layers.map { layer in
                guard let tensor = byLayer[layer] else {
                    throw ActivationCacheError.notCaptured(HookPoint(search.hook, block: layer)?.name ?? search.hook.rawValue)
                }
                return tensor
            }
        }
        let stacks = families.sorted(by: { $0.key < $1.key }).map { name, items in
            let stacked = (representations[name] ?? []).flatMap(\.scalars)
            return Record.Family(name: name, items: items.items, values: items.values,
                                 representations: Tensor(shape: [layers.count, items.items.count, d], data: stacked))
        }
        let offsets = result.directions.map { direction in
            let sources = representations[direction.from.family.name] ?? [], targets = representations[direction.to.family.name] ?? []
            let deltas = zip(sources, targets).flatMap { source, target -> [Float] in
                var sum = [Double](repeating: 0, count: d)
                for (i, j) in direction.pairs { for c in 0..<d { sum[c] += Double(target[flat: j * d + c]) - Double(source[flat: i * d + c]) } }
                return sum.map { Float($0 / Double(max(direction.pairs.count, 1))) }
            }
            return Record.Offset(direction: direction.name, delta: Tensor(shape: [layers.count, d], data: deltas),
                                 points: result.points.filter { $0.direction == direction.name })
        }
        return Record(template: search.template, leaveOneOut: search.leaveOneOut, layers: layers, hook: search.hook,
                      alphas: search.alphas, families: stacks, offsets: offsets)
    }

    /// A finished path search as `PathsFile` stores it.
    public struct Record {
        public struct Family {
            public var name: String
            public var items: [String]
            public var values: [Int]
            /// [layer, item, d_model], at the search's hook.
            public var representations: Tensor
        }

        public struct Offset {
            public var direction: String
            /// [layer, d_model]: the mean of target − source over all the direction's pairs.
            public var delta: Tensor
            /// The direction's path points.
            public var points: [PathPoint]
        }

        public var template: VectorPaths.Template
        public var leaveOneOut: Bool
        public var layers: [Int]
        public var hook: HookPoint.Kind
        public var alphas: [Double]
        /// Sorted by name.
        public var families: [Family]
        /// In the order of the search's directions.
        public var offsets: [Offset]
    }
}
