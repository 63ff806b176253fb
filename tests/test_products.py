"""The compiled matrix products (_core/products.pyx) against the reference's
plain matmul: every layout BLAS takes, the layouts and types it does not
(which must fall back, not fail), the work floor under which OpenBLAS's
batched GEMM must never be called, and the layers that use them."""
import threading

import numpy as np
import pytest

import minigrad as mg
from minigrad import _blas_pool
from minigrad.backend import core_disabled
from minigrad.backend.reference import products as ref

products = pytest.importorskip("minigrad._core.products", reason="a build without the compiled kernels")

batched = pytest.mark.skipif(_blas_pool.batched_gemm_entries() is None,
                             reason="numpy's BLAS is not an ILP64 OpenBLAS with batched GEMM")
avx512 = pytest.mark.skipif(not products.vecgemm_available(), reason="the CPU has no AVX-512")


def _matrix(rng, rows, cols, dtype, layout):
    """A (rows, cols) array: C order, the transpose of a C array, or either of
    those as a view into a wider array (leading dimension above the width)."""
    if layout == "c":
        return rng.standard_normal((rows, cols)).astype(dtype)
    if layout == "t":
        return rng.standard_normal((cols, rows)).astype(dtype).T
    if layout == "c_view":
        return rng.standard_normal((rows, cols + 5)).astype(dtype)[:, 2:cols + 2]
    if layout == "t_view":
        return rng.standard_normal((cols, rows + 7)).astype(dtype)[:, 3:rows + 3].T
    raise ValueError(layout)


def _assert_close(got, a, b):
    want = a.astype(np.float64) @ b.astype(np.float64)
    tol = 1e-4 if a.dtype == np.float32 else 1e-12
    assert got.dtype == a.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(a.shape[1]))


@pytest.fixture
def two_blas_threads():
    before = mg.get_num_threads()
    mg.set_num_threads(2)
    yield
    mg.set_num_threads(before)


@pytest.fixture
def openblas_products():
    """The float32 products on OpenBLAS's batched GEMM, not the AVX-512 kernel."""
    was = products.use_vecgemm(False)
    yield
    products.use_vecgemm(was)


@pytest.fixture(params=["vecgemm", "openblas"])
def float32_kernel(request):
    """Each test once with the AVX-512 kernel on (where the CPU has it), once off."""
    was = products.use_vecgemm(request.param == "vecgemm")
    yield request.param
    products.use_vecgemm(was)


LAYOUTS = ["c", "t", "c_view", "t_view"]
# (M, K, N): the mlp's products, odd sizes, split by rows (M >= N) or by
# columns (M < N), lines just enough to split, too few to split, and split
# by the inner dimension (K at least 4x the longer output side; odd K too)
SHAPES = [(128, 784, 512), (512, 128, 784), (128, 256, 512), (233, 444, 499),
          (65, 300, 700), (1000, 37, 90), (40, 900, 800), (40, 2000, 60), (60, 2000, 40),
          (144, 12544, 32), (32, 3001, 48), (100, 400, 100)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("a_layout", LAYOUTS)
@pytest.mark.parametrize("b_layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_matmul_and_pair_match_the_float64_product(two_blas_threads, float32_kernel, shape, a_layout,
                                                   b_layout, dtype):
    m, k, n = shape
    rng = np.random.default_rng(m * k + n)
    a, b = _matrix(rng, m, k, dtype, a_layout), _matrix(rng, k, n, dtype, b_layout)
    c, d = _matrix(rng, n, k, dtype, b_layout), _matrix(rng, k, m, dtype, a_layout)
    _assert_close(products.matmul(a, b), a, b)
    p1, p2 = products.matmul_pair(a, b, c, d)
    _assert_close(p1, a, b)
    _assert_close(p2, c, d)


@batched
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_pair_gives_the_bits_of_single_threaded_products(openblas_products, dtype):
    rng = np.random.default_rng(1)
    g, w, x = (rng.standard_normal(s).astype(dtype) for s in ((128, 256), (256, 512), (128, 512)))
    before = mg.get_num_threads()
    try:
        mg.set_num_threads(2)
        calls = products.batched_calls()
        dx, dw = products.matmul_pair(g, w, g.T, x)
        assert products.batched_calls() == calls + 1
        mg.set_num_threads(1)  # OpenBLAS's own single-threaded products
        np.testing.assert_array_equal(dx, g @ w)
        np.testing.assert_array_equal(dw, g.T @ x)
    finally:
        mg.set_num_threads(before)


@batched
def test_large_products_take_the_batched_path_and_repeat_bit_for_bit(openblas_products, two_blas_threads):
    rng = np.random.default_rng(2)
    x, w, g = (rng.standard_normal(s).astype(np.float32) for s in ((128, 784), (512, 784), (128, 512)))
    calls = products.batched_calls()
    first = products.matmul(x, w.T)  # split by columns (128 rows, 512 columns)
    first_t = products.matmul(w, x.T)  # split by rows
    pair = products.matmul_pair(g, w, g.T, x)
    assert products.batched_calls() == calls + 3
    for _ in range(3):
        np.testing.assert_array_equal(products.matmul(x, w.T), first)
        np.testing.assert_array_equal(products.matmul(w, x.T), first_t)
        for got, want in zip(products.matmul_pair(g, w, g.T, x), pair):
            np.testing.assert_array_equal(got, want)


@batched
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_long_inner_dimension_is_split_into_two_single_threaded_halves(openblas_products, two_blas_threads, dtype):
    # a convolution's weight gradient: (channels x kernel) by (batch x pixels)
    rng = np.random.default_rng(7)
    cols = rng.standard_normal((144, 3000)).astype(dtype)
    dy = rng.standard_normal((32, 3000)).astype(dtype)
    calls = products.batched_calls()
    got = products.matmul(cols, dy.T)
    assert products.batched_calls() == calls + 1
    half = 1504  # the first half a whole number of 16-line blocks
    before = mg.get_num_threads()
    try:
        mg.set_num_threads(1)  # OpenBLAS's own single-threaded products, then one sum
        want = cols[:, :half] @ dy[:, :half].T
        want += cols[:, half:] @ dy[:, half:].T
    finally:
        mg.set_num_threads(before)
    np.testing.assert_array_equal(got, want)
    _assert_close(got, cols, dy.T)


@batched
@pytest.mark.parametrize("shape, whole_too", [
    ((128, 10, 256), True), ((125, 64, 125), True), ((10, 128, 256), True),
    # the whole above the floor, each half of 64 lines under it
    ((128, 80, 128), False), ((120, 80, 136), False),
    # halves of 48 and 18 lines (rows, then columns): the second too thin
    ((66, 263, 64), False), ((64, 263, 66), False),
    # a long inner dimension whose halves (992 each) are each under it
    ((32, 1984, 32), False)], ids=str)
def test_products_at_most_the_floor_never_reach_the_batched_gemm(openblas_products, two_blas_threads, shape, whole_too):
    # OpenBLAS's batched GEMM crashes the process on these (its small-matrix
    # path): each product, and each half of a split one, must stay above
    m, k, n = shape
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    calls = products.batched_calls()
    _assert_close(products.matmul(a, b), a, b)
    if whole_too:
        p1, p2 = products.matmul_pair(a, b, a, b)
        _assert_close(p1, a, b)
        _assert_close(p2, a, b)
    assert products.batched_calls() == calls


@batched
@pytest.mark.parametrize("threads", [1, 3])
def test_other_thread_counts_run_the_plain_products(openblas_products, threads):
    # one thread has nothing to put side by side; with more than two, two
    # products would leave threads idle that OpenBLAS's own split would use
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((256, 512)).astype(np.float32), rng.standard_normal((512, 512)).astype(np.float32)
    before = mg.get_num_threads()
    try:
        mg.set_num_threads(threads)
        calls = products.batched_calls()
        np.testing.assert_array_equal(products.matmul(a, b), a @ b)
        np.testing.assert_array_equal(products.matmul_pair(a, b, a, b)[1], a @ b)
        assert products.batched_calls() == calls
    finally:
        mg.set_num_threads(before)


class _Subclass(np.ndarray):
    pass


def _strided(rng):
    return rng.standard_normal((512, 1024)).astype(np.float32)[::2, ::2]  # no unit stride


@pytest.mark.parametrize("operands", [
    lambda r: (r.standard_normal((300, 400)), r.standard_normal((400, 300)).astype(np.float32)),
    lambda r: (r.integers(-3, 3, (300, 400)), r.integers(-3, 3, (400, 300))),
    lambda r: (_strided(r), r.standard_normal((512, 300)).astype(np.float32)),
    lambda r: (r.standard_normal((300, 400)).astype(">f8"), r.standard_normal((400, 300)).astype(">f8")),
    lambda r: (r.standard_normal((0, 400)).astype(np.float32), r.standard_normal((400, 300)).astype(np.float32)),
    lambda r: (r.standard_normal((300, 0)).astype(np.float32), r.standard_normal((0, 300)).astype(np.float32)),
    lambda r: (r.standard_normal((2, 300, 400)).astype(np.float32), r.standard_normal((400, 300)).astype(np.float32)),
    lambda r: (r.standard_normal((300, 400)).view(_Subclass), r.standard_normal((400, 300)).view(_Subclass)),
], ids=["mixed_dtypes", "integers", "no_unit_stride", "byte_swapped", "empty_rows", "empty_inner", "3d",
        "subclass"])
def test_other_operands_get_the_reference_result(two_blas_threads, openblas_products, operands):
    a, b = operands(np.random.default_rng(5))
    want = ref.matmul(np, a, b)
    got = products.matmul(a, b)
    assert type(got) is type(want) and got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    for got_one in products.matmul_pair(a, b, a, b):
        np.testing.assert_array_equal(got_one, want)


def test_mismatched_shapes_raise_numpys_error():
    a, b = np.ones((300, 400), np.float32), np.ones((401, 300), np.float32)
    with pytest.raises(ValueError, match="matmul"):
        products.matmul(a, b)
    with pytest.raises(ValueError, match="matmul"):
        products.matmul_pair(a, a.T, a, b)


@pytest.mark.parametrize("beside", ["pairs", "numpy_products"])
def test_products_from_several_python_threads(two_blas_threads, beside):
    # threaded BLAS calls from two threads at once once wrote into each
    # other's work buffers (threads.pyx runs one call at a time)
    rng = np.random.default_rng(6)
    g, w, x = (rng.standard_normal(s).astype(np.float32) for s in ((128, 256), (256, 512), (128, 512)))
    square = rng.standard_normal((512, 512)).astype(np.float32)
    want = (g.astype(np.float64) @ w, g.T.astype(np.float64) @ x, square.astype(np.float64) @ square)
    errors = []

    def pairs():
        for _ in range(40):
            dx, dw = products.matmul_pair(g, w, g.T, x)
            np.testing.assert_allclose(dx, want[0], rtol=1e-4, atol=1e-3)
            np.testing.assert_allclose(dw, want[1], rtol=1e-4, atol=1e-3)

    def numpy_products():
        for _ in range(40):
            np.testing.assert_allclose(square @ square, want[2], rtol=1e-4, atol=1e-2)

    def run(work):
        try:
            work()
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    workers = [threading.Thread(target=run, args=(w_,)) for w_ in (pairs, pairs, locals()[beside])]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors


@pytest.mark.skipif(core_disabled(), reason="MINIGRAD_DISABLE_CORE=1: the layers run the reference products")
@pytest.mark.parametrize("op", ["linear", "matmul"])
def test_layers_take_their_products_on_the_fast_paths(two_blas_threads, float32_kernel, op):
    # the AVX-512 kernel runs all three products; without it, OpenBLAS's
    # batched GEMM runs the forward split in two and the gradients as a pair
    if float32_kernel == "vecgemm" and not products.vecgemm_available():
        pytest.skip("the CPU has no AVX-512")
    if float32_kernel == "openblas" and _blas_pool.batched_gemm_entries() is None:
        pytest.skip("numpy's BLAS is not an ILP64 OpenBLAS with batched GEMM")
    count = products.vecgemm_calls if float32_kernel == "vecgemm" else products.batched_calls
    mg.manual_seed(0)
    x = mg.randn(128, 512, requires_grad=True)
    w = mg.randn(256, 512, requires_grad=True)
    calls = count()
    y = mg.nn.functional.linear(x, w) if op == "linear" else x @ w.T
    gy = np.random.default_rng(7).standard_normal((128, 256)).astype(np.float32)
    y.backward(mg.tensor(gy))
    assert count() == calls + (3 if float32_kernel == "vecgemm" else 2)
    xd, wd = x.detach().numpy().astype(np.float64), w.detach().numpy().astype(np.float64)
    np.testing.assert_allclose(y.detach().numpy(), xd @ wd.T, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(x.grad.numpy(), gy @ wd, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(w.grad.numpy(), gy.T @ xd, rtol=1e-4, atol=1e-3)


@batched
def test_the_batched_gemm_is_checked_against_numpy_at_import(two_blas_threads):
    calls = products.batched_calls()
    assert products.batched_gemm_agrees()
    assert products.batched_calls() == calls + 2  # one batch of each type ran


@batched
def test_a_batched_gemm_that_disagrees_is_not_used(openblas_products, monkeypatch, two_blas_threads):
    monkeypatch.setattr(products, "batched_gemm_agrees", lambda: False)
    rng = np.random.default_rng(8)
    a, b = rng.standard_normal((256, 512)).astype(np.float32), rng.standard_normal((512, 512)).astype(np.float32)
    try:
        with pytest.warns(RuntimeWarning, match="batched GEMM"):
            assert _blas_pool.install_batched_products() is False
        calls = products.batched_calls()
        _assert_close(products.matmul(a, b), a, b)
        assert products.batched_calls() == calls
    finally:
        monkeypatch.undo()
        assert _blas_pool.install_batched_products()
    calls = products.batched_calls()
    products.matmul(a, b)
    assert products.batched_calls() == calls + 1


# --- the AVX-512 kernel (_core/vecgemm.h) ---

def _b_operand(rng, k, n, layout):
    """B (k, n) with its rows contiguous ("rows", "rows_view") or its columns
    contiguous ("cols": a weight used transposed, "cols_view")."""
    if layout == "rows":
        return rng.standard_normal((k, n)).astype(np.float32)
    if layout == "rows_view":
        return rng.standard_normal((k + 3, n + 9)).astype(np.float32)[2:k + 2, 5:n + 5]
    if layout == "cols":
        return rng.standard_normal((n, k)).astype(np.float32).T
    return rng.standard_normal((n + 4, k + 11)).astype(np.float32)[1:n + 1, 7:k + 7].T


def _a_operand(rng, m, k, layout):
    """A (m, k) with any strides: C order, transposed, or every other element."""
    if layout == "c":
        return rng.standard_normal((m, k)).astype(np.float32)
    if layout == "t":
        return rng.standard_normal((k, m)).astype(np.float32).T
    return rng.standard_normal((2 * m, 2 * k + 1)).astype(np.float32)[::2, 1::2]


@avx512
@pytest.mark.parametrize("a_layout", ["c", "t", "strided"])
@pytest.mark.parametrize("b_layout", ["rows", "rows_view", "cols", "cols_view"])
# rows around the 6-row tile, columns around the 16-column vector and the
# 64-column block, the inner dimension around 16 and the 128-row block
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 15, 17), (6, 16, 16), (7, 17, 63), (13, 127, 64),
                                   (12, 128, 65), (37, 129, 130), (128, 300, 200), (61, 257, 1),
                                   (600, 130, 70)],  # more rows than a chunk of 512
                         ids=str)
def test_the_avx512_kernel_matches_the_float64_product(shape, a_layout, b_layout):
    m, k, n = shape
    rng = np.random.default_rng(m * 1000 + k * 10 + n)
    a, b = _a_operand(rng, m, k, a_layout), _b_operand(rng, k, n, b_layout)
    got = products.vecgemm(a, b)
    assert got is not None and got.flags.c_contiguous
    _assert_close(got, a, b)


@avx512
@pytest.mark.parametrize("b_layout", ["rows", "cols"])
def test_the_avx512_kernel_gives_the_same_bits_however_the_work_is_split(b_layout):
    # every sum runs over the inner dimension in the same order in each split
    rng = np.random.default_rng(9)
    a, b = _a_operand(rng, 70, 300, "c"), _b_operand(rng, 300, 211, b_layout)
    whole = products.vecgemm(a, b, 1)
    for parts in (2, 3, 5, 16):
        np.testing.assert_array_equal(products.vecgemm(a, b, parts), whole)
        np.testing.assert_array_equal(products.vecgemm(a, b, parts, by_rows=True), whole)
    _assert_close(whole, a, b)


@avx512
def test_the_avx512_kernel_keeps_nan_and_inf_to_their_own_rows_and_columns():
    # the zero padding of a partial block or tile must not meet A's values
    rng = np.random.default_rng(10)
    a, b = _a_operand(rng, 13, 130, "c"), _b_operand(rng, 130, 70, "cols")
    a[3, 5], a[8, 129], b[7, 69] = np.nan, np.inf, np.inf
    got = products.vecgemm(a, b, 2)
    with np.errstate(invalid="ignore"):
        want = a.astype(np.float64) @ b.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-3)


@avx512
@pytest.mark.parametrize("operands", [
    lambda r: (r.standard_normal((30, 40)), r.standard_normal((40, 30))),  # float64
    lambda r: (r.standard_normal((30, 40)).astype(np.float32), _strided(r)[:40, :30]),  # no unit stride in b
    lambda r: (r.standard_normal((30, 40)).astype(np.float32), r.standard_normal((41, 30)).astype(np.float32)),
], ids=["float64", "b_without_unit_stride", "mismatched"])
def test_the_avx512_kernel_declines_what_it_does_not_take(operands):
    a, b = operands(np.random.default_rng(11))
    assert products.vecgemm(a, b) is None
    with pytest.raises(ValueError, match="parts"):
        products.vecgemm(a, b, 0)


@avx512
def test_small_products_stay_with_numpy(two_blas_threads):
    # under the floor numpy's call costs less than the kernel saves
    rng = np.random.default_rng(12)
    a, b = _a_operand(rng, 32, 32, "c"), _b_operand(rng, 32, 32, "cols")
    calls = products.vecgemm_calls()
    np.testing.assert_array_equal(products.matmul(a, b), a @ b)
    assert products.vecgemm_calls() == calls


@avx512
def test_products_of_many_rows_split_by_rows_on_the_kernel(two_blas_threads):
    # 128 rows a thread: split by rows, though 100 columns are too few for
    # two parts of columns
    rng = np.random.default_rng(14)
    a, b = _a_operand(rng, 256, 300, "c"), _b_operand(rng, 300, 100, "cols")
    calls = products.vecgemm_calls()
    got = products.matmul(a, b)
    assert products.vecgemm_calls() == calls + 1
    _assert_close(got, a, b)


@avx512
def test_narrow_outputs_on_two_threads_stay_with_openblas(two_blas_threads):
    # under 128 rows a thread, parts of fewer than 64 columns leave the
    # kernel's tile part empty: a convolution's weight gradient ran slower
    # on it than on OpenBLAS's split
    rng = np.random.default_rng(13)
    a, b = _a_operand(rng, 144, 3000, "c"), _b_operand(rng, 3000, 120, "cols")
    calls = products.vecgemm_calls()
    _assert_close(products.matmul(a, b), a, b)
    assert products.vecgemm_calls() == calls
    b = _b_operand(rng, 3000, 128, "cols")  # two parts of 64
    _assert_close(products.matmul(a, b), a, b)
    assert products.vecgemm_calls() == calls + 1
