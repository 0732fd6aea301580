// A matrix product for a few rows of activations against a large weight matrix, as in one prompt's
// forward pass (m ≈ 17, k × n = 768 × 3072).
//
// Why not sgemm: for so few rows OpenBLAS spends a third of its time packing B (the weights) into
// its own layout on every call. Here B is read once, in place, a panel of PANEL rows at a time: the
// panel's 32-column strip sits in registers while every row of A passes over it, so each weight is
// loaded once per product and used m times.
//
//     C[r, j..j+32] += Σ_{kk < PANEL} A[r, k0+kk] · B[k0+kk, j..j+32]
//
// Compiled for AVX-512F whatever the build flags say; the caller checks the CPU first.

#include "CKernels.h"

typedef float v16 __attribute__((vector_size(64), aligned(4)));  // 16 floats, loaded unaligned

enum { PANEL = 12 };  // rows of B in registers: 12 × 2 vectors = 24 of the 32 zmm registers

int scalpel_avx512_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

__attribute__((target("avx512f")))
void scalpel_sgemm_few_rows(const float *a, const float *b, float *c,
                            long m, long k, long n, long ldb, long ldc) {
    const long strips = n / 32 * 32;  // columns covered by whole 32-wide strips
    long k0 = 0;
    for (; k0 + PANEL <= k; k0 += PANEL) {
        for (long j = 0; j < strips; j += 32) {
            v16 w[PANEL][2];
            for (int kk = 0; kk < PANEL; kk++) {
                w[kk][0] = *(const v16 *)(b + (k0 + kk) * ldb + j);
                w[kk][1] = *(const v16 *)(b + (k0 + kk) * ldb + j + 16);
            }
            if (k0 + 2 * PANEL <= k) {  // ask for the next panel's strip while this one is in use
                for (int kk = 0; kk < PANEL; kk++) {
                    __builtin_prefetch(b + (k0 + PANEL + kk) * ldb + j);
                    __builtin_prefetch(b + (k0 + PANEL + kk) * ldb + j + 16);
                }
            }
            for (long r = 0; r < m; r++) {
                const float *x = a + r * k + k0;
                v16 *y = (v16 *)(c + r * ldc + j);
                v16 lo = y[0], hi = y[1];
                for (int kk = 0; kk < PANEL; kk++) {
                    lo += x[kk] * w[kk][0];
                    hi += x[kk] * w[kk][1];
                }
                y[0] = lo;
                y[1] = hi;
            }
        }
    }
    for (; k0 < k; k0++) {  // rows of B left over after the last whole panel
        for (long j = 0; j < strips; j += 32) {
            v16 lo = *(const v16 *)(b + k0 * ldb + j), hi = *(const v16 *)(b + k0 * ldb + j + 16);
            for (long r = 0; r < m; r++) {
                v16 *y = (v16 *)(c + r * ldc + j);
                y[0] += a[r * k + k0] * lo;
                y[1] += a[r * k + k0] * hi;
            }
        }
    }
    for (long r = 0; r < m; r++) {  // columns left over after the last whole strip
        for (long kk = 0; kk < k; kk++) {
            for (long j = strips; j < n; j++) c[r * ldc + j] += a[r * k + kk] * b[kk * ldb + j];
        }
    }
}
