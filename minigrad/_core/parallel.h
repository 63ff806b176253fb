/* When the compiled kernels use more than one thread: below MG_PARALLEL_MIN
   elements one thread does the work, because waking the others costs more
   than the memory traffic they would share. Kernels with very light
   per-element work use a multiple of it. */
#ifndef MINIGRAD_PARALLEL_H
#define MINIGRAD_PARALLEL_H

#define MG_PARALLEL_MIN (1 << 15)

#ifdef _OPENMP
#include <omp.h>
static inline int mg_max_threads(void) { return omp_get_max_threads(); }
#else
static inline int mg_max_threads(void) { return 1; }
#endif

#endif
