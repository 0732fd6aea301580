import ArgumentParser
import Foundation
import Scalpel

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the token ids and pieces of a text.")

    @Argument(help: "The text to tokenize.") var text: String
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "table, json or csv.") var format: OutputFormat = .table

    struct Result: Encodable { var ids: [Int]; var tokens: [String] }

    func run() throws {
        let model = try modelOptions.load()
        let tokenizer = try model.requireTokenizer()
        let ids = modelOptions.noBos ? tokenizer.encode(text) : [model.bosID] + tokenizer.encode(text)
        let tokens = ids.map { tokenizer.text(of: $0) }
        switch format {
        case .json: try Output.json(Result(ids: ids, tokens: tokens))
        case .csv:
            print("position,id,token")
            for (i, (id, token)) in zip(ids, tokens).enumerated() { print("\(i),\(id),\(Output.csvField(token))") }
        case .table:
            print("\(ids.count) tokens")
            for (i, (id, token)) in zip(ids, tokens).enumerated() {
                print(String(format: "%4d  %6d  %@", i, id, Output.shown(token)))
            }
        }
    }
}
