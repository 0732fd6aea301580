import CKernels
import COpenBLAS
import Foundation

/// The numerical kernels of the forward pass, each next to the formula it computes.
/// Matrices are row-major; `rows` × `cols` unless said otherwise.
public enum Kernels {
    /// How `matmul` computes a product (docs/DECISIONS.md, "Matrix products").
    public enum MatmulPath: Sendable {
        /// One row: `cblas_sgemv`.
        case matvec
        /// 2 to `fewRowsLimit` rows against B[k,n]: the few-rows kernel (CKernels), which reads B in place.
        case fewRows
        /// More rows against B[k,n]: the tiled kernel (CKernels), 6 × 64 tiles of C in registers.
        case tiled
        /// Anything: `cblas_sgemm`, which packs B on every call.
        case sgemm

        /// The path `matmul` takes by default for m rows.
        public static func automatic(m: Int, k: Int, transposeB: Bool) -> MatmulPath {
            switch m {
            case 1 where k > 0: return .matvec
            case 2...fewRowsLimit where !transposeB && avx512Available: return .fewRows
            case (fewRowsLimit + 1)... where !transposeB && avx512Available: return .tiled
            default: return .sgemm
            }
        }
    }

    /// C[m,n] = A[m,k] · B[k,n] (+ bias[n] broadcast over rows). B may be transposed: B[n,k].
    /// The columns of C are split across cores. `path` is chosen by the number of rows (tokens)
    /// unless given, which only benchmarks and tests do.
    public static func matmul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                              into c: UnsafeMutablePointer<Float>, m: Int, k: Int, n: Int, transposeB: Bool = false,
                              path: MatmulPath? = nil) {
        guard m > 0, n > 0 else { return }
        let path = path ?? .automatic(m: m, k: k, transposeB: transposeB)
        switch path {
        case .matvec:
            precondition(m == 1, "matvec computes one row")
            matvec(a, b, bias: bias, into: c, k: k, n: n, transposeB: transposeB)
        case .fewRows, .tiled:
            precondition(!transposeB && avx512Available, "the \(path) kernel needs B[k,n] and AVX-512F")
            matmulAVX512(path, a, b, bias: bias, into: c, m: m, k: k, n: n)
        case .sgemm:
            matmulBLAS(a, b, bias: bias, into: c, m: m, k: k, n: n, transposeB: transposeB)
        }
    }

    /// C[m, columns] = A[m,k] · B[k, columns] (+ bias[columns]), where B's and C's rows are `rowWidth`
    /// wide: some columns of a product (the heads a pass computes), on the calling thread. Through the
    /// AVX-512 kernels (2 rows or more), each entry has the same bits as in the whole product.
    public static func matmul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                              into c: UnsafeMutablePointer<Float>, m: Int, k: Int, columns: Range<Int>, rowWidth n: Int) {
        guard m > 0, !columns.isEmpty else { return }
        productColumns(.automatic(m: m, k: k, transposeB: false), a, b, bias: bias, into: c, m: m, k: k, columns: columns, rowWidth: n)
    }

    /// C[m, columns] = bias[columns] (or 0) + A[m,k] · B[k, columns] on the calling thread, through
    /// `path`'s kernel (sgemm for `.matvec` and `.sgemm`); B's and C's rows are `rowWidth` wide.
    static func productColumns(_ path: MatmulPath, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               into c: UnsafeMutablePointer<Float>, m: Int, k: Int, columns: Range<Int>, rowWidth n: Int) {
        startRows(c, from: bias, m: m, n: n, columns: columns)
        let b0 = b + columns.lowerBound, c0 = c + columns.lowerBound, width = columns.count
        switch path {
        case .fewRows: scalpel_sgemm_few_rows(a, b0, c0, m, k, width, n, n)
        case .tiled: scalpel_sgemm_tiled(a, b0, c0, m, k, width, n, n)
        case .matvec, .sgemm:
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(width), Int32(k), 1, a, Int32(k), b0, Int32(n), 1, c0, Int32(n))
        }
    }

    /// Up to this many rows the few-rows kernel (B read once, C streamed), above it the tiled one (C
    /// in registers, B streamed): `scalpel bench --matmul-rows` times each against sgemm, and the two
    /// are even at 32–33 rows on GPT-2 small (docs/DECISIONS.md, "Matrix products").
    public static let fewRowsLimit = 32
    /// The few-rows and tiled kernels need AVX-512F; without it, every product of rows goes through
    /// sgemm. `SCALPEL_AVX512=0` turns them off on a CPU that has it, so that the tests run the
    /// sgemm path there too (tools/test.sh).
    public static let avx512Available = scalpel_avx512_available() != 0 && ProcessInfo.processInfo.environment["SCALPEL_AVX512"] != "0"

    /// One row (e.g. the last position's unembedding): a matrix-vector product streams B once,
    /// where a GEMM would first pack all of B.
    static func matvec(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                       into c: UnsafeMutablePointer<Float>, k: Int, n: Int, transposeB: Bool) {
        Parallel.ranges(n, cost: n * k) { columns in
            let width = columns.count, y = c + columns.lowerBound
            if bias != nil { startRows(c, from: bias, m: 1, n: n, columns: columns) }
            if transposeB {  // y = B[columns, :] · a
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(width), Int32(k), 1, b + columns.lowerBound * k, Int32(k),
                            a, 1, bias == nil ? 0 : 1, y, 1)
            } else {         // y = a · B[:, columns]
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(width), 1, b + columns.lowerBound, Int32(n),
                            a, 1, bias == nil ? 0 : 1, y, 1)
            }
        }
    }

    /// Rows against B[k,n] through an AVX-512 kernel (CKernels) that reads B in place: C starts as
    /// the bias (or 0) and the kernel adds A·B. Each core takes whole strips of C as wide as the
    /// kernel's: 32 columns for few rows, 64 (the tile) for many.
    static func matmulAVX512(_ path: MatmulPath, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                             into c: UnsafeMutablePointer<Float>, m: Int, k: Int, n: Int) {
        let strip = path == .fewRows ? 32 : 64
        Parallel.ranges((n + strip - 1) / strip, cost: m * n * k) { strips in
            let columns = (strips.lowerBound * strip)..<min(n, strips.upperBound * strip)
            productColumns(path, a, b, bias: bias, into: c, m: m, k: k, columns: columns, rowWidth: n)
        }
    }

    /// Any number of rows through single-threaded OpenBLAS sgemm, each core on its slice of columns.
    static func matmulBLAS(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                           into c: UnsafeMutablePointer<Float>, m: Int, k: Int, n: Int, transposeB: Bool) {
        Parallel.ranges(n, cost: m * n * k) { columns in
            let width = columns.count, c0 = c + columns.lowerBound
            // sgemm overwrites C when beta is 0, so C is only started from the bias when there is one.
            if bias != nil || k == 0 { startRows(c, from: bias, m: m, n: n, columns: columns) }
            guard k > 0 else { return }
            let beta: Float = bias == nil ? 0 : 1
            let b0 = transposeB ? b + columns.lowerBound * k : b + columns.lowerBound
            cblas_sgemm(CblasRowMajor, CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                        Int32(m), Int32(width), Int32(k), 1, a, Int32(k), b0, Int32(transposeB ? k : n), beta, c0, Int32(n))
        }
    }

    /// C[row, columns] = bias[columns] (0 without a bias) for every row of C [m, n]: the start of C += A·B.
    static func startRows(_ c: UnsafeMutablePointer<Float>, from bias: UnsafePointer<Float>?, m: Int, n: Int,
                          columns: Range<Int>) {
        for row in 0..<m {
            let c0 = c + row * n + columns.lowerBound
            if let bias { c0.update(from: bias + columns.lowerBound, count: columns.count) } else { c0.update(repeating: 0, count: columns.count) }
        }
    }

    /// scale = sqrt(var(x) + eps) per row, with the biased variance (as torch.nn.LayerNorm);
    /// TransformerLens' `hook_scale`.
    public static func layerNormScale(_ x: UnsafePointer<Float>, eps: Float, into scale: UnsafeMutablePointer<Float>,
                                      rows: Int, cols: Int) {
        Parallel.ranges(rows, cost: rows * cols * 4) { part in  // rows are independent: same bits split or not
            for r in part {
                let xr = x + r * cols
                let mean = Self.mean(xr, cols)
                let variance = scalpel_sum_of_squares(xr, cols, mean)
                scale[r] = (variance / Float(cols) + eps).squareRoot()
            }
        }
    }

    /// y = (x - mean(x)) / scale * w + b per row (w and b optional).
    public static func layerNormApply(_ x: UnsafePointer<Float>, scale: UnsafePointer<Float>,
                                      weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
                                      into y: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        Parallel.ranges(rows, cost: rows * cols * 4) { part in
            for r in part {
                let xr = x + r * cols, yr = y + r * cols
                let mean = Self.mean(xr, cols), inv = 1 / scale[r]
                for i in 0..<cols { yr[i] = (xr[i] - mean) * inv }
                if let weight { for i in 0..<cols { yr[i] *= weight[i] } }
                if let bias { for i in 0..<cols { yr[i] += bias[i] } }
            }
        }
    }

    /// y = y * w + b per row, in place: the last two steps of `layerNormApply`, in the same order, for
    /// rows it normalised without w and b.
    public static func affine(_ y: UnsafeMutablePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                              rows: Int, cols: Int) {
        for r in 0..<rows {
            let yr = y + r * cols
            for i in 0..<cols { yr[i] *= weight[i] }
            for i in 0..<cols { yr[i] += bias[i] }
        }
    }

    /// LayerNorm in one call: layerNormScale then layerNormApply.
    public static func layerNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?,
                                 eps: Float, into y: UnsafeMutablePointer<Float>, scale: UnsafeMutablePointer<Float>?,
                                 rows: Int, cols: Int) {
        let scales = scale ?? .allocate(capacity: max(rows, 1))
        defer { if scale == nil { scales.deallocate() } }
        layerNormScale(x, eps: eps, into: scales, rows: rows, cols: cols)
        layerNormApply(x, scale: scales, weight: weight, bias: bias, into: y, rows: rows, cols: cols)
    }

    /// The mean of a row, its sum in a fixed order (`row_sums.c`): sixteen running sums, not one
    /// whose every addition waited on the one before (LayerNorm's three passes were 3% of a circuit sweep).
    static func mean(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        scalpel_sum(x, n) / Float(n)
    }

    /// The instruction sets of the C copy of the Swift GELU lanes (`gelu.c`).
    public enum Lanes: Sendable, CaseIterable {
        case avx2, avx512
    }

    /// The GELU lanes `geluNew` runs: AVX-512F, else AVX2 (also with `SCALPEL_AVX512=0`), else the Swift.
    public static let geluLanes: Lanes? = avx512Available ? .avx512 : scalpel_avx2_available() != 0 ? .avx2 : nil

    /// gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), in place, eight lanes at a time,
    /// with tanh(u) = 1 − 2 / (exp(2u) + 1). With AVX2 or AVX-512 (`lanes`) the same operations run
    /// sixteen lanes at a time in C (`gelu.c`), giving the same bits; either way the last count mod 8
    /// values use libm's tanhf.
    public static func geluNew(_ x: UnsafeMutablePointer<Float>, count: Int, lanes: Lanes? = geluLanes) {
        let c = Float((2.0 / Double.pi).squareRoot())
        Parallel.ranges(count / 8, cost: count * 20) { chunks in
            switch lanes {
            case .avx512?: return scalpel_gelu_new(x + chunks.lowerBound * 8, chunks.count * 8, c)
            case .avx2?: return scalpel_gelu_new_avx2(x + chunks.lowerBound * 8, chunks.count * 8, c)
            case nil: break
            }
            for chunk in chunks {
                let p = UnsafeMutableRawPointer(x + chunk * 8)
                let v = p.loadUnaligned(as: SIMD8<Float>.self)
                let u = c * (v + 0.044715 * v * v * v)
                let tanh = 1 - 2 / (exp8(2 * u) + 1)
                p.storeBytes(of: 0.5 * v * (1 + tanh), as: SIMD8<Float>.self)
            }
        }
        for i in (count / 8 * 8)..<count {
            let v = x[i]
            x[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v)))
        }
    }

    /// e^x for eight lanes: x = n·ln2 + r with |r| ≤ ln2/2, e^r by its degree-6 Taylor polynomial
    /// (relative error below 3e-7), and 2^n built in the exponent bits. Saturates at 0 and +inf.
    /// n is rounded by adding 1.5·2^23, which leaves it in the low mantissa bits (no int conversion).
    @inline(__always)
    static func exp8(_ x: SIMD8<Float>) -> SIMD8<Float> {
        var x = x  // clamped with masks: `clamped(lowerBound:upperBound:)` is not inlined
        x.replace(with: -87, where: x .< -87)
        x.replace(with: 88, where: x .> 88)
        let shifted = x * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        let r = x - n * 0.693_145_75 - n * 1.428_606_8e-6
        var p: SIMD8<Float> = SIMD8(repeating: 1.0 / 720)
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let bits = (unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
        return p * unsafeBitCast(bits, to: SIMD8<Float>.self)
    }

    /// softmax over each row of x[rows, cols], in place, subtracting the row max for stability.
    /// Only the first `valid(r)` entries of row r take part; the rest become 0 (the causal mask).
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, valid: (Int) -> Int) {
        for r in 0..<rows {
            let row = x + r * cols, n = valid(r)
            var maxValue = -Float.infinity
            for i in 0..<n { maxValue = Swift.max(maxValue, row[i]) }
            var sum: Float = 0
            for i in 0..<n { let e = expf(row[i] - maxValue); row[i] = e; sum += e }
            let inv = 1 / sum
            for i in 0..<n { row[i] *= inv }
            for i in n..<cols { row[i] = 0 }
        }
    }

    /// y += x, elementwise.
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { y[i] += x[i] }
    }
}
