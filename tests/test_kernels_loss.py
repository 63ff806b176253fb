"""Softmax cross-entropy kernels: the reference against a per-sample loop,
finite differences and PyTorch; the compiled kernels against the reference."""
import math

import numpy as np
import pytest

from minigrad.backend.reference import loss as ref

core = pytest.importorskip("minigrad._core.loss")
from minigrad._core.threads import parallel_min  # noqa: E402  (after the skip above)

IGNORE = -100


def make_case(rng, n, c, dtype=np.float64, scale=3.0, weighted=True, ignored_every=4):
    logits = (rng.standard_normal((n, c)) * scale).astype(dtype)
    target = rng.integers(0, c, n)
    if ignored_every:
        target[::ignored_every] = IGNORE
    weight = (rng.random(c) + 0.5).astype(dtype) if weighted else None
    return logits, target, weight


# ------------------------------------------------- independent per-sample loop

def naive_losses(logits, target, weight, ignore_index, eps):
    n, c = logits.shape
    w = np.ones(c) if weight is None else np.asarray(weight, np.float64)
    out = np.zeros(n)
    for i in range(n):
        t = int(target[i])
        if t == ignore_index:
            continue
        row = [float(v) for v in logits[i]]
        m = max(row)
        lse = m + math.log(sum(math.exp(v - m) for v in row))
        nll = [lse - v for v in row]
        out[i] = (1 - eps) * w[t] * nll[t] + eps / c * sum(w[k] * nll[k] for k in range(c))
    return out


CONFIGS = [(None, 0.0), ("w", 0.0), (None, 0.1), ("w", 0.25)]


@pytest.mark.parametrize("weighted,eps", CONFIGS)
def test_reference_forward_matches_per_sample_loop(weighted, eps):
    rng = np.random.default_rng(0)
    logits, target, weight = make_case(rng, 37, 11, weighted=bool(weighted))
    losses, lse = ref.cross_entropy_forward(np, logits, target, weight, IGNORE, eps)
    np.testing.assert_allclose(losses, naive_losses(logits, target, weight, IGNORE, eps),
                               rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(lse, np.log(np.exp(logits).sum(axis=1)), rtol=1e-14)
    assert np.all(losses[target == IGNORE] == 0)


def test_ignore_index_inside_class_range():
    rng = np.random.default_rng(1)
    logits, target, weight = make_case(rng, 20, 5, ignored_every=0)
    target[:5] = 2
    for losses, _ in (ref.cross_entropy_forward(np, logits, target, weight, 2, 0.1),
                      core.cross_entropy_forward(logits, target, weight, 2, 0.1)):
        np.testing.assert_allclose(losses, naive_losses(logits, target, weight, 2, 0.1), rtol=1e-13)
        assert np.all(losses[target == 2] == 0) and np.all(losses[target != 2] > 0)


@pytest.mark.parametrize("weighted,eps", CONFIGS)
def test_reference_backward_matches_finite_differences(weighted, eps):
    rng = np.random.default_rng(2)
    logits, target, weight = make_case(rng, 9, 6, weighted=bool(weighted), ignored_every=3)
    dlosses = rng.standard_normal(9)

    def objective(z):
        return float(dlosses @ ref.cross_entropy_forward(np, z, target, weight, IGNORE, eps)[0])

    _, lse = ref.cross_entropy_forward(np, logits, target, weight, IGNORE, eps)
    grad = ref.cross_entropy_backward(np, logits, target, weight, IGNORE, eps, lse, dlosses)
    h = 1e-6
    numeric = np.zeros_like(logits)
    for idx in np.ndindex(*logits.shape):
        step = np.zeros_like(logits)
        step[idx] = h
        numeric[idx] = (objective(logits + step) - objective(logits - step)) / (2 * h)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)
    assert np.all(grad[target == IGNORE] == 0)


def test_out_of_bounds_target_raises_naming_it():
    logits = np.zeros((3, 10))
    for bad in (12, 10, -1, -7):
        target = np.array([1, bad, 3])
        for call in (lambda: ref.cross_entropy_forward(np, logits, target, None, IGNORE, 0.0),
                     lambda: core.cross_entropy_forward(logits, target, None, IGNORE, 0.0),
                     lambda: ref.cross_entropy_backward(np, logits, target, None, IGNORE, 0.0,
                                                        np.zeros(3), np.ones(3)),
                     lambda: core.cross_entropy_backward(logits, target, None, IGNORE, 0.0,
                                                         np.zeros(3), np.ones(3))):
            with pytest.raises(ValueError, match=f"Target {bad} is out of bounds for 10 classes"):
                call()


def test_shape_mismatch_raises():
    for call in (lambda: core.cross_entropy_forward(np.zeros((3, 4)), np.zeros(2, np.int64), None, IGNORE, 0.0),
                 lambda: core.cross_entropy_forward(np.zeros((3, 4)), np.zeros(3, np.int64), np.ones(5), IGNORE, 0.0),
                 lambda: ref.cross_entropy_forward(np, np.zeros(4), np.zeros(4, np.int64), None, IGNORE, 0.0)):
        with pytest.raises(ValueError, match="cross entropy expects"):
            call()


@pytest.mark.parametrize("impl", ["reference", "compiled"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_stay_finite(impl, dtype):
    rng = np.random.default_rng(3)
    logits, target, weight = make_case(rng, 16, 7, dtype=dtype, ignored_every=5)
    huge = (np.sign(logits) * 1e4).astype(dtype) + logits
    dl = np.ones(16, dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        if impl == "reference":
            losses, lse = ref.cross_entropy_forward(np, huge, target, weight, IGNORE, 0.1)
            grad = ref.cross_entropy_backward(np, huge, target, weight, IGNORE, 0.1, lse, dl)
        else:
            losses, lse = core.cross_entropy_forward(huge, target, weight, IGNORE, 0.1)
            grad = core.cross_entropy_backward(huge, target, weight, IGNORE, 0.1, lse, dl)
    assert all(np.all(np.isfinite(a)) for a in (losses, lse, grad))
    assert losses.dtype == lse.dtype == grad.dtype == dtype
    # a uniform shift of the logits changes lse but not the losses
    shifted, _ = ref.cross_entropy_forward(np, huge.astype(np.float64) - 1e4, target,
                                           weight, IGNORE, 0.1)
    np.testing.assert_allclose(losses, shifted, rtol=1e-5 if dtype == np.float32 else 1e-11,
                               atol=1e-3 if dtype == np.float32 else 1e-9)


def test_all_rows_ignored():
    logits = np.random.default_rng(4).standard_normal((4, 3))
    target = np.full(4, IGNORE)
    for losses, lse in (ref.cross_entropy_forward(np, logits, target, None, IGNORE, 0.2),
                        core.cross_entropy_forward(logits, target, None, IGNORE, 0.2)):
        assert np.all(losses == 0)
        np.testing.assert_allclose(lse, np.log(np.exp(logits).sum(axis=1)), rtol=1e-14)
    grad = core.cross_entropy_backward(logits, target, None, IGNORE, 0.2, lse, np.ones(4))
    assert np.all(grad == 0)


def test_compiled_module_exports_every_reference_kernel():
    for name in ref.__all__:
        assert callable(getattr(core, name))


# ------------------------------------------------- compiled vs reference

SHAPES = [(1, 1), (1, 7), (5, 2), (33, 10), (300, 129), (64, 1500),
          (64, 2 * parallel_min() // 64 + 7)]  # the last runs threaded


def _variants(logits):
    """The same values in several memory layouts."""
    yield "contiguous", logits
    yield "transposed", np.ascontiguousarray(logits.T).T
    padded = np.zeros((logits.shape[0] * 2, logits.shape[1] + 3), logits.dtype)
    padded[::2, 1:-2] = logits
    yield "strided", padded[::2, 1:-2]


def check_against_reference(dtype, shape, weighted, eps, rtol, atol):
    rng = np.random.default_rng(hash((shape, weighted, eps)) % 2 ** 32)
    logits, target, weight = make_case(rng, *shape, dtype=dtype, weighted=weighted, ignored_every=3)
    dlosses = rng.standard_normal(shape[0]).astype(dtype)
    wide = lambda a: None if a is None else a.astype(np.float64)
    losses_ref, lse_ref = ref.cross_entropy_forward(np, wide(logits), target, wide(weight), IGNORE, eps)
    for name, z in _variants(logits):
        losses, lse = core.cross_entropy_forward(z, target.astype(np.int32), weight, IGNORE, eps)
        grad = core.cross_entropy_backward(z, target, weight, IGNORE, eps, lse, dlosses)
        # the backward pass gets lse as stored (in the logits' dtype)
        grad_ref = ref.cross_entropy_backward(np, wide(logits), target, wide(weight), IGNORE, eps,
                                              wide(lse), wide(dlosses))
        msg = f"{name} {shape} weighted={weighted} eps={eps}"
        assert losses.dtype == lse.dtype == grad.dtype == dtype, msg
        assert losses.shape == lse.shape == (shape[0],) and grad.shape == shape, msg
        np.testing.assert_allclose(losses, losses_ref, rtol=rtol, atol=atol, err_msg=msg)
        np.testing.assert_allclose(lse, lse_ref, rtol=rtol, atol=atol, err_msg=msg)
        np.testing.assert_allclose(grad, grad_ref, rtol=rtol, atol=atol, err_msg=msg)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted,eps", CONFIGS)
def test_compiled_matches_reference_float64(shape, weighted, eps):
    check_against_reference(np.float64, shape, bool(weighted), eps, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("weighted,eps", CONFIGS)
def test_compiled_float32_is_correctly_rounded(shape, weighted, eps):
    # The compiled kernels reduce each row in double and round once, so they
    # match the float64 reference on the same float32 inputs to an ulp or so.
    # The gradient near zero (p_c ~ eps/C * w_c) is a difference of two
    # terms, so it gets an absolute tolerance at float32 resolution of 1.
    check_against_reference(np.float32, shape, bool(weighted), eps, rtol=2.5e-7, atol=1e-7)


def test_reference_float32_close_to_float64():
    rng = np.random.default_rng(5)
    logits, target, weight = make_case(rng, 50, 20, dtype=np.float32)
    losses, lse = ref.cross_entropy_forward(np, logits, target, weight, IGNORE, 0.1)
    losses64, lse64 = ref.cross_entropy_forward(np, logits.astype(np.float64), target,
                                                weight.astype(np.float64), IGNORE, 0.1)
    assert losses.dtype == lse.dtype == np.float32
    np.testing.assert_allclose(losses, losses64, rtol=1e-5, atol=1e-6)
    grad = ref.cross_entropy_backward(np, logits, target, weight, IGNORE, 0.1, lse,
                                      np.ones(50, np.float32))
    grad64 = ref.cross_entropy_backward(np, logits.astype(np.float64), target,
                                        weight.astype(np.float64), IGNORE, 0.1, lse64, np.ones(50))
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, grad64, rtol=1e-5, atol=1e-6)


def test_compiled_accepts_broadcast_upstream_gradient_and_read_only_inputs():
    rng = np.random.default_rng(6)
    logits, target, weight = make_case(rng, 12, 5)
    logits.flags.writeable = False
    target.flags.writeable = False
    _, lse = core.cross_entropy_forward(logits, target, weight, IGNORE, 0.0)
    dlosses = np.broadcast_to(np.float64(0.25), (12,))  # what a 'mean' reduction hands back
    np.testing.assert_allclose(
        core.cross_entropy_backward(logits, target, weight, IGNORE, 0.0, lse, dlosses),
        ref.cross_entropy_backward(np, logits, target, weight, IGNORE, 0.0, lse, dlosses),
        rtol=1e-13, atol=1e-16)


def test_compiled_falls_back_for_other_dtypes():
    rng = np.random.default_rng(7)
    logits, target, _ = make_case(rng, 6, 4, dtype=np.float16, weighted=False)
    losses, lse = core.cross_entropy_forward(logits, target, None, IGNORE, 0.1)
    losses_ref, lse_ref = ref.cross_entropy_forward(np, logits, target, None, IGNORE, 0.1)
    assert losses.dtype == losses_ref.dtype
    np.testing.assert_array_equal(losses, losses_ref)
    np.testing.assert_array_equal(lse, lse_ref)



@pytest.mark.parametrize("target_kind", ["int32", "big_endian", "strided"])
def test_compiled_reads_any_integer_target_layout(target_kind):
    # targets the kernel cannot read in place are converted first, never misread
    rng = np.random.default_rng(8)
    logits, target, weight = make_case(rng, 10, 4)
    wide = {"int32": target.astype(np.int32), "big_endian": target.astype(">i8"),
            "strided": np.repeat(target, 2)[::2]}[target_kind]
    got = core.cross_entropy_forward(logits, wide, weight, IGNORE, 0.0)
    want = core.cross_entropy_forward(logits, target, weight, IGNORE, 0.0)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)



@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [0, 1, 7, 1000])
def test_losses_sum_close_to_the_exact_sum(dtype, n):
    import math
    losses = (np.random.default_rng(n).random(n) * 5).astype(dtype)
    exact = math.fsum(losses.astype(np.float64))
    for impl in (core.losses_sum, lambda a: ref.losses_sum(np, a)):
        got = impl(losses)
        assert got.shape == () and got.dtype == dtype
        # within a few roundings of the exact sum (double accumulation, or
        # numpy's pairwise sum in the data's type)
        assert abs(float(got) - exact) <= 4 * np.finfo(dtype).eps * max(exact, 1e-300)
    # the compiled sum accumulates in double: one rounding of a double sum
    assert core.losses_sum(losses) == np.asarray(sum(losses.astype(np.float64).tolist()), dtype)


# ---------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("weighted,eps", CONFIGS)
def test_reference_and_compiled_match_torch(weighted, eps):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    logits, target, weight = make_case(rng, 40, 9, weighted=bool(weighted), ignored_every=3)
    dlosses = rng.standard_normal(40)
    zt = torch.tensor(logits, requires_grad=True)
    lt = torch.nn.functional.cross_entropy(
        zt, torch.tensor(target), weight=None if weight is None else torch.tensor(weight),
        ignore_index=IGNORE, label_smoothing=eps, reduction="none")
    (gt,) = torch.autograd.grad(lt, zt, torch.tensor(dlosses))
    for fwd, bwd in ((lambda *a: ref.cross_entropy_forward(np, *a),
                      lambda *a: ref.cross_entropy_backward(np, *a)),
                     (core.cross_entropy_forward, core.cross_entropy_backward)):
        losses, lse = fwd(logits, target, weight, IGNORE, eps)
        np.testing.assert_allclose(losses, lt.detach().numpy(), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(bwd(logits, target, weight, IGNORE, eps, lse, dlosses),
                                   gt.numpy(), rtol=1e-11, atol=1e-14)


# ------------------------------------------------------------ softmax rows

SOFTMAX_SHAPES = [(1, 1), (3, 7), (5, 1), (256, 1000), (2, 3, 4), (4, 2 * parallel_min() // 4 + 3)]


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SOFTMAX_SHAPES)
def test_compiled_softmax_matches_reference(shape, dtype, log):
    rng = np.random.default_rng(len(shape) * 100 + shape[-1])
    x = (rng.standard_normal(shape) * 5).astype(dtype)
    x.flat[0] = 1e4  # a huge logit must not overflow
    g = rng.standard_normal(shape).astype(dtype)
    tol = dict(rtol=2e-6, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for dim in (-1, len(shape) - 1):
        y = core.softmax_forward(x, dim, log)
        want = ref.softmax_forward(np, x.astype(np.float64), dim, log)
        assert y.dtype == dtype and y.shape == x.shape
        np.testing.assert_allclose(y, want, **tol)
        dx = core.softmax_backward(y, g, dim, log)
        want_dx = ref.softmax_backward(np, want, g.astype(np.float64), dim, log)
        assert dx.dtype == dtype
        np.testing.assert_allclose(dx, want_dx, **tol)


def test_softmax_reference_formulas():
    x = np.array([[1.0, 2.0, 3.0], [-1e4, 0.0, 1e4]])
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(ref.softmax_forward(np, x, 1, False), p, rtol=1e-15)
    shifted = x - x.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(ref.softmax_forward(np, x, 1, True), log_p, rtol=1e-15)
    g = np.array([[0.5, -1.0, 2.0], [1.0, 1.0, 1.0]])
    jac = lambda row: np.diag(row) - np.outer(row, row)  # noqa: E731
    for i in range(2):
        np.testing.assert_allclose(ref.softmax_backward(np, p, g, 1, False)[i], jac(p[i]) @ g[i],
                                   atol=1e-15)
        np.testing.assert_allclose(ref.softmax_backward(np, log_p, g, 1, True)[i],
                                   g[i] - p[i] * g[i].sum(), atol=1e-15)


@pytest.mark.parametrize("case", ["other dim", "strided", "float16", "minus inf row"])
def test_compiled_softmax_outside_the_fast_path_equals_reference(case):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6))
    dim = 1
    if case == "other dim":
        dim = 0
    elif case == "strided":
        x = rng.standard_normal((6, 4)).T
    elif case == "float16":
        x = x.astype(np.float16)
    else:
        x[1] = -np.inf
    for log in (False, True):
        with np.errstate(invalid="ignore"):  # the -inf row: -inf - -inf, NaN as in PyTorch
            got, want = core.softmax_forward(x, dim, log), ref.softmax_forward(np, x, dim, log)
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-3 if case == "float16" else 1e-12)


# float32 rows compute exp in float (see minigrad/_core/loss.pyx): error
# bounds in float32 ulps. log_softmax outputs also allow C * 2^-53 absolute
# (C the row length), the resolution of the row's sum of exp accumulated in
# double, which matters only for outputs within ~1e-9 of 0 (the float64
# reference has the same). The backward passes are
# bounded in ulps of the size of their terms: |g| and p |sum g| for
# log_softmax, p max(|g|, |sum g p|) for softmax.
SOFTMAX_F32_ULP = {(False, "forward"): 3.0, (True, "forward"): 3.0,
                   (False, "backward"): 2.0, (True, "backward"): 3.0}


def _f32_ulps(got, exact, scale):
    ulp = np.maximum(np.spacing(np.asarray(scale, np.float32)).astype(np.float64), 2.0 ** -149)
    return np.abs(got.astype(np.float64) - exact) / ulp


def _float32_rows():
    rng = np.random.default_rng(11)
    for scale in (0.01, 1.0, 5.0, 30.0, 1e4):
        for c in (1, 2, 7, 1000):
            x = (rng.standard_normal((40, c)) * scale).astype(np.float32)
            x[0, 0] = 1e4
            x[1] = -1e4
            if c > 1:
                x[2, 1] = -np.inf
                x[3, -1] = x[3, 0]  # a tie for the maximum
            yield x, rng.standard_normal(x.shape).astype(np.float32)


@pytest.mark.parametrize("log", [False, True])
def test_compiled_float32_softmax_within_its_bounds(log):
    for x, g in _float32_rows():
        y = core.softmax_forward(x, 1, log)
        want = ref.softmax_forward(np, x.astype(np.float64), 1, log)
        assert np.array_equal(np.isfinite(y), np.isfinite(want))
        fin = np.isfinite(want)
        err = _f32_ulps(y[fin], want[fin], np.abs(want[fin]))
        if log:
            err = np.where(np.abs(y[fin] - want[fin]) <= x.shape[1] * 2.0 ** -53, 0.0, err)
        assert err.max() <= SOFTMAX_F32_ULP[(log, "forward")], (x.shape, float(err.max()))
        dx = core.softmax_backward(y, g, 1, log)
        y64, g64 = y.astype(np.float64), g.astype(np.float64)
        want_dx = ref.softmax_backward(np, y64, g64, 1, log)
        if log:
            scale = np.maximum(np.abs(g64), np.exp(y64) * np.abs(g64.sum(1, keepdims=True)))
        else:
            scale = y64 * np.maximum(np.abs(g64), np.abs((g64 * y64).sum(1, keepdims=True)))
        err = _f32_ulps(dx, want_dx, scale)
        assert err.max() <= SOFTMAX_F32_ULP[(log, "backward")], (x.shape, float(err.max()))


@pytest.mark.parametrize("log", [False, True])
def test_compiled_softmax_backward_takes_a_broadcast_gradient(log):
    # the gradient of y.sum(): one value broadcast with zero strides
    x = np.random.default_rng(12).standard_normal((5, 9))
    y = core.softmax_forward(x, 1, log)
    g = np.broadcast_to(np.float64(0.5), y.shape)
    np.testing.assert_allclose(core.softmax_backward(y, g, 1, log),
                               ref.softmax_backward(np, y, np.ascontiguousarray(g), 1, log),
                               rtol=1e-13, atol=1e-15)
    assert not g.flags.writeable  # read, never written
