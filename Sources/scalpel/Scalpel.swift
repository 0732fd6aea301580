import ArgumentParser
import Foundation
import Scalpel

@main
struct ScalpelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scalpel",
        abstract: "A workbench for mechanistic interpretability on GPT-2.",
        discussion: "Without --model, commands use the small sequence model bundled with Scalpel.",
        subcommands: [Inspect.self, Tokenize.self, Run.self, Datasets.self, Lens.self, Trace.self, Build.self, ExportHF.self, Init.self, Bench.self]
    )

    /// Exit status: 0 success, 1 bad input (the message says what and where), 2 internal error.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch let error as UserFacingError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            Foundation.exit(1)
        } catch {
            let code = exitCode(for: error)
            if code == .success || error is ExitCode { exit(withError: error) }
            if error is CommandError {
                FileHandle.standardError.write(Data("internal error: \(error)\n".utf8))
                Foundation.exit(2)
            }
            // Usage errors from argument parsing are bad input too.
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            Foundation.exit(1)
        }
    }
}

/// An unexpected failure inside Scalpel (exit status 2).
struct CommandError: Error, CustomStringConvertible {
    var description: String
}
