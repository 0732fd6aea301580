import COpenBLAS

/// OpenBLAS, set up once before its first use (`Parallel.cores` asks for it).
public enum OpenBLAS {
    /// The kernels OpenBLAS runs for this CPU (its choice, or OPENBLAS_CORETYPE's), e.g. "Haswell";
    /// `scalpel bench` reports it.
    public static let coreName: String = {
        // Single-threaded: `Parallel` splits the products across cores itself. OpenBLAS's own worker
        // threads would spin while the main thread runs the other kernels, which on 2 cores costs more
        // than it gains.
        openblas_set_num_threads(1)
        return String(cString: openblas_get_corename())
    }()
}
