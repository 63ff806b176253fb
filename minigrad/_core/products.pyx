"""Large matrix products on all threads: float32 on an AVX-512 kernel of our
own, the rest through OpenBLAS's batched GEMM (reference:
backend/reference/products.py).

On a CPU with AVX-512, float32 products with B's rows or columns contiguous
(every product of a linear layer: x @ W.T, g @ W, g.T @ x) run on vecgemm.h,
split over the threads by rows or columns. OpenBLAS packs both operands, and
on x @ W.T that costs it a fifth of the product; the kernel packs only B's
blocks, and on two threads took 0.69-0.92x the time of the OpenBLAS paths
below on the mlp's and eval's products (128x784x512 forward 0.73x, its
weight gradient 0.69x; 1024x784x512 0.92x). Its result does not depend on
how the work is split.

Elsewhere, OpenBLAS threads a product by splitting it over its threads,
which then wait on each other for the panels they pack for one another: on
two cores a product of a 128-row batch runs about 1.75x faster on two
threads than on one, where 2x is the ceiling. Its batched GEMM
(cblas_?gemm_batch) runs each product of a batch whole on one thread
instead. So two independent products of the same work (a linear layer's
dx = g @ W and dW = g.T @ x) run side by side with no waiting, and one
large product runs as two products, one per half of its output rows (or
columns), or of its inner dimension where that is long (summed after). A
pair gives the bits of OpenBLAS's single-threaded products; a split
product differs from the whole one in the last bits (as OpenBLAS's own
results differ with the number of threads), the same on every run.

The batched path is used where numpy's BLAS is an ILP64 OpenBLAS with the
batched entry points (numpy's wheels; minigrad._blas_pool hands over their
addresses at import) and BLAS runs on two threads. Anywhere else, for other
dtypes or layouts, and for products too small to gain, the reference runs
(numpy's matmul, spelled `@` here: one Python call fewer per product).
"""
cimport numpy as cnp
from cython.parallel cimport prange
from libc.stdint cimport int64_t

import numpy


cnp.import_array()

ctypedef void (*sgemm_batch_t)(int, const int*, const int*, const int64_t*, const int64_t*,
                               const int64_t*, const float*, const float**, const int64_t*,
                               const float**, const int64_t*, const float*, float**,
                               const int64_t*, int64_t, const int64_t*) noexcept nogil
ctypedef void (*dgemm_batch_t)(int, const int*, const int*, const int64_t*, const int64_t*,
                               const int64_t*, const double*, const double**, const int64_t*,
                               const double**, const int64_t*, const double*, double**,
                               const int64_t*, int64_t, const int64_t*) noexcept nogil
ctypedef int (*blas_threads_t)() noexcept nogil

cdef sgemm_batch_t _sgemm_batch = NULL
cdef dgemm_batch_t _dgemm_batch = NULL
cdef blas_threads_t _blas_threads = NULL
cdef Py_ssize_t _batched_calls = 0

cdef extern from "vecgemm.h" nogil:
    void mg_vecgemm_part(const float* A, Py_ssize_t ars, Py_ssize_t acs, const float* B,
                         Py_ssize_t brs, Py_ssize_t bcs, float* out, Py_ssize_t ldo,
                         Py_ssize_t K, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0, Py_ssize_t j1,
                         float* rows)
    int mg_vecgemm_available()
    enum: MG_VG_MR  # rows of a tile
    enum: MG_VG_ROWS_SCRATCH  # values of a part's copy of A, where its rows are not contiguous

cdef extern from "parallel.h":
    int mg_max_threads() nogil

# Whether float32 products run on the AVX-512 kernel (vecgemm.h) where it
# applies; tests switch it off to run OpenBLAS's paths.
cdef bint _vecgemm_on = mg_vecgemm_available() != 0
cdef Py_ssize_t _vecgemm_calls = 0

cdef enum:
    ROW_MAJOR = 101
    NO_TRANS = 111
    TRANS = 112

# Work (M * N * K) each product of a batch needs to run on a thread of its
# own. Also a floor: OpenBLAS's batched GEMM (0.3.31, numpy 2.4's) crashes on
# the products of at most 100**3 that it hands to its small-matrix path.
cdef int64_t SIDE_BY_SIDE_MIN = 1 << 20
# A product is split into halves of its output rows (or columns) only where
# each half keeps this many of them (the kernels work on blocks of 16).
cdef int64_t SPLIT_LINES_MIN = 32
# A product whose inner dimension is at least this many times its longer
# output side (a convolution's weight gradient: channels x kernel by batch x
# pixels) is split into two halves of the inner dimension instead, summed
# after: halves of its rows would each pack all of the long operand they
# share. Against OpenBLAS's own two threads, (M, K, N) (144, 12544, 32) took
# 0.87x the time (halves of the rows: 1.09x), (576, 16384, 64) 0.92x (0.99x),
# (128, 1024, 128) 0.84x (0.95x), (512, 2048, 64) 0.90x (0.90x).
cdef int64_t LONG_INNER = 4


def use_openblas_batch(size_t sgemm_batch, size_t dgemm_batch, size_t blas_threads):
    """Takes the addresses of cblas_sgemm_batch, cblas_dgemm_batch (ILP64)
    and openblas_get_num_threads; zeros stop their use."""
    global _sgemm_batch, _dgemm_batch, _blas_threads
    ready = sgemm_batch != 0 and dgemm_batch != 0 and blas_threads != 0
    _sgemm_batch = <sgemm_batch_t>sgemm_batch if ready else NULL
    _dgemm_batch = <dgemm_batch_t>dgemm_batch if ready else NULL
    _blas_threads = <blas_threads_t>blas_threads if ready else NULL


def batched_gemm_agrees():
    """Runs the batched GEMM handed over on one batch of each type and
    compares it with numpy's products: False when it differs (an OpenBLAS
    whose batched entry points do not behave as this module expects)."""
    global _batched_calls
    if _sgemm_batch == NULL:
        return False
    rng = numpy.random.default_rng(0)
    cdef Batch batch
    cdef int t
    for dtype in (numpy.float32, numpy.float64):
        # 128 x 96 x 112: above the floor, with rows, inner and columns all different
        a = rng.standard_normal((128, 96)).astype(dtype)
        b = rng.standard_normal((96, 112)).astype(dtype)
        out, out_t = numpy.empty((128, 112), dtype), numpy.empty((112, 128), dtype)
        batch.count = 0
        _add(&batch, a, b, out, 0, 128, 0, 112)
        _add(&batch, b.T, a.T, out_t, 0, 112, 0, 128)
        t = cnp.PyArray_TYPE(<cnp.ndarray>a)
        with nogil:
            _run(&batch, t)
        _batched_calls += 1
        want = a @ b
        tol = 1e-4 if dtype == numpy.float32 else 1e-12
        if not (numpy.allclose(out, want, rtol=tol, atol=tol * 10)
                and numpy.allclose(out_t, want.T, rtol=tol, atol=tol * 10)):
            return False
    return True


def vecgemm_available():
    """Whether this CPU runs the AVX-512 product kernel (vecgemm.h)."""
    return mg_vecgemm_available() != 0


def use_vecgemm(bint on):
    """Turns the AVX-512 product kernel on or off (where available); returns
    whether it was on."""
    global _vecgemm_on
    was = _vecgemm_on
    _vecgemm_on = on and mg_vecgemm_available() != 0
    return was


def vecgemm_calls():
    """How many products the AVX-512 kernel has run (tests prove the path ran)."""
    return _vecgemm_calls


def batched_calls():
    """How many times the batched GEMM has run (tests prove the path ran)."""
    return _batched_calls


cdef struct Batch:
    int count
    int ta[2]
    int tb[2]
    int64_t m[2]
    int64_t n[2]
    int64_t k[2]
    int64_t lda[2]
    int64_t ldb[2]
    int64_t ldc[2]
    char* a[2]
    char* b[2]
    char* c[2]


cdef bint _lines(Py_ssize_t item, Py_ssize_t along, Py_ssize_t across, Py_ssize_t lines,
                 Py_ssize_t width, int64_t* ld) noexcept:
    """Whether `lines` lines of `width` elements, `along` bytes apart within
    a line and `across` bytes apart between lines, are a BLAS matrix stored
    line by line; its leading dimension (elements between lines) in ld."""
    if along != item and width != 1:
        return False
    if lines == 1:
        ld[0] = width
        return True
    if across > 0 and across % item == 0 and across // item >= width:
        ld[0] = across // item
        return True
    return False


cdef bint _as_operand(cnp.ndarray x, int* trans, int64_t* ld) noexcept:
    """x (2-D, checked by the caller) as a BLAS operand: row-major (NO_TRANS)
    or the transpose of one (TRANS), with its leading dimension. False where
    its strides fit neither."""
    cdef Py_ssize_t s = cnp.PyArray_ITEMSIZE(x)
    cdef Py_ssize_t r = cnp.PyArray_DIM(x, 0), c = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t s0 = cnp.PyArray_STRIDE(x, 0), s1 = cnp.PyArray_STRIDE(x, 1)
    if _lines(s, s1, s0, r, c, ld):  # rows of c elements
        trans[0] = NO_TRANS
        return True
    if _lines(s, s0, s1, c, r, ld):  # columns of r elements
        trans[0] = TRANS
        return True
    return False


cdef int _usable(object a, object b, int typenum) noexcept:
    """The numpy type of a @ b when both are 2-D native numpy arrays of one float
    type, matching in their inner dimension, with no empty dimension (a type
    other than `typenum` when it is given); -1 otherwise."""
    if not (cnp.PyArray_CheckExact(a) and cnp.PyArray_CheckExact(b)):  # (a subclass keeps numpy's)
        return -1
    cdef cnp.ndarray x = a, y = b
    cdef int t = cnp.PyArray_TYPE(x)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        return -1
    if (cnp.PyArray_TYPE(y) != t or (typenum >= 0 and t != typenum)
            or cnp.PyArray_NDIM(x) != 2 or cnp.PyArray_NDIM(y) != 2
            or cnp.PyArray_DIM(x, 1) != cnp.PyArray_DIM(y, 0)
            or cnp.PyArray_DIM(x, 0) == 0 or cnp.PyArray_DIM(x, 1) == 0
            or cnp.PyArray_DIM(y, 1) == 0
            or not (cnp.PyArray_ISALIGNED(x) and cnp.PyArray_ISALIGNED(y))
            or not (cnp.PyArray_ISNOTSWAPPED(x) and cnp.PyArray_ISNOTSWAPPED(y))):
        return -1
    return t


cdef bint _add(Batch* batch, cnp.ndarray a, cnp.ndarray b, cnp.ndarray out,
               Py_ssize_t row0, Py_ssize_t row1, Py_ssize_t col0, Py_ssize_t col1,
               Py_ssize_t k0=0, Py_ssize_t k1=-1) noexcept:
    """Appends out[row0:row1, col0:col1] = a[row0:row1, k0:k1] @ b[k0:k1, col0:col1]
    (k1 -1: to the end); False where a or b is not a BLAS operand."""
    cdef int i = batch.count
    if not (_as_operand(a, &batch.ta[i], &batch.lda[i]) and _as_operand(b, &batch.tb[i], &batch.ldb[i])):
        return False
    batch.m[i] = row1 - row0
    batch.n[i] = col1 - col0
    batch.k[i] = (cnp.PyArray_DIM(a, 1) if k1 < 0 else k1) - k0
    batch.ldc[i] = cnp.PyArray_DIM(out, 1)
    batch.a[i] = <char*>cnp.PyArray_DATA(a) + row0 * cnp.PyArray_STRIDE(a, 0) + k0 * cnp.PyArray_STRIDE(a, 1)
    batch.b[i] = <char*>cnp.PyArray_DATA(b) + col0 * cnp.PyArray_STRIDE(b, 1) + k0 * cnp.PyArray_STRIDE(b, 0)
    batch.c[i] = (<char*>cnp.PyArray_DATA(out) + row0 * cnp.PyArray_STRIDE(out, 0)
                  + col0 * cnp.PyArray_STRIDE(out, 1))
    batch.count = i + 1
    return True


cdef void _run(Batch* batch, int typenum) noexcept nogil:
    """The batch's products, each on one thread (beta 0: out is only written)."""
    cdef int64_t one_each[2]
    cdef float salpha[2]
    cdef float sbeta[2]
    cdef double dalpha[2]
    cdef double dbeta[2]
    cdef int i
    for i in range(2):
        one_each[i] = 1
        salpha[i], sbeta[i], dalpha[i], dbeta[i] = 1.0, 0.0, 1.0, 0.0
    if typenum == cnp.NPY_FLOAT32:
        _sgemm_batch(ROW_MAJOR, batch.ta, batch.tb, batch.m, batch.n, batch.k, salpha,
                     <const float**>batch.a, batch.lda, <const float**>batch.b, batch.ldb,
                     sbeta, <float**>batch.c, batch.ldc, batch.count, one_each)
    else:
        _dgemm_batch(ROW_MAJOR, batch.ta, batch.tb, batch.m, batch.n, batch.k, dalpha,
                     <const double**>batch.a, batch.lda, <const double**>batch.b, batch.ldb,
                     dbeta, <double**>batch.c, batch.ldc, batch.count, one_each)


cdef inline bint _side_by_side_ready() noexcept:
    # two threads exactly: with more, a pair (or a product's two halves)
    # would leave the others idle where OpenBLAS would split each product
    # over all of them
    return _sgemm_batch != NULL and _blas_threads() == 2


cdef inline int64_t _work(cnp.ndarray a, cnp.ndarray b) noexcept:
    return <int64_t>cnp.PyArray_DIM(a, 0) * cnp.PyArray_DIM(a, 1) * cnp.PyArray_DIM(b, 1)


cdef object _empty(cnp.ndarray a, cnp.ndarray b, int typenum):
    cdef cnp.npy_intp dims[2]
    dims[0] = cnp.PyArray_DIM(a, 0)
    dims[1] = cnp.PyArray_DIM(b, 1)
    return cnp.PyArray_EMPTY(2, dims, typenum, 0)


# Work (M * N * K) from which a float32 product runs on the AVX-512 kernel
# (below it, numpy's call costs less than the kernel saves).
cdef int64_t VECGEMM_MIN = 1 << 16
# How a product is split over threads: by rows where each thread gets at
# least VECGEMM_PART_ROWS of them, else by columns where each gets at least
# VECGEMM_PART_COLUMNS (the kernel's full tile: four vectors of 16); neither,
# it stays with OpenBLAS's paths. Halves of the columns pack only their own
# blocks of B, but each reads all of A: from 256 rows on halves of the rows
# took less time, (384, 512) @ (512, 256) 0.76-0.80x, (1024, 512) @ (512, 256)
# 0.86x, while at 128 rows they took 1.05-1.19x. Parts of 16 or 32 columns,
# a convolution's weight gradient, (144, 12544) @ (12544, 32), took 1.14x
# OpenBLAS's time.
cdef Py_ssize_t VECGEMM_PART_ROWS = 128
cdef Py_ssize_t VECGEMM_PART_COLUMNS = 64


cdef inline float* _share(float* scratch, int part) noexcept nogil:
    return NULL if scratch == NULL else scratch + <Py_ssize_t>part * MG_VG_ROWS_SCRATCH


cdef object _vecgemm(cnp.ndarray x, cnp.ndarray y, int parts, bint by_rows):
    """x @ y (float32 2-D, checked by the caller) on the AVX-512 kernel, its
    rows (or columns) split into `parts` ranges, one thread each; None where
    y's layout does not fit (neither its rows nor its columns contiguous)."""
    global _vecgemm_calls
    cdef Py_ssize_t ars = cnp.PyArray_STRIDE(x, 0), acs = cnp.PyArray_STRIDE(x, 1)
    cdef Py_ssize_t brs = cnp.PyArray_STRIDE(y, 0), bcs = cnp.PyArray_STRIDE(y, 1)
    if not ((brs == 4 and bcs > 0 and bcs % 4 == 0) or (bcs == 4 and brs > 0 and brs % 4 == 0)):
        return None
    if ars % 4 != 0 or acs % 4 != 0:
        return None
    ars, acs, brs, bcs = ars // 4, acs // 4, brs // 4, bcs // 4
    cdef Py_ssize_t rows = cnp.PyArray_DIM(x, 0), cols = cnp.PyArray_DIM(y, 1)
    cdef Py_ssize_t inner = cnp.PyArray_DIM(x, 1)
    cdef cnp.ndarray out = _empty(x, y, cnp.NPY_FLOAT32)
    cdef const float* a = <const float*>cnp.PyArray_DATA(x)
    cdef const float* b = <const float*>cnp.PyArray_DATA(y)
    cdef float* o = <float*>cnp.PyArray_DATA(out)
    cdef cnp.ndarray scratch = None
    cdef float* rows_scratch = NULL
    if acs != 1:  # each part copies A's blocks into its own share
        scratch = numpy.empty(max(parts, 1) * MG_VG_ROWS_SCRATCH, numpy.float32)
        rows_scratch = <float*>cnp.PyArray_DATA(scratch)
    # whole tiles of rows, or whole vectors of 16 columns, per thread
    cdef Py_ssize_t step = MG_VG_MR if by_rows else 16
    cdef Py_ssize_t lines = rows if by_rows else cols
    cdef Py_ssize_t width = ((lines + parts - 1) // parts + step - 1) // step * step
    cdef Py_ssize_t start, stop
    cdef int p
    if parts <= 1:
        mg_vecgemm_part(a, ars, acs, b, brs, bcs, o, cols, inner, 0, rows, 0, cols, rows_scratch)
    else:
        for p in prange(parts, nogil=True, schedule="static", num_threads=parts):
            start = p * width
            stop = min(lines, start + width)
            if start < stop and by_rows:
                mg_vecgemm_part(a, ars, acs, b, brs, bcs, o, cols, inner, start, stop, 0, cols,
                                _share(rows_scratch, p))
            elif start < stop:
                mg_vecgemm_part(a, ars, acs, b, brs, bcs, o, cols, inner, 0, rows, start, stop,
                                _share(rows_scratch, p))
    _vecgemm_calls += 1
    return out


cdef object _vecgemm_sized(object a, object b):
    """a @ b on the AVX-512 kernel where it is on and the product is float32
    and large enough: on all threads from SIDE_BY_SIDE_MIN, split by rows
    or by columns (see VECGEMM_PART_ROWS); None otherwise."""
    if not _vecgemm_on or _usable(a, b, cnp.NPY_FLOAT32) < 0:
        return None
    cdef int64_t work = _work(a, b)
    if work < VECGEMM_MIN:
        return None
    cdef int parts = mg_max_threads() if work >= SIDE_BY_SIDE_MIN else 1
    cdef Py_ssize_t rows = cnp.PyArray_DIM(<cnp.ndarray>a, 0), cols = cnp.PyArray_DIM(<cnp.ndarray>b, 1)
    if parts <= 1 or rows >= VECGEMM_PART_ROWS * parts:
        return _vecgemm(a, b, parts, True)
    if cols >= VECGEMM_PART_COLUMNS * parts:
        return _vecgemm(a, b, parts, False)
    return None


def vecgemm(a, b, int parts=1, bint by_rows=False):
    """a @ b on the AVX-512 kernel whatever its size, its columns (or rows)
    split into `parts` ranges on as many threads; None where the kernel does
    not apply (not on this CPU, not two float32 matrices, or a layout it does
    not take)."""
    if parts < 1:
        raise ValueError(f"parts must be at least 1, got {parts}")
    if not mg_vecgemm_available() or _usable(a, b, cnp.NPY_FLOAT32) < 0:
        return None
    return _vecgemm(a, b, parts, by_rows)


def matmul(a, b):
    """a @ b; a large one as two halves of its output (or, where the inner
    dimension is long, of the inner dimension), side by side."""
    global _batched_calls
    fast = _vecgemm_sized(a, b)
    if fast is not None:
        return fast
    cdef int t = _usable(a, b, -1)
    if t < 0 or not _side_by_side_ready():
        return a @ b
    cdef cnp.ndarray x = a, y = b
    cdef Py_ssize_t rows = cnp.PyArray_DIM(x, 0), cols = cnp.PyArray_DIM(y, 1)
    if cnp.PyArray_DIM(x, 1) >= LONG_INNER * max(rows, cols):
        return _inner_halves(a, b, t)
    # Each half packs its own copy of the operand it shares with the other:
    # halves of the rows share b (inner x cols), halves of the columns share
    # a (rows x inner). Split the longer side, so the smaller one is shared.
    cdef bint by_rows = rows >= cols, ready
    cdef Py_ssize_t lines = rows if by_rows else cols
    # the first half a whole number of the kernels' 16-line blocks
    cdef Py_ssize_t half = (lines // 2 + 15) // 16 * 16
    cdef int64_t line_work = _work(x, y) // lines
    if lines - half < SPLIT_LINES_MIN or (lines - half) * line_work < SIDE_BY_SIDE_MIN:
        return a @ b
    cdef cnp.ndarray out = _empty(x, y, t)
    cdef Batch batch
    batch.count = 0
    if by_rows:
        ready = _add(&batch, x, y, out, 0, half, 0, cols) and _add(&batch, x, y, out, half, rows, 0, cols)
    else:
        ready = _add(&batch, x, y, out, 0, rows, 0, half) and _add(&batch, x, y, out, 0, rows, half, cols)
    if not ready:
        return a @ b
    with nogil:
        _run(&batch, t)
    _batched_calls += 1
    return out


cdef object _inner_halves(cnp.ndarray x, cnp.ndarray y, int t):
    """x @ y as x[:, :h] @ y[:h] + x[:, h:] @ y[h:], the halves side by side."""
    global _batched_calls
    cdef Py_ssize_t inner = cnp.PyArray_DIM(x, 1)
    cdef Py_ssize_t rows = cnp.PyArray_DIM(x, 0), cols = cnp.PyArray_DIM(y, 1)
    cdef Py_ssize_t half = (inner // 2 + 15) // 16 * 16
    if (inner - half) * rows * cols < SIDE_BY_SIDE_MIN:
        return x @ y
    cdef cnp.ndarray out = _empty(x, y, t), rest = _empty(x, y, t)
    cdef Batch batch
    batch.count = 0
    if not (_add(&batch, x, y, out, 0, rows, 0, cols, 0, half)
            and _add(&batch, x, y, rest, 0, rows, 0, cols, half, inner)):
        return x @ y
    with nogil:
        _run(&batch, t)
    _batched_calls += 1
    out += rest
    return out


def matmul_pair(a1, b1, a2, b2):
    """(a1 @ b1, a2 @ b2), side by side when both are large."""
    global _batched_calls
    cdef int t = _usable(a1, b1, -1)
    # each product split over the threads on the AVX-512 kernel: faster than
    # the two side by side on OpenBLAS's single-threaded GEMM
    first, second = _vecgemm_sized(a1, b1), _vecgemm_sized(a2, b2)
    if first is not None or second is not None:
        return (first if first is not None else matmul(a1, b1),
                second if second is not None else matmul(a2, b2))
    if t < 0 or _usable(a2, b2, t) < 0 or not _side_by_side_ready():
        return a1 @ b1, a2 @ b2
    cdef cnp.ndarray x1 = a1, y1 = b1, x2 = a2, y2 = b2
    if _work(x1, y1) < SIDE_BY_SIDE_MIN or _work(x2, y2) < SIDE_BY_SIDE_MIN:
        return a1 @ b1, a2 @ b2
    cdef cnp.ndarray out1 = _empty(x1, y1, t), out2 = _empty(x2, y2, t)
    cdef Batch batch
    batch.count = 0
    if not (_add(&batch, x1, y1, out1, 0, cnp.PyArray_DIM(x1, 0), 0, cnp.PyArray_DIM(y1, 1))
            and _add(&batch, x2, y2, out2, 0, cnp.PyArray_DIM(x2, 0), 0, cnp.PyArray_DIM(y2, 1))):
        return a1 @ b1, a2 @ b2
    with nogil:
        _run(&batch, t)
    _batched_calls += 1
    return out1, out2
