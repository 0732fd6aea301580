import ArgumentParser
import Foundation
import Scalpel

/// `scalpel bench`: parses the sizes, runs `Benchmark` (Analysis/Benchmark.swift) and prints its report.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure load time, one-prompt latency and batch throughput (use a release build).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(parsing: .unconditional, help: "Tokens per prompt.") var tokens = 16
    @Option(parsing: .unconditional, help: "Prompts in the throughput batch.") var batch = 32
    @Option(parsing: .unconditional, help: "Timed runs of the single prompt (the median is reported).") var runs = 30
    @Option(parsing: .unconditional, help: "Timed runs of the batch.") var batchRuns = 7
    @Option(help: "table or json.") var format: SummaryFormat = .table
    @Option(help: ArgumentHelp("Also time the products with every block weight for these row counts through sgemm and, on a CPU with AVX-512F, through the AVX-512 kernel (few-rows up to 32 rows, tiled above).",
                               valueName: "2,17,33,48,4096"))
    var matmulRows: String?
    @Option(help: "Also time the batch capturing these hooks (names or globs, e.g. \"*\"), alternating with runs that capture nothing.")
    var capture: String?
    @Option(help: ArgumentHelp("Also time direct logit attribution over a dataset (a study dataset's name or a file, with answers and corrupted answers) by component, head and the neurons of the two layers before the last, on the model loaded once (what tools/bench_attribution_peer.py times TransformerLens doing).",
                               valueName: "dataset"))
    var attribution: String?

    func validate() throws {
        try FlagCheck.count(tokens, "--tokens", in: 1...100_000)
        try FlagCheck.count(batch, "--batch", in: 1...100_000)
        try FlagCheck.count(runs, "--runs", in: 1...100_000)
        try FlagCheck.count(batchRuns, "--batch-runs", in: 1...100_000)
        guard batch * tokens <= 1 << 20 else {
            throw ValidationError("--batch × --tokens must be at most \(1 << 20) tokens (got \(batch) × \(tokens)).")
        }
        if let matmulRows, matmulRowCounts == nil {
            throw ValidationError("--matmul-rows \"\(matmulRows)\": give row counts from 2 to \(Benchmark.matmulRowLimit), such as 2,17,33,48,4096.")
        }
    }

    /// --matmul-rows as numbers; nil when absent or not a list of counts in range (validate() says which).
    var matmulRowCounts: [Int]? {
        guard let parts = matmulRows?.split(separator: ",") else { return nil }
        let counts = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.count == parts.count,
              counts.allSatisfy({ (2...Benchmark.matmulRowLimit).contains($0) }) else { return nil }
        return counts
    }

    func run() throws {
        var benchmark = Benchmark()
        benchmark.tokens = tokens
        benchmark.batch = batch
        benchmark.runs = runs
        benchmark.batchRuns = batchRuns
        benchmark.matmulRows = matmulRowCounts
        benchmark.capture = try capture.map { try HookFilter(list: $0) }
        benchmark.attribution = try attribution.map(DatasetFiles.resolve)
        let report = try benchmark.run(name: modelOptions.model ?? "bundled") { try modelOptions.load() }
        switch format {
        case .json: try Output.json(report)
        case .table:
            print("model                         \(report.model)")
            print("OpenBLAS kernels              \(report.openBLASCore)")
            if let peak = report.fmaPeakGflops, let lanes = report.fmaLanes {
                print(String(format: "multiply-add peak, all cores  %.0f GFLOP/s (float32, %@)", peak, lanes))
            }
            print(String(format: "load (ready to run)           %.3f s", report.loadSeconds))
            print(String(format: "1 prompt × %d tokens (median) %.2f ms", tokens, report.singlePromptMedianSeconds * 1000))
            print(String(format: "%d prompts × %d tokens (median) %.1f ms  (%.0f tokens/s)", batch, tokens,
                         report.batchMedianSeconds * 1000, report.batchTokensPerSecond))
            if let lensMedian = report.lensMedianSeconds {
                print(String(format: "logit lens, 64 prompts (median) %.1f ms", lensMedian * 1000))
            }
            if let captured = report.batchCaptureMedianSeconds, let alongside = report.batchAlongsideCaptureMedianSeconds {
                print(String(format: "batch capturing %@ (median) %.1f ms, without %.1f ms alongside (×%.3f)",
                             report.captureHooks ?? "", captured * 1000, alongside * 1000, captured / alongside))
            }
            if let seconds = report.attributionMedianSeconds, let items = report.attributionItems, let layers = report.attributionNeuronLayers {
                print(String(format: "attribution, %d items, by component, head, neurons of %@ (median) %.1f ms", items,
                             layers.map(String.init).joined(separator: ","), seconds * 1000))
            }
            print(String(format: "peak resident memory          %.0f MB", report.peakResidentMB))
            if let matmul = report.matmul {
                print("block weight products (median of \(runs)): rows, GFLOP, sgemm's time and GFLOP/s, then the AVX-512 kernel's and its time / sgemm's")
                for t in matmul {
                    var line = String(format: "%5d  %7.2f  %9.2f ms %6.0f", t.rows, t.gflop, t.sgemmMedianSeconds * 1000, t.gflop / t.sgemmMedianSeconds)
                    if let kernel = t.kernel, let seconds = t.kernelMedianSeconds {
                        line += "  " + kernel.padding(toLength: 9, withPad: " ", startingAt: 0)
                            + String(format: "%9.2f ms %6.0f  %.2f", seconds * 1000, t.gflop / seconds, seconds / t.sgemmMedianSeconds)
                    }
                    print(line)
                }
            }
        }
    }
}
