import ArgumentParser
import Foundation
import Scalpel

/// `--model`, `--plan` and `--blocks`, shared by every command that loads a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A checkpoint folder (config.json + model.safetensors) or a .h5 archive. Default: the bundled model (or a plan's base).")
    var model: String?

    @Option(name: .long, help: "A surgery plan (YAML, see surgery-plans/): run the model it builds.")
    var plan: String?

    @Option(name: .long, help: "A block list, e.g. \"0-7,9.mlp\": run only these blocks of --model.")
    var blocks: String?

    func validate() throws {
        guard plan == nil || blocks == nil else { throw ValidationError("give --plan or --blocks, not both.") }
    }

    func load() throws -> Model { try loadWithPlan().model }

    /// The model, after the plan's surgery when a plan or block list is given (validated before any work).
    func loadWithPlan() throws -> (model: Model, plan: Plan?) {
        if let plan {
            let parsed = try Plan.load(URL(fileURLWithPath: plan))
            let (base, others) = try Surgeon.loadModels(for: parsed, baseOverride: model)
            return (try Surgeon.build(parsed, base: base, others: others), parsed)
        }
        if let blocks {
            let parsed = try Plan.inline(blocks: blocks)
            return (try Surgeon.build(parsed, base: try ModelLocation.load(model)), parsed)
        }
        return (try ModelLocation.load(model), nil)
    }
}

/// `--no-bos`, only on the commands that encode prompt text (`run`, `lens`, `trace`, `tokenize`, `patch`):
/// elsewhere it would be accepted and mean nothing.
struct BOSOption: ParsableArguments {
    @Flag(name: .long, help: "Do not prepend <|endoftext|> to prompts.")
    var noBos = false

    var prependBOS: Bool { !noBos }
}

/// Checks of numeric flags, made in each command's `validate()`, before any work.
enum FlagCheck {
    /// A count from `range` (at least 1 unless said otherwise).
    static func count(_ value: Int, _ flag: String, in range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw ValidationError("\(flag) must be from \(range.lowerBound) to \(range.upperBound) (got \(value)).")
        }
    }

    static func finite(_ value: Float, _ flag: String) throws {
        guard value.isFinite else { throw ValidationError("\(flag) must be a finite number (got \(value)).") }
    }
}

/// `--format` of commands that print rows of results: a table, JSON, or CSV with one row per result.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json, csv
}

/// `--format` of commands whose output is not rows (a summary, a list, a report): there is no CSV
/// to offer, so `--format csv` is refused by the parser rather than ignored.
enum SummaryFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

enum Output {
    static func json<T: Encodable>(_ value: T) throws {
        print(try JSONText.encode(value))
    }

    /// Quotes a CSV field when needed (RFC 4180).
    static func csvField(_ text: String) -> String {
        text.contains(where: { ",\"\n\r".contains($0) }) ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
    }

    /// A token shown between bars so leading spaces are visible: | 5|.
    static func shown(_ token: String) -> String {
        "|" + token.replacingOccurrences(of: "\n", with: "\\n") + "|"
    }

    static func percent(_ p: Double) -> String { String(format: "%6.2f%%", p * 100) }
}

/// The results options of the sweeps that print a table and may also write an HDF5 file and a
/// picture (`patch`, `attribute`, `heads`): `--format`, `-o`, `--plot`, `--force`.
struct ReportOptions: ParsableArguments {
    @Option(help: "table, json or csv.") var format: OutputFormat = .table
    @Option(name: .shortAndLong, help: "Also write the results to this .h5 file.") var output: String?
    @Option(help: "Also draw the results to this .svg file.") var plot: String?
    @Flag(help: "Overwrite existing output files.") var force = false

    /// The targets of -o (HDF5), --plot (SVG) and any further files (nil where not asked), checked
    /// before any work.
    func targets(_ more: (path: String?, content: OutputTarget.Content)...) throws -> [OutputTarget?] {
        try OutputTarget.files([(output, .hdf5), (plot, .svg)] + more, overwrite: force)
    }

    /// Says on stderr which files were written.
    func sayWritten(_ more: String?...) {
        for path in ([output, plot] + more).compactMap({ $0 }) { FileHandle.standardError.write(Data("wrote \(path)\n".utf8)) }
    }
}
