/* Blocked sums shared by the compiled kernels (norm.pyx, conv.pyx): MG_NL
   independent lanes of T over blocks of MG_NB elements (a few terms per
   lane), each block folded by a tree in T and added in double. The lanes
   vectorize; the blocks keep a long run as accurate as a short one. */
#ifndef MINIGRAD_BLOCKSUM_H
#define MINIGRAD_BLOCKSUM_H

#include "vecmath.h"

#define MG_NL 32
#define MG_NB 512

#define MG_DEFINE_FOLD(SFX, T) \
MG_INLINE double mg_fold_##SFX(T *a) { \
    for (int w = MG_NL / 2; w > 0; w /= 2) \
        for (int j = 0; j < w; j++) a[j] += a[j + w]; \
    return a[0]; \
}
MG_DEFINE_FOLD(f32, float)
MG_DEFINE_FOLD(f64, double)

/* t1 = sum(EA), t2 = sum(EQ) over k in [0, n); PRE runs first for each k. */
#define MG_SUM2_T(T, SFX, n, t1, t2, PRE, EA, EQ) do { \
    double t1_ = 0.0, t2_ = 0.0; \
    for (Py_ssize_t b_ = 0; b_ < (n); b_ += MG_NB) { \
        Py_ssize_t e_ = (n) - b_ < MG_NB ? (n) : b_ + MG_NB, i_ = b_; \
        T a_[MG_NL], q_[MG_NL]; \
        for (int j = 0; j < MG_NL; j++) { a_[j] = 0; q_[j] = 0; } \
        for (; i_ + MG_NL <= e_; i_ += MG_NL) \
            for (int j = 0; j < MG_NL; j++) { \
                Py_ssize_t k = i_ + j; PRE; a_[j] += (EA); q_[j] += (EQ); \
            } \
        for (; i_ < e_; i_++) { Py_ssize_t k = i_; PRE; t1_ += (EA); t2_ += (EQ); } \
        t1_ += mg_fold_##SFX(a_); t2_ += mg_fold_##SFX(q_); \
    } \
    t1 = t1_; t2 = t2_; \
} while (0)

/* t1 = sum(EA) over k in [0, n): the one-sum form of MG_SUM2_T. */
#define MG_SUM_T(T, SFX, n, t1, EA) do { \
    double t1_ = 0.0; \
    for (Py_ssize_t b_ = 0; b_ < (n); b_ += MG_NB) { \
        Py_ssize_t e_ = (n) - b_ < MG_NB ? (n) : b_ + MG_NB, i_ = b_; \
        T a_[MG_NL]; \
        for (int j = 0; j < MG_NL; j++) a_[j] = 0; \
        for (; i_ + MG_NL <= e_; i_ += MG_NL) \
            for (int j = 0; j < MG_NL; j++) { Py_ssize_t k = i_ + j; a_[j] += (EA); } \
        for (; i_ < e_; i_++) { Py_ssize_t k = i_; t1_ += (EA); } \
        t1_ += mg_fold_##SFX(a_); \
    } \
    t1 = t1_; \
} while (0)

#endif
