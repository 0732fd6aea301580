#include <cblas.h>

// OpenBLAS's own buffer pool (exported by libopenblas, not declared in cblas.h). Scalpel takes and
// returns one buffer per core at start, while there is room, because under a limit on address space
// OpenBLAS retries a failed allocation forever.
void *blas_memory_alloc(int procpos);
void blas_memory_free(void *buffer);

// Stops OpenBLAS's worker threads (exported by libopenblas, not declared in cblas.h). Scalpel runs
// OpenBLAS single-threaded, and the workers it starts at load spin in sched_yield meanwhile.
void blas_thread_shutdown_(void);
