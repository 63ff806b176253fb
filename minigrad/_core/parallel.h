/* When the compiled kernels use more than one thread: below MG_PARALLEL_MIN
   elements one thread does the work, because waking the others costs more
   than the memory traffic they would share. Idle OpenMP threads sleep (see
   minigrad/__init__.py), and waking one took 50-70 us on a 2-core VM: a
   second thread pays only where one thread needs well over 100 us, about
   1e5 elements of normalization work. Kernels with lighter per-element work
   (copies, ReLU, optimizer updates) use a multiple of it. */
#ifndef MINIGRAD_PARALLEL_H
#define MINIGRAD_PARALLEL_H

#define MG_PARALLEL_MIN (1 << 17)

#ifdef _OPENMP
#include <omp.h>
static inline int mg_max_threads(void) { return omp_get_max_threads(); }
#else
static inline int mg_max_threads(void) { return 1; }
#endif

#endif
