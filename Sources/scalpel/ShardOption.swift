import ArgumentParser
import Foundation
import Scalpel

/// `--shard K/N` for any sweep (DESIGN.md "Sweeps across machines"). A sweep adopts it with
/// `@OptionGroup var sharding: ShardOption`, computes only its share (`Shard.contains`, or
/// `Shard.indices(of:block:)` for prompts dealt in batches), and passes `sharding.run(block:)` to its writer (which then writes a partial file for
/// `scalpel merge`); `sharding.hint(…)` prints how to shard a large unsharded run.
struct ShardOption: ParsableArguments {
    @Option(help: ArgumentHelp("Compute only part K of N (1 ≤ K ≤ N) and write a partial file for `scalpel merge` (docs/cluster.md).",
                               valueName: "K/N"))
    var shard: String?

    func validate() throws {
        if let shard {
            do { _ = try Shard.parse(shard) } catch let error as ShardError { throw ValidationError(error.message) }
        }
    }

    /// The parsed shard (validated already).
    var value: Shard? { shard.flatMap { try? Shard.parse($0) } }

    /// The run this process is part of, for the writer; nil without --shard. `block`: prompts per
    /// batch, for sweeps over prompts (shards are dealt whole batches).
    func run(block: Int = 1) -> ShardRun? {
        value.map { ShardRun(shard: $0, parameters: ShardedRun.parameters(CommandLine.arguments), block: block) }
    }

    /// A sharded run must write its part somewhere.
    func requireOutput(_ output: String?) throws {
        if let shard, output == nil { throw ValidationError("--shard \(shard) needs -o FILE.h5: each part is written to a file for scalpel merge.") }
    }

    /// A sharded run's printed table, JSON or CSV covers only its own part: says so on stderr
    /// (`share`: what the part holds, e.g. "21 of 64 prompts").
    func notePartial(share: String, output: String?) {
        guard let shard else { return }
        FileHandle.standardError.write(Data("note: shard \(shard) of a sharded run: what is printed covers this part's \(share) only; the whole run's results come from scalpel merge \(output.map { "PARTS… (this part: \($0))" } ?? "PARTS…") -o FILE.h5.\n".utf8))
    }

    /// Prints how to shard a run of `work` units above `limit`, in at most `pieces` parts (only when
    /// not sharded already).
    func hint(work: Int, unit: String, limit: Int, pieces: Int? = nil, output: String?) {
        guard shard == nil, let text = ShardAdvice.hint(work: work, unit: unit, limit: ShardAdvice.threshold(limit), pieces: pieces,
                                                        arguments: CommandLine.arguments, output: output) else { return }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Merge the partial files of a sweep run with --shard K/N into the file one unsharded run writes.",
        discussion: "Every part K of N must be given once, from one run (same command, model and N); nothing is written otherwise.")

    @Argument(help: "The partial files (any order).") var parts: [String] = []
    @Option(name: .shortAndLong, help: "The merged .h5 file.") var output: String
    @Flag(help: "Overwrite an existing output file.") var force = false

    func validate() throws {
        if parts.isEmpty { throw ValidationError("give the partial files to merge, e.g. scalpel merge out.part*.h5 -o out.h5.") }
    }

    func run() throws {
        let target = try OutputTarget(output, overwrite: force, content: .hdf5)
        let kind = try ShardMerge.merge(parts, to: target, output: output)
        FileHandle.standardError.write(Data("wrote \(output) (\(kind.rawValue), \(parts.count) part\(parts.count == 1 ? "" : "s"))\n".utf8))
    }
}
