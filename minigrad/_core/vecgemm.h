/* out = A @ B in float32 with AVX-512, for the products of linear layers
   (a batch of rows times a weight matrix, or its transpose).

   OpenBLAS (numpy's BLAS) packs both operands into its own layouts; on a
   weight used transposed (x @ W.T, every linear layer's forward) that costs
   it a fifth of the product. Here only B is packed, a block of MG_VG_KC of
   its rows by MG_VG_NR of its columns at a time, as vectors along the
   columns (a transposed B is transposed 16 x 16 in registers on the way);
   A's values are broadcast one at a time against those vectors, read in
   place where A's rows are contiguous, else from a copy (below). A tile of
   MG_VG_MR rows by MG_VG_NR columns keeps its 24 sums in registers over a
   block: 24 multiply-adds per 10 loads, all from L1 but A's, which stream
   in order.

   Element (i, k) of A sits at a[i * ars + k * acs]; element (k, j) of B at
   b[k * brs + j * bcs], with bcs == 1 (rows of B contiguous) or brs == 1
   (columns contiguous); out is row-major with `ldo` values per row. Every
   sum runs over k in order (a block adds to the previous blocks' sums in
   out), so the result does not depend on how the work is split. */
#ifndef MINIGRAD_VECGEMM_H
#define MINIGRAD_VECGEMM_H

#include <stddef.h>
#include <string.h>

#define MG_VG_MR 6    /* rows of A per tile */
#define MG_VG_NR 64   /* columns of B per tile: four vectors of 16 floats */
#define MG_VG_KC 128  /* rows of B per block: 32 KB packed, held in L1 */
/* Rows of A per chunk: a chunk's rows for one block of k (256 KB) stay in L2
   while every block of columns runs over them. */
#define MG_VG_MC 512
/* Values of the scratch a call needs where A's rows are not contiguous: a
   chunk's block of A, its last tile padded to MG_VG_MR rows. */
#define MG_VG_ROWS_SCRATCH ((MG_VG_MC + MG_VG_MR - 1) / MG_VG_MR * MG_VG_MR * MG_VG_KC)

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define MG_VG_TARGET __attribute__((target("avx512f,fma")))
#define MG_VG_INLINE static inline __attribute__((always_inline, target("avx512f,fma")))

/* 16 rows of 16 floats, transposed in registers. */
MG_VG_INLINE void mg_vg_transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 2]);
        __m512d c = _mm512_castps_pd(t[i + 1]), d = _mm512_castps_pd(t[i + 3]);
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    for (int h = 0; h < 16; h += 8)
        for (int i = 0; i < 4; i++) {
            t[h + i] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0x88);
            t[h + i + 4] = _mm512_shuffle_f32x4(r[h + i], r[h + i + 4], 0xdd);
        }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}

MG_VG_INLINE __mmask16 mg_vg_first(ptrdiff_t n) {  /* the first n (<= 16) lanes */
    return (__mmask16)(0xFFFFu >> (16 - n));
}

/* packed[k][j] = B(k, j) for k < kc, j < nb (<= MG_VG_NR); columns past
   nb are zeros. b points at B(0, 0) of the block. */
MG_VG_INLINE void mg_vg_pack(const float *b, ptrdiff_t brs, ptrdiff_t bcs, ptrdiff_t kc,
                             ptrdiff_t nb, float *packed) {
    if (bcs == 1) {
        for (ptrdiff_t k = 0; k < kc; k++)
            for (ptrdiff_t j = 0; j < MG_VG_NR; j += 16) {
                ptrdiff_t n = nb - j < 16 ? (nb - j > 0 ? nb - j : 0) : 16;
                _mm512_store_ps(packed + k * MG_VG_NR + j,
                                _mm512_maskz_loadu_ps(mg_vg_first(n), b + k * brs + j));
            }
        return;
    }
    /* columns contiguous: 16 columns by 16 rows at a time, transposed */
    for (ptrdiff_t j = 0; j < MG_VG_NR; j += 16)
        for (ptrdiff_t k0 = 0; k0 < kc; k0 += 16) {
            ptrdiff_t kk = kc - k0 < 16 ? kc - k0 : 16;
            __m512 r[16];
            for (ptrdiff_t c = 0; c < 16; c++)
                r[c] = j + c < nb ? _mm512_maskz_loadu_ps(mg_vg_first(kk), b + (j + c) * bcs + k0)
                                  : _mm512_setzero_ps();
            mg_vg_transpose16(r);
            for (ptrdiff_t k = 0; k < kk; k++)
                _mm512_store_ps(packed + (k0 + k) * MG_VG_NR + j, r[k]);
        }
}

/* out[i][j] (+)= sum over the block of A(i, k) packed[k][j], for i < mr,
   the first nv vectors of columns (the last masked by `last`). */
MG_VG_INLINE void mg_vg_tile(int mr, int nv, __mmask16 last, ptrdiff_t kc, const float *a,
                             ptrdiff_t ars, ptrdiff_t acs, const float *packed, float *out,
                             ptrdiff_t ldo, int add) {
    __m512 c[MG_VG_MR][4];
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) c[i][v] = _mm512_setzero_ps();
    for (ptrdiff_t k = 0; k < kc; k++) {
        __m512 b[4];
        for (int v = 0; v < nv; v++) b[v] = _mm512_load_ps(packed + k * MG_VG_NR + 16 * v);
        for (int i = 0; i < mr; i++) {
            __m512 x = _mm512_set1_ps(a[i * ars + k * acs]);
            for (int v = 0; v < nv; v++) c[i][v] = _mm512_fmadd_ps(x, b[v], c[i][v]);
        }
    }
    for (int i = 0; i < mr; i++)
        for (int v = 0; v < nv; v++) {
            __mmask16 m = v == nv - 1 ? last : 0xFFFF;
            float *p = out + i * ldo + 16 * v;
            __m512 s = add ? _mm512_add_ps(c[i][v], _mm512_maskz_loadu_ps(m, p)) : c[i][v];
            _mm512_mask_storeu_ps(p, m, s);
        }
}

/* mg_vg_tile with mr, nv and A's column stride as constants, so that the
   sums stay in registers and the loads of A need no multiplications */
#define MG_VG_TILE_NV(MR_, ARS, ACS)                                                  \
    switch (nv) {                                                                     \
    case 4: mg_vg_tile(MR_, 4, last, kc, a, ARS, ACS, packed, o, ldo, add); break;    \
    case 3: mg_vg_tile(MR_, 3, last, kc, a, ARS, ACS, packed, o, ldo, add); break;    \
    case 2: mg_vg_tile(MR_, 2, last, kc, a, ARS, ACS, packed, o, ldo, add); break;    \
    default: mg_vg_tile(MR_, 1, last, kc, a, ARS, ACS, packed, o, ldo, add); break;   \
    }
#define MG_VG_TILE(ARS, ACS)                                                          \
    switch (mr) {                                                                     \
    case 6: MG_VG_TILE_NV(6, ARS, ACS) break;                                         \
    case 5: MG_VG_TILE_NV(5, ARS, ACS) break;                                         \
    case 4: MG_VG_TILE_NV(4, ARS, ACS) break;                                         \
    case 3: MG_VG_TILE_NV(3, ARS, ACS) break;                                         \
    case 2: MG_VG_TILE_NV(2, ARS, ACS) break;                                         \
    default: MG_VG_TILE_NV(1, ARS, ACS) break;                                        \
    }

/* Rows [i0, i1) of A for columns [k0, k0 + kc), copied tile by tile: the
   tile of rows i0 + 6t.. holds its values at t * 6 * kc + k * 6 + i. */
MG_VG_INLINE void mg_vg_pack_rows(const float *A, ptrdiff_t ars, ptrdiff_t acs, ptrdiff_t i0,
                                  ptrdiff_t i1, ptrdiff_t k0, ptrdiff_t kc, float *dst) {
    for (ptrdiff_t ib = i0; ib < i1; ib += MG_VG_MR, dst += MG_VG_MR * kc) {
        const ptrdiff_t mr = i1 - ib < MG_VG_MR ? i1 - ib : MG_VG_MR;
        const float *src = A + ib * ars + k0 * acs;
        for (ptrdiff_t k = 0; k < kc; k++)
            for (ptrdiff_t i = 0; i < mr; i++) dst[k * MG_VG_MR + i] = src[i * ars + k * acs];
    }
}


/* Rows [i0, i1) and columns [j0, j1) of out = A @ B, K the inner dimension.
   For each chunk of A's rows and block of B's rows, each block of B's
   columns is packed once and every tile of the chunk runs over it. A is
   read in place where its rows are contiguous; otherwise (a transposed A,
   the weight gradient's g.T) a chunk's block is copied first, tile by
   tile, into `rows` (MG_VG_ROWS_SCRATCH values, unused where acs == 1):
   read in place, each tile's values a column of A apart, dW took 1.2x the
   time (1024x256x1024 2.5 vs 2.0 ms on two threads, 512x128x784 0.41 vs
   0.35). */
MG_VG_TARGET static void mg_vecgemm_part(const float *A, ptrdiff_t ars, ptrdiff_t acs,
        const float *B, ptrdiff_t brs, ptrdiff_t bcs, float *out, ptrdiff_t ldo, ptrdiff_t K,
        ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1, float *rows) {
    float packed[MG_VG_KC * MG_VG_NR] __attribute__((aligned(64)));
    if (acs == 1) rows = NULL;
    for (ptrdiff_t ic = i0; ic < i1; ic += MG_VG_MC) {
        const ptrdiff_t ie = i1 - ic < MG_VG_MC ? i1 : ic + MG_VG_MC;
        for (ptrdiff_t kb = 0; kb < K; kb += MG_VG_KC) {
            const ptrdiff_t kc = K - kb < MG_VG_KC ? K - kb : MG_VG_KC;
            const int add = kb > 0;
            if (rows != NULL) mg_vg_pack_rows(A, ars, acs, ic, ie, kb, kc, rows);
            for (ptrdiff_t jb = j0; jb < j1; jb += MG_VG_NR) {
                const ptrdiff_t nb = j1 - jb < MG_VG_NR ? j1 - jb : MG_VG_NR;
                const int nv = (int)((nb + 15) / 16);
                const __mmask16 last = mg_vg_first(nb - 16 * (nv - 1));
                mg_vg_pack(B + kb * brs + jb * bcs, brs, bcs, kc, nb, packed);
                for (ptrdiff_t ib = ic; ib < ie; ib += MG_VG_MR) {
                    const int mr = ie - ib < MG_VG_MR ? (int)(ie - ib) : MG_VG_MR;
                    float *o = out + ib * ldo + jb;
                    if (rows != NULL) {
                        const float *a = rows + (ib - ic) * kc;
                        MG_VG_TILE(1, MG_VG_MR)
                    } else {
                        const float *a = A + ib * ars + kb;
                        MG_VG_TILE(ars, 1)
                    }
                }
            }
        }
    }
}

/* 1 when the CPU runs AVX-512 (the kernel's instructions) */
static int mg_vecgemm_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma");
}

#else  /* not x86-64 with GCC or Clang: never used */

static void mg_vecgemm_part(const float *A, ptrdiff_t ars, ptrdiff_t acs, const float *B,
        ptrdiff_t brs, ptrdiff_t bcs, float *out, ptrdiff_t ldo, ptrdiff_t K,
        ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t j0, ptrdiff_t j1, float *rows) {
    (void)A; (void)ars; (void)acs; (void)B; (void)brs; (void)bcs; (void)out; (void)ldo;
    (void)K; (void)i0; (void)i1; (void)j0; (void)j1; (void)rows;
}
static int mg_vecgemm_available(void) { return 0; }

#endif
#endif
