"""Thread count of the OpenMP runtime the compiled kernels share, and the
entry point through which numpy's OpenBLAS runs its threaded products on
that same runtime (see minigrad/_blas_pool.py)."""

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int minigrad_get_threads(void) { return omp_get_max_threads(); }
    static void minigrad_set_threads(int n) { omp_set_num_threads(n); }
    #else
    static int minigrad_get_threads(void) { return 1; }
    static void minigrad_set_threads(int n) { (void)n; }
    #endif
    """
    int minigrad_get_threads() noexcept nogil
    void minigrad_set_threads(int n) noexcept nogil

cdef extern from *:
    """
    #include <pthread.h>

    /* OpenBLAS's caller-managed threading (openblas_set_threads_callback_
       function): one call hands over `count` jobs, job i at data + i * size,
       and returns when all have run. The jobs of a threaded product wait on
       one another (they share packed panels), so every job needs a thread
       of its own at the same time: never fewer threads than jobs. */
    typedef void (*mg_blas_job)(int index, void *job_data, int arg);

    typedef struct { mg_blas_job job; void *data; int index, arg; } mg_blas_task;

    /* how deep this thread is in jobs of a handed-over call (see the lock) */
    static __thread int mg_blas_job_depth = 0;

    static void mg_blas_job_run(mg_blas_job job, int index, void *data, int arg) {
        mg_blas_job_depth++;
        job(index, data, arg);
        mg_blas_job_depth--;
    }

    static void *mg_blas_task_run(void *p) {
        mg_blas_task *t = (mg_blas_task *)p;
        mg_blas_job_run(t->job, t->index, t->data, t->arg);
        return NULL;
    }

    /* Job 0 on the calling thread and jobs first..count-1 on threads of
       their own (jobs 1..first-1 are the caller's team's): for when OpenMP
       cannot give every job a thread (called inside a parallel region, or
       with a limited team). count is OpenBLAS's thread count: the arrays
       fit on the stack. A job whose thread cannot start runs here once job
       0 is done, the best left when the system refuses threads. */
    static void mg_blas_run_spawned(mg_blas_job job, int first, int count,
                                    size_t size, char *data, int arg) {
        int extra = count - first, i;
        pthread_t ids[extra > 0 ? extra : 1];
        mg_blas_task tasks[extra > 0 ? extra : 1];
        char started[extra > 0 ? extra : 1];
        for (i = 0; i < extra; i++) {
            mg_blas_task t = {job, data + (size_t)(first + i) * size, first + i, arg};
            tasks[i] = t;
            started[i] = pthread_create(&ids[i], NULL, mg_blas_task_run, &tasks[i]) == 0;
        }
        mg_blas_job_run(job, 0, data, arg);
        for (i = 0; i < extra; i++) {
            if (started[i]) pthread_join(ids[i], NULL);
            else mg_blas_task_run(&tasks[i]);
        }
    }

    /* threaded calls handed over so far: tests see that the callback is used */
    static unsigned long mg_blas_calls = 0;

    static void mg_blas_run_call(mg_blas_job job, int count, size_t size, void *data, int arg) {
        if (count <= 1) {
            if (count == 1) mg_blas_job_run(job, 0, data, arg);
            return;
        }
    #ifdef _OPENMP
        if (!omp_in_parallel()) {
            #pragma omp parallel num_threads(count)
            {
                int t = omp_get_thread_num(), n = omp_get_num_threads();
                if (t == 0 && n < count)  /* a smaller team: the rest get threads of their own */
                    mg_blas_run_spawned(job, n, count, size, (char *)data, arg);
                else
                    mg_blas_job_run(job, t, (char *)data + (size_t)t * size, arg);
            }
            return;
        }
    #endif
        mg_blas_run_spawned(job, 1, count, size, (char *)data, arg);
    }

    /* One call at a time from the threads outside them: OpenBLAS's jobs can
       take work buffers by the job index they are given (those of its
       batched GEMM do), and two calls running at once from two Python
       threads were seen to write into each other's (wrong products beside a
       batched GEMM). A call from another thread waits for the running one;
       a call made from inside a job is part of that one and runs at once. */
    static pthread_mutex_t mg_blas_call_lock = PTHREAD_MUTEX_INITIALIZER;

    static void mg_blas_run_jobs(int sync, mg_blas_job job, int count, size_t size,
                                 void *data, int arg) {
        (void)sync;  /* OpenBLAS waits for its jobs: they always run to the end here */
        __atomic_fetch_add(&mg_blas_calls, 1, __ATOMIC_RELAXED);
        if (mg_blas_job_depth > 0) {
            mg_blas_run_call(job, count, size, data, arg);
            return;
        }
        pthread_mutex_lock(&mg_blas_call_lock);
        mg_blas_run_call(job, count, size, data, arg);
        pthread_mutex_unlock(&mg_blas_call_lock);
    }

    static size_t mg_blas_run_jobs_address(void) { return (size_t)&mg_blas_run_jobs; }
    static unsigned long mg_blas_calls_so_far(void) {
        return __atomic_load_n(&mg_blas_calls, __ATOMIC_RELAXED);
    }
    """
    size_t mg_blas_run_jobs_address() noexcept nogil
    unsigned long mg_blas_calls_so_far() noexcept nogil

cdef extern from "parallel.h":
    Py_ssize_t MG_PARALLEL_MIN


def get_threads():
    return minigrad_get_threads()


def set_threads(int n):
    minigrad_set_threads(n)


def parallel_min():
    """Elements below which the compiled kernels stay on one thread (parallel.h);
    the kernels' tests size their arrays from it to reach the threaded paths."""
    return MG_PARALLEL_MIN


def blas_jobs_address():
    """Address of the C function that runs OpenBLAS's jobs of one threaded
    call on the OpenMP threads (OpenBLAS's threads callback)."""
    return mg_blas_run_jobs_address()


def blas_calls():
    """Threaded OpenBLAS calls that have run through blas_jobs_address."""
    return mg_blas_calls_so_far()
