import ArgumentParser
import Foundation
import Scalpel

@main
struct ScalpelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scalpel",
        abstract: "A workbench for mechanistic interpretability on GPT-2.",
        discussion: "Without --model, commands use the small sequence model bundled with Scalpel.",
        version: ScalpelVersion.string,
        subcommands: [Inspect.self, Tokenize.self, Run.self, Datasets.self, Lens.self, Trace.self, Paths.self, Patch.self, Attribute.self, Heads.self, CircuitCommand.self, Classify.self, Build.self, ExportHF.self, Init.self, Bench.self, Merge.self]
    )

    /// Exit status: 0 success, 1 bad input (the message says what and where), 2 internal error.
    static func main() {
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            usageError(error)
        }
        OutputTarget.handleSignals()
        MemoryBudget.reuseLargeBlocks()
        OpenBLAS.setUp()
        MemoryBudget.onExhausted = { bytes in
            let error = MemoryError.exhausted(bytes: bytes, limitMB: MemoryBudget.limitBytes.map { $0 >> 20 })
            OutputTarget.abandonAll()
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            exitNow(1)
        }
        do {
            try MemoryBudget.check()
            // For tests of the exit status: fail the way an unexpected bug would.
            if let text = ProcessInfo.processInfo.environment["SCALPEL_TEST_INTERNAL_ERROR"], !text.isEmpty {
                throw InjectedFailure(description: "injected by SCALPEL_TEST_INTERNAL_ERROR=\(text)")
            }
            try command.run()
        } catch let error as UserFacingError {
            FileHandle.standardError.write(Data("error: \(error.message)\n".utf8))
            exitNow(1)
        } catch {
            // ValidationError, help requests (run by a help command), CleanExit, ExitCode.
            if String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") { usageError(error) }
            // Anything else thrown while running is a bug in Scalpel, not the user's input.
            FileHandle.standardError.write(Data("internal error: \(error)\n".utf8))
            exitNow(2)
        }
    }

    /// Exits without atexit handlers: after a failed write HDF5's own clean-up at exit may touch the
    /// file it could not finish, and nothing at exit is needed once the output is flushed.
    static func exitNow(_ status: Int32) -> Never {
        fflush(nil)
        _exit(status)
    }

    /// Help and version requests exit 0; usage errors from argument parsing are bad input (status 1).
    static func usageError(_ error: Error) -> Never {
        if exitCode(for: error) == .success || error is ExitCode { exit(withError: error) }
        FileHandle.standardError.write(Data((oneErrorPrefix(fullMessage(for: error)) + "\n").utf8))
        Foundation.exit(1)
    }

    /// ArgumentParser starts its messages with "Error: "; Scalpel's own say "error: " (as swift,
    /// git and cargo do), so that one prefix marks every failure whoever found it.
    static func oneErrorPrefix(_ message: String) -> String {
        message.hasPrefix("Error: ") ? "error: " + message.dropFirst("Error: ".count) : message
    }
}

/// Stands for any unexpected error a bug could throw, for tests of the exit status (2).
struct InjectedFailure: Error, CustomStringConvertible {
    var description: String
}
