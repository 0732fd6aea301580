import ArgumentParser
import Foundation
import Scalpel

extension VectorPaths.Template: ExpressibleByArgument {}

struct Paths: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search vector-arithmetic paths between item families (digits → number words, March → April).",
        discussion: """
        Examples:
          scalpel paths --from digits --to number-words
          scalpel paths --direction next --family months
          scalpel paths --all                      (every family pair and every family's next direction)
          scalpel paths --add-vector blocks.3.hook_mlp_out --vector-prompt "January February March April" \\
                        --prompt "one two three four" --expect " five" --layer 3 --p 1 --n 1 --q 0
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Source family for an offset direction.") var from: String?
    @Option(help: "Target family for an offset direction.") var to: String?
    @Option(help: "offset (between --from and --to) or next (within --family).") var direction: String = "offset"
    @Option(help: "The family of a next direction.") var family: String?
    @Flag(help: "Sweep every family pair and every family's next direction.") var all = false
    @Option(help: "A YAML/JSON file of extra families: a list of {name, items, values}.") var families: String?
    @Option(help: "sequence (the item ends its own sequence) or alone (BOS then the item).") var template: VectorPaths.Template = .sequence
    @Option(help: "Blocks whose residual stream is used, e.g. 0,3,5 (default all).") var layers: String?
    @Option(help: "Residual hook of each block: \(VectorPaths.hooks.map(\.rawValue).joined(separator: ", ")).")
    var hook = HookPoint.Kind.residPost.rawValue
    @Option(parsing: .unconditional, help: "α grid as start:end:step (at most \(Paths.maxAlphas) values).") var alphas: String = "0:2:0.25"
    @Flag(help: "Use every pair for the direction, including the pair under test (for checks only).") var noLeaveOneOut = false
    @Option(help: "table, json or csv.") var format: OutputFormat = .table
    @Option(name: .shortAndLong, help: "Write vectors, offsets and every path decode to this .h5 file.") var output: String?
    @Option(help: "Draw accuracy against layer (and one path decoded step by step) to this .svg file.") var plot: String?
    @Flag(help: "Overwrite existing output files.") var force = false

    @Option(help: "Study procedure: the hook whose activation is added (e.g. blocks.3.hook_mlp_out).") var addVector: String?
    @Option(help: "Prompt the added vector is read from (last position).") var vectorPrompt: String?
    @Option(help: "Prompt the vector is added to.") var prompt: String?
    @Option(help: "Expected next token for the added-vector run.") var expect: String?
    @Option(parsing: .unconditional, help: "Block L of the added-vector run.") var layer: Int?
    @Option(parsing: .unconditional, help: "Scale before block L.") var p: Float = 1
    @Option(parsing: .unconditional, help: "Scale after block L.") var n: Float = 1
    @Option(parsing: .unconditional, help: "Scale on the final residual.") var q: Float = 0

    static let maxAlphas = 1_001

    func validate() throws {
        _ = try alphaGrid()
        for (value, flag) in [(p, "--p"), (n, "--n"), (q, "--q")] { try FlagCheck.finite(value, flag) }
        if let layer { try FlagCheck.count(layer, "--layer", in: 0...Int(Int32.max)) }
        // One added-vector run is a single outcome, not rows: it has a table and JSON, no CSV.
        if addVector != nil && format == .csv {
            throw ValidationError("--add-vector prints one outcome: use --format table or json (csv is for the path search).")
        }
    }

    func run() throws {
        let outputTarget = try output.map { try OutputTarget($0, overwrite: force) }
        let plotTarget = try plot.map { try OutputTarget($0, overwrite: force) }
        try OutputTarget.checkDistinct([outputTarget, plotTarget].compactMap { $0 })
        let (model, plan) = try modelOptions.loadWithPlan()
        if let addVector { return try runAddition(model, hook: addVector) }
        var search = VectorPaths()
        search.template = template
        search.alphas = try alphaGrid()
        search.leaveOneOut = !noLeaveOneOut
        search.layers = try layers.map { try parseLayers($0, model: model) }
        guard let kind = HookPoint.Kind(rawValue: hook), VectorPaths.hooks.contains(kind) else {
            throw HookError.noMatch(pattern: hook, suggestions: VectorPaths.hooks.map(\.rawValue))
        }
        search.hook = kind
        let extra = try families.map { try SequenceFamilies.load(URL(fileURLWithPath: $0)) } ?? []
        let directions = try makeDirections(search, model: model, extra: extra)
        let progress = ProgressBar(total: directions.count, label: "paths")
        var points: [PathPoint] = []
        for (k, direction) in directions.enumerated() {
            points += try search.run(direction, model: model)
            progress.update(k + 1)
        }
        progress.finish()
        let summaries = PathSummary.summarize(points)
        try OutputTarget.together {
            if let outputTarget {
                try PathsFile.write(search: search, directions: directions, points: points, model: model, to: outputTarget,
                                    attributes: try provenanceAttributes(model: model, plan: plan))
            }
            if let plotTarget { try plotTarget.write(Data(PathsPlot.svg(summaries, points: points, model: model).utf8)) }
        }
        switch format {
        case .json, .csv: try RecordList(records: summaries.map(PathsRecord.init)).print(format)
        case .table: printTable(summaries, directions: directions, search: search)
        }
    }

    func makeDirections(_ search: VectorPaths, model: Model, extra: [SequenceFamily]) throws -> [VectorPaths.Direction] {
        func items(_ name: String) throws -> VectorPaths.Items {
            let items = try search.items(try SequenceFamilies.resolve(name, extra: extra), model: model)
            if !items.skipped.isEmpty {
                FileHandle.standardError.write(Data("note: \(name): skipped \(items.skipped.joined(separator: ", ")) (not a single token here)\n".utf8))
            }
            return items
        }
        var directions: [VectorPaths.Direction] = []
        if all {
            let names = (SequenceFamilies.all + extra).map(\.name)
            let loaded = try names.map(items)
            for a in loaded { for b in loaded where a.family != b.family {
                let d = VectorPaths.offset(from: a, to: b)
                if d.pairs.count >= 2 { directions.append(d) }
            } }
            directions += loaded.map(VectorPaths.next).filter { $0.pairs.count >= 2 }
            return directions
        }
        switch direction {
        case "next":
            guard let family else { throw ValidationError("--direction next needs --family NAME.") }
            directions = [VectorPaths.next(try items(family))]
        case "offset":
            guard let from, let to else { throw ValidationError("give --from FAMILY --to FAMILY, --direction next --family NAME, or --all.") }
            directions = [VectorPaths.offset(from: try items(from), to: try items(to))]
        default:
            throw ValidationError("--direction must be offset or next, not \"\(direction)\".")
        }
        if let d = directions.first, d.pairs.count < 2 {
            throw PathsError.tooFewPairs(direction: d.name, pairs: d.pairs.count)
        }
        return directions
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

    func runAddition(_ model: Model, hook: String) throws {
        guard let vectorPrompt, let prompt, let expect, let layer else {
            throw ValidationError("--add-vector needs --vector-prompt, --prompt, --expect and --layer.")
        }
        guard (0..<model.blocks.count).contains(layer) else { throw PathsError.layerOutOfRange(value: "\(layer)", blocks: model.blocks.count) }
        let vector = try VectorAddition.vector(at: hook, prompt: try model.encode(prompt: vectorPrompt), model: model)
        let addition = VectorAddition(vector: vector, layer: layer, p: p, n: n, q: q)
        let expected = try model.answerID(expect)
        let outcome = try addition.run(model, prompt: try model.encode(prompt: prompt), expected: expected)
        if format == .json { try Output.json(outcome); return }  // validate() refused csv
        let labels = ["decode before L\(layer) (+\(p)·v)", "decode after L\(layer) (+\(n)·v)", "decode final (+\(q)·v)"]
        for (label, judgement) in zip(labels, outcome.decoded) + [("propagated", outcome.propagated)] {
            print(label.padding(toLength: 30, withPad: " ", startingAt: 0) + "rank of \(Output.shown(expect)): \(judgement.rank)   top: "
                  + judgement.top.map { Output.shown(model.tokenText($0)) }.joined(separator: " "))
        }
    }
}

