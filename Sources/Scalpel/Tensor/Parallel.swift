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

/// A value computed on another thread while this one goes on; `value()` waits for it.
final class Background<Value>: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var result: Result<Value, Error>?

    init(_ work: @escaping () throws -> Value) {
        DispatchQueue.global().async {
            self.result = Result { try work() }
            self.done.signal()
        }
    }

    func value() throws -> Value {
        done.wait()
        done.signal()  // later calls return at once
        return try result!.get()
    }
}
