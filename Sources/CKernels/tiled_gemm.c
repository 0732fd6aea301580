// A matrix product for many rows of activations against a weight matrix read in place, as in a
// batch's forward pass (m ≫ 32, k × n = 768 × 3072).
//
// Why not sgemm: these machines run OpenBLAS's AVX2 kernels (OPENBLAS_CORETYPE=Haswell, because
// older OpenBLAS AVX-512 kernels are wrong on some of their CPUs), which reach half the FMA
// throughput of AVX-512 here. This kernel keeps a 6-row × 64-column tile of C in 24 zmm registers
// for a block of K_BLOCK rows of B; each step of k loads 4 vectors of B, broadcasts 6 values of A
// and does 24 fused multiply-adds:
//
//     C[r, j..j+64] = fma(A[r, kk], B[kk, j..j+64], C[r, j..j+64])   for kk = 0, 1, …, k − 1 in order
//
// Blocks of K_BLOCK rows of B (96 KB per strip) and M_BLOCK rows of A stay in cache while they are
// reused. The tile's shape and the block sizes are the fastest of those tried on the circuit sweep
// (8 × 48 with blocks of 256 was 4–5% slower). The sum runs over k in order from C's start, as in
// the few-rows kernel, so both kernels give the same bits for a row whatever the number of rows.
//
// Compiled for AVX-512F whatever the build flags say; the caller checks the CPU first.

#include <immintrin.h>
#include "CKernels.h"

enum { TILE_ROWS = 6, STRIP = 64, K_BLOCK = 384, M_BLOCK = 256 };

// C[r, 0..<width] += Σ_{kk < kc} A[r, kk] · B[kk, 0..<width] for r < R, width ≤ 16·V (the last of
// the V vectors masked to what is left). R and V are constants once inlined: the tile stays in registers.
static inline __attribute__((always_inline, target("avx512f")))
void tile(const int R, const int V, __mmask16 last, const float *a, long lda, const float *b, long ldb,
          float *c, long ldc, long kc) {
    __m512 acc[TILE_ROWS][4];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) acc[r][v] = _mm512_maskz_loadu_ps(v == V - 1 ? last : 0xFFFF, c + r * ldc + 16 * v);
    for (long kk = 0; kk < kc; kk++) {
        __m512 w[4];
        for (int v = 0; v < V; v++) w[v] = _mm512_maskz_loadu_ps(v == V - 1 ? last : 0xFFFF, b + kk * ldb + 16 * v);
        for (int r = 0; r < R; r++) {
            const __m512 x = _mm512_set1_ps(a[r * lda + kk]);
            for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(x, w[v], acc[r][v]);
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < V; v++) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, v == V - 1 ? last : 0xFFFF, acc[r][v]);
}

#define TILE_CASE(R, V) case (R) * 8 + (V): tile(R, V, last, a, lda, b, ldb, c, ldc, kc); break;
#define TILE_ROW(R) TILE_CASE(R, 1) TILE_CASE(R, 2) TILE_CASE(R, 3) TILE_CASE(R, 4)

// One tile of `rows` ≤ 6 rows and `width` ≤ 64 columns, through the specialised copy for its size.
__attribute__((target("avx512f")))
static void any_tile(int rows, int width, const float *a, long lda, const float *b, long ldb, float *c, long ldc, long kc) {
    const int V = (width + 15) / 16, rest = width - 16 * (V - 1);
    const __mmask16 last = (__mmask16)(rest == 16 ? 0xFFFF : (1u << rest) - 1);
    switch (rows * 8 + V) {
        TILE_ROW(1) TILE_ROW(2) TILE_ROW(3) TILE_ROW(4) TILE_ROW(5) TILE_ROW(6)
    }
}

__attribute__((target("avx512f")))
void scalpel_sgemm_tiled(const float *a, const float *b, float *c, long m, long k, long n, long ldb, long ldc) {
    for (long k0 = 0; k0 < k; k0 += K_BLOCK) {
        const long kc = k - k0 < K_BLOCK ? k - k0 : K_BLOCK;
        for (long m0 = 0; m0 < m; m0 += M_BLOCK) {
            const long mc = m - m0 < M_BLOCK ? m - m0 : M_BLOCK;
            for (long j = 0; j < n; j += STRIP) {
                const int width = n - j < STRIP ? (int)(n - j) : STRIP;
                for (long r = m0; r < m0 + mc; r += TILE_ROWS) {
                    const int rows = m0 + mc - r < TILE_ROWS ? (int)(m0 + mc - r) : TILE_ROWS;
                    any_tile(rows, width, a + r * k + k0, k, b + k0 * ldb + j, ldb, c + r * ldc + j, ldc, kc);
                }
            }
        }
    }
}
