import ArgumentParser
import Foundation
import Scalpel

extension HeadDetector: ExpressibleByArgument {}

/// `scalpel heads`: what heads do. One analysis per run, chosen by a flag (`--detect`,
/// `--copy-scores`, `--writing`); every option of the command is declared here, in one place, so
/// further analyses (`--pattern`, `--html`) add their options next to these.
struct Heads: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "What heads do: head detectors, OV copy and next scores, writing-direction scatter.",
        discussion: """
        --detect previous-token|duplicate-token|induction (TransformerLens detect_head, error measure mul) \
        or same-family (share of attention on earlier tokens of the token's own family), over every head, \
        on --prompt/--dataset/--prompts or on --random-repeated N seeded repeated random tokens.
        --copy-scores --dataset D: the study's OV copy score (own token in the top 5) and "next" score \
        (following token in the top 5) of every head; --heads 9.1,4.4 prints their top-5 tables.
        --writing L.H --dataset D: attention from the last position to each token against the head's \
        output projected on that token's unembedding; Pearson r and p-value.
        """)

    @OptionGroup var modelOptions: ModelOptions
    // Prompts (one of them, or --random-repeated for --detect).
    @Option(help: "One prompt.") var prompt: String?
    @Option(help: "A built-in prompt family (see `scalpel datasets`) or a family file.") var dataset: String?
    @Option(help: "A prompt file: .txt (one per line, optional tab + answer), .jsonl, .yaml or .json.") var prompts: String?
    @OptionGroup var bos: BOSOption

    // --detect
    @Option(help: "previous-token, duplicate-token, induction or same-family.") var detect: HeadDetector?
    @Flag(name: .customLong("exclude-bos"), help: "Detectors: leave out attention to the first (BOS) token.") var excludeBOS = false
    @Flag(name: .customLong("exclude-current-token"), help: "Detectors: leave out attention to the token itself.") var excludeCurrentToken = false
    @Option(name: .customLong("random-repeated"), help: "Detectors: N prompts of seeded random tokens repeated once ([BOS] r r).") var randomRepeated: Int?
    @Option(help: "Seed of --random-repeated.") var seed: UInt64 = 0
    @Option(name: .customLong("repeat-length"), help: "Random tokens before the repeat (--random-repeated).") var repeatLength = 10
    @Option(help: "same-family: a families file (a list of {name, items}) instead of families by token text.") var families: String?

    // --copy-scores
    @Flag(name: .customLong("copy-scores"), help: "OV copy and next scores of every head (needs --dataset or --prompts with answers).") var copyScores = false
    @Option(parsing: .unconditional, help: "--copy-scores: 1, or -1 for negative heads.") var sign: Int = 1
    @Option(help: "--copy-scores: heads whose top-5 table to print, e.g. 9.1,4.4.") var heads: String?

    // --writing
    @Option(help: "The writing-direction scatter of this head, e.g. 9.1.") var writing: String?

    @Option(parsing: .unconditional, help: "Heads listed in the table, best first.") var top = 10
    @Option(help: "table, json or csv.") var format: OutputFormat = .table
    @Option(name: .shortAndLong, help: "Also write the results to this .h5 file.") var output: String?
    @Option(help: "Also draw the results to this .svg file.") var plot: String?
    @Flag(help: "Overwrite existing output files.") var force = false

    enum Analysis { case detect(HeadDetector), copyScores, writing(HeadIndex) }

    func analysis() throws -> Analysis {
        let chosen = [detect != nil, copyScores, writing != nil].filter { $0 }.count
        guard chosen == 1 else { throw ValidationError("give one analysis: --detect KIND, --copy-scores or --writing L.H.") }
        if let detect { return .detect(detect) }
        if copyScores { return .copyScores }
        guard let head = HeadIndex(writing!) else { throw ValidationError("--writing \"\(writing!)\" is not a head: write layer.head, e.g. 9.1.") }
        return .writing(head)
    }

    func validate() throws {
        let analysis = try analysis()
        try FlagCheck.count(top, "--top", in: 1...100_000)
        let sources = [prompt, dataset, prompts].compactMap { $0 }.count
        if case .detect = analysis, randomRepeated != nil {
            guard sources == 0 else { throw ValidationError("give --random-repeated N or prompts (--prompt, --dataset, --prompts), not both.") }
            try FlagCheck.count(randomRepeated!, "--random-repeated", in: 1...100_000)
            try FlagCheck.count(repeatLength, "--repeat-length", in: 1...100_000)
        } else {
            guard sources == 1 else {
                throw ValidationError("give exactly one of --prompt TEXT, --dataset NAME, --prompts FILE" + (detect != nil ? " (or --random-repeated N)." : "."))
            }
            if randomRepeated != nil { throw ValidationError("--random-repeated is for --detect.") }
        }
        guard sign == 1 || sign == -1 else { throw ValidationError("--sign must be 1 or -1 (got \(sign)).") }
        if sign != 1 || heads != nil, !copyScores { throw ValidationError("--sign and --heads are for --copy-scores.") }
        if families != nil, detect != .sameFamily { throw ValidationError("--families is for --detect same-family.") }
        if excludeBOS || excludeCurrentToken, detect == nil { throw ValidationError("--exclude-bos and --exclude-current-token are for --detect.") }
        if let heads { for part in heads.split(separator: ",", omittingEmptySubsequences: false) where HeadIndex(String(part)) == nil {
            throw ValidationError("--heads \"\(heads)\": \"\(part)\" is not a head: write layer.head, e.g. 9.1,4.4.")
        } }
    }

    func items() throws -> [PromptItem] {
        if let prompt { return [PromptItem(prompt: prompt)] }
        if let dataset { return try DatasetFiles.resolve(dataset).items }
        return try DatasetFiles.load(URL(fileURLWithPath: prompts!)).flatMap(\.items)
    }

    func run() throws {
        let analysis = try analysis()
        let outputs = try OutputTarget.files([output, plot], overwrite: force)
        let (outputTarget, plotTarget) = (outputs[0], outputs[1])
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
        let promptsGroup = PromptsGroup(items: items, tokens: tokens, tokenText: model.tokenText)
        let attributes = try provenanceAttributes(model: model, plan: plan)
        let firstScored = bos.prependBOS ? 1 : 0
        switch analysis {
        case let .detect(detector):
            var detection = HeadDetection(detector: detector, excludeBOS: excludeBOS, excludeCurrentToken: excludeCurrentToken)
            if detector == .sameFamily {
                detection.families = try families.map { TokenFamilies.from(try SequenceFamilies.load(URL(fileURLWithPath: $0)), tokens: tokens, text: model.tokenText) }
                    ?? TokenFamilies.byText(tokens: tokens, text: model.tokenText)
            }
            let grid = try detection.run(model, prompts: tokens)
            try OutputTarget.together {
                if let outputTarget { try HeadsFile.write(grid, detection: detection, prompts: promptsGroup, to: outputTarget, attributes: attributes) }
                if let plotTarget {
                    try plotTarget.write(Data(HeadsPlot.grids([(detector.rawValue, grid)], title: "\(detector.rawValue) heads · \(model.name)",
                                                              legend: "score (share of attention)").utf8))
                }
            }
            try HeadsOutput.detection(grid, detection: detection, model: model, prompts: tokens.count, format: format, top: top)
        case .copyScores:
            let answers = try items.enumerated().map { index, item -> Int in
                guard let answer = item.answer else { throw HeadsError.missingAnswer(item: index) }
                return try model.answerID(answer)
            }
            let tableHeads = try heads.map { try HeadIndex.list($0, in: model) } ?? []
            let progress = ProgressBar(total: HeadGrid.heads(of: model).count, label: "copy scores")
            let result = try CopyScores(sign: Float(sign), tableHeads: tableHeads)
                .run(model, prompts: tokens, answers: answers, firstScored: firstScored) { done, _ in progress.update(done) }
            progress.finish()
            try OutputTarget.together {
                if let outputTarget { try HeadsFile.write(result, prompts: promptsGroup, to: outputTarget, attributes: attributes) }
                if let plotTarget {
                    try plotTarget.write(Data(HeadsPlot.grids([("copy", result.copy), ("next", result.next)],
                                                              title: "OV copy and next scores\(sign < 0 ? " (sign −1)" : "") · \(model.name)",
                                                              legend: "share of \(result.positions) positions in the top \(result.k)").utf8))
                }
            }
            try HeadsOutput.copyScores(result, model: model, format: format, top: top)
        case let .writing(head):
            try head.check(in: model)
            let result = try WritingScatter(head: head).run(model, prompts: tokens, firstScored: firstScored)
            try OutputTarget.together {
                if let outputTarget { try HeadsFile.write(result, prompts: promptsGroup, to: outputTarget, attributes: attributes) }
                if let plotTarget {
                    try plotTarget.write(Data(HeadsPlot.writing(result, tokenText: model.tokenText, title: "Head \(head) writing directions · \(model.name)").utf8))
                }
            }
            try HeadsOutput.writing(result, model: model, format: format, top: top)
        }
        for path in [output, plot].compactMap({ $0 }) { FileHandle.standardError.write(Data("wrote \(path)\n".utf8)) }
    }
}
