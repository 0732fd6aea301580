// The sums of LayerNorm's statistics, Σ x[i] and Σ (x[i] − mean)², in a fixed order: x[i] goes to
// running sum i mod 16, the sixteen are added in halves (8 + 8, 4 + 4, 2 + 2, 1 + 1), and the last
// n mod 16 terms follow in order. Sixteen independent sums vectorise and do not wait on each other;
// the fixed order gives a row the same bits alone or in any batch. In C so that debug builds run it
// optimised too (Package.swift). Products and sums stay separate roundings: no fused multiply-add.

#pragma STDC FP_CONTRACT OFF
#include "CKernels.h"

static float halves(float s[16]) {
    for (int width = 8; width >= 1; width /= 2)
        for (int j = 0; j < width; j++) s[j] += s[j + width];
    return s[0];
}

float scalpel_sum(const float *x, long n) {
    float s[16] = {0};
    const long whole = n / 16 * 16;
    for (long i = 0; i < whole; i += 16)
        for (int j = 0; j < 16; j++) s[j] += x[i + j];
    float total = halves(s);
    for (long i = whole; i < n; i++) total += x[i];
    return total;
}

float scalpel_sum_of_squares(const float *x, long n, float mean) {
    float s[16] = {0};
    const long whole = n / 16 * 16;
    for (long i = 0; i < whole; i += 16)
        for (int j = 0; j < 16; j++) s[j] += (x[i + j] - mean) * (x[i + j] - mean);
    float total = halves(s);
    for (long i = whole; i < n; i++) total += (x[i] - mean) * (x[i] - mean);
    return total;
}
