/* out = A @ B for a small A (M x K, packed into cache-sized panels) and a
   wide B (K x N): the products of convolution, where M and K are channel
   counts times kernel sizes (tens to hundreds) and N is batch times pixels.
   General BLAS packs all of B on every call and runs at half speed on such
   shapes; here B is read in place, a block of MG_NR columns at a time.

   B and out may each be one matrix or one per sample: element (r, j) of a
   matrix with layout {L, R, S} sits at (j / L) * S + r * R + j % L, so a
   row-major (rows x N) matrix is {N, N, 0} and a per-sample (n, rows, L)
   array is {L, L, rows * L}. Convolution thus reads dy and writes y in
   their (N, C, H*W) layout, with no transposing copies. */
#ifndef MINIGRAD_PANELGEMM_H
#define MINIGRAD_PANELGEMM_H

#include <stddef.h>
#include "vecmath.h"

#define MG_MR 8   /* rows of A per panel: MG_MR accumulator rows */
#define MG_NR 16  /* columns of B per block: one AVX-512 register of floats */

typedef struct { ptrdiff_t L, R, S; } mg_layout;

MG_INLINE ptrdiff_t mg_at(mg_layout l, ptrdiff_t r, ptrdiff_t j) {
    return (j / l.L) * l.S + r * l.R + j % l.L;
}

/* Rows of B per chunk: a chunk of one block (MG_KC x MG_NR values, 16 KB of
   floats) stays in L1 while every panel of A runs over it. */
#define MG_KC 256

/* Scratch values one call of the kernel needs: the block of B, copied, then
   the partial sums of every row of A for one block (kept between chunks). */
#define MG_PANEL_SCRATCH(M, K) (((K) + ((M) + MG_MR - 1) / MG_MR * MG_MR) * MG_NR)

/* How many rows `stride` bytes apart an L2 cache holds at once, taking one
   that repeats its sets every 64 KB with 8 ways (Zen 4: 1 MB, 8-way, 128 KB;
   Skylake-SP: 1 MB, 16-way, 64 KB): a stride sharing a large power of two
   with 64 KB reuses few sets. */
MG_INLINE ptrdiff_t mg_rows_cached(ptrdiff_t stride) {
    ptrdiff_t a = 65536, b = stride % 65536;
    while (b) { ptrdiff_t t = a % b; a = b; b = t; }  /* a = gcd(stride, 64 KB) */
    return 8 * 65536 / (a > 64 ? a : 64);
}

/* Columns [j0, j1) of out = A @ B (+ bias per row). `ap` is A packed by
   panel: panel p holds rows p*MG_MR.. as K consecutive groups of MG_MR
   values (rows past M are zeros). `scratch` holds MG_PANEL_SCRATCH(M, K)
   values. A block of B is read in place, rows a whole row of B apart,
   unless K needs chunks or that distance maps the rows to too few cache
   sets (a batch of 16 32x32 images: 64 KB, every row in one set): the
   panels' passes over the block then ran from memory (2.5x slower than
   BLAS). Those blocks are copied to scratch first, with
   the next block's rows prefetched. (Copying every block cost the small
   convolutions 20-40 %.) Every sum runs over k in order, chunked or not:
   the chunks only pause it in `tile`. */
#define MG_DEFINE_PANELGEMM(SFX, T) \
/* MG_NR values as one vector (GCC/Clang vector extensions): the MG_MR \
   accumulators stay in registers, which plain loops do not guarantee. */ \
typedef T mg_vec_##SFX __attribute__((vector_size(MG_NR * sizeof(T)))); \
MG_CLONES static void mg_panel_gemm_##SFX(const T *restrict ap, ptrdiff_t M, ptrdiff_t K, \
        const T *restrict B, mg_layout lb, T *restrict out, mg_layout lo, \
        const T *restrict bias, ptrdiff_t j0, ptrdiff_t j1, T *restrict scratch) { \
    T *restrict packed = scratch; \
    T *restrict tile = scratch + K * MG_NR; \
    const int copy = K > MG_KC || 2 * K > mg_rows_cached(lb.R * (ptrdiff_t)sizeof(T)); \
    for (ptrdiff_t jb = j0; jb < j1; jb += MG_NR) { \
        const ptrdiff_t nr = j1 - jb < MG_NR ? j1 - jb : MG_NR; \
        const T *restrict bb = packed; \
        ptrdiff_t ldb = MG_NR; \
        if (nr == MG_NR && jb / lb.L == (jb + MG_NR - 1) / lb.L) { \
            const T *restrict src = B + mg_at(lb, 0, jb); \
            if (copy) { \
                for (ptrdiff_t k = 0; k < K; k++) { \
                    memcpy(packed + k * MG_NR, src + k * lb.R, MG_NR * sizeof(T)); \
                    /* the next block's row, in cache by the time this one is done */ \
                    __builtin_prefetch(src + k * lb.R + MG_NR); \
                    __builtin_prefetch(src + k * lb.R + 2 * MG_NR - 1); \
                } \
            } else { \
                bb = src; \
                ldb = lb.R; \
            } \
        } else { /* the block crosses a sample boundary or the end: gather it */ \
            ptrdiff_t at[MG_NR]; \
            for (ptrdiff_t j = 0; j < nr; j++) at[j] = mg_at(lb, 0, jb + j); \
            for (ptrdiff_t k = 0; k < K; k++) \
                for (ptrdiff_t j = 0; j < MG_NR; j++) \
                    packed[k * MG_NR + j] = j < nr ? B[at[j] + k * lb.R] : (T)0; \
        } \
        const int out_contiguous = nr == MG_NR && jb / lo.L == (jb + MG_NR - 1) / lo.L; \
        /* where the block's row 0 starts (a division: once per block, not per row) */ \
        const ptrdiff_t out0 = mg_at(lo, 0, jb); \
        ptrdiff_t out_at[MG_NR]; \
        if (!out_contiguous) \
            for (ptrdiff_t j = 0; j < nr; j++) out_at[j] = mg_at(lo, 0, jb + j); \
        for (ptrdiff_t k0 = 0; k0 < K; k0 += MG_KC) { \
            const ptrdiff_t k1 = K - k0 < MG_KC ? K : k0 + MG_KC; \
            for (ptrdiff_t ib = 0; ib < M; ib += MG_MR) { \
                const T *restrict pa = ap + ib * K; \
                mg_vec_##SFX acc[MG_MR]; \
                if (k0 == 0) \
                    for (int i = 0; i < MG_MR; i++) acc[i] = (mg_vec_##SFX){0}; \
                else \
                    memcpy(acc, tile + ib * MG_NR, sizeof acc); \
                for (ptrdiff_t k = k0; k < k1; k++) { \
                    mg_vec_##SFX bv; \
                    memcpy(&bv, bb + k * ldb, sizeof bv); \
                    const T *restrict ak = pa + k * MG_MR; \
                    for (int i = 0; i < MG_MR; i++) acc[i] += ak[i] * bv; \
                } \
                if (k1 < K) { \
                    memcpy(tile + ib * MG_NR, acc, sizeof acc); \
                    continue; \
                } \
                const ptrdiff_t mr = M - ib < MG_MR ? M - ib : MG_MR; \
                for (ptrdiff_t i = 0; i < mr; i++) { \
                    const T add = bias ? bias[ib + i] : (T)0; \
                    mg_vec_##SFX row = acc[i] + add; \
                    if (out_contiguous) { \
                        memcpy(out + out0 + (ib + i) * lo.R, &row, sizeof row); \
                    } else { \
                        for (ptrdiff_t j = 0; j < nr; j++) \
                            out[out_at[j] + (ib + i) * lo.R] = row[j]; \
                    } \
                } \
            } \
        } \
    } \
}

MG_DEFINE_PANELGEMM(f32, float)
MG_DEFINE_PANELGEMM(f64, double)

/* 1 when the CPU has AVX-512 (32 vector registers of MG_NR floats), where
   this kernel beats BLAS. With AVX2 the MG_MR accumulators of 16 floats
   need all 16 registers and spill to the stack: the kernel then runs 3-6x
   slower than BLAS, and even a tile sized for AVX2 (6 rows x 16 columns,
   B packed in cache-sized chunks) stayed 1.4x slower than BLAS there. */
static int mg_panel_gemm_fast(void) {
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("x86-64-v4") != 0;
#else
    return 0;
#endif
}

#endif
