import COpenBLAS
import Foundation

/// OpenBLAS, set up once before its first use (`Parallel.cores` asks for it).
public enum OpenBLAS {
    /// The kernels OpenBLAS runs for this CPU (its choice, or OPENBLAS_CORETYPE's), e.g. "Haswell";
    /// `scalpel bench` reports it.
    public static let coreName: String = {
        // Single-threaded: `Parallel` splits the products across cores itself. OpenBLAS's own worker
        // threads would spin while the main thread runs the other kernels, which on 2 cores costs more
        // than it gains.
        openblas_set_num_threads(1)
        reserveBuffers()
        return String(cString: openblas_get_corename())
    }()

    /// Address space of one OpenBLAS work buffer (its BUFFER_SIZE and alignment, as mmap sees it).
    static let bufferBytes = 134_225_920

    /// Takes and returns one work buffer per core: OpenBLAS keeps them for every later product, so it
    /// never allocates again (`MemoryBudget.check` made sure they fit under the limit).
    private static func reserveBuffers() {
        let cores = max(1, ProcessInfo.processInfo.activeProcessorCount)
        let buffers = (0..<cores).map { _ in blas_memory_alloc(0) }
        for buffer in buffers { blas_memory_free(buffer) }
    }
}
