/* When the compiled kernels use more than one thread: below MG_PARALLEL_MIN
   elements one thread does the work, because waking the others costs more
   than the memory traffic they would share. Where idle OpenMP threads sleep
   (minigrad/_blas_pool.py), waking one took 50-70 us on a 2-core VM: a
   second thread pays only where one thread needs well over 100 us, about
   1e5 elements of normalization work. Kernels with lighter per-element work
   (copies, ReLU, optimizer updates) use a multiple of it, or their own
   threshold where workers spin (mg_workers_spin). */
#ifndef MINIGRAD_PARALLEL_H
#define MINIGRAD_PARALLEL_H

#define MG_PARALLEL_MIN (1 << 17)

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Whether idle OpenMP workers spin a while before they sleep, as the
   environment says that minigrad set up before the OpenMP runtime loaded
   (minigrad/_blas_pool.py): then a wake-up costs a few us, not 50-70. */
static inline int mg_workers_spin(void) {
    const char *policy = getenv("OMP_WAIT_POLICY");
    const char *spins = getenv("GOMP_SPINCOUNT");
    if (policy != NULL && strcasecmp(policy, "passive") == 0)
        return 0;
    return !(spins != NULL && strspn(spins, "0") == strlen(spins) && spins[0] != '\0');
}

#ifdef _OPENMP
#include <omp.h>
static inline int mg_max_threads(void) { return omp_get_max_threads(); }
#else
static inline int mg_max_threads(void) { return 1; }
#endif

#endif
