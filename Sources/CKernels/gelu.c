// gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) sixteen lanes at a time: the same
// operations in the same order as the eight-lane Swift of `Kernels.geluNew` and `Kernels.exp8`, so
// every value gets the same bits (tested), only twice as many lanes per instruction. Products and
// sums stay separate roundings: no fused multiply-add.
//
//     tanh(u) = 1 − 2 / (e^{2u} + 1)
//     e^y: y clamped to [−87, 88], y = n·ln2 + r, e^r by its degree-6 Taylor polynomial, 2^n in the
//          exponent bits (n rounded by adding 1.5·2^23)
//
// Compiled for AVX-512F whatever the build flags say; the caller checks the CPU first.

#pragma STDC FP_CONTRACT OFF
#include <immintrin.h>
#include "CKernels.h"

__attribute__((target("avx512f")))
static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-87.0f), x);  // max(c, NaN) is NaN, as the Swift keeps it
    x = _mm512_min_ps(_mm512_set1_ps(88.0f), x);
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    const __m512 shifted = _mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), magic);
    const __m512 n = _mm512_sub_ps(shifted, magic);
    const __m512 r = _mm512_sub_ps(_mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.69314575f))),
                                   _mm512_mul_ps(n, _mm512_set1_ps(1.4286068e-6f)));
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 120));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 24));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f / 6));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(0.5f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(
        _mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x4B400000)), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

__attribute__((target("avx512f")))
void scalpel_gelu_new(float *x, long n, float c) {
    for (long i = 0; i < n; i += 16) {
        const __mmask16 lanes = n - i >= 16 ? 0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        const __m512 v = _mm512_maskz_loadu_ps(lanes, x + i);
        // u = c · (v + 0.044715 · v · v · v), left to right as in the Swift
        const __m512 cube = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.044715f), v), v), v);
        const __m512 u = _mm512_mul_ps(_mm512_set1_ps(c), _mm512_add_ps(v, cube));
        const __m512 one = _mm512_set1_ps(1.0f);
        const __m512 e = exp16(_mm512_mul_ps(_mm512_set1_ps(2.0f), u));
        const __m512 tanh = _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, one)));
        const __m512 y = _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), v), _mm512_add_ps(one, tanh));
        _mm512_mask_storeu_ps(x + i, lanes, y);
    }
}
