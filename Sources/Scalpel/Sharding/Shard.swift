import Foundation

/// One of N interleaved parts of a sweep (DESIGN.md "Sweeps across machines"): `--shard K/N`, K
/// 1-based. Shard K of N computes the units of work u with u mod N == K − 1, so every shard gets a
/// share of every layer and of long and short prompts alike. A unit is what the sweep computes in
/// one go — a batch of prompts (lens, trace), a packed batch of patched runs (patch) — because
/// Scalpel's matrix kernels sum in an order that depends on the number of rows (DECISIONS.md
/// "Matrix products"): only a batch computed exactly as the unsharded run computes it gives the
/// same bits.
public struct Shard: Sendable, Hashable, CustomStringConvertible {
    /// K, 1…count.
    public let index: Int
    /// N ≥ 1.
    public let count: Int

    /// More parts than any cluster runs; also keeps `K/N` arithmetic far from overflow.
    public static let maxCount = 1_000_000

    public init(index: Int, count: Int) throws {
        let text = "\(index)/\(count)"
        guard count >= 1 else { throw ShardError.invalid(text: text, reason: "N must be at least 1") }
        guard count <= Self.maxCount else { throw ShardError.invalid(text: text, reason: "N must be at most \(Self.maxCount)") }
        guard (1...count).contains(index) else {
            throw ShardError.invalid(text: text, reason: "K must be between 1 and N (\(count)); K is 1-based, so with a 0-based array index use K = index + 1")
        }
        self.index = index; self.count = count
    }

    /// Parses `K/N`, e.g. `2/8`.
    public static func parse(_ text: String) throws -> Shard {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else {
            throw ShardError.invalid(text: text, reason: "it is not K/N with whole numbers K and N")
        }
        return try Shard(index: k, count: n)
    }

    /// Whether unit `i` (0-based) of the whole run belongs to this shard: i mod N == K − 1.
    public func contains(_ i: Int) -> Bool { i % count == index - 1 }

    /// This shard's indices among `total` when they are dealt out in blocks of `block` consecutive
    /// indices (a batch of prompts): index i belongs to shard (i / block) mod N + 1. With `block` 1,
    /// the indices i with i mod N == K − 1.
    public func indices(of total: Int, block: Int = 1) -> [Int] {
        let block = max(1, block)
        return Array(stride(from: (index - 1) * block, to: total, by: count * block).lazy.flatMap { $0..<min($0 + block, total) })
    }

    public var description: String { "\(index)/\(count)" }
}

/// What a sharded run's parts are gathered for: `scalpel merge`, or `classify --patch-result`, which
/// finishes a sharded classify (or patching) without merging.
public enum ShardFinish: Sendable, Equatable {
    case merge, patchResult
}

public enum ShardError: UserFacingError, Equatable {
    case invalid(text: String, reason: String)
    case notPartial(path: String, format: String)
    case foreign(path: String, first: String, field: String, value: String, expected: String)
    case duplicate(shard: String, paths: [String])
    case missing(shards: [String], count: Int, have: [String], finish: ShardFinish)
    case noParts
    case inconsistent(path: String, reason: String)
    case notPatching(path: String, kind: String)

    public var message: String {
        switch self {
        case let .invalid(text, reason):
            return "--shard \"\(text)\": \(reason). Give K/N with 1 ≤ K ≤ N, e.g. --shard 1/4 … --shard 4/4."
        case let .notPartial(path, format):
            return "\(path) is not a partial file of a sharded sweep (its format is \"\(format)\"). Give the files written by the same sweep run with --shard K/N."
        case let .foreign(path, first, field, value, expected):
            return "\(path) belongs to another run than \(first): its \(field) is \(value), not \(expected). Merge only the parts of one sweep (same command, model and N)."
        case let .duplicate(shard, paths):
            return "shard \(shard) is given more than once (\(paths.joined(separator: ", "))). Give each part once."
        case let .missing(shards, count, have, finish):
            let then = finish == .merge ? "merge all \(count)" : "give all \(count) to classify --patch-result"
            return "missing shard\(shards.count == 1 ? "" : "s") \(shards.joined(separator: ", ")) of \(count) (given: \(have.isEmpty ? "none" : have.joined(separator: ", "))). Run the missing part\(shards.count == 1 ? "" : "s") with --shard, then \(then)."
        case .noParts:
            return "give the partial files to merge, e.g. scalpel merge out.part*.h5 -o out.h5."
        case let .inconsistent(path, reason):
            return "\(path) is not a complete partial file: \(reason). Rerun that shard."
        case let .notPatching(path, kind):
            return "\(path) is a part of a sharded \(kind) run, not of a patching: give the parts written by `scalpel classify --shard K/N` (or `scalpel patch --target z --shard K/N`)."
        }
    }
}

/// The command line of a sharded run: what it records and how the unsharded one is recovered.
public enum ShardedRun {
    /// Options that do not change a sweep's results (where it writes, how it prints), with the
    /// number of values each takes; everything else on the command line is a run parameter.
    public static let nonParameters: [String: Int] = [
        "--shard": 1, "-o": 1, "--output": 1, "--force": 0, "--format": 1, "--plot": 1, "--top": 1,
    ]

    /// The run's parameters: the arguments after the executable, `--name=value` split into two, with
    /// `--shard`, `-o`, `--force`, `--format`, `--plot` and `--top` removed. Parts of one run have equal
    /// parameters; `merge` refuses parts whose parameters differ.
    public static func parameters(_ arguments: [String]) -> String {
        var out: [String] = [], i = 0
        let args = split(Array(arguments.dropFirst()))
        while i < args.count {
            if let skip = nonParameters[args[i]] { i += 1 + skip; continue }
            out.append(args[i]); i += 1
        }
        return out.map(quoted).joined(separator: " ")
    }

    /// The command line one unsharded run writing to `output` would have had: `--shard K/N` removed,
    /// the `-o` value replaced.
    public static func unsharded(_ commandLine: String, output: String) -> String {
        let args = split(commandLine.split(separator: " ", omittingEmptySubsequences: false).map(String.init))
        var out: [String] = [], i = 0
        while i < args.count {
            if args[i] == "--shard" { i += 2; continue }
            if args[i] == "-o" || args[i] == "--output" { out += [args[i], output]; i += 2; continue }
            out.append(args[i]); i += 1
        }
        return out.joined(separator: " ")
    }

    private static func split(_ args: [String]) -> [String] {
        args.flatMap { arg -> [String] in
            if arg.hasPrefix("--"), let eq = arg.firstIndex(of: "=") { return [String(arg[..<eq]), String(arg[arg.index(after: eq)...])] }
            if arg.hasPrefix("-o"), arg.count > 2, !arg.hasPrefix("--") { return ["-o", String(arg.dropFirst(2))] }
            return [arg]
        }
    }

    private static func quoted(_ arg: String) -> String {
        arg.isEmpty || arg.contains(where: { " \t\n'\"\\$".contains($0) }) ? "'" + arg.replacingOccurrences(of: "'", with: "'\\''") + "'" : arg
    }
}

/// The size hint: a sweep larger than a stated amount of work says how to shard it.
public enum ShardAdvice {
    /// Patch: cells × items, the patched runs of one item (36,864 GPT-2 small neurons × 100 items is 3.7 million).
    public static let patchRunsAbove = 1_000_000
    /// Lens and trace: prompts.
    public static let promptsAbove = 50_000

    /// The threshold, or `SCALPEL_SHARD_HINT_ABOVE` when set (for tests).
    public static func threshold(_ standard: Int) -> Int {
        ProcessInfo.processInfo.environment["SCALPEL_SHARD_HINT_ABOVE"].flatMap { Int($0) } ?? standard
    }

    /// The hint for a run of `work` units (named by `unit`) above `limit`, or nil. `arguments` is the
    /// command line (`CommandLine.arguments`); the advice keeps it and adds `--shard` and a part name.
    /// `pieces`: how many parts the sweep can be split into at most (paths splits its (direction,
    /// layer) steps, fewer than its points), when fewer than the work's units; no hint below 2.
    public static func hint(work: Int, unit: String, limit: Int, pieces: Int? = nil, arguments: [String], output: String?) -> String? {
        guard work > limit, (pieces ?? 2) >= 2 else { return nil }
        let n = min(Shard.maxCount, pieces ?? .max, max(2, (work + limit - 1) / limit))
        let base = (output ?? "out.h5").hasSuffix(".h5") ? String((output ?? "out.h5").dropLast(3)) : (output ?? "out")
        var args: [String] = ["scalpel"], i = 1
        let raw = arguments
        while i < raw.count {
            if raw[i] == "-o" || raw[i] == "--output" { i += 2; continue }
            if raw[i].hasPrefix("--output=") { i += 1; continue }
            args.append(raw[i].contains(" ") ? "'\(raw[i])'" : raw[i]); i += 1
        }
        let command = args.joined(separator: " ")
        return """
        note: this sweep is \(work) \(unit), more than \(limit); it can be split into \(n) parts run on \(n) machines (docs/cluster.md):
          \(command) --shard 1/\(n) -o \(base).part1.h5   …   \(command) --shard \(n)/\(n) -o \(base).part\(n).h5
          or a Slurm job array: sbatch --array=1-\(n) --wrap '\(command) --shard $SLURM_ARRAY_TASK_ID/\(n) -o \(base).part$SLURM_ARRAY_TASK_ID.h5'
          then: scalpel merge \(base).part*.h5 -o \(base).h5
        """
    }
}
