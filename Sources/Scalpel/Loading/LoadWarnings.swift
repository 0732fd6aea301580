import CKernels
import Foundation

/// What loading a model reports without refusing it: non-finite weights (NaN, ±Inf), and archives
/// too old to carry a weights checksum. Both are decisions recorded in docs/DECISIONS.md.
public enum LoadWarnings {
    /// Where warnings go: stderr, one line each. Tests replace it to read them.
    nonisolated(unsafe) public static var handler: (String) -> Void = { message in
        FileHandle.standardError.write(Data("warning: \(message)\n".utf8))
    }

    static func report(_ message: String) { handler(message) }

    /// Warns once per model, naming every tensor that holds NaN or ±Inf and how many values.
    static func reportNonFinite(_ tensors: [(name: String, count: Int, total: Int)], in source: String) {
        guard !tensors.isEmpty else { return }
        let list = tensors.map { "\($0.name) (\($0.count) of \($0.total) values)" }.joined(separator: ", ")
        report("\(source): non-finite weights (NaN or Inf) in \(list). Results computed from them will be NaN or Inf; "
               + "re-save or re-download the checkpoint unless you are studying a damaged model.")
    }

    /// The number of NaN and ±Inf values in `tensor` (all exponent bits set): chunks of a million
    /// values counted on all cores, in C (`non_finite.c`, optimised in debug builds too). Every
    /// weight is read once at load, so this pass bounds loading's speed: a Swift loop compiled to a
    /// compare and branch per value and took 45% of `scalpel inspect` on GPT-2 small.
    static func nonFiniteCount(_ tensor: Tensor) -> Int {
        tensor.buffer.withMemoryRebound(to: UInt32.self) { bits in
            guard let base = bits.baseAddress else { return 0 }
            let chunk = 1 << 20, chunks = (bits.count + chunk - 1) / chunk
            var counts = [Int](repeating: 0, count: chunks)
            counts.withUnsafeMutableBufferPointer { counts in
                Parallel.ranges(chunks, cost: bits.count) { range in
                    for c in range {
                        let start = c * chunk
                        counts[c] = scalpel_count_non_finite(base + start, min(chunk, bits.count - start))
                    }
                }
            }
            return counts.reduce(0, +)
        }
    }
}
