import ArgumentParser
import Foundation
import Scalpel

extension VectorPaths.Template: ExpressibleByArgument {}

/// `scalpel paths`: the path search (the default subcommand) and the study's added-vector run.
struct Paths: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Vector-arithmetic paths between item families (digits → number words, March → April).",
        discussion: """
        Examples:
          scalpel paths --from digits --to number-words
          scalpel paths --direction next --family months
          scalpel paths --all                      (every family pair and every family's next direction)
          scalpel paths add-vector blocks.3.hook_mlp_out --vector-prompt "January February March April" \\
                        --prompt "one two three four" --expect " five" --layer 3 --p 1 --n 1 --q 0
        """,
        subcommands: [PathSearch.self, AddVector.self],
        defaultSubcommand: PathSearch.self)
}

/// The kinds of direction `--direction` names.
enum DirectionKind: String, ExpressibleByArgument, CaseIterable {
    case offset, next
}

struct PathSearch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Search vector-arithmetic paths between item families (the default: `scalpel paths --from …`).",
        discussion: "-o writes the vectors, offsets and every path's decode; --plot draws accuracy against layer and one path decoded step by step.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Source family for an offset direction.") var from: String?
    @Option(help: "Target family for an offset direction.") var to: String?
    @Option(help: "offset (between --from and --to) or next (within --family).") var direction: DirectionKind = .offset
    @Option(help: "The family of a next direction.") var family: String?
    @Flag(help: "Sweep every family pair and every family's next direction.") var all = false
    @Option(help: "A YAML/JSON file of extra families: a list of {name, items, values}.") var families: String?
    @Option(help: "sequence (the item ends its own sequence) or alone (BOS then the item).") var template: VectorPaths.Template = .sequence
    @Option(help: "Blocks whose residual stream is used, e.g. 0,3,5 (default all).") var layers: String?
    @Option(help: "Residual hook of each block: \(VectorPaths.hooks.map(\.rawValue).joined(separator: ", ")).")
    var hook = HookPoint.Kind.residPost.rawValue
    @Option(parsing: .unconditional, help: "α grid as start:end:step (at most \(PathSearch.maxAlphas) values).") var alphas: String = "0:2:0.25"
    @Flag(help: "Use every pair for the direction, including the pair under test (for checks only).") var noLeaveOneOut = false
    @OptionGroup var reporting: ReportOptions
    @OptionGroup var sharding: ShardOption
    /// The flag `paths add-vector` replaced; kept only to say so.
    @Option(help: .hidden) var addVector: String?

    static let maxAlphas = 1_001

    func validate() throws {
        if let addVector {
            throw ValidationError("--add-vector is now a subcommand: scalpel paths add-vector \(addVector) --vector-prompt TEXT --prompt TEXT --expect TOKEN --layer L (see scalpel paths add-vector --help).")
        }
        _ = try alphaGrid()
        _ = try hookKind()
        try sharding.requireOutput(reporting.output)
        // Which directions (`choice()`) is checked in run(): ArgumentParser reports an unknown option
        // given to a default subcommand only after validate() passes, and that message comes first.
    }

    func run() throws {
        let choice = try choice()
        let outputs = try reporting.targets()
        let (outputTarget, plotTarget) = (outputs[0], outputs[1])
        let (model, plan) = try modelOptions.loadWithPlan()
        var search = VectorPaths()
        search.template = template
        search.alphas = try alphaGrid()
        search.leaveOneOut = !noLeaveOneOut
        search.layers = try layers.map { try parseLayers($0, model: model) }
        search.hook = try hookKind()
        let extra = try families.map { try SequenceFamilies.load(URL(fileURLWithPath: $0)) } ?? []
        let sweep = PathSweep(search: search, extraFamilies: extra)
        let directions = try sweep.directions(choice, model: model) { note in
            FileHandle.standardError.write(Data("note: \(note)\n".utf8))
        }
        let units = sweep.units(directions, model: model)
        // Each (pair, α, layer) point is one prompt run from its layer on: sized as patch's patched item-runs.
        let points = directions.reduce(0) { $0 + $1.pairs.count } * search.alphas.count * (search.layers?.count ?? model.blocks.count)
        sharding.hint(work: points, unit: "path points (each a run from its layer on)", limit: ShardAdvice.patchRunsAbove,
                      pieces: units, output: reporting.output)
        let progress = ProgressBar(total: 0, label: "paths")
        // --shard K/N: the (direction, layer) steps u with u mod N = K − 1.
        let result = try sweep.run(directions, model: model, shard: sharding.value) { done, total in progress.update(done, of: total) }
        progress.finish()
        try OutputTarget.together {
            if let outputTarget {
                try PathsFile.write(try sweep.record(result, model: model), to: outputTarget,
                                    attributes: try provenanceAttributes(model: model, plan: plan), shard: sharding.run(), units: units)
            }
            if let plotTarget { try plotTarget.write(Data(PathsPlot.svg(result.summaries, points: result.points, model: model).utf8)) }
        }
        sharding.notePartial(share: "\(sharding.value?.indices(of: units).count ?? units) of \(units) (direction, layer) steps", output: reporting.output)
        switch reporting.format {
        case .json, .csv: try RecordList(records: result.summaries.map(PathsRecord.init)).print(reporting.format)
        case .table: printTable(result.summaries, directions: directions, search: search)
        }
    }

    /// Which directions the flags ask for (`--all`, `--direction next --family`, or `--from --to`).
    func choice() throws -> PathDirections {
        if all { return .all }
        switch direction {
        case .next:
            guard let family else { throw ValidationError("--direction next needs --family NAME.") }
            return .next(family: family)
        case .offset:
            guard let from, let to else { throw ValidationError("give --from FAMILY --to FAMILY, --direction next --family NAME, or --all.") }
            return .offset(from: from, to: to)
        }
    }

    func hookKind() throws -> HookPoint.Kind {
        guard let kind = HookPoint.Kind(rawValue: hook), VectorPaths.hooks.contains(kind) else {
            throw HookError.noMatch(pattern: hook, suggestions: VectorPaths.hooks.map(\.rawValue))
        }
        return kind
    }

    func alphaGrid() throws -> [Double] {
        let parts = alphas.split(separator: ":").map { Double($0) }
        guard parts.count == 3, let start = parts[0], let end = parts[1], let step = parts[2],
              start.isFinite, end.isFinite, step.isFinite, step > 0, end >= start else {
            throw ValidationError("--alphas must be start:end:step of finite numbers with step > 0, e.g. 0:2:0.25 (got \(alphas)).")
        }
        guard (end - start) / step < Double(Self.maxAlphas) else {
            throw ValidationError("--alphas \(alphas) has \(String(format: "%.0f", ((end - start) / step).rounded(.down) + 1)) values; at most \(Self.maxAlphas) are allowed. Use a larger step.")
        }
        return stride(from: start, through: end + step / 1e6, by: step).map { $0 }
    }

    func parseLayers(_ text: String, model: Model) throws -> [Int] {
        try text.split(separator: ",").map { part in
            guard let layer = Int(part.trimmingCharacters(in: .whitespaces)), (0..<model.blocks.count).contains(layer) else {
                throw PathsError.layerOutOfRange(value: String(part), blocks: model.blocks.count)
            }
            return layer
        }
    }

    func printTable(_ summaries: [PathSummary], directions: [VectorPaths.Direction], search: VectorPaths) {
        print("template \(search.template.rawValue), \(search.leaveOneOut ? "leave-one-out" : "all pairs") directions, α \(alphas)")
        print("direction".padding(toLength: 30, withPad: " ", startingAt: 0) + "pairs  best decode (layer, α): top-1  top-5  rank   best propagated (layer, α): top-1  top-5  rank   α=0 decode top-1")
        for direction in directions {
            let rows = summaries.filter { $0.direction == direction.name }
            guard let bestDecode = rows.max(by: { ($0.decodeTop1, -$0.decodeMeanRank) < ($1.decodeTop1, -$1.decodeMeanRank) }),
                  let bestProp = rows.max(by: { ($0.propagatedTop1, -$0.propagatedMeanRank) < ($1.propagatedTop1, -$1.propagatedMeanRank) }) else { continue }
            let baseline = rows.filter { $0.alpha == 0 }.map(\.decodeTop1).max() ?? 0
            print(direction.name.padding(toLength: 30, withPad: " ", startingAt: 0)
                  + String(format: "%5d  (L%d, %.2f)               %5.0f%% %5.0f%% %6.1f   (L%d, %.2f)                   %5.0f%% %5.0f%% %6.1f   %5.0f%%",
                           direction.pairs.count, bestDecode.layer, bestDecode.alpha, bestDecode.decodeTop1 * 100, bestDecode.decodeTop5 * 100,
                           bestDecode.decodeMeanRank, bestProp.layer, bestProp.alpha, bestProp.propagatedTop1 * 100, bestProp.propagatedTop5 * 100,
                           bestProp.propagatedMeanRank, baseline * 100))
        }
        if directions.count == 1, let direction = directions.first {
            print("\naccuracy by layer at each layer's best α (decode-only / propagated top-1):")
            let rows = summaries.filter { $0.direction == direction.name }
            for layer in Set(rows.map(\.layer)).sorted() {
                let here = rows.filter { $0.layer == layer }
                let d = here.max { $0.decodeTop1 < $1.decodeTop1 }!, p = here.max { $0.propagatedTop1 < $1.propagatedTop1 }!
                print(String(format: "  L%-3d decode %5.0f%% (α %.2f)   propagated %5.0f%% (α %.2f)", layer, d.decodeTop1 * 100, d.alpha, p.propagatedTop1 * 100, p.alpha))
            }
        }
    }
}
