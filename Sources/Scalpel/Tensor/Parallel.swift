import Foundation

/// Splits work across the machine's cores; each core calls single-threaded OpenBLAS (or another
/// kernel) on its own slice.
enum Parallel {
    static let cores: Int = {
        _ = OpenBLAS.coreName  // set OpenBLAS up before any product
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Calls `body` on `count` items split into contiguous ranges, one per core, when the work is
    /// large enough to be worth a thread hop (`cost` is a rough count of operations).
    static func ranges(_ count: Int, cost: Int, _ body: (Range<Int>) -> Void) {
        let parts = cost < 200_000 ? 1 : min(cores, count)
        guard parts > 1 else { if count > 0 { body(0..<count) }; return }
        DispatchQueue.concurrentPerform(iterations: parts) { part in
            let start = count * part / parts, end = count * (part + 1) / parts
            if start < end { body(start..<end) }
        }
    }
}
