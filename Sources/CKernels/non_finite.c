// The number of NaN and ±Inf floats among n, given as their bits: those whose exponent (bits 23–30)
// is all ones. A plain loop the compiler vectorises; in C so that debug builds run it optimised too
// (Package.swift), as every weight of a checkpoint passes through it at load.

#include "CKernels.h"

long scalpel_count_non_finite(const unsigned *bits, long n) {
    long count = 0;
    for (long i = 0; i < n; i++) count += ((bits[i] << 1) >> 24) == 255;
    return count;
}
