import CFileSystem
import Foundation

/// Running under a limit on address space (`ulimit -v`, a cluster's memory limit). Two things go
/// wrong there without care: OpenBLAS retries a failed allocation forever, and a failed Swift
/// allocation stops the process with a crash. So the command line checks the limit at start
/// (`check`), OpenBLAS's buffers are reserved while there is room (`OpenBLAS.reserveBuffers`), and a
/// failed allocation of Scalpel's own tensors ends in `exhausted`, which the command line turns
/// into a message and exit status 1.
public enum MemoryBudget {
    /// Room left beyond OpenBLAS's buffers for the first steps of any command.
    static let headroomBytes = 64 << 20

    /// What to do when a tensor cannot be allocated; the command line replaces it.
    nonisolated(unsafe) public static var onExhausted: (_ bytes: Int) -> Never = { bytes in
        fatalError("out of memory: could not allocate \(bytes) bytes")
    }

    static func exhausted(bytes: Int) -> Never { onExhausted(bytes) }

    /// The smaller of the soft limits on address space and on data, in bytes; nil when unlimited.
    public static var limitBytes: Int? {
        [RLIMIT_AS, RLIMIT_DATA].compactMap { resource -> Int? in
            var limit = rlimit()
            guard getrlimit(__rlimit_resource_t(resource.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return nil }
            return Int(clamping: limit.rlim_cur)
        }.min()
    }

    /// Address space this process uses now (VmSize), in bytes.
    static var usedBytes: Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmSize:") }),
              let kilobytes = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 0 }
        return kilobytes * 1024
    }

    /// Keeps freed large blocks in the heap for the next allocation of their size. A forward pass
    /// allocates and frees a batch's activations at every step (50 MB for 4,096 rows × 3,072); above
    /// glibc's 32 MB ceiling each is mapped afresh, so every page of it faults and is zeroed again,
    /// which was 15% of a circuit sweep's time. Called once, at start, by the command line.
    public static func reuseLargeBlocks() {
        let oneGiB: Int32 = 1 << 30
        _ = mallopt(M_MMAP_THRESHOLD, oneGiB)  // blocks below this come from the heap, not their own mapping
        _ = mallopt(M_TRIM_THRESHOLD, oneGiB)  // and freed heap is kept up to this much, not returned at once
    }

    /// Under a limit, refuses to start when OpenBLAS's buffers and a first step do not fit, since
    /// OpenBLAS would then spin in its allocator instead of failing, and reserves those buffers
    /// before a model takes the room.
    public static func check() throws {
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        guard let limit = limitBytes else { return }
        let needed = usedBytes + cores * OpenBLAS.bufferBytes + headroomBytes
        let limitTooSmall = MemoryError.limitTooSmall(limitMB: limit >> 20, neededMB: (needed >> 20) + 1)
        guard needed <= limit, OpenBLAS.reserveBuffers(cores: cores) else { throw limitTooSmall }
    }
}

public enum MemoryError: UserFacingError, Equatable {
    case limitTooSmall(limitMB: Int, neededMB: Int)
    case exhausted(bytes: Int, limitMB: Int?)

    public var message: String {
        switch self {
        case let .limitTooSmall(limit, needed):
            return "the memory limit (ulimit -v or -d) allows \(limit) MB of address space, and Scalpel needs at least \(needed) MB before it loads a model (OpenBLAS reserves its work buffers). Raise the limit."
        case let .exhausted(bytes, limit):
            let size = bytes == Int.max ? "an impossibly large block" : "\((bytes + (1 << 20) - 1) >> 20) MB"
            return "out of memory: could not allocate \(size)\(limit.map { " under the memory limit of \($0) MB" } ?? ""). Run fewer prompts at a time (smaller --batch-size or dataset), use a smaller model, or raise the limit."
        }
    }
}
