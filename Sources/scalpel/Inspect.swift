import ArgumentParser
import Foundation
import Scalpel

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a model's config, parameter count and block list.")

    @OptionGroup var modelOptions: ModelOptions

    func run() throws {
        let model = try modelOptions.load()
        print(ModelSummary(model).text)
    }
}
