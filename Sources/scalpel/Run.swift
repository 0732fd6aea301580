import ArgumentParser
import Foundation
import Scalpel

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict the next token of a prompt: top-k tokens, and the rank, logit and probability of an answer.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var bos: BOSOption
    @Option(help: "The prompt text.") var prompt: String?
    @Option(help: "A built-in prompt family (see `scalpel datasets`) or a .yaml/.json/.jsonl/.txt file: prints the per-prompt table.")
    var dataset: String?
    @Option(help: "The expected next token, e.g. \" 5\" (mind the leading space).") var answer: String?
    @Flag(help: "Score only the first token of a multi-token --answer instead of refusing it.") var firstToken = false
    @Option(name: .customLong("top-k"), parsing: .unconditional, help: "How many top tokens to show.") var topK = 10
    @Option(help: "table, json or csv.") var format: OutputFormat = .table

    func validate() throws {
        try FlagCheck.count(topK, "--top-k", in: 1...1_000)
        guard prompt == nil || dataset == nil else { throw ValidationError("give either --prompt TEXT or --dataset NAME, not both.") }
        guard prompt != nil || dataset != nil || modelOptions.plan != nil else {
            throw ValidationError("give --prompt TEXT, --dataset NAME, or a --plan with checks.")
        }
    }

    /// A single prompt is a dataset of one (DESIGN.md "Output conventions"): JSON and CSV have the
    /// dataset's shape; only the table keeps `test_prompt`'s view of one prediction.
    func run() throws {
        let (model, plan) = try modelOptions.loadWithPlan()
        let family: PromptDataset
        if let dataset {
            family = try DatasetFiles.resolve(dataset)
        } else if let prompt {
            family = PromptDataset(name: "prompt", description: "--prompt", items: [PromptItem(prompt: prompt, answer: answer)])
        } else {
            guard let plan, !plan.checks.isEmpty else {
                throw ValidationError("plan \(plan?.origin ?? "") has no checks: give --prompt or --dataset.")
            }
            family = PromptDataset(name: "\(plan.name) checks", description: plan.description, items: plan.checks)
        }
        var evaluation = DatasetEvaluation()
        evaluation.prependBOS = bos.prependBOS
        evaluation.topK = min(topK, model.vocabSize)
        evaluation.firstTokenOnly = firstToken
        if prompt != nil && format == .table {
            _ = try evaluation.run(model, dataset: family) { printPrediction($0, model: model) }
            return
        }
        var table = DatasetTable(family, format: format, topShown: evaluation.topK)
        try table.begin(family)
        let summary = try evaluation.run(model, dataset: family) { try table.row($0) }
        try table.end(summary)
    }

    /// The study's `test_prompt`: the tokenized prompt, the answer's rank, then the top-k tokens.
    func printPrediction(_ item: ItemResult, model: Model) {
        print("Tokenized prompt: " + item.tokens.map { Output.shown(model.tokenText($0)) }.joined(separator: " "))
        if let answer = item.score {
            print("Answer \(Output.shown(answer.token)): rank \(answer.rank)   logit \(String(format: "%.3f", answer.logit))   prob \(Output.percent(answer.prob))")
        }
        print("")
        print("rank   logit     prob     token")
        for (rank, score) in item.top.enumerated() {
            print(String(format: "%4d  %7.3f  %@   %@", rank, score.logit, Output.percent(score.prob), Output.shown(score.token)))
        }
    }
}
