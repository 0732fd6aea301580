import ArgumentParser
import Foundation
import Scalpel

@main
struct ScalpelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scalpel",
        abstract: "A workbench for mechanistic interpretability on GPT-2.",
        subcommands: []
    )
}
