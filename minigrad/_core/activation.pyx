"""Compiled elementwise activations: one pass over memory forward, one backward.

Same names, arguments and results as minigrad.backend.reference.activation
(without `xp`); the definitions are documented there.

The per-element math is in the C section below, written without branches or
library calls (exp, expm1, log1p and erfc are built from polynomials) so that
the compiler vectorizes every kind. On x86-64 with GCC it is compiled for
three instruction sets (AVX-512, AVX2, baseline) and the best one the CPU has
is picked when the module loads. The kinds built on exp compute in double
(float32 arrays pass through small double buffers) and round once; the light
kinds (relu, leaky_relu, hardtanh, sigmoid and tanh backward) work on the
array's own type. Float32 GELU (forward and backward) and tanh (forward) are
computed in float itself, twice the vector lanes of double, within these
bounds (tests/test_kernels_activation.py checks them on a dense sweep):

  gelu forward   8 ulp of float32 (about 5.5 with FMA, 7.2 without)
  gelu backward  4 ulp of |dy| (Phi(x) + |x| phi(x)): its two terms cancel
                 near x = -0.75, where the bound is absolute, not relative
  tanh forward   3 ulp (about 2.5)

with the float64 kernels' values at NaN, +-inf, signed zeros and in the
underflowing tails. Float64 arrays keep the double kernels.
Large arrays are split into chunks that OpenMP threads take in turn.
"""
import numpy
cimport numpy as cnp

from cython.parallel cimport prange

from minigrad._core.arrays cimport data_of as _data, empty_like_c

from minigrad.backend.reference import activation as _ref

cnp.import_array()

cdef extern from *:
    """
    #include "vecmath.h"

    enum { MG_RELU, MG_LEAKY_RELU, MG_ELU, MG_SELU, MG_GELU, MG_GELU_TANH, MG_SILU,
           MG_SIGMOID, MG_TANH, MG_SOFTPLUS, MG_HARDTANH };

    #define MG_ERFCX_TERMS 26

    /* Constants, filled once from the reference module when this module
       loads. Each kernel copies them into a local first: values the compiler
       cannot see stop it from splitting loops into constant special cases
       (which defeats vectorization), and a local cannot alias the output. */
    typedef struct {
        double exp_lo, exp_hi;     /* exp(x) is 0 below, inf above */
        double selu_alpha, selu_scale;
        double gelu_tanh_beta, gelu_tanh_kappa, gelu_clip;
        double inv_sqrt_2pi, sqrt1_2, ln2;
        double erfc_max, erfcx_k, erfcx[MG_ERFCX_TERMS];
        float tanh_lo_f32, gauss_max_f32;
    } mg_consts;

    static mg_consts mg_c;

    MG_INLINE double mg_exp_reduce_c(double x, const mg_consts *c, double *s1, double *s2) {
        return mg_exp_reduce(x, c->exp_lo, c->exp_hi, s1, s2);
    }

    MG_INLINE double mg_exp(double x, const mg_consts *c) {
        return mg_exp_clamped(x, c->exp_lo, c->exp_hi);
    }

    /* valid for x < 709 (callers select larger arguments away) */
    MG_INLINE double mg_expm1(double x, const mg_consts *c) {
        double s1, s2, q = mg_exp_reduce_c(x, c, &s1, &s2), s = s1 * s2;
        return s * q + (s - 1.0);
    }

    /* log(1 + e) for 0 <= e <= 1: log1p(w) = 2 atanh(w / (2 + w)), with w
       brought into [sqrt(1/2) - 1, sqrt(2) - 1] by halving 1 + e when large. */
    MG_INLINE double mg_log1p_unit(double e, const mg_consts *c) {
        int big = e > 0.41421356237309503;
        double w = big ? 0.5 * (e - 1.0) : e;
        double z = w / (2.0 + w), z2 = z * z;  /* |z| < 0.172 */
        double p = 1.0 / 21.0;
        p = p * z2 + 1.0 / 19.0;
        p = p * z2 + 1.0 / 17.0;
        p = p * z2 + 1.0 / 15.0;
        p = p * z2 + 1.0 / 13.0;
        p = p * z2 + 1.0 / 11.0;
        p = p * z2 + 1.0 / 9.0;
        p = p * z2 + 1.0 / 7.0;
        p = p * z2 + 1.0 / 5.0;
        p = p * z2 + 1.0 / 3.0;
        p = p * z2 + 1.0;
        return (big ? c->ln2 : 0.0) + 2.0 * z * p;
    }

    MG_INLINE double mg_sigmoid(double x, const mg_consts *c) {
        double e = mg_exp(-fabs(x), c);  /* <= 1: no overflow */
        double r = 1.0 / (1.0 + e);
        return x >= 0.0 ? r : e * r;
    }

    MG_INLINE double mg_tanh(double x, const mg_consts *c) {
        double t = mg_expm1(-2.0 * fabs(x), c);
        double r = -t / (2.0 + t);
        return x < 0.0 ? -r : r;
    }

    /* x with the low 29 bits of its significand cleared: the 24 bits left
       square exactly */
    MG_INLINE double mg_high_bits(double x) {
        uint64_t bits;
        memcpy(&bits, &x, sizeof x);
        bits &= ~(uint64_t)0x1fffffff;
        memcpy(&x, &bits, sizeof x);
        return x;
    }

    /* erfc(z) = exp(-a^2) erfcx(a) for a = |z|, erfcx by Chebyshev series
       in (a - K) / (a + K); same method as the reference. */
    MG_INLINE double mg_erfc(double z, const mg_consts *c) {
        double a = fabs(z);
        a = a > c->erfc_max ? c->erfc_max : a;
        double t = (a - c->erfcx_k) / (a + c->erfcx_k), two_t = 2.0 * t;
        double b1 = 0.0, b2 = 0.0;
        #pragma GCC unroll 32
        for (int k = MG_ERFCX_TERMS - 1; k > 0; k--) {
            double b0 = two_t * b1 - b2 + c->erfcx[k];
            b2 = b1;
            b1 = b0;
        }
        double erfcx = t * b1 - b2 + c->erfcx[0];
        double a_hi = mg_high_bits(a), d = (a_hi - a) * (a_hi + a);
        double tail = mg_exp(-a_hi * a_hi, c) * (1.0 + d * (1.0 + d * (0.5 + d / 6.0))) * erfcx;
        return z >= 0.0 ? tail : 2.0 - tail;
    }

    MG_INLINE double mg_clip(double x, double lo, double hi) {
        double t = x < lo ? lo : x;  /* NaN passes, as min(max(x, lo), hi) */
        return t > hi ? hi : t;
    }

    MG_INLINE double mg_elu(double x, double alpha, const mg_consts *c) {
        return x > 0.0 ? x : alpha * mg_expm1(x, c);
    }

    MG_INLINE double mg_elu_bw(double x, double g, double alpha, const mg_consts *c) {
        return x <= 0.0 ? g * (alpha * mg_exp(x, c)) : g;
    }

    MG_INLINE double mg_gelu_tanh_arg(double xc, const mg_consts *c) {
        return (2.0 * c->gelu_tanh_beta) * (xc + c->gelu_tanh_kappa * (xc * xc * xc));
    }

    MG_INLINE double mg_softplus(double x, double beta, double threshold, const mg_consts *c) {
        double bx = beta * x;
        double smooth = ((bx > 0.0 ? bx : 0.0) + mg_log1p_unit(mg_exp(-fabs(bx), c), c)) / beta;
        return bx > threshold ? x : smooth;
    }

    /* float32 GELU and tanh, computed in float. With a = min(|x|, 15),
       Phi(-a) = exp(-a^2/2) R(a), where R(a) = Phi(-a) exp(a^2/2) is a
       rational function of degree 4/5 in a (relative minimax fit on [0, 15],
       coefficients rounded to float; relative error 2.5e-8 in exact
       arithmetic, about 5 float ulp as evaluated). R(0) = 1/2 exactly.
       a^2 is split as a_hi^2 + e, a_hi keeping 12 significant bits so that
       a_hi^2 is exact, which keeps exp(-a^2/2) accurate in the tail. It is
       returned scaled by 2^50, which keeps it a normal float down to a = 15;
       callers multiply by 2^-50 last, so results that fall into the
       subnormals round once. Beyond a = 15 the tail terms are 0 in float.
       The error bounds are in the module docstring. */
    MG_INLINE float mg_gauss_tail_f32(float x, const mg_consts *c, float *a_out, float *e50) {
        float a = fabsf(x);
        a = a > c->gauss_max_f32 ? c->gauss_max_f32 : a;  /* NaN passes */
        uint32_t bits;
        memcpy(&bits, &a, sizeof a);
        bits &= ~(uint32_t)0xfff;
        float a_hi;
        memcpy(&a_hi, &bits, sizeof a_hi);
        float e = (a - a_hi) * (a + a_hi);  /* a^2 - a_hi^2 */
        int32_t k;
        float q = mg_exp_reduce_f32(-0.5f * (a_hi * a_hi), -0.5f * e, &k);
        float s = mg_pow2_f32(k + 50);
        *e50 = s * q + s;  /* 2^50 exp(-a^2/2) */
        *a_out = a;
        float p = 0x1.1031ecp-8f;
        p = p * a + 0x1.4ee7c2p-5f;
        p = p * a + 0x1.78c61cp-3f;
        p = p * a + 0x1.c1d45ap-2f;
        p = p * a + 0.5f;
        float d = 0x1.552466p-7f;
        d = d * a + 0x1.a3c44p-4f;
        d = d * a + 0x1.e2baaep-2f;
        d = d * a + 0x1.349f78p+0f;
        d = d * a + 0x1.ad2c5ep+0f;
        d = d * a + 1.0f;
        return p / d;
    }

    /* x Phi(x): t = x R exp(-a^2/2) for x < 0, x - t otherwise, with x
       clamped as a is; below -15, x Phi(x) is x * 0 (-0, NaN at -inf) */
    MG_INLINE float mg_gelu_f32(float x, const mg_consts *c) {
        float a, e, r = mg_gauss_tail_f32(x, c, &a, &e);
        float t = ((copysignf(a, x) * r) * e) * 0x1p-50f;
        float neg = x < -c->gauss_max_f32 ? x * 0.0f : t;
        return x <= 0.0f ? neg : x - t;  /* t keeps the sign of a zero x */
    }

    /* g (Phi(x) + x phi(x)); with D = exp(-a^2/2) (a/sqrt(2 pi) - R), the
       factor is -D for x < 0 and 1 + D otherwise */
    MG_INLINE float mg_gelu_bw_f32(float x, float g, const mg_consts *c) {
        float a, e, r = mg_gauss_tail_f32(x, c, &a, &e);
        float f = a * 0x1.988454p-2f - r;  /* 1/sqrt(2 pi) rounded to float */
        float t = ((g * f) * e) * 0x1p-50f;
        return x < 0.0f ? -t : g + t;
    }

    /* tanh(|x|) = -t / (2 + t), t = expm1(-2|x|), with x's sign; 1 beyond |x| = 10 */
    MG_INLINE float mg_tanh_f32(float x, const mg_consts *c) {
        float m = -2.0f * fabsf(x);
        m = m < c->tanh_lo_f32 ? c->tanh_lo_f32 : m;  /* NaN passes */
        int32_t k;
        float q = mg_exp_reduce_f32(m, 0.0f, &k);
        float s = mg_pow2_f32(k), t = s * q + (s - 1.0f);
        return copysignf(-t / (2.0f + t), x);
    }

    /* Loop bodies: v, w, g are x[i], y[i], dy[i] in double (in T for _T) */
    #define MG_MAP(EXPR) \\
        for (Py_ssize_t i = 0; i < n; i++) { const double v = x[i]; y[i] = (EXPR); } \\
        return 1
    #define MG_MAP_BW(EXPR) \\
        for (Py_ssize_t i = 0; i < n; i++) { \\
            const double v = x[i], w = y[i], g = dy[i]; (void)v; (void)w; dx[i] = (EXPR); } \\
        return 1
    #define MG_MAP_T(T, EXPR) \\
        for (Py_ssize_t i = 0; i < n; i++) { const T v = x[i]; y[i] = (EXPR); } \\
        return 1
    #define MG_MAP_BW_T(T, EXPR) \\
        for (Py_ssize_t i = 0; i < n; i++) { const T v = x[i], g = dy[i]; dx[i] = (EXPR); } \\
        return 1
    #define MG_MAP_GRAD(EXPR) \\
        for (Py_ssize_t i = 0; i < n; i++) { const double v = x[i], g = dy[i]; dx[i] = (EXPR); } \\
        return 1

    /* Kinds with a few arithmetic operations per element run directly on the
       array's type; they return 0 for the other kinds. relu, leaky_relu and
       hardtanh work in T (a and b come rounded to T, so the one product of
       leaky_relu rounds as it would in double then T); leaky_relu multiplies
       by a selected factor because GCC does not vectorize a conditional
       product. sigmoid and tanh backward round once from double. */
    #define MG_DEFINE_LIGHT(SUFFIX, T) \\
    MG_CLONES static int mg_light_forward_##SUFFIX(int kind, const T *restrict x, \\
            T *restrict y, Py_ssize_t n, double a, double b) { \\
        const T a_t = (T)a, b_t = (T)b; \\
        switch (kind) { \\
        case MG_RELU:       MG_MAP_T(T, v <= 0 ? (T)0 : v); \\
        case MG_LEAKY_RELU: MG_MAP_T(T, v * (v > 0 ? (T)1 : a_t)); \\
        case MG_HARDTANH:   MG_MAP_T(T, mg_clip_##SUFFIX(v, a_t, b_t)); \\
        } \\
        return 0; \\
    } \\
    MG_CLONES static int mg_light_backward_##SUFFIX(int kind, const T *restrict x, \\
            const T *restrict y, const T *restrict dy, T *restrict dx, Py_ssize_t n, \\
            double a, double b) { \\
        const T a_t = (T)a, b_t = (T)b; \\
        switch (kind) { \\
        case MG_RELU:       MG_MAP_BW_T(T, v > 0 ? g : (T)0); \\
        case MG_LEAKY_RELU: MG_MAP_BW_T(T, g * (v > 0 ? (T)1 : a_t)); \\
        case MG_HARDTANH:   MG_MAP_BW_T(T, v > a_t && v < b_t ? g : (T)0); \\
        case MG_SIGMOID:    MG_MAP_BW(g * (w * (1.0 - w))); \\
        case MG_TANH:       MG_MAP_BW(g * (1.0 - w * w)); \\
        } \\
        return 0; \\
    }

    MG_INLINE float mg_clip_f32(float x, float lo, float hi) {
        float t = x < lo ? lo : x;
        return t > hi ? hi : t;
    }
    #define mg_clip_f64 mg_clip

    MG_DEFINE_LIGHT(f64, double)
    MG_DEFINE_LIGHT(f32, float)

    /* The kinds built on exp, in double */
    MG_CLONES static int mg_heavy_forward(int kind, const double *restrict x,
                                          double *restrict y, Py_ssize_t n,
                                          double a, double b) {
        const mg_consts cc = mg_c, *c = &cc;
        switch (kind) {
        case MG_ELU:        MG_MAP(mg_elu(v, a, c));
        case MG_SELU:       MG_MAP(c->selu_scale * mg_elu(v, c->selu_alpha, c));
        case MG_GELU:       MG_MAP(v * (0.5 * mg_erfc(-c->sqrt1_2 * v, c)));
        case MG_GELU_TANH:  MG_MAP(v * mg_sigmoid(mg_gelu_tanh_arg(
                                   mg_clip(v, -c->gelu_clip, c->gelu_clip), c), c));
        case MG_SILU:       MG_MAP(v * mg_sigmoid(v, c));
        case MG_SIGMOID:    MG_MAP(mg_sigmoid(v, c));
        case MG_TANH:       MG_MAP(mg_tanh(v, c));
        case MG_SOFTPLUS:   MG_MAP(mg_softplus(v, a, b, c));
        }
        return 0;
    }

    MG_INLINE double mg_gelu_bw(double x, double g, const mg_consts *c) {
        double xc = mg_clip(x, -c->gelu_clip, c->gelu_clip);
        return g * (0.5 * mg_erfc(-c->sqrt1_2 * x, c)
                    + xc * (c->inv_sqrt_2pi * mg_exp(-0.5 * xc * xc, c)));
    }

    MG_INLINE double mg_gelu_tanh_bw(double x, double g, const mg_consts *c) {
        double xc = mg_clip(x, -c->gelu_clip, c->gelu_clip);
        double s = mg_sigmoid(mg_gelu_tanh_arg(xc, c), c);
        double du = (2.0 * c->gelu_tanh_beta) * (1.0 + (3.0 * c->gelu_tanh_kappa) * (xc * xc));
        return g * (s + xc * (s * (1.0 - s)) * du);
    }

    MG_INLINE double mg_silu_bw(double x, double g, const mg_consts *c) {
        double s = mg_sigmoid(x, c);
        return g * (s * (1.0 + x * (1.0 - s)));
    }

    MG_INLINE double mg_softplus_bw(double x, double g, double beta, double threshold,
                                    const mg_consts *c) {
        double bx = beta * x;
        return bx > threshold ? g : g * mg_sigmoid(bx, c);
    }

    MG_CLONES static int mg_heavy_backward(int kind, const double *restrict x,
                                           const double *restrict dy,
                                           double *restrict dx, Py_ssize_t n,
                                           double a, double b) {
        const mg_consts cc = mg_c, *c = &cc;
        switch (kind) {
        case MG_ELU:        MG_MAP_GRAD(mg_elu_bw(v, g, a, c));
        case MG_SELU:       MG_MAP_GRAD(c->selu_scale * mg_elu_bw(v, g, c->selu_alpha, c));
        case MG_GELU:       MG_MAP_GRAD(mg_gelu_bw(v, g, c));
        case MG_GELU_TANH:  MG_MAP_GRAD(mg_gelu_tanh_bw(v, g, c));
        case MG_SILU:       MG_MAP_GRAD(mg_silu_bw(v, g, c));
        case MG_SOFTPLUS:   MG_MAP_GRAD(mg_softplus_bw(v, g, a, b, c));
        }
        return 0;
    }

    /* The kinds computed in float on float32 arrays; 0 for the others */
    MG_CLONES static int mg_single_forward(int kind, const float *restrict x,
                                           float *restrict y, Py_ssize_t n) {
        const mg_consts cc = mg_c, *c = &cc;
        switch (kind) {
        case MG_GELU:       MG_MAP_T(float, mg_gelu_f32(v, c));
        case MG_TANH:       MG_MAP_T(float, mg_tanh_f32(v, c));
        }
        return 0;
    }

    MG_CLONES static int mg_single_backward(int kind, const float *restrict x,
                                            const float *restrict dy, float *restrict dx,
                                            Py_ssize_t n) {
        const mg_consts cc = mg_c, *c = &cc;
        switch (kind) {
        case MG_GELU:       MG_MAP_BW_T(float, mg_gelu_bw_f32(v, g, c));
        }
        return 0;
    }

    static void mg_act_forward_f64(int kind, const double *x, double *y, Py_ssize_t n,
                                   double a, double b) {
        if (!mg_light_forward_f64(kind, x, y, n, a, b))
            mg_heavy_forward(kind, x, y, n, a, b);
    }

    static void mg_act_backward_f64(int kind, const double *x, const double *y,
                                    const double *dy, double *dx, Py_ssize_t n,
                                    double a, double b) {
        if (!mg_light_backward_f64(kind, x, y, dy, dx, n, a, b))
            mg_heavy_backward(kind, x, dy, dx, n, a, b);
    }

    /* float32 for the heavy kinds: blocks converted into double buffers that
       stay in L1 cache */
    #define MG_BLOCK 512

    MG_CLONES static void mg_widen(const float *restrict src, double *restrict dst, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) dst[i] = src[i];
    }

    MG_CLONES static void mg_narrow(const double *restrict src, float *restrict dst, Py_ssize_t n) {
        for (Py_ssize_t i = 0; i < n; i++) dst[i] = (float)src[i];
    }

    static void mg_act_forward_f32(int kind, const float *x, float *y, Py_ssize_t n,
                                   double a, double b) {
        double xb[MG_BLOCK], yb[MG_BLOCK];
        if (mg_light_forward_f32(kind, x, y, n, a, b) || mg_single_forward(kind, x, y, n))
            return;
        for (Py_ssize_t start = 0; start < n; start += MG_BLOCK) {
            Py_ssize_t m = n - start < MG_BLOCK ? n - start : MG_BLOCK;
            mg_widen(x + start, xb, m);
            mg_heavy_forward(kind, xb, yb, m, a, b);
            mg_narrow(yb, y + start, m);
        }
    }

    static void mg_act_backward_f32(int kind, const float *x, const float *y, const float *dy,
                                    float *dx, Py_ssize_t n, double a, double b) {
        double xb[MG_BLOCK], gb[MG_BLOCK], db[MG_BLOCK];
        if (mg_light_backward_f32(kind, x, y, dy, dx, n, a, b)
                || mg_single_backward(kind, x, dy, dx, n))
            return;
        for (Py_ssize_t start = 0; start < n; start += MG_BLOCK) {  /* heavy kinds need no y */
            Py_ssize_t m = n - start < MG_BLOCK ? n - start : MG_BLOCK;
            mg_widen(x + start, xb, m);
            mg_widen(dy + start, gb, m);
            mg_heavy_backward(kind, xb, gb, db, m, a, b);
            mg_narrow(db, dx + start, m);
        }
    }
    """
    enum:
        MG_RELU, MG_LEAKY_RELU, MG_ELU, MG_SELU, MG_GELU, MG_GELU_TANH, MG_SILU
        MG_SIGMOID, MG_TANH, MG_SOFTPLUS, MG_HARDTANH
        MG_ERFCX_TERMS
    ctypedef struct mg_consts:
        double exp_lo, exp_hi
        double selu_alpha, selu_scale
        double gelu_tanh_beta, gelu_tanh_kappa, gelu_clip
        double inv_sqrt_2pi, sqrt1_2, ln2
        double erfc_max, erfcx_k
        double erfcx[MG_ERFCX_TERMS]
        float tanh_lo_f32, gauss_max_f32
    mg_consts mg_c
    void mg_act_forward_f64(int kind, const double* x, double* y, Py_ssize_t n,
                            double a, double b) noexcept nogil
    void mg_act_backward_f64(int kind, const double* x, const double* y, const double* dy,
                             double* dx, Py_ssize_t n, double a, double b) noexcept nogil
    void mg_act_forward_f32(int kind, const float* x, float* y, Py_ssize_t n,
                            double a, double b) noexcept nogil
    void mg_act_backward_f32(int kind, const float* x, const float* y, const float* dy,
                             float* dx, Py_ssize_t n, double a, double b) noexcept nogil


ctypedef fused floating:
    float
    double

_CODES = {
    "relu": MG_RELU, "leaky_relu": MG_LEAKY_RELU, "elu": MG_ELU, "selu": MG_SELU,
    "gelu": MG_GELU, "gelu_tanh": MG_GELU_TANH, "silu": MG_SILU, "sigmoid": MG_SIGMOID,
    "tanh": MG_TANH, "softplus": MG_SOFTPLUS, "hardtanh": MG_HARDTANH,
}


cdef void _load_constants() except *:
    if len(_ref._ERFCX_CHEB) != MG_ERFCX_TERMS:
        raise ImportError("erfc series length differs from the reference's")
    mg_c.exp_lo = -746.0    # exp(-746) < 2**-1075 rounds to 0
    mg_c.exp_hi = 710.0     # exp(710) > max double
    mg_c.selu_alpha = _ref.SELU_ALPHA
    mg_c.selu_scale = _ref.SELU_SCALE
    mg_c.gelu_tanh_beta = _ref.GELU_TANH_BETA
    mg_c.gelu_tanh_kappa = _ref.GELU_TANH_KAPPA
    mg_c.gelu_clip = _ref.GELU_CLIP
    mg_c.inv_sqrt_2pi = _ref.INV_SQRT_2PI
    mg_c.sqrt1_2 = _ref.SQRT1_2
    mg_c.ln2 = 0.6931471805599453
    mg_c.erfc_max = _ref.ERFC_MAX
    mg_c.erfcx_k = _ref._ERFCX_K
    for k, coef in enumerate(_ref._ERFCX_CHEB):
        mg_c.erfcx[k] = coef
    mg_c.tanh_lo_f32 = -20.0  # below, expm1 is -1 in float (tanh +-1)
    mg_c.gauss_max_f32 = 15.0  # a * exp(-a*a/2) underflows in float beyond a = 14.4


_load_constants()

# Elements per chunk handed to a thread, and the sizes below which threads
# cost more than they save: the light kinds are bound by memory and need
# far more elements than the kinds built on exp.
cdef extern from "parallel.h":
    Py_ssize_t MG_PARALLEL_MIN

cdef Py_ssize_t CHUNK = 1 << 14
cdef Py_ssize_t PARALLEL_MIN = MG_PARALLEL_MIN  # see parallel.h
cdef Py_ssize_t PARALLEL_MIN_LIGHT = 8 * MG_PARALLEL_MIN  # memory-bound kinds
_LIGHT_FORWARD = frozenset([MG_RELU, MG_LEAKY_RELU, MG_HARDTANH])
_LIGHT_BACKWARD = frozenset([MG_RELU, MG_LEAKY_RELU, MG_HARDTANH, MG_SIGMOID, MG_TANH])


cdef inline void _forward_run(int kind, const floating* x, floating* y, Py_ssize_t n,
                              double a, double b) noexcept nogil:
    if floating is float:
        mg_act_forward_f32(kind, x, y, n, a, b)
    else:
        mg_act_forward_f64(kind, x, y, n, a, b)


cdef inline void _backward_run(int kind, const floating* x, const floating* y,
                               const floating* dy, floating* dx, Py_ssize_t n,
                               double a, double b) noexcept nogil:
    if floating is float:
        mg_act_backward_f32(kind, x, y, dy, dx, n, a, b)
    else:
        mg_act_backward_f64(kind, x, y, dy, dx, n, a, b)


cdef void _forward_all(int kind, const floating* x, floating* y, Py_ssize_t n,
                       double a, double b, Py_ssize_t parallel_min) noexcept nogil:
    cdef Py_ssize_t c, start
    if n < parallel_min:
        _forward_run(kind, x, y, n, a, b)
        return
    for c in prange((n + CHUNK - 1) // CHUNK, schedule="dynamic"):
        start = c * CHUNK
        _forward_run(kind, x + start, y + start, min(CHUNK, n - start), a, b)


cdef void _backward_all(int kind, const floating* x, const floating* y, const floating* dy,
                        floating* dx, Py_ssize_t n, double a, double b,
                        Py_ssize_t parallel_min) noexcept nogil:
    cdef Py_ssize_t c, start
    if n < parallel_min:
        _backward_run(kind, x, y, dy, dx, n, a, b)
        return
    for c in prange((n + CHUNK - 1) // CHUNK, schedule="dynamic"):
        start = c * CHUNK
        _backward_run(kind, x + start, y + start, dy + start, dx + start,
                      min(CHUNK, n - start), a, b)


# The flat runs take raw pointers of C-contiguous arrays of one dtype (the
# callers check): a fused `def` with typed memoryviews spent about 1.5 us per
# call choosing its specialization and acquiring the views, more than relu on
# a few thousand elements.



cdef void _forward_flat(int kind, x, y, double a, double b):
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    cdef Py_ssize_t parallel_min = PARALLEL_MIN_LIGHT if kind in _LIGHT_FORWARD else PARALLEL_MIN
    cdef bint single = cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
    cdef void *px = _data(x)
    cdef void *py = _data(y)
    if n == 0:
        return
    with nogil:
        if single:
            _forward_all(kind, <const float*>px, <float*>py, n, a, b, parallel_min)
        else:
            _forward_all(kind, <const double*>px, <double*>py, n, a, b, parallel_min)


cdef void _backward_flat(int kind, x, y, dy, dx, double a, double b):
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray>x)
    cdef Py_ssize_t parallel_min = PARALLEL_MIN_LIGHT if kind in _LIGHT_BACKWARD else PARALLEL_MIN
    cdef bint single = cnp.PyArray_TYPE(<cnp.ndarray>x) == cnp.NPY_FLOAT32
    cdef void *px = _data(x)
    cdef void *py = _data(y)
    cdef void *pdy = _data(dy)
    cdef void *pdx = _data(dx)
    if n == 0:
        return
    with nogil:
        if single:
            _backward_all(kind, <const float*>px, <const float*>py, <const float*>pdy,
                          <float*>pdx, n, a, b, parallel_min)
        else:
            _backward_all(kind, <const double*>px, <const double*>py, <const double*>pdy,
                          <double*>pdx, n, a, b, parallel_min)


# ------------------------------------------------------------ Python API

cdef int _code(kind) except -1:
    code = _CODES.get(kind)
    if code is None:
        _ref.check_kind(kind)  # raises the reference's ValueError
    return code


cdef bint _compilable(tuple arrays):
    """All numpy arrays of one shape and one of the compiled dtypes."""
    first = arrays[0]
    if not isinstance(first, numpy.ndarray):
        return False
    dtype = first.dtype
    if dtype != numpy.float32 and dtype != numpy.float64:
        return False
    for arr in arrays[1:]:
        if not isinstance(arr, numpy.ndarray) or arr.dtype != dtype or arr.shape != first.shape:
            return False
    return True


cdef tuple _flatten(tuple arrays):
    """1-D contiguous views of same-shaped arrays, and whether they were
    taken through a transpose (so the result can get the inputs' layout)."""
    if len(arrays) == 1 and arrays[0].flags.c_contiguous:  # the usual case, without the lists
        return [arrays[0].reshape(-1)], False
    if all([arr.flags.c_contiguous for arr in arrays]):
        return [arr.reshape(-1) for arr in arrays], False
    if all([arr.flags.f_contiguous for arr in arrays]):
        return [arr.T.reshape(-1) for arr in arrays], True
    return [numpy.ascontiguousarray(arr).reshape(-1) for arr in arrays], False


cdef _unflatten(flat, like, bint transposed):
    if transposed:
        return flat.reshape(like.T.shape).T
    return flat.reshape(like.shape)


cdef tuple _params(dtype, alpha, beta):
    """alpha and beta as the array's precision sees them (as numpy would
    round them to float32 before using them with float32 data)."""
    if alpha == 0.0 and beta == 0.0:  # most kinds take no parameters
        return 0.0, 0.0
    if dtype == numpy.float32:
        return float(numpy.float32(alpha)), float(numpy.float32(beta))
    return float(alpha), float(beta)


def activation_forward(kind, x, alpha=0.0, beta=0.0):
    """y = f(x) elementwise; a new array of x's shape and dtype."""
    cdef int code = _code(kind)
    if not _compilable((x,)):
        return _ref.activation_forward(numpy, kind, x, alpha, beta)
    a, b = _params(x.dtype, alpha, beta)
    flat, transposed = _flatten((x,))
    out = empty_like_c(flat[0])
    _forward_flat(code, flat[0], out, a, b)
    return _unflatten(out, x, transposed)


def activation_backward(kind, x, y, dy, alpha=0.0, beta=0.0):
    """dx = dy * f'(x); x is the forward input, y = f(x) the forward output."""
    cdef int code = _code(kind)
    if not _compilable((x, y, dy)):
        return _ref.activation_backward(numpy, kind, x, y, dy, alpha, beta)
    a, b = _params(x.dtype, alpha, beta)
    flat, transposed = _flatten((x, y, dy))
    out = empty_like_c(flat[0])
    _backward_flat(code, flat[0], flat[1], flat[2], out, a, b)
    return _unflatten(out, x, transposed)
