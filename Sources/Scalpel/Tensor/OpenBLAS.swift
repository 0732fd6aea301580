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
        // The workers OpenBLAS started at load would spin for a while, taking a core from ours.
        blas_thread_shutdown_()
        return String(cString: openblas_get_corename())
    }()

    /// Sets OpenBLAS up now (single-threaded, its workers stopped) rather than at the first product,
    /// so that its workers do not spin through the model's loading. The command line calls it first.
    public static func setUp() { _ = coreName }

    /// Address space of one OpenBLAS work buffer (its BUFFER_SIZE and alignment, as mmap sees it).
    static let bufferBytes = 134_225_920

    /// Takes and returns one work buffer per core, so that OpenBLAS never allocates again: under a
    /// memory limit it retries a failed allocation forever. Each buffer's room is first tried with
    /// malloc, which fails instead; false when there is not enough room.
    static func reserveBuffers(cores: Int) -> Bool {
        _ = coreName
        var buffers: [UnsafeMutableRawPointer?] = []
        defer { for buffer in buffers { blas_memory_free(buffer) } }
        for _ in 0..<cores {
            guard let probe = malloc(bufferBytes) else { return false }
            free(probe)
            buffers.append(blas_memory_alloc(0))
        }
        return true
    }
}
