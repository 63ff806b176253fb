/* Branch-free scalar math shared by the compiled kernels (activation.pyx,
   loss.pyx), in double and in float: written so that loops calling it
   vectorize.

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

/* float32 versions, for kernels that compute float32 arrays in float (twice
   the lanes of double): 2^k for -126 <= k <= 127 */
MG_INLINE float mg_pow2_f32(int32_t k) {
    uint32_t bits = (uint32_t)(k + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* x + x_lo = k ln2 + r in float, for -150 < x < 128 (callers clamp);
   returns q = expm1(r), so exp(x + x_lo) = 2^k (1 + q). x_lo, a low-order
   part (|x_lo| << |x|), joins the reduced argument, so an argument that is
   the exact sum of two floats keeps its accuracy. ln2_hi has 15 significant
   bits: k ln2_hi is exact for |k| < 512. q = r + r^2 P(r), P of degree 4
   fitted to relative minimax on |r| <= ln2/2 (error < 4e-9 relative to
   exp(r)), so exp comes within about 1.5 ulp of float. */
MG_INLINE float mg_exp_reduce_f32(float x, float x_lo, int32_t *k) {
    const float shift = 0x1.8p23f;  /* keeps round(x/ln2) in the low bits */
    const float ln2_hi = 0x1.62e4p-1f, ln2_lo = 0x1.7f7d1cp-20f;
    float kf = (x + x_lo) * 1.44269504f + shift;
    int32_t kbits, sbits;
    memcpy(&kbits, &kf, sizeof kf);
    memcpy(&sbits, &shift, sizeof shift);
    kf -= shift;
    float r = ((x - kf * ln2_hi) - kf * ln2_lo) + x_lo;
    float q = 0x1.6a244ap-10f;  /* near 1/720: minimax, not Taylor */
    q = q * r + 0x1.1239d4p-7f;
    q = q * r + 0x1.5558f2p-5f;
    q = q * r + 0x1.555492p-3f;
    q = q * r + 0x1.fffffcp-2f;
    *k = kbits - sbits;
    return q * r * r + r;
}

/* x clamped to [lo, hi], NaN passing */
MG_INLINE float mg_clamp_f32(float x, float lo, float hi) {
    x = x > hi ? hi : x;
    return x < lo ? lo : x;
}

/* exp(x + x_lo) for x in [lo, hi] = [-104, 89]: 0 below (exp(-104) <
   2^-150), inf above. 2^k spans more than the normal exponents, so it comes
   as two factors, the second applied last: a subnormal result rounds once. */
MG_INLINE float mg_exp_split_f32(float x, float x_lo, float lo, float hi) {
    int32_t k;
    float q = mg_exp_reduce_f32(mg_clamp_f32(x, lo, hi), x_lo, &k);
    int32_t k1 = k >> 1;
    float s2 = mg_pow2_f32(k - k1);
    return (s2 * q + s2) * mg_pow2_f32(k1);
}

/* exp(x) in float; lo/hi as above */
MG_INLINE float mg_exp_clamped_f32(float x, float lo, float hi) {
    return mg_exp_split_f32(x, 0.0f, lo, hi);
}

#endif
