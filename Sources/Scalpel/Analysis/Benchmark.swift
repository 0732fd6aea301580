import CKernels
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Speed of the forward pass, measured in-process (`scalpel bench`): load time, one-prompt latency,
/// batch throughput, the logit lens over the study's prompts, the CPU's multiply-add peak (what
/// bounds them all), and optionally the block weight products through sgemm and the AVX-512
/// kernels. Compare with `tools/bench_peer.py`, which runs Hugging Face PyTorch on the same
/// checkpoint in the same run and prints the ratios.
public struct Benchmark {
    public var tokens = 16
    public var batch = 32
    /// Timed runs of the single prompt (and of each matmul pass); the median is reported.
    public var runs = 30
    public var batchRuns = 7
    /// Row counts for the matmul comparison (2 to `matmulRowLimit`); nil skips it.
    public var matmulRows: [Int]?
    /// Also time the batch capturing these hooks (the cost of capturing, against `batchMedianSeconds`).
    public var capture: HookFilter?
    /// Also time direct logit attribution over this dataset's items on the loaded model, as
    /// `tools/bench_attribution_peer.py` times TransformerLens: by component, head and the neurons
    /// of `attributionNeuronLayers` in one pass.
    public var attribution: PromptDataset?

    /// The layers whose neurons `attribution` attributes: the two before the last (9 and 10 of
    /// GPT-2 small, where the study's MLPs write the answer).
    public static func attributionNeuronLayers(_ model: Model) -> [Int] {
        let end = max(1, model.blocks.count - 1)
        return Array(max(0, end - 2)..<end)
    }

    /// The most rows `--matmul-rows` times (a batch of 4,096 positions, as `circuit` packs).
    public static let matmulRowLimit = 4096

    public init() {}

    public struct Report: Encodable {
        public var model: String
        public var loadSeconds: Double
        public var singlePromptMedianSeconds: Double
        public var batchMedianSeconds: Double
        public var batchTokensPerSecond: Double
        public var tokens: Int
        public var batch: Int
        public var peakResidentMB: Double
        /// The kernels OpenBLAS runs (OPENBLAS_CORETYPE), e.g. "SkylakeX".
        public var openBLASCore: String
        /// The CPU's single-precision multiply-add peak on all cores, with its widest lanes
        /// ("AVX2" or "AVX-512"); nil on a CPU without AVX2 and FMA.
        public var fmaPeakGflops: Double?
        public var fmaLanes: String?
        /// The logit lens over the study's 64 prompts (digits, number words, months, days, letters,
        /// names-is-digit), last position, all resid_pre rows + final; nil without a tokenizer.
        public var lensMedianSeconds: Double?
        public var lensPrompts: [String]?
        /// With matmul rows: one pass over the block weights per row count, each path's median.
        public var matmul: [MatmulTiming]?
        /// With `capture`: the hooks, the batch's median capturing them, and without capturing in the same alternation.
        public var captureHooks: String?
        public var batchCaptureMedianSeconds: Double?
        public var batchAlongsideCaptureMedianSeconds: Double?
        /// With `attribution`: its items, neuron layers and median (the model loaded once, not timed).
        public var attributionItems: Int?
        public var attributionNeuronLayers: [Int]?
        public var attributionMedianSeconds: Double?

        // JSON keys are the snake_case of these names (JSONText), "openblas_core" kept as one word.
        enum CodingKeys: String, CodingKey {
            case model, loadSeconds, singlePromptMedianSeconds, batchMedianSeconds, batchTokensPerSecond, tokens, batch
            case peakResidentMB = "peak_resident_mb", openBLASCore = "openblas_core", fmaPeakGflops, fmaLanes, lensMedianSeconds, lensPrompts, matmul
            case captureHooks, batchCaptureMedianSeconds, batchAlongsideCaptureMedianSeconds
            case attributionItems, attributionNeuronLayers, attributionMedianSeconds
        }
    }

    public struct MatmulTiming: Encodable {
        public var rows: Int
        /// The pass's arithmetic: rows × Σ 2 · weight elements, in GFLOP.
        public var gflop: Double
        /// The AVX-512 kernel `matmul` takes for this many rows: "few-rows" or "tiled"; nil (and no
        /// time) when the CPU has no AVX-512F or SCALPEL_AVX512=0, where products go through sgemm.
        public var kernel: String?
        public var kernelMedianSeconds: Double?
        public var sgemmMedianSeconds: Double
    }

    /// 20 + 6 + 8 + 7 + 7 + 16 = 64 prompts of the study's sequences.
    public static var lensPromptSet: [String] {
        ["digits", "number-words", "months", "days", "letters", "names-is-digit"]
            .compactMap { StudyDatasets.named($0) }.flatMap { $0.items.map(\.prompt) }
    }

    /// Times `load`, then measures the model it returns; `name` is what the report calls it.
    public func run(name: String, load: () throws -> Model) throws -> Report {
        let loadStart = Date()
        let model = try load()
        let loadSeconds = Date().timeIntervalSince(loadStart)
        // Encoded before any timing, so that a dataset without answers fails at once.
        let attributionItems = try attribution.map { try AttributionItems(dataset: $0, model: model) }
        var rng = SeededRandom(seed: 1234)
        let prompts = (0..<batch).map { _ in (0..<tokens).map { _ in Int(rng.next() % UInt64(max(1, model.vocabSize - 1))) } }
        let single = [prompts[0]]
        _ = try model.run(single)  // warm-up: page in the mapped weights
        let singleTimes = try (0..<runs).map { _ in try Self.time { _ = try model.run(single) } }
        _ = try model.run(prompts)
        let batchTimes = try (0..<batchRuns).map { _ in try Self.time { _ = try model.run(prompts) } }
        let batchMedian = Self.median(batchTimes)
        // Alternating with uncaptured runs, so both see the same machine state.
        var captureMedian: Double?, plainAlongside: Double?
        if let capture {
            _ = try model.run(prompts, capture: capture)
            var captured: [Double] = [], plain: [Double] = []
            for _ in 0..<batchRuns {
                captured.append(try Self.time { _ = try model.run(prompts, capture: capture) })
                plain.append(try Self.time { _ = try model.run(prompts) })
            }
            captureMedian = Self.median(captured)
            plainAlongside = Self.median(plain)
        }
        var lensMedian: Double?, lensPrompts: [String]?
        if model.tokenizer != nil {
            let texts = Self.lensPromptSet
            let inputs = try texts.map { LensInput(text: $0, tokens: try model.encode(prompt: $0)) }
            var lens = LogitLens()
            lens.batchSize = 64
            _ = try lens.run(model, prompts: inputs)
            lensMedian = Self.median(try (0..<batchRuns).map { _ in try Self.time { _ = try lens.run(model, prompts: inputs) } })
            lensPrompts = texts
        }
        var attributionMedian: Double?, attributionLayers: [Int]?
        if let items = attributionItems {
            let layers = Self.attributionNeuronLayers(model)
            let analysis = LogitAttribution(by: [.component, .head, .neuron], layers: layers)
            _ = try analysis.runAll(model, on: items)
            attributionMedian = Self.median(try (0..<batchRuns).map { _ in try Self.time { _ = try analysis.runAll(model, on: items) } })
            attributionLayers = layers
        }
        let matmul = matmulRows?.map { timeMatmul(model, rows: $0) }
        let peak = Self.fmaPeak()
        return Report(model: name, loadSeconds: loadSeconds,
                      singlePromptMedianSeconds: Self.median(singleTimes), batchMedianSeconds: batchMedian,
                      batchTokensPerSecond: Double(batch * tokens) / batchMedian, tokens: tokens, batch: batch,
                      peakResidentMB: Self.peakResidentMB(), openBLASCore: OpenBLAS.coreName,
                      fmaPeakGflops: peak?.gflops, fmaLanes: peak?.lanes, lensMedianSeconds: lensMedian,
                      lensPrompts: lensPrompts, matmul: matmul, captureHooks: capture?.patterns.joined(separator: ","),
                      batchCaptureMedianSeconds: captureMedian, batchAlongsideCaptureMedianSeconds: plainAlongside,
                      attributionItems: attribution?.items.count, attributionNeuronLayers: attributionLayers,
                      attributionMedianSeconds: attributionMedian)
    }

    /// One pass of `rows` random rows through every block weight matrix (with its bias), timed
    /// for sgemm and, on a CPU with AVX-512F, for the kernel `matmul` takes (few-rows or tiled),
    /// alternating so that both see the same machine state.
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
            Self.time {
                for (weight, bias) in weights {
                    Kernels.matmul(input, weight.pointer, bias: bias.pointer, into: &output,
                                   m: rows, k: weight.shape[0], n: weight.shape[1], path: path)
                }
            }
        }
        let kernel: Kernels.MatmulPath? = !Kernels.avx512Available ? nil : rows <= Kernels.fewRowsLimit ? .fewRows : .tiled
        _ = (kernel.map(pass), pass(.sgemm))
        var own: [Double] = [], blas: [Double] = []
        for _ in 0..<runs {
            if let kernel { own.append(pass(kernel)) }
            blas.append(pass(.sgemm))
        }
        let flop = weights.reduce(0.0) { $0 + 2 * Double(rows * $1.0.count) }
        return MatmulTiming(rows: rows, gflop: flop / 1e9, kernel: kernel.map { $0 == .fewRows ? "few-rows" : "tiled" },
                            kernelMedianSeconds: own.isEmpty ? nil : Self.median(own), sgemmMedianSeconds: Self.median(blas))
    }

    /// Every core running independent multiply-add chains (`fma_peak.c`) with the CPU's widest
    /// lanes, whatever SCALPEL_AVX512 says (OpenBLAS uses them either way): the median of five runs
    /// of about a tenth of a second, in GFLOP/s (a multiply-add is 2 FLOP). nil without AVX2 and FMA.
    static func fmaPeak() -> (gflops: Double, lanes: String)? {
        let wide = scalpel_avx512_available() != 0
        guard wide || scalpel_fma_available() != 0 else { return nil }
        let lanes = wide ? 16 : 8, chains = 12
        let rounds = 4_000_000_000 / (lanes * chains)
        let times = (0..<5).map { _ in
            time {
                DispatchQueue.concurrentPerform(iterations: Parallel.cores) { _ in
                    _ = wide ? scalpel_fma_chains_avx512(rounds) : scalpel_fma_chains_avx2(rounds)
                }
            }
        }
        let flop = Double(Parallel.cores * rounds * chains * lanes * 2)
        return (flop / median(times) / 1e9, wide ? "AVX-512" : "AVX2")
    }

    static func time(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// Peak resident set size of this process (Linux reports ru_maxrss in kilobytes).
    static func peakResidentMB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
