// gelu_new(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) sixteen lanes at a time: the same
// operations in the same order as the eight-lane Swift of `Kernels.geluNew` and `Kernels.exp8`, so
// every value gets the same bits (tested), with more lanes per instruction than the Swift gets
// (it is compiled for baseline x86-64). Products and sums stay separate roundings: no fused
// multiply-add.
//
//     tanh(u) = 1 − 2 / (e^{2u} + 1)
//     e^y: y clamped to [−87, 88], y = n·ln2 + r, e^r by its degree-6 Taylor polynomial, 2^n in the
//          exponent bits (n rounded by adding 1.5·2^23)
//
// One source for both instruction sets: with AVX-512 a v16 is one zmm register, with AVX2 two ymm.
// Each entry point is compiled for its instruction set whatever the build flags say; the caller
// checks the CPU first.

#pragma STDC FP_CONTRACT OFF
#pragma clang diagnostic ignored "-Wpsabi"  // v16 arguments are only those of inlined helpers
#include "CKernels.h"

typedef float v16 __attribute__((vector_size(64), aligned(4)));     // 16 floats, loaded unaligned
typedef int i16 __attribute__((vector_size(64), aligned(4)));       // a compare's 16 lanes: −1 or 0
typedef unsigned u16 __attribute__((vector_size(64), aligned(4)));  // 16 lanes of bits (wrapping, as Swift's &-)

// x where `where` is −1, else c: the Swift's `replace(with:where:)`, so NaN (which compares false) stays.
static inline __attribute__((always_inline)) v16 replaced(v16 x, i16 where, float c) {
    return (v16)(((i16)x & ~where) | ((i16)((v16){} + c) & where));  // {} + c: c in every lane
}

static inline __attribute__((always_inline)) v16 exp16(v16 x) {
    x = replaced(x, x < -87.0f, -87.0f);
    x = replaced(x, x > 88.0f, 88.0f);
    const v16 shifted = x * 1.44269504f + 12582912.0f;
    const v16 n = shifted - 12582912.0f;
    const v16 r = x - n * 0.69314575f - n * 1.4286068e-6f;
    v16 p = (v16){} + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const u16 bits = ((u16)shifted - 0x4B400000u + 127u) << 23;
    return p * (v16)bits;
}

static inline __attribute__((always_inline)) v16 gelu16(v16 v, float c) {
    const v16 u = c * (v + 0.044715f * v * v * v);  // left to right, as in the Swift
    const v16 tanh = 1.0f - 2.0f / (exp16(2.0f * u) + 1.0f);
    return 0.5f * v * (1.0f + tanh);
}

// gelu_new on x[0..<n]; the last n mod 16 values go through a padded copy (lanes are independent).
static inline __attribute__((always_inline)) void gelu(float *x, long n, float c) {
    long i = 0;
    for (; i + 16 <= n; i += 16) *(v16 *)(x + i) = gelu16(*(const v16 *)(x + i), c);
    if (i == n) return;
    float rest[16] = {0};
    for (long j = i; j < n; j++) rest[j - i] = x[j];
    *(v16 *)rest = gelu16(*(const v16 *)rest, c);
    for (long j = i; j < n; j++) x[j] = rest[j - i];
}

int scalpel_avx2_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

__attribute__((target("avx512f")))
void scalpel_gelu_new(float *x, long n, float c) { gelu(x, n, c); }

__attribute__((target("avx2")))
void scalpel_gelu_new_avx2(float *x, long n, float c) { gelu(x, n, c); }
