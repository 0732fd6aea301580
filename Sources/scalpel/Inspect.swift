import ArgumentParser
import Foundation
import Scalpel

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's config, parameter count and block list.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "table or json.") var format: SummaryFormat = .table

    func run() throws {
        let model = try modelOptions.load()
        switch format {
        case .table: print(ModelSummary(model).text)
        case .json: try Output.json(ModelDescription(model))
        }
    }
}
