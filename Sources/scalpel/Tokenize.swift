import ArgumentParser
import Foundation
import Scalpel

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the token ids and pieces of a text.")

    @Argument(help: "The text to tokenize.") var text: String
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var bos: BOSOption
    @Option(help: "table, json or csv.") var format: OutputFormat = .table

    /// One token: a CSV line and an object of the JSON `records`.
    struct TokenRecord: Record {
        var position: Int, id: Int, token: String
        static let columns = ["position", "id", "token"]
        var fields: [(name: String, value: FieldValue)] { [("position", .int(position)), ("id", .int(id)), ("token", .text(token))] }
    }

    func run() throws {
        let model = try modelOptions.load()
        let tokenizer = try model.requireTokenizer()
        let ids = bos.noBos ? tokenizer.encode(text) : [model.bosID] + tokenizer.encode(text)
        let tokens = ids.map { tokenizer.text(of: $0) }
        switch format {
        case .json, .csv:
            try RecordList(records: zip(ids, tokens).enumerated().map { TokenRecord(position: $0, id: $1.0, token: $1.1) }).print(format)
        case .table:
            print("\(ids.count) tokens")
            for (i, (id, token)) in zip(ids, tokens).enumerated() {
                print(String(format: "%4d  %6d  %@", i, id, Output.shown(token)))
            }
        }
    }
}
