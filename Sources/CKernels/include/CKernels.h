#ifndef SCALPEL_CKERNELS_H
#define SCALPEL_CKERNELS_H

/// Whether this CPU (and OS) can run `scalpel_sgemm_few_rows` and `scalpel_sgemm_tiled` (they need AVX-512F).
int scalpel_avx512_available(void);

/// C[r, 0..<n] += A[r, 0..<k] · B[0..<k, 0..<n] for r < m, with m small (one prompt's positions).
/// A is row-major with rows of k floats; B and C are row-major with row strides ldb and ldc.
/// Call only when `scalpel_avx512_available()` says so.
void scalpel_sgemm_few_rows(const float *a, const float *b, float *c,
                            long m, long k, long n, long ldb, long ldc);

/// C[r, 0..<n] += A[r, 0..<k] · B[0..<k, 0..<n] for any m (a batch's positions), 6 × 64 tiles of C
/// in registers. Same layouts as `scalpel_sgemm_few_rows`, and the same bits for every row.
/// Call only when `scalpel_avx512_available()` says so.
void scalpel_sgemm_tiled(const float *a, const float *b, float *c,
                         long m, long k, long n, long ldb, long ldc);

/// gelu_new on x[0..<n] in place, with c = sqrt(2/pi): the bits of `Kernels.geluNew`'s eight-lane
/// Swift, sixteen lanes at a time. Call only when `scalpel_avx512_available()` says so.
void scalpel_gelu_new(float *x, long n, float c);

/// Whether this CPU (and OS) can run `scalpel_gelu_new_avx2`.
int scalpel_avx2_available(void);

/// `scalpel_gelu_new` with AVX2: the same bits. Call only when `scalpel_avx2_available()` says so.
void scalpel_gelu_new_avx2(float *x, long n, float c);

/// Σ x[i] for i < n, in LayerNorm's fixed order (sixteen running sums added in halves, then the rest).
float scalpel_sum(const float *x, long n);

/// Σ (x[i] − mean)² for i < n, in the same order as `scalpel_sum`.
float scalpel_sum_of_squares(const float *x, long n, float mean);

/// How many of the n floats whose bits are given are NaN or ±Inf (exponent bits all ones).
long scalpel_count_non_finite(const unsigned *bits, long n);

/// `rounds` × 12 multiply-adds of 8 lanes (AVX2 with FMA) or 16 lanes (AVX-512F) on this core, for
/// the CPU's peak (`fma_peak.c`); the result only keeps the work from being dropped. Call only when
/// the CPU has the instructions (`scalpel_fma_available`, `scalpel_avx512_available`).
float scalpel_fma_chains_avx2(long rounds);
float scalpel_fma_chains_avx512(long rounds);

/// Whether this CPU (and OS) can run `scalpel_fma_chains_avx2`: AVX2 and FMA.
int scalpel_fma_available(void);

#endif
