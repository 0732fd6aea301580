import ArgumentParser
import Foundation
import Scalpel

/// `scalpel heads`: what heads do. One analysis per run, chosen by a flag (`--pattern`, `--detect`,
/// `--copy-scores`, `--writing`) rather than a subcommand (ArgumentParser reads a parent's options
/// only before a subcommand's name); every option of the command is declared here, in one place.
struct Heads: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What heads do: attention patterns, head detectors, OV copy and next scores, writing-direction scatter.",
        discussion: """
        --pattern 9.1,6.1: those heads' attention patterns over --prompt/--dataset/--prompts (a dataset is \
        averaged position by position, so its items need one number of tokens): query × key heat maps and \
        the multi-head view of one destination (--dest, 0-based, negative from the end; default the last) \
        with --plot, an interactive viewer with --html, the patterns with -o; the table lists the --top \
        source tokens (default 5) each head attends to from the destination.
        --detect previous-token|duplicate-token|induction (TransformerLens detect_head, error measure mul) \
        or same-family (share of attention on earlier tokens of the token's own family), several separated \
        by commas or all, from one forward pass, over every head, on --prompt/--dataset/--prompts or on \
        --random-repeated N seeded repeated random tokens.
        --copy-scores --dataset D: the study's OV copy score (own token in the top 5) and "next" score \
        (following token in the top 5) of every head; --heads 9.1,4.4 prints their top-5 tables.
        --writing L.H --dataset D: attention from the last position to each token against the head's \
        output projected on that token's unembedding; Pearson r and p-value.
        """)

    @OptionGroup var modelOptions: ModelOptions
    // Prompts (one of them, or --random-repeated for --detect and --pattern).
    @Option(help: "One prompt.") var prompt: String?
    @Option(help: "A built-in prompt family (see `scalpel datasets`) or a family file.") var dataset: String?
    @Option(help: "A prompt file: .txt (one per line, optional tab + answer), .jsonl, .yaml or .json.") var prompts: String?
    @OptionGroup var bos: BOSOption

    // --pattern
    @Option(help: "Attention patterns of these heads, e.g. 9.1,6.1.") var pattern: String?
    @Option(parsing: .unconditional, help: "--pattern: the destination position (0-based; -1 = last, the default).") var dest: Int?
    @Option(help: "--pattern: also write the interactive attention viewer to this self-contained .html file.") var html: String?

    // --detect
    @Option(help: "previous-token, duplicate-token, induction or same-family; several separated by commas, or all.") var detect: String?
    @Flag(name: .customLong("exclude-bos"), help: "Detectors: leave out attention to the first (BOS) token.") var excludeBOS = false
    @Flag(name: .customLong("exclude-current-token"), help: "Detectors: leave out attention to the token itself.") var excludeCurrentToken = false
    @Option(name: .customLong("random-repeated"), help: "--detect, --pattern: N prompts of seeded random tokens repeated once ([BOS] r r).") var randomRepeated: Int?
    @Option(help: "Seed of --random-repeated.") var seed: UInt64 = 0
    @Option(name: .customLong("repeat-length"), help: "Random tokens before the repeat (--random-repeated).") var repeatLength = 10
    @Option(help: "same-family: a families file (a list of {name, items}) instead of families by token text.") var families: String?

    // --copy-scores
    @Flag(name: .customLong("copy-scores"), help: "OV copy and next scores of every head (needs --dataset or --prompts with answers).") var copyScores = false
    @Option(parsing: .unconditional, help: "--copy-scores: 1, or -1 for negative heads.") var sign: Int = 1
    @Option(help: "--copy-scores: heads whose top-5 table to print, e.g. 9.1,4.4.") var heads: String?

    // --writing
    @Option(help: "The writing-direction scatter of this head, e.g. 9.1.") var writing: String?

    @Option(parsing: .unconditional, help: "Heads listed in the table, best first (default 10); --pattern: source tokens per head (default 5).") var top: Int?
    @OptionGroup var reporting: ReportOptions
    @OptionGroup var sharding: ShardOption

    enum Analysis { case pattern([HeadIndex]), detect([HeadDetector]), copyScores, writing(HeadIndex) }

    func analysis() throws -> Analysis {
        let chosen = [pattern != nil, detect != nil, copyScores, writing != nil].filter { $0 }.count
        guard chosen == 1 else { throw ValidationError("give one analysis: --pattern HEADS, --detect KIND, --copy-scores or --writing L.H.") }
        if let pattern {
            do { return .pattern(try HeadIndex.list(pattern)) } catch let error as AttentionPatternError { throw ValidationError(error.message) }
        }
        if let detect {
            do { return .detect(try HeadDetection.parse(detect)) } catch let error as HeadsError { throw ValidationError(error.message) }
        }
        if copyScores { return .copyScores }
        guard let head = HeadIndex(writing!) else { throw ValidationError("--writing \"\(writing!)\" is not a head: write layer.head, e.g. 9.1.") }
        return .writing(head)
    }

    func validate() throws {
        let analysis = try analysis()
        if let top { try FlagCheck.count(top, "--top", in: 1...100_000) }
        let sources = [prompt, dataset, prompts].compactMap { $0 }.count
        let takesRandom: Bool
        switch analysis { case .detect, .pattern: takesRandom = true; default: takesRandom = false }
        if takesRandom, randomRepeated != nil {
            guard sources == 0 else { throw ValidationError("give --random-repeated N or prompts (--prompt, --dataset, --prompts), not both.") }
            try FlagCheck.count(randomRepeated!, "--random-repeated", in: 1...100_000)
            try FlagCheck.count(repeatLength, "--repeat-length", in: 1...100_000)
        } else {
            guard sources == 1 else {
                throw ValidationError("give exactly one of --prompt TEXT, --dataset NAME, --prompts FILE" + (takesRandom ? " (or --random-repeated N)." : "."))
            }
            if randomRepeated != nil { throw ValidationError("--random-repeated is for --detect and --pattern.") }
        }
        guard sign == 1 || sign == -1 else { throw ValidationError("--sign must be 1 or -1 (got \(sign)).") }
        if sign != 1 || heads != nil, !copyScores {
            throw ValidationError("--sign and --heads are for --copy-scores" + (pattern != nil ? " (--pattern takes its heads itself: --pattern 9.1,6.1)." : "."))
        }
        if case let .detect(detectors) = analysis {
            if families != nil, !detectors.contains(.sameFamily) { throw ValidationError("--families is for --detect same-family.") }
        } else {
            if families != nil { throw ValidationError("--families is for --detect same-family.") }
            if excludeBOS || excludeCurrentToken { throw ValidationError("--exclude-bos and --exclude-current-token are for --detect.") }
        }
        if pattern == nil, dest != nil || html != nil { throw ValidationError("--dest and --html are for --pattern.") }
        try sharding.requireOutput(reporting.output)
        if sharding.shard != nil, pattern != nil || writing != nil {
            throw ValidationError("--shard is for the sweeps of heads, --detect and --copy-scores; --pattern and --writing run in one pass.")
        }
        if let heads { for part in heads.split(separator: ",", omittingEmptySubsequences: false) where HeadIndex(String(part)) == nil {
            throw ValidationError("--heads \"\(heads)\": \"\(part)\" is not a head: write layer.head, e.g. 9.1,4.4.")
        } }
    }

    func items() throws -> [PromptItem] {
        if let prompt { return [PromptItem(prompt: prompt)] }
        if let dataset { return try DatasetFiles.resolve(dataset).items }
        return try DatasetFiles.load(URL(fileURLWithPath: prompts!)).flatMap(\.items)
    }

    /// What every analysis of a run shares: the model, the prompts as given and as tokens, the
    /// provenance written with each file, and where the outputs go (nil: not asked for).
    struct Inputs {
        let model: Model
        let items: [PromptItem]
        let tokens: [[Int]]
        let prompts: PromptsGroup
        let attributes: [String: String]
        let output: OutputTarget?, plot: OutputTarget?, html: OutputTarget?
    }

    func run() throws {
        let analysis = try analysis()
        let inputs = try loadInputs()
        switch analysis {
        case let .pattern(chosen): try runPattern(chosen, inputs)
        case let .detect(detectors): try runDetection(detectors, inputs)
        case .copyScores: try runCopyScores(inputs)
        case let .writing(head): try runWriting(head, inputs)
        }
        reporting.sayWritten(html)
    }

    /// The outputs checked first (before any work), then the model and the prompts.
    func loadInputs() throws -> Inputs {
        let outputs = try reporting.targets((html, .html))
        let (model, plan) = try modelOptions.loadWithPlan()
        var items: [PromptItem], tokens: [[Int]]
        if let randomRepeated {
            tokens = HeadDetection.randomRepeatedPrompts(count: randomRepeated, length: repeatLength, seed: seed,
                                                         vocabSize: model.vocabSize, bos: bos.prependBOS ? model.bosID : nil)
            items = tokens.map { PromptItem(prompt: $0.map(model.tokenText).joined()) }
        } else {
            items = try self.items()
            tokens = try items.map { try model.encode(prompt: $0.prompt, prependBOS: bos.prependBOS) }
        }
        return Inputs(model: model, items: items, tokens: tokens,
                      prompts: PromptsGroup(items: items, tokens: tokens, tokenText: model.tokenText),
                      attributes: try provenanceAttributes(model: model, plan: plan),
                      output: outputs[0], plot: outputs[1], html: outputs[2])
    }

    /// The first position scored by the copy and writing scores: after BOS when there is one.
    var firstScored: Int { bos.prependBOS ? 1 : 0 }

    func runPattern(_ chosen: [HeadIndex], _ inputs: Inputs) throws {
        let (model, tokens) = (inputs.model, inputs.tokens)
        try AttentionPatterns.validate(chosen, in: model)
        try AttentionPatterns.validate(prompts: tokens)
        let destination = try AttentionPatterns.destination(dest, length: tokens[0].count)
        let progress = ProgressBar(total: tokens.count, label: "pattern")
        let patterns = try AttentionPatterns.collect(model, prompts: tokens, heads: chosen, progress: progress.update)
        progress.finish()
        let title = "Attention · \(model.name) · heads \(chosen.map(\.description).joined(separator: ", "))"
        try OutputTarget.together {
            if let output = inputs.output {
                try AttentionFile.write(patterns, destination: destination, prompts: inputs.prompts, to: output, attributes: inputs.attributes)
            }
            if let plot = inputs.plot { try plot.write(Data(AttentionPlot.svg(patterns, destination: destination, title: title).utf8)) }
            if let html = inputs.html {
                try html.write(Data(AttentionViewer.html(patterns, destination: destination, title: title, model: model.name).utf8))
            }
        }
        try HeadsOutput.pattern(patterns, destination: destination, model: model, format: reporting.format, top: top ?? 5)
    }

    func runDetection(_ detectors: [HeadDetector], _ inputs: Inputs) throws {
        let (model, items, tokens) = (inputs.model, inputs.items, inputs.tokens)
        var detection = HeadDetection(detectors: detectors, excludeBOS: excludeBOS, excludeCurrentToken: excludeCurrentToken)
        if detectors.contains(.sameFamily) {
            detection.families = try families.map { TokenFamilies.from(try SequenceFamilies.load(URL(fileURLWithPath: $0)), tokens: tokens, text: model.tokenText) }
                ?? TokenFamilies.byText(tokens: tokens, text: model.tokenText)
        }
        sharding.hint(work: tokens.count, unit: "prompts", limit: ShardAdvice.promptsAbove, output: reporting.output)
        // --shard K/N: batches b of prompts with b mod N = K − 1 (the detectors' batches: the same bits as one run).
        let selected = sharding.value?.indices(of: tokens.count, block: HeadDetection.batchSize)
        let progress = ProgressBar(total: selected?.count ?? tokens.count, label: "detect")
        let scores = try detection.scores(model, prompts: tokens, selected: selected, progress: { done, _ in progress.update(done) })
        progress.finish()
        let grids = scores.grids()
        let shardGroup = selected.map { PromptsGroup(items: $0.map { items[$0] }, tokens: $0.map { tokens[$0] }, tokenText: model.tokenText) }
        let partial = try sharding.run(block: HeadDetection.batchSize).map {
            try HeadsShard.mark(scores, detection: detection, run: $0, total: tokens.count, prompts: shardGroup!, attributes: inputs.attributes)
        }
        try OutputTarget.together {
            if let output = inputs.output {
                try HeadsFile.write(grids, detection: detection, prompts: shardGroup ?? inputs.prompts, to: output, attributes: inputs.attributes,
                                    partial: partial)
            }
            if let plot = inputs.plot {
                let names = detectors.map(\.rawValue)
                try plot.write(Data(HeadsPlot.grids(Array(zip(names, grids)), title: "\(names.joined(separator: ", ")) heads · \(model.name)",
                                                    legend: "score (share of attention)").utf8))
            }
        }
        sharding.notePartial(share: "\(scores.prompts.count) of \(tokens.count) prompts", output: reporting.output)
        try HeadsOutput.detection(grids, detection: detection, model: model, prompts: scores.prompts.count, format: reporting.format, top: top ?? 10)
    }

    func runCopyScores(_ inputs: Inputs) throws {
        let (model, tokens) = (inputs.model, inputs.tokens)
        let answers = try inputs.items.enumerated().map { index, item -> Int in
            guard let answer = item.answer else { throw HeadsError.missingAnswer(item: index) }
            return try model.answerID(answer)
        }
        let tableHeads = try heads.map { try HeadIndex.list($0, in: model) } ?? []
        sharding.hint(work: HeadGrid.heads(of: model).count * tokens.reduce(0) { $0 + max(0, $1.count - firstScored) },
                      unit: "head-positions", limit: ShardAdvice.headPositionsAbove, output: reporting.output)
        // --shard K/N: layers l with l mod N = K − 1 (a layer's heads are scanned together: the same bits as one run).
        let layers = sharding.value?.indices(of: model.blocks.count)
        let progress = ProgressBar(total: HeadGrid.heads(of: model).count, label: "copy scores")
        let result = try CopyScores(sign: Float(sign), tableHeads: tableHeads)
            .run(model, prompts: tokens, answers: answers, firstScored: firstScored, layers: layers) { done, total in progress.update(done, of: total) }
        progress.finish()
        let partial = try sharding.run().map {
            try HeadsShard.mark(result, layers: layers!, run: $0, total: model.blocks.count, prompts: inputs.prompts, attributes: inputs.attributes)
        }
        try OutputTarget.together {
            if let output = inputs.output {
                try HeadsFile.write(result, prompts: inputs.prompts, to: output, attributes: inputs.attributes, partial: partial)
            }
            if let plot = inputs.plot {
                try plot.write(Data(HeadsPlot.grids([("copy", result.copy), ("next", result.next)],
                                                    title: "OV copy and next scores\(sign < 0 ? " (sign −1)" : "") · \(model.name)",
                                                    legend: "share of \(result.positions) positions in the top \(result.k)").utf8))
            }
        }
        sharding.notePartial(share: "layers \(layers?.map(String.init).joined(separator: ", ") ?? "") of \(model.blocks.count) (the other layers' heads are blank)", output: reporting.output)
        try HeadsOutput.copyScores(result, model: model, format: reporting.format, top: top ?? 10)
    }

    func runWriting(_ head: HeadIndex, _ inputs: Inputs) throws {
        let model = inputs.model
        try head.check(in: model)
        let result = try WritingScatter(head: head).run(model, prompts: inputs.tokens, firstScored: firstScored)
        try OutputTarget.together {
            if let output = inputs.output { try HeadsFile.write(result, prompts: inputs.prompts, to: output, attributes: inputs.attributes) }
            if let plot = inputs.plot {
                try plot.write(Data(HeadsPlot.writing(result, tokenText: model.tokenText, title: "Head \(head) writing directions · \(model.name)").utf8))
            }
        }
        try HeadsOutput.writing(result, model: model, format: reporting.format, top: top ?? 10)
    }
}
