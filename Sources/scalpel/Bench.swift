import ArgumentParser
import Foundation
import Scalpel

/// Speed of the forward pass, measured in-process. Compare with `tools/bench_peer.py`, which runs
/// Hugging Face PyTorch on the same checkpoint in the same run and prints the ratios.
struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure load time, one-prompt latency and batch throughput (use a release build).")

    @OptionGroup var modelOptions: ModelOptions
    @Option(parsing: .unconditional, help: "Tokens per prompt.") var tokens = 16
    @Option(parsing: .unconditional, help: "Prompts in the throughput batch.") var batch = 32
    @Option(parsing: .unconditional, help: "Timed runs of the single prompt (the median is reported).") var runs = 30
    @Option(parsing: .unconditional, help: "Timed runs of the batch.") var batchRuns = 7
    @Option(help: "table or json.") var format: SummaryFormat = .table
    @Option(help: ArgumentHelp("Also time the products with every block weight for these row counts, few-rows kernel against sgemm.",
                               valueName: "2,17,33,48"))
    var matmulRows: String?

    struct Report: Encodable {
        var model: String
        var loadSeconds: Double
        var singlePromptMedianSeconds: Double
        var batchMedianSeconds: Double
        var batchTokensPerSecond: Double
        var tokens: Int
        var batch: Int
        var peakResidentMB: Double
        /// The kernels OpenBLAS runs (OPENBLAS_CORETYPE), e.g. "SkylakeX".
        var openBLASCore: String
        /// The logit lens over the study's 64 prompts (digits, number words, months, days, letters,
        /// names-is-digit), last position, all resid_pre rows + final; nil without a tokenizer.
        var lensMedianSeconds: Double?
        var lensPrompts: [String]?
        /// With --matmul-rows: one pass over the block weights per row count, each path's median.
        var matmul: [MatmulTiming]?

        // JSON keys are the snake_case of these names (JSONText), "openblas_core" kept as one word.
        enum CodingKeys: String, CodingKey {
            case model, loadSeconds, singlePromptMedianSeconds, batchMedianSeconds, batchTokensPerSecond, tokens, batch
            case peakResidentMB = "peak_resident_mb", openBLASCore = "openblas_core", lensMedianSeconds, lensPrompts, matmul
        }
    }

    struct MatmulTiming: Encodable {
        var rows: Int
        var fewRowsMedianSeconds: Double
        var sgemmMedianSeconds: Double
    }

    /// 20 + 6 + 8 + 7 + 7 + 16 = 64 prompts of the study's sequences.
    static var lensPromptSet: [String] {
        ["digits", "number-words", "months", "days", "letters", "names-is-digit"]
            .flatMap { StudyDatasets.named($0)!.items.map(\.prompt) }
    }

    func validate() throws {
        try FlagCheck.count(tokens, "--tokens", in: 1...100_000)
        try FlagCheck.count(batch, "--batch", in: 1...100_000)
        try FlagCheck.count(runs, "--runs", in: 1...100_000)
        try FlagCheck.count(batchRuns, "--batch-runs", in: 1...100_000)
        guard batch * tokens <= 1 << 20 else {
            throw ValidationError("--batch × --tokens must be at most \(1 << 20) tokens (got \(batch) × \(tokens)).")
        }
        if let matmulRows, matmulRowCounts == nil {
            throw ValidationError("--matmul-rows \"\(matmulRows)\": give row counts from 2 to \(Kernels.fewRowsLimit * 4), such as 2,17,33,48.")
        }
        if matmulRows != nil && !Kernels.fewRowsAvailable {
            throw ValidationError("--matmul-rows compares the few-rows kernel with sgemm, but this CPU has no AVX-512F to run it.")
        }
    }

    /// --matmul-rows as numbers; nil when absent or not a list of counts in range (validate() says which).
    var matmulRowCounts: [Int]? {
        guard let parts = matmulRows?.split(separator: ",") else { return nil }
        let counts = parts.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.count == parts.count,
              counts.allSatisfy({ (2...Kernels.fewRowsLimit * 4).contains($0) }) else { return nil }
        return counts
    }

    func run() throws {
        let loadStart = Date()
        let model = try modelOptions.load()
        let loadSeconds = Date().timeIntervalSince(loadStart)
        var rng = SeededRandom(seed: 1234)
        let prompts = (0..<batch).map { _ in (0..<tokens).map { _ in Int(rng.next() % UInt64(max(1, model.vocabSize - 1))) } }
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
        let matmul = matmulRowCounts?.map { timeMatmul(model, rows: $0) }
        let report = Report(model: modelOptions.model ?? "bundled", loadSeconds: loadSeconds,
                            singlePromptMedianSeconds: median(singleTimes), batchMedianSeconds: batchMedian,
                            batchTokensPerSecond: Double(batch * tokens) / batchMedian, tokens: tokens, batch: batch,
                            peakResidentMB: peakResidentMB(), openBLASCore: OpenBLAS.coreName, lensMedianSeconds: lensMedian, lensPrompts: lensPrompts,
                            matmul: matmul)
        switch format {
        case .json: try Output.json(report)
        case .table:
            print("model                         \(report.model)")
            print("OpenBLAS kernels              \(report.openBLASCore)")
            print(String(format: "load (ready to run)           %.3f s", report.loadSeconds))
            print(String(format: "1 prompt × %d tokens (median) %.2f ms", tokens, report.singlePromptMedianSeconds * 1000))
            print(String(format: "%d prompts × %d tokens (median) %.1f ms  (%.0f tokens/s)", batch, tokens,
                         batchMedian * 1000, report.batchTokensPerSecond))
            if let lensMedian {
                print(String(format: "logit lens, 64 prompts (median) %.1f ms", lensMedian * 1000))
            }
            print(String(format: "peak resident memory          %.0f MB", report.peakResidentMB))
            if let matmul {
                print("block weight products (median of \(runs)): rows, few-rows kernel, sgemm, ratio")
                for t in matmul {
                    print(String(format: "%4d  %8.2f ms  %8.2f ms  %.2f", t.rows, t.fewRowsMedianSeconds * 1000,
                                 t.sgemmMedianSeconds * 1000, t.fewRowsMedianSeconds / t.sgemmMedianSeconds))
                }
            }
        }
    }

    /// One pass of `rows` random rows through every block weight matrix (with its bias), timed
    /// for the few-rows kernel and for sgemm, alternating so that both see the same machine state.
    func timeMatmul(_ model: Model, rows: Int) -> MatmulTiming {
        let weights = model.blocks.flatMap { block -> [(Tensor, Tensor)] in
            (block.attention.map { [($0.qkvWeight, $0.qkvBias), ($0.outWeight, $0.outBias)] } ?? [])
                + (block.mlp.map { [($0.inWeight, $0.inBias), ($0.outWeight, $0.outBias)] } ?? [])
        }
        let widest = weights.map { max($0.0.shape[0], $0.0.shape[1]) }.max() ?? 0
        var rng = SeededRandom(seed: 99)
        let input = (0..<(rows * widest)).map { _ in Float(rng.next() % 2001) / 1000 - 1 }
        var output = [Float](repeating: 0, count: rows * widest)
        func pass(_ path: Kernels.MatmulPath) -> Double {
            time {
                for (weight, bias) in weights {
                    Kernels.matmul(input, weight.pointer, bias: bias.pointer, into: &output,
                                   m: rows, k: weight.shape[0], n: weight.shape[1], path: path)
                }
            }
        }
        _ = (pass(.fewRows), pass(.sgemm))
        var few: [Double] = [], blas: [Double] = []
        for _ in 0..<runs { few.append(pass(.fewRows)); blas.append(pass(.sgemm)) }
        return MatmulTiming(rows: rows, fewRowsMedianSeconds: median(few), sgemmMedianSeconds: median(blas))
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
