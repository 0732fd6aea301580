import ArgumentParser
import Foundation
import Scalpel

/// `scalpel paths add-vector HOOK`: the study's months experiment, one outcome (so no CSV).
struct AddVector: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "add-vector",
        abstract: "Add the activation at HOOK (read at the last position of --vector-prompt) to --prompt's residual stream around block --layer.",
        discussion: """
        p·v is added before block L (hook_resid_pre), n·v after it (hook_resid_post) and q·v to the final
        residual, at the last position; each edited row is decoded by the logit lens, and the three edits
        made during one run give the propagated prediction.

        Example:
          scalpel paths add-vector blocks.3.hook_mlp_out --vector-prompt "January February March April" \\
                        --prompt "one two three four" --expect " five" --layer 3 --p 1 --n 1 --q 0
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Argument(help: "The hook whose activation is added (e.g. blocks.3.hook_mlp_out).") var hook: String
    @Option(help: "Prompt the added vector is read from (last position).") var vectorPrompt: String
    @Option(help: "Prompt the vector is added to.") var prompt: String
    @Option(help: "Expected next token.") var expect: String
    @Option(parsing: .unconditional, help: "Block L.") var layer: Int
    @Option(parsing: .unconditional, help: "Scale before block L.") var p: Float = 1
    @Option(parsing: .unconditional, help: "Scale after block L.") var n: Float = 1
    @Option(parsing: .unconditional, help: "Scale on the final residual.") var q: Float = 0
    @Option(help: "table or json.") var format: SummaryFormat = .table

    func validate() throws {
        for (value, flag) in [(p, "--p"), (n, "--n"), (q, "--q")] { try FlagCheck.finite(value, flag) }
        try FlagCheck.count(layer, "--layer", in: 0...Int(Int32.max))
    }

    func run() throws {
        let model = try modelOptions.load()
        guard (0..<model.blocks.count).contains(layer) else { throw PathsError.layerOutOfRange(value: "\(layer)", blocks: model.blocks.count) }
        let vector = try VectorAddition.vector(at: hook, prompt: try model.encode(prompt: vectorPrompt), model: model)
        let addition = VectorAddition(vector: vector, layer: layer, p: p, n: n, q: q)
        let expected = try model.answerID(expect)
        let outcome = try addition.run(model, prompt: try model.encode(prompt: prompt), expected: expected)
        switch format {
        case .json: try Output.json(outcome)
        case .table:
            let labels = ["decode before L\(layer) (+\(p)·v)", "decode after L\(layer) (+\(n)·v)", "decode final (+\(q)·v)"]
            for (label, judgement) in zip(labels, outcome.decoded) + [("propagated", outcome.propagated)] {
                print(label.padding(toLength: 30, withPad: " ", startingAt: 0) + "rank of \(Output.shown(expect)): \(judgement.rank)   top: "
                      + judgement.top.map { Output.shown(model.tokenText($0)) }.joined(separator: " "))
            }
        }
    }
}
