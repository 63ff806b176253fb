/* Branch-free scalar math shared by the compiled kernels (activation.pyx,
   loss.pyx): written so that loops calling it vectorize.

   The clamp bounds of exp are passed in at run time on purpose: bounds the
   compiler cannot see keep it from splitting loops into constant special
   cases, which would defeat vectorization. */
#ifndef MINIGRAD_VECMATH_H
#define MINIGRAD_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* On x86-64 glibc with GCC 11+, hot loops are compiled for AVX-512, AVX2
   and baseline; the loader picks the best the CPU has. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11 \
    && defined(__x86_64__) && defined(__GLIBC__)
#define MG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MG_CLONES
#endif
#if defined(__GNUC__)
#define MG_INLINE static inline __attribute__((always_inline))
#else
#define MG_INLINE static inline
#endif

/* 2^k for -1022 <= k <= 1023, built from its bits */
MG_INLINE double mg_pow2(int64_t k) {
    uint64_t bits = (uint64_t)(k + 1023) << 52;
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

/* x (clamped to [lo, hi]) = k ln2 + r, |r| <= ln2/2. Returns q = expm1(r)
   (Taylor to r^13, error < 2e-17) and 2^k as two factors s1 * s2 (k spans
   more than one exponent range), so exp(x) = s1 * (s2 + s2 q) and
   expm1(x) = s q + (s - 1). */
MG_INLINE double mg_exp_reduce(double x, double lo, double hi, double *s1, double *s2) {
    const double shift = 0x1.8p52;  /* x/ln2 + shift keeps round(x/ln2) in its low bits */
    const double ln2_hi = 0x1.62e42fee00000p-1, ln2_lo = 0x1.a39ef35793c76p-33;
    x = x > hi ? hi : x;  /* NaN passes */
    x = x < lo ? lo : x;
    double kd = x * 1.4426950408889634 + shift;
    int64_t kbits, sbits;
    memcpy(&kbits, &kd, sizeof kd);
    memcpy(&sbits, &shift, sizeof shift);
    kd -= shift;
    double r = (x - kd * ln2_hi) - kd * ln2_lo;
    double q = 1.0 / 6227020800.0;
    q = q * r + 1.0 / 479001600.0;
    q = q * r + 1.0 / 39916800.0;
    q = q * r + 1.0 / 3628800.0;
    q = q * r + 1.0 / 362880.0;
    q = q * r + 1.0 / 40320.0;
    q = q * r + 1.0 / 5040.0;
    q = q * r + 1.0 / 720.0;
    q = q * r + 1.0 / 120.0;
    q = q * r + 1.0 / 24.0;
    q = q * r + 1.0 / 6.0;
    q = q * r + 0.5;
    q = q * r * r + r;
    int64_t k = kbits - sbits, k1 = k >> 1;
    *s1 = mg_pow2(k1);
    *s2 = mg_pow2(k - k1);
    return q;
}

/* exp(x); lo/hi: arguments below give 0, above give inf (-746, 710 for double) */
MG_INLINE double mg_exp_clamped(double x, double lo, double hi) {
    double s1, s2, q = mg_exp_reduce(x, lo, hi, &s1, &s2);
    return s1 * (s2 * q + s2);
}

#endif
