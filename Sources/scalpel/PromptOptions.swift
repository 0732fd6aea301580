import ArgumentParser
import Foundation
import Scalpel

/// Where a command's prompts come from: one `--prompt`, a named `--dataset`, or a `--prompts` file.
struct PromptOptions: ParsableArguments {
    @Option(help: "One prompt.") var prompt: String?
    @Option(help: "A built-in prompt family (see `scalpel datasets`) or a family file.") var dataset: String?
    @Option(help: "A prompt file: .txt (one per line, optional tab + answer), .jsonl, .yaml or .json.") var prompts: String?

    func validate() throws {
        guard [prompt, dataset, prompts].compactMap({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --prompt TEXT, --dataset NAME, --prompts FILE.")
        }
    }

    func items() throws -> [PromptItem] {
        if let prompt { return [PromptItem(prompt: prompt)] }
        if let dataset { return try DatasetFiles.resolve(dataset).items }
        let url = URL(fileURLWithPath: prompts!)
        let families = try DatasetFiles.load(url)
        return families.flatMap(\.items)
    }
}

/// A progress bar on standard error, drawn only when it is a terminal and the run takes over a second.
final class ProgressBar {
    var total: Int
    let label: String
    let start = Date()
    let enabled = isatty(STDERR_FILENO) == 1
    private var drawn = false

    init(total: Int, label: String) { self.total = total; self.label = label }

    /// For a run whose number of steps is known only once it starts.
    func update(_ done: Int, of total: Int) {
        self.total = total
        update(done)
    }

    func update(_ done: Int) {
        guard enabled, Date().timeIntervalSince(start) > 1 else { return }
        let width = 30, filled = total == 0 ? width : width * done / total
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        FileHandle.standardError.write(Data("\r\(label) \(bar) \(done)/\(total)".utf8))
        drawn = true
    }

    func finish() { if drawn { FileHandle.standardError.write(Data("\n".utf8)) } }
}

/// Root attributes recorded in every file a command writes: the model's name, its files and their
/// SHA-256 (comma-separated, in the same order), the plan and the command line.
func provenanceAttributes(model: Model, plan: Plan?) throws -> [String: String] {
    ["model": model.name, "model_files": model.sourceFiles.map(\.path).joined(separator: ","),
     "model_sha256": try model.sourceFiles.map { try SHA256.hex(ofFile: $0) }.joined(separator: ","),
     "plan": plan?.text ?? "", "command_line": CommandLine.arguments.joined(separator: " ")]
}
