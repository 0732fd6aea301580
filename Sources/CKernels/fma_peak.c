// The most single-precision multiply-adds one core can do per second, for `scalpel bench`: the
// bound on a forward pass, whose products cost 2 FLOP per weight per row. Twelve independent
// chains x ← x·m + c keep both FMA units busy through their 4-cycle latency; the chains' sum is
// returned so that the compiler keeps the work.

#include <immintrin.h>
#include "CKernels.h"

#define CHAINS 12

__attribute__((target("avx2,fma")))
float scalpel_fma_chains_avx2(long rounds) {
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 x[CHAINS];
    for (int i = 0; i < CHAINS; i++) x[i] = _mm256_set1_ps((float)i);
    for (long r = 0; r < rounds; r++) {
#pragma unroll
        for (int i = 0; i < CHAINS; i++) x[i] = _mm256_fmadd_ps(x[i], m, c);
    }
    __m256 sum = x[0];
    for (int i = 1; i < CHAINS; i++) sum = _mm256_add_ps(sum, x[i]);
    return _mm256_cvtss_f32(sum);
}

__attribute__((target("avx512f")))
float scalpel_fma_chains_avx512(long rounds) {
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    __m512 x[CHAINS];
    for (int i = 0; i < CHAINS; i++) x[i] = _mm512_set1_ps((float)i);
    for (long r = 0; r < rounds; r++) {
#pragma unroll
        for (int i = 0; i < CHAINS; i++) x[i] = _mm512_fmadd_ps(x[i], m, c);
    }
    __m512 sum = x[0];
    for (int i = 1; i < CHAINS; i++) sum = _mm512_add_ps(sum, x[i]);
    return _mm512_reduce_add_ps(sum);
}

int scalpel_fma_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
