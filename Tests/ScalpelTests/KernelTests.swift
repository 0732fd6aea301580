import XCTest
@testable import Scalpel

final class KernelTests: XCTestCase {
    func testMatmulWithBiasAndTranspose() {
        // [2,3] x [3,2] + [2]
        let a: [Float] = [1, 2, 3, 4, 5, 6]
        let b: [Float] = [1, 0, 0, 1, 1, 1]
        let bias: [Float] = [10, 20]
        var c = [Float](repeating: 0, count: 4)
        Kernels.matmul(a, b, bias: bias, into: &c, m: 2, k: 3, n: 2)
        XCTAssertEqual(c, [14, 25, 20, 31])
        let bt: [Float] = [1, 0, 1, 0, 1, 1]  // b transposed: [2,3]
        Kernels.matmul(a, bt, bias: nil, into: &c, m: 2, k: 3, n: 2, transposeB: true)
        XCTAssertEqual(c, [4, 5, 10, 11])
    }

    func testLayerNormUsesBiasedVariance() {
        let x: [Float] = [1, 2, 3, 4]
        var y = [Float](repeating: 0, count: 4)
        var scale: Float = 0
        Kernels.layerNorm(x, weight: nil, bias: nil, eps: 0, into: &y, scale: &scale, rows: 1, cols: 4)
        XCTAssertEqual(scale, Float(1.25).squareRoot(), accuracy: 1e-6)  // variance 1.25, not 5/3
        XCTAssertEqual(y[0], -1.5 / Float(1.25).squareRoot(), accuracy: 1e-6)
    }

    func testGeluNewMatchesTanhFormula() {
        var x: [Float] = [-3, -1, 0, 0.5, 2]
        Kernels.geluNew(&x, count: 5)
        // 0.5 * v * (1 + tanh(0.7978845608 * (v + 0.044715 v^3))), evaluated in Double
        let inputs: [Double] = [-3, -1, 0, 0.5, 2]
        let expected = inputs.map { (v: Double) -> Double in
            let inner: Double = 0.7978845608028654 * (v + 0.044715 * v * v * v)
            return 0.5 * v * (1 + tanh(inner))
        }
        for (got, want) in zip(x, expected) { XCTAssertEqual(Double(got), want, accuracy: 1e-6) }
    }

    /// The eight-lane polynomial path (and the tanhf tail) against the formula in Double, on a
    /// count that is no multiple of 8 or 16, through each path this CPU has.
    func testGeluNewLanesMatchTheFormula() {
        let inputs = (0..<1003).map { Float($0 - 501) / 50 }  // −10.02 … 10.02
        for lanes in [nil] + Self.geluLanesOfThisCPU {
            var x = inputs
            Kernels.geluNew(&x, count: x.count, lanes: lanes)
            for (got, v) in zip(x, inputs.map(Double.init)) {
                let want = 0.5 * v * (1 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
                XCTAssertEqual(Double(got), want, accuracy: 2e-6 * max(1, abs(want)), "gelu_new(\(v)), C lanes \(String(describing: lanes))")
            }
        }
    }

    /// The C GELUs this CPU runs (AVX-512 only where `SCALPEL_AVX512=0` does not turn it off).
    static var geluLanesOfThisCPU: [Kernels.Lanes] {
        Kernels.Lanes.allCases.filter { $0 == .avx512 ? Kernels.avx512Available : Kernels.geluLanes != nil }
    }

    /// The C GELUs give the Swift lanes' bits, on every kind of float: random values over many
    /// magnitudes, both signs of zero and infinity, NaN, and both sides of the exponential's clamps
    /// (2u = −87, 88).
    func testGeluNewInCGivesTheSwiftLanesBits() throws {
        try XCTSkipIf(Self.geluLanesOfThisCPU.isEmpty, "this CPU has neither AVX2 nor AVX-512F: GELU runs the Swift lanes only")
        var rng = SeededRandom(seed: 31)
        var inputs: [Float] = [0, -0, .infinity, -.infinity, .nan, .greatestFiniteMagnitude, -.greatestFiniteMagnitude,
                               .leastNonzeroMagnitude, -.leastNormalMagnitude, 1e20, -1e20, -5.25, 5.5, -6.4, 6.5]
        for _ in 0..<20_000 {
            let magnitude = Float(bitPattern: UInt32(truncatingIfNeeded: rng.next()) & 0x7FFF_FFFF)
            inputs.append(magnitude.isNaN ? 1 : (rng.next() % 2 == 0 ? magnitude : -magnitude))
            inputs.append(Float(Int(rng.next() % 4001) - 2000) / 100)  // −20 … 20, where it matters
        }
        for c in Self.geluLanesOfThisCPU {
            for count in [inputs.count, inputs.count - 3, inputs.count - 8, 17, 9, 8] {
                var swift = Array(inputs.prefix(count)), wide = swift
                Kernels.geluNew(&swift, count: count, lanes: nil)
                Kernels.geluNew(&wide, count: count, lanes: c)
                for i in 0..<count where swift[i].bitPattern != wide[i].bitPattern && !(swift[i].isNaN && wide[i].isNaN) {
                    XCTFail("gelu_new(\(inputs[i])): Swift lanes \(swift[i]), C \(c) \(wide[i]) (count \(count))")
                    break
                }
            }
        }
    }

    func testSoftmaxMasksPastValidLength() {
        var x: [Float] = [1, 2, 100, 0, 0, 0]
        Kernels.softmaxRows(&x, rows: 2, cols: 3, valid: { $0 == 0 ? 2 : 3 })
        XCTAssertEqual(x[2], 0)
        XCTAssertEqual(x[0] + x[1], 1, accuracy: 1e-6)
        XCTAssertEqual(x[1] / x[0], expf(1), accuracy: 1e-4)
        XCTAssertEqual(x[3], 1.0 / 3.0, accuracy: 1e-6)
    }

    func testVectorExpIsAccurate() {
        var worst: Double = 0
        for i in 0..<20_000 {
            let x = Float(-87 + 175 * Double(i) / 20_000)
            let got = Kernels.exp8(SIMD8(repeating: x))[0]
            worst = max(worst, abs(Double(got) - Foundation.exp(Double(x))) / Foundation.exp(Double(x)))
        }
        XCTAssertLessThan(worst, 1e-6)
        XCTAssertEqual(Kernels.exp8(SIMD8(repeating: -200))[0], 0, accuracy: 1e-37)
        XCTAssertEqual(Kernels.exp8(SIMD8(repeating: 0))[0], 1)
    }

    func testParallelMatmulMatchesSingleCall() {
        // Large enough to be split across cores; the split must not change any value.
        let m = 64, k = 96, n = 130
        let a = (0..<(m * k)).map { Float(($0 * 7) % 13) - 6 }, b = (0..<(k * n)).map { Float(($0 * 5) % 11) - 5 }
        var c = [Float](repeating: 0, count: m * n)
        Kernels.matmul(a, b, bias: nil, into: &c, m: m, k: k, n: n)
        for (row, col) in [(0, 0), (63, 129), (17, 65), (40, 64)] {
            var expected: Float = 0
            for i in 0..<k { expected += a[row * k + i] * b[i * n + col] }
            XCTAssertEqual(c[row * n + col], expected)
        }
    }

    func testSingleRowMatmulUsesTheSameFormula() {
        let k = 30, n = 70_000  // large enough to be split across cores (cost k·n ≥ 200,000)
        let a = (0..<k).map { Float($0 % 7) - 3 }, b = (0..<(k * n)).map { Float(($0 * 3) % 5) - 2 }
        let bias = (0..<n).map { Float($0 % 3) }
        var plain = [Float](repeating: 0, count: n), transposed = [Float](repeating: 0, count: n)
        Kernels.matmul(a, b, bias: bias, into: &plain, m: 1, k: k, n: n)
        let bt = (0..<(k * n)).map { b[($0 % k) * n + $0 / k] }  // B transposed to [n, k]
        Kernels.matmul(a, bt, bias: bias, into: &transposed, m: 1, k: k, n: n, transposeB: true)
        for col in [0, 1, 34_999, 35_000, 69_999] {
            var expected = bias[col]
            for i in 0..<k { expected += a[i] * b[i * n + col] }
            XCTAssertEqual(plain[col], expected)
            XCTAssertEqual(transposed[col], expected)
        }
    }

    func testFewRowsKernelMatchesTheFormulaAtEveryEntry() throws {
        try XCTSkipUnless(Kernels.avx512Available, "this CPU has no AVX-512F: matmul uses sgemm for few rows too")
        // Shapes around the kernel's edges: panels of 12 rows of B, strips of 32 columns, split across
        // cores; integer-valued data so every product and sum is exact in Float.
        try assertExact(.fewRows, shapes: [(2, 1, 1), (5, 11, 31), (17, 12, 32), (17, 29, 77), (32, 100, 200), (3, 768, 2304)])
    }

    func testTiledKernelMatchesTheFormulaAtEveryEntry() throws {
        try XCTSkipUnless(Kernels.avx512Available, "this CPU has no AVX-512F: matmul uses sgemm for many rows")
        // Around the tiled kernel's edges: tiles of 6 rows × 64 columns (4 vectors, the last masked),
        // blocks of 256 rows of A and 384 of B, strips split across cores.
        try assertExact(.tiled, shapes: [(33, 1, 1), (40, 7, 15), (41, 384, 64), (57, 385, 97), (263, 300, 50), (520, 770, 33), (37, 383, 130), (9, 1000, 2304)])
    }

    /// C = A·B (+ bias) through `path` equals the formula at every entry, on integer data (exact in Float).
    func assertExact(_ path: Kernels.MatmulPath, shapes: [(Int, Int, Int)]) throws {
        for (m, k, n) in shapes {
            let a = (0..<(m * k)).map { Float(($0 * 7) % 13) - 6 }, b = (0..<(k * n)).map { Float(($0 * 5) % 11) - 5 }
            let bias = (0..<n).map { Float($0 % 9) - 4 }
            for withBias in [false, true] {
                var c = [Float](repeating: .nan, count: m * n)
                Kernels.matmul(a, b, bias: withBias ? bias : nil, into: &c, m: m, k: k, n: n, path: path)
                for row in 0..<m {
                    for col in 0..<n {
                        var expected = withBias ? bias[col] : 0
                        for i in 0..<k { expected += a[row * k + i] * b[i * n + col] }
                        guard c[row * n + col] == expected else {
                            return XCTFail("\(path) m \(m) k \(k) n \(n) bias \(withBias): C[\(row), \(col)] = \(c[row * n + col]), expected \(expected)")
                        }
                    }
                }
            }
        }
    }

    func testTiledAndFewRowsKernelsGiveTheSameBitsForEveryRow() throws {
        try XCTSkipUnless(Kernels.avx512Available, "this CPU has no AVX-512F: matmul uses sgemm for every batch")
        // Both sum over k in order from the bias with fused multiply-adds, so a prompt's rows come out
        // the same alone (few rows) and inside a batch (tiled).
        let m = 70, k = 300, n = 260
        let a = (0..<(m * k)).map { Float(($0 * 37) % 101) / 50.3 - 1 }, b = (0..<(k * n)).map { Float(($0 * 13) % 97) / 48.7 - 1 }
        let bias = (0..<n).map { Float($0 % 17) / 7.1 }
        var batch = [Float](repeating: 0, count: m * n), alone = [Float](repeating: 0, count: 17 * n)
        Kernels.matmul(a, b, bias: bias, into: &batch, m: m, k: k, n: n, path: .tiled)
        Kernels.matmul(Array(a[(40 * k)..<(57 * k)]), b, bias: bias, into: &alone, m: 17, k: k, n: n, path: .fewRows)
        XCTAssertEqual(Array(batch[(40 * n)..<(57 * n)]), alone)
    }

    func testTiledKernelAndSgemmAgree() throws {
        try XCTSkipUnless(Kernels.avx512Available, "this CPU has no AVX-512F: matmul uses sgemm for many rows")
        assertAgreesWithSgemm(.tiled, m: 300, k: 768, n: 200)
    }

    func testFewRowsKernelAndSgemmAgree() throws {
        try XCTSkipUnless(Kernels.avx512Available, "this CPU has no AVX-512F: matmul uses sgemm for few rows too")
        assertAgreesWithSgemm(.fewRows, m: 17, k: 300, n: 260)
    }

    /// On non-integer data `path` and sgemm sum in different orders: they agree to 1e-5 relative.
    func assertAgreesWithSgemm(_ path: Kernels.MatmulPath, m: Int, k: Int, n: Int) {
        let a = (0..<(m * k)).map { Float(($0 * 37) % 101) / 50 - 1 }, b = (0..<(k * n)).map { Float(($0 * 13) % 97) / 48 - 1 }
        var kernel = [Float](repeating: 0, count: m * n), blas = kernel
        Kernels.matmul(a, b, bias: nil, into: &kernel, m: m, k: k, n: n, path: path)
        Kernels.matmul(a, b, bias: nil, into: &blas, m: m, k: k, n: n, path: .sgemm)
        let worst = (0..<(m * n)).map { abs(kernel[$0] - blas[$0]) / max(1, abs(blas[$0])) }.max()!
        XCTAssertLessThan(worst, 1e-5, "\(path)")
    }

    func testPathsByNumberOfRows() {
        XCTAssertEqual(Kernels.MatmulPath.automatic(m: 1, k: 8, transposeB: true), .matvec)
        XCTAssertEqual(Kernels.MatmulPath.automatic(m: Kernels.fewRowsLimit + 1, k: 8, transposeB: false), Kernels.avx512Available ? .tiled : .sgemm)
        XCTAssertEqual(Kernels.MatmulPath.automatic(m: 4096, k: 8, transposeB: true), .sgemm)
        XCTAssertEqual(Kernels.MatmulPath.automatic(m: 17, k: 8, transposeB: true), .sgemm)
        XCTAssertEqual(Kernels.MatmulPath.automatic(m: 17, k: 8, transposeB: false), Kernels.avx512Available ? .fewRows : .sgemm)
    }
}
