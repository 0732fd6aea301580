import ArgumentParser
import Foundation
import Scalpel

/// Speed of the forward pass, measured in-process. Compare with `tools/bench_peer.py`, which runs
/// Hugging Face PyTorch on the same checkpoint in the same run and prints the ratios.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure load time, one-prompt latency and batch throughput (use a release build).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Tokens per prompt.") var tokens = 16
    @Option(help: "Prompts in the throughput batch.") var batch = 32
    @Option(help: "Timed runs of the single prompt (the median is reported).") var runs = 30
    @Option(help: "Timed runs of the batch.") var batchRuns = 7
    @Option(help: "table or json.") var format: OutputFormat = .table

    struct Report: Encodable {
        var model: String
        var loadSeconds: Double
        var singlePromptMedianSeconds: Double
        var batchMedianSeconds: Double
        var batchTokensPerSecond: Double
        var tokens: Int
        var batch: Int
        var peakResidentMB: Double
        /// The logit lens over the study's 64 prompts (digits, number words, months, days, letters,
        /// names-is-digit), last position, all resid_pre rows + final; nil without a tokenizer.
        var lensMedianSeconds: Double?
        var lensPrompts: [String]?
    }

    /// 20 + 6 + 8 + 7 + 7 + 16 = 64 prompts of the study's sequences.
    static var lensPromptSet: [String] {
        ["digits", "number-words", "months", "days", "letters", "names-is-digit"]
            .flatMap { StudyDatasets.named($0)!.items.map(\.prompt) }
    }

    func run() throws {
        let loadStart = Date()
        let model = try modelOptions.load()
        let loadSeconds = Date().timeIntervalSince(loadStart)
        var rng = SeededRandom(seed: 1234)
        let prompts = (0..<batch).map { _ in (0..<tokens).map { _ in Int(rng.next() % UInt64(model.vocabSize - 1)) } }
        let single = [prompts[0]]
        _ = try model.run(single)  // warm-up: page in the mapped weights
        let singleTimes = try (0..<runs).map { _ in try time { _ = try model.run(single) } }
        _ = try model.run(prompts)
        let batchTimes = try (0..<batchRuns).map { _ in try time { _ = try model.run(prompts) } }
        let batchMedian = median(batchTimes)
        var lensMedian: Double?, lensPrompts: [String]?
        if model.tokenizer != nil {
            lensPrompts = Self.lensPromptSet
            let inputs = try lensPrompts!.map { LensInput(text: $0, tokens: try model.encode(prompt: $0)) }
            var lens = LogitLens()
            lens.batchSize = 64
            _ = try lens.run(model, prompts: inputs)
            lensMedian = median(try (0..<batchRuns).map { _ in try time { _ = try lens.run(model, prompts: inputs) } })
        }
        let report = Report(model: modelOptions.model ?? "bundled", loadSeconds: loadSeconds,
                            singlePromptMedianSeconds: median(singleTimes), batchMedianSeconds: batchMedian,
                            batchTokensPerSecond: Double(batch * tokens) / batchMedian, tokens: tokens, batch: batch,
                            peakResidentMB: peakResidentMB(), lensMedianSeconds: lensMedian, lensPrompts: lensPrompts)
        switch format {
        case .json: try Output.json(report)
        default:
            print("model                         \(report.model)")
            print(String(format: "load (ready to run)           %.3f s", report.loadSeconds))
            print(String(format: "1 prompt × %d tokens (median) %.2f ms", tokens, report.singlePromptMedianSeconds * 1000))
            print(String(format: "%d prompts × %d tokens (median) %.1f ms  (%.0f tokens/s)", batch, tokens,
                         batchMedian * 1000, report.batchTokensPerSecond))
            if let lensMedian {
                print(String(format: "logit lens, 64 prompts (median) %.1f ms", lensMedian * 1000))
            }
            print(String(format: "peak resident memory          %.0f MB", report.peakResidentMB))
        }
    }

    func time(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}

/// Peak resident set size of this process (Linux reports ru_maxrss in kilobytes).
func peakResidentMB() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}
