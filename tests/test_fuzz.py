"""Fuzzing with hypothesis: random shapes (zero-size dims included), dtypes and
argument values for ops and layers. The property everywhere: a result equal
to a numpy reference (shape, dtype and values; PyTorch's semantics) or one of
the clear errors -- never a crash, a hang, a numpy error from deep inside, or
a wrong-shaped result. Where the reference says the call is valid, minigrad
must succeed."""
import contextlib
import math
import os
import signal
import traceback
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg
from minigrad import nn
from minigrad.nn import functional as F

# The default run draws the same examples every time (a CI result must not
# depend on luck); MINIGRAD_FUZZ_EXAMPLES=2000 searches deeper, with fresh
# random examples on every run.
_DEEP = "MINIGRAD_FUZZ_EXAMPLES" in os.environ
FUZZ = settings(max_examples=int(os.environ.get("MINIGRAD_FUZZ_EXAMPLES", 120)), deadline=None,
                database=None, derandomize=not _DEEP,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
HANG_SECONDS = 10
MINIGRAD_DIR = os.path.dirname(os.path.abspath(mg.__file__))
CLEAR_ERRORS = (ValueError, TypeError, RuntimeError, IndexError)
DTYPES = ("float32", "float64", "int64", "bool")
FLOATS = ("float32", "float64")
CATEGORY = {"bool": 0, "int64": 1, "float32": 2, "float64": 2}


@pytest.fixture(autouse=True)
def _quiet_numpy():
    # nan/inf from log(0), 0/0, ... are results here, not problems
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# -- outcomes --------------------------------------------------------------------------

class Hang(BaseException):
    """Raised by the alarm: not an Exception, so no `except Exception` can eat it."""


@contextlib.contextmanager
def time_limit(seconds):
    def alarm(signum, frame):
        raise Hang(f"no result within {seconds} s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_clear_error(e):
    """A clear error: one of the four kinds, a plain builtin class (no numpy
    exception escaping), raised by minigrad's own code, with a message."""
    assert isinstance(e, CLEAR_ERRORS), f"crash: {type(e).__name__}: {e}"
    assert type(e).__module__ == "builtins", f"{type(e).__module__}.{type(e).__name__} escaped: {e}"
    origin = traceback.extract_tb(e.__traceback__)[-1].filename
    assert os.path.abspath(origin).startswith(MINIGRAD_DIR) or origin.endswith(".pyx"), (
        f"{type(e).__name__} raised inside {origin}, not by minigrad: {e}")
    assert len(str(e)) >= 20, f"terse message: {e!r}"


def attempt(fn):
    """(result, None) or (None, error) where the error must be a clear one."""
    with time_limit(HANG_SECONDS):
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001  (judged here)
            check_clear_error(e)
            event(f"clear error: {type(e).__name__}")  # --hypothesis-show-statistics
            return None, e
    event("result")
    return result, None


def expect_error(fn, why):
    result, error = attempt(fn)
    assert error is not None, f"expected a clear error ({why}), got a result of shape " \
                              f"{getattr(result, 'shape', None)}"
    return error


def expect_result(fn, why="the reference accepts these arguments"):
    result, error = attempt(fn)
    assert error is None, f"unexpected {type(error).__name__} ({why}): {error}"
    return result


def assert_matches(out, expected, dtype=None, rtol=None):
    """out (a Tensor) equals the numpy array `expected`: shape, dtype, values."""
    assert isinstance(out, mg.Tensor), f"expected a Tensor, got {type(out).__name__}"
    expected = np.asarray(expected)
    assert out.shape == expected.shape, f"shape {out.shape}, expected {expected.shape}"
    want = np.dtype(dtype) if dtype is not None else expected.dtype
    assert out.dtype.np == want, f"dtype {out.dtype}, expected {want}"
    got = out.detach().numpy()
    if want.kind == "f":
        tol = rtol if rtol is not None else (2e-5 if want == np.float32 else 1e-10)
        np.testing.assert_allclose(got, expected.astype(want), rtol=tol, atol=tol, equal_nan=True)
    else:
        np.testing.assert_array_equal(got, expected)


# -- strategies -----------------------------------------------------------------------

def shapes(min_dims=0, max_dims=4, min_side=0, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def elements(dtype, lo=-4, hi=4):
    if dtype == "bool":
        return st.booleans()
    if dtype == "int64":
        return st.integers(lo, hi)
    # no tiny magnitudes: rounding them to float32 before or after an op is the only difference
    return st.floats(lo, hi, width=32 if dtype == "float32" else 64).filter(
        lambda v: v == 0 or abs(v) >= 1e-3)


def arrays(dtype, shape, **bounds):
    return hnp.arrays(np.dtype(dtype), shape, elements=elements(dtype, **bounds))


def mostly(usual, unusual):
    """Draws from `usual` three times in four: the valid path gets most examples,
    the error path still gets its share."""
    return st.integers(0, 3).flatmap(lambda k: unusual if k == 3 else usual)


def tensor_of(arr, requires_grad=False):
    t = mg.tensor(arr)
    assert t.dtype.np == arr.dtype
    return t.requires_grad_() if requires_grad and arr.dtype.kind == "f" else t


def promote(*operands):
    """PyTorch's result dtype for (kind, dtype name, ndim) operands, kind 'tensor'
    or 'scalar': the highest category wins, decided by dimensioned tensors,
    then 0-d tensors, then Python scalars (default float32 / int64)."""
    top = max(CATEGORY[d] for _, d, _ in operands)
    for group in ("dims", "zero-dim", "scalar"):
        members = [d for kind, d, nd in operands
                   if (kind == "scalar" and group == "scalar") or
                   (kind == "tensor" and group == ("dims" if nd else "zero-dim"))]
        members = [d for d in members if CATEGORY[d] == top]
        if members:
            if group == "scalar":
                return {0: "bool", 1: "int64", 2: "float32"}[top]
            return "float64" if "float64" in members else members[0]
    raise AssertionError("no operands")


def _float_result(dtype):
    return dtype if CATEGORY[dtype] == 2 else "float32"


# -- elementwise binary ops ---------------------------------------------------------------

BINARY = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / b, np.true_divide),
    "pow": (lambda a, b: a ** b, np.power),
    "maximum": (lambda a, b: a.maximum(b), np.maximum),
    "minimum": (lambda a, b: a.minimum(b), np.minimum),
    "lt": (lambda a, b: a < b, np.less),
    "eq": (lambda a, b: a == b, np.equal),
}
COMPARISONS = ("lt", "eq")


@st.composite
def binary_operands(draw):
    da, db = draw(st.sampled_from(DTYPES)), draw(st.sampled_from(DTYPES))
    if draw(st.booleans()):
        sa, sb = draw(hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                        max_side=3)).input_shapes
    else:  # independent shapes: often not broadcastable
        sa, sb = draw(shapes(max_dims=3)), draw(shapes(max_dims=3))
    a = draw(arrays(da, sa))
    if draw(st.integers(0, 3)) == 0:  # a Python scalar on the right
        # tenths: no 1e-300 scalars whose float32 rounding would be the only difference
        b = draw(st.one_of(st.booleans(), st.integers(-3, 3), st.integers(-30, 30).map(lambda k: k / 10)))
    else:
        b = draw(arrays(db, sb))
    return a, b


def _operand_meta(x):
    if isinstance(x, np.ndarray):
        return "tensor", x.dtype.name, x.ndim
    return "scalar", {bool: "bool", int: "int64", float: "float32"}[type(x)], 0


@FUZZ
@given(operands=binary_operands(), op=st.sampled_from(sorted(BINARY)))
def test_binary_ops_match_numpy_or_fail_clearly(operands, op):
    a_np, b_np = operands
    fn, ref = BINARY[op]
    a = tensor_of(a_np, requires_grad=True)
    b = tensor_of(b_np, requires_grad=True) if isinstance(b_np, np.ndarray) else b_np
    b_shape = np.shape(b_np)
    try:
        shape = np.broadcast_shapes(a_np.shape, b_shape)
    except ValueError:
        expect_error(lambda: fn(a, b), f"shapes {a_np.shape} and {b_shape} do not broadcast")
        return
    dtype = promote(_operand_meta(a_np), _operand_meta(b_np))
    both_bool = dtype == "bool"
    if op == "sub" and both_bool:
        expect_error(lambda: fn(a, b), "bool - bool")
        return
    if op == "pow" and CATEGORY[dtype] < 2 and np.any(np.asarray(b_np) < 0):
        expect_error(lambda: fn(a, b), "integers to negative integer powers")
        return
    out = expect_result(lambda: fn(a, b))
    if op in COMPARISONS:
        work = dtype if CATEGORY[dtype] == 2 else "float64"  # compare exactly
        expected, out_dtype = ref(a_np.astype(work), np.asarray(b_np, dtype=work)), "bool"
    elif op == "div":
        out_dtype = _float_result(dtype)
        expected = ref(a_np.astype(out_dtype), np.asarray(b_np).astype(out_dtype))
    elif op == "pow" and dtype == "bool":
        out_dtype = "int64"  # bool ** bool: numbers, not truth values
        expected = ref(a_np.astype(np.int64), np.asarray(b_np).astype(np.int64))
    else:
        out_dtype = dtype
        expected = ref(a_np.astype(dtype), np.asarray(b_np).astype(dtype))
    assert_matches(out, np.broadcast_to(expected, shape), out_dtype, rtol=1e-4)
    if out.requires_grad:
        out.sum().backward()
        for t in (a, b):
            if isinstance(t, mg.Tensor) and t.requires_grad:
                assert t.grad is not None and t.grad.shape == t.shape and t.grad.dtype == t.dtype


# -- elementwise unary ops --------------------------------------------------------------

UNARY = {  # name: (minigrad, numpy reference, accepts int/bool input)
    "exp": (lambda x: x.exp(), np.exp, True),
    "log": (lambda x: x.log(), np.log, True),
    "sqrt": (lambda x: x.sqrt(), np.sqrt, True),
    "sin": (lambda x: x.sin(), np.sin, True),
    "cos": (lambda x: x.cos(), np.cos, True),
    "abs": (lambda x: x.abs(), np.abs, True),
    "tanh": (lambda x: x.tanh(), np.tanh, False),
    "sigmoid": (lambda x: x.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), False),
    "relu": (lambda x: x.relu(), lambda a: np.maximum(a, 0), False),
    "neg": (lambda x: -x, np.negative, True),
}
_FLOAT_MATH = ("exp", "log", "sqrt", "sin", "cos")


@FUZZ
@given(dtype=st.sampled_from(DTYPES), shape=shapes(), op=st.sampled_from(sorted(UNARY)),
       data=st.data())
def test_unary_ops_match_numpy_or_fail_clearly(dtype, shape, op, data):
    x_np = data.draw(arrays(dtype, shape))
    fn, ref, ints_ok = UNARY[op]
    x = tensor_of(x_np, requires_grad=True)
    if dtype in ("int64", "bool") and not ints_ok or (op == "neg" and dtype == "bool"):
        expect_error(lambda: fn(x), f"{op} of a {dtype} tensor")
        return
    out = expect_result(lambda: fn(x))
    out_dtype = _float_result(dtype) if op in _FLOAT_MATH else dtype
    work = x_np.astype(out_dtype) if op in _FLOAT_MATH else x_np
    assert_matches(out, ref(work), out_dtype)
    if x.requires_grad:
        out.sum().backward()
        assert x.grad.shape == x.shape and x.grad.dtype == x.dtype


@FUZZ
@given(dtype=st.sampled_from(("float32", "float64", "int64")), shape=shapes(),
       lo=st.one_of(st.none(), st.integers(-3, 3), st.floats(-3, 3)),
       hi=st.one_of(st.none(), st.integers(-3, 3), st.floats(-3, 3)), data=st.data())
def test_clamp_matches_numpy_or_fails_clearly(dtype, shape, lo, hi, data):
    x_np = data.draw(arrays(dtype, shape))
    x = tensor_of(x_np)
    if lo is None and hi is None:
        expect_error(lambda: x.clamp(lo, hi), "clamp with neither bound")
        return
    if dtype == "int64" and any(isinstance(v, float) for v in (lo, hi)):
        return  # PyTorch promotes to float here; minigrad's int result is a known difference
    out = expect_result(lambda: x.clamp(lo, hi))
    expected = x_np
    if lo is not None:
        expected = np.maximum(expected, lo)
    if hi is not None:
        expected = np.minimum(expected, hi)  # min > max gives max, as PyTorch
    assert_matches(out, expected.astype(dtype), dtype)


# -- reductions -----------------------------------------------------------------------

REDUCTIONS = ("sum", "mean", "var", "std", "amax", "amin", "logsumexp", "max", "min", "argmax",
              "argmin")
_FLOAT_ONLY = ("mean", "var", "std")
_NO_IDENTITY = ("amax", "amin", "max", "min", "argmax", "argmin")
_SINGLE_DIM = ("max", "min", "argmax", "argmin")


@st.composite
def reduction_case(draw):
    op = draw(st.sampled_from(REDUCTIONS))
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(shapes(max_dims=3))
    nd = len(shape)
    if op in _SINGLE_DIM:
        dim = draw(st.one_of(st.none(), st.integers(-nd - 1, nd)))
    else:
        dim = draw(st.one_of(st.none(), st.integers(-nd - 1, nd),
                             st.lists(st.integers(-nd - 1, nd), max_size=3).map(tuple)))
    return op, dtype, draw(arrays(dtype, shape)), dim, draw(st.booleans())


def _reduce_reference(op, x, axes, keepdim):
    """numpy reduction over `axes` (None: all) with PyTorch's results for empty,
    0-d and degenerate cases."""
    if op in ("argmax", "argmin"):
        fn = np.argmax if op == "argmax" else np.argmin
        if x.ndim == 0:
            return np.asarray(0)
        if axes is None:
            out = np.asarray(fn(x.reshape(-1)))
            return out.reshape((1,) * x.ndim) if keepdim else out
        return fn(x, axis=axes[0], keepdims=keepdim)
    axes = tuple(range(x.ndim)) if axes is None else axes
    if op == "sum":
        return np.sum(x, axis=axes, keepdims=keepdim, dtype=x.dtype if x.dtype.kind == "f" else np.int64)
    if op == "mean":
        return np.mean(x, axis=axes, keepdims=keepdim)
    if op in ("var", "std"):
        n = math.prod(x.shape[d] for d in axes)
        v = np.var(x, axis=axes, keepdims=keepdim, ddof=1) if n > 1 else \
            np.full(np.sum(x, axis=axes, keepdims=keepdim).shape, np.nan, x.dtype)
        return np.sqrt(v) if op == "std" else v
    if op in ("amax", "max"):
        return np.amax(x, axis=axes, keepdims=keepdim)
    if op in ("amin", "min"):
        return np.amin(x, axis=axes, keepdims=keepdim)
    if op == "logsumexp":
        work = x.astype(_float_result(x.dtype.name))
        m = np.amax(work, axis=axes, keepdims=True) if work.size else np.zeros(())
        m = np.where(np.isfinite(m), m, 0)
        out = np.log(np.sum(np.exp(work - m), axis=axes, keepdims=True)) + m
        return out if keepdim else np.squeeze(out, axis=axes)
    raise AssertionError(op)


@FUZZ
@given(case=reduction_case())
def test_reductions_match_numpy_or_fail_clearly(case):
    op, dtype, x_np, dim, keepdim = case
    x = tensor_of(x_np, requires_grad=True)
    nd = max(x_np.ndim, 1)
    run = lambda: getattr(x, op)(dim, keepdim=keepdim)  # noqa: E731
    dims = () if dim is None else (dim,) if isinstance(dim, int) else dim
    if any(not -nd <= d < nd for d in dims):
        expect_error(run, f"dim {dim} out of range for {x_np.ndim} dims")
        return
    if len({d % nd for d in dims}) != len(dims):
        expect_error(run, f"dim {dim} repeats a dimension")
        return
    if dim is None or dim == ():  # no dims given, or an empty list: all of them, as PyTorch
        axes = None
    else:
        axes = tuple(sorted(d % nd for d in dims)) if x_np.ndim else ()
    if op in _FLOAT_ONLY and dtype in ("int64", "bool"):
        expect_error(run, f"{op} of a {dtype} tensor")
        return
    reduced = range(x_np.ndim) if axes is None else axes
    if op in _NO_IDENTITY and any(x_np.shape[d] == 0 for d in reduced):
        expect_error(run, f"{op} over an empty dimension")
        return
    out = expect_result(run)
    if op in ("max", "min") and dim is None:
        keepdim = False  # max() of everything: one value, whatever keepdim says
    if op in ("max", "min") and dim is not None:
        values, indices = out
        assert_matches(values, _reduce_reference(op, x_np, axes, keepdim), dtype)
        arg = "argmax" if op == "max" else "argmin"
        assert_matches(indices, _reduce_reference(arg, x_np, axes, keepdim), "int64")
        out = values
    else:
        expected = _reduce_reference(op, x_np, axes, keepdim)
        if op == "sum" and dtype == "bool":
            expected = expected.astype(np.int64)
        want = {"argmax": "int64", "argmin": "int64", "logsumexp": _float_result(dtype)}.get(
            op, "int64" if op == "sum" and dtype == "bool" else dtype)
        assert_matches(out, expected, want, rtol=1e-4)
    if out.requires_grad:
        out.sum().backward()
        assert x.grad.shape == x.shape and x.grad.dtype == x.dtype


# -- shape ops ----------------------------------------------------------------------

def _torch_squeeze(x, dim):
    if dim is None:
        return x.reshape(tuple(s for s in x.shape if s != 1))
    d = dim % max(x.ndim, 1)
    return x if x.ndim == 0 or x.shape[d] != 1 else np.squeeze(x, d)


def _torch_flatten(x, start, end):
    if x.ndim == 0:
        return x.reshape(1)
    s, e = start % x.ndim, end % x.ndim
    if not (-x.ndim <= start < x.ndim and -x.ndim <= end < x.ndim) or s > e:
        raise ValueError("bad flatten dims")
    return x.reshape(x.shape[:s] + (math.prod(x.shape[s:e + 1]),) + x.shape[e + 1:])


def _torch_expand(x, shape):
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError("fewer sizes than dims")
    full = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(shape))
    return np.broadcast_to(x, full)


def _check_dims(x, *dims):
    for d in dims:
        if not -max(x.ndim, 1) <= d < max(x.ndim, 1):
            raise IndexError("dim out of range")


@st.composite
def shape_op_case(draw):
    shape = draw(shapes(max_dims=4, max_side=3))
    x = draw(arrays("float64", shape))
    nd = len(shape)
    dim = st.integers(-nd - 2, nd + 1)
    op = draw(st.sampled_from(("reshape", "permute", "transpose", "unsqueeze", "squeeze",
                               "flatten", "expand")))
    if op == "reshape":
        if draw(st.booleans()):
            perm = draw(st.permutations(shape)) if shape else []
            target = list(perm)
            if target and draw(st.booleans()):
                target[draw(st.integers(0, len(target) - 1))] = -1
            args = (tuple(target),)
        else:
            args = (tuple(draw(st.lists(st.integers(-1, 4), max_size=4))),)
    elif op == "permute":
        args = tuple(draw(st.permutations(range(nd)))) if draw(st.booleans()) else \
            tuple(draw(st.lists(st.integers(-nd - 1, nd), max_size=nd + 1)))
    elif op in ("transpose", "flatten"):
        args = (draw(dim), draw(dim))
    elif op == "unsqueeze":
        args = (draw(st.integers(-nd - 2, nd + 1)),)
    elif op == "squeeze":
        args = (draw(st.one_of(st.none(), dim)),)
    else:
        args = (tuple(draw(st.lists(st.sampled_from([-1, 1, 2, 3] + list(shape)), max_size=5))),)
    return op, x, args


def _shape_reference(op, x, args):
    if op == "reshape":
        (target,) = args
        if target.count(-1) > 1:
            raise ValueError("two -1")
        if -1 in target and math.prod(s for s in target if s != -1) == 0:
            raise ValueError("cannot infer -1 with a zero size")  # ambiguous: PyTorch refuses
        return x.reshape(target)
    if op == "permute":
        if sorted(d % max(x.ndim, 1) for d in args) != list(range(x.ndim)) or \
                any(not -max(x.ndim, 1) <= d < max(x.ndim, 1) for d in args):
            raise ValueError("not a permutation")
        return np.transpose(x, [d % x.ndim for d in args]) if x.ndim else x
    if op == "transpose":
        _check_dims(x, *args)
        return np.swapaxes(x, *args) if x.ndim >= 2 else x
    if op == "unsqueeze":
        (d,) = args
        if not -(x.ndim + 1) <= d <= x.ndim:
            raise IndexError("dim out of range")
        return np.expand_dims(x, d)
    if op == "squeeze":
        if args[0] is not None:
            _check_dims(x, args[0])
        return _torch_squeeze(x, args[0])
    if op == "flatten":
        return _torch_flatten(x, *args)
    return _torch_expand(x, args[0])


@FUZZ
@given(case=shape_op_case())
def test_shape_ops_match_numpy_or_fail_clearly(case):
    op, x_np, args = case
    x = tensor_of(x_np, requires_grad=True)
    run = lambda: getattr(x, op)(*args)  # noqa: E731
    try:
        expected = _shape_reference(op, x_np, args)
    except (ValueError, IndexError) as e:
        expect_error(run, f"{op}{args} on shape {x_np.shape}: {e}")
        return
    out = expect_result(run)
    assert_matches(out, expected, "float64")
    out.sum().backward()
    assert x.grad.shape == x.shape


@FUZZ
@given(data=st.data(), n=st.integers(0, 3), dim=st.integers(-4, 3), stack=st.booleans())
def test_cat_and_stack_match_numpy_or_fail_clearly(data, n, dim, stack):
    base = data.draw(shapes(max_dims=3, max_side=3))
    arrays_ = []
    join_dim = dim % len(base) if base and -len(base) <= dim < len(base) else None
    for _ in range(n):
        shape = data.draw(mostly(st.just(base), shapes(max_dims=3, max_side=3)))
        if join_dim is not None and not stack and data.draw(st.booleans()):
            shape = shape[:join_dim] + (data.draw(st.integers(0, 3)),) + shape[join_dim + 1:]
        arrays_.append(data.draw(arrays(data.draw(st.sampled_from(DTYPES)), shape)))
    tensors = [tensor_of(a) for a in arrays_]
    run = (lambda: mg.stack(tensors, dim)) if stack else (lambda: mg.cat(tensors, dim))
    try:
        if not arrays_ or (not stack and any(a.ndim == 0 for a in arrays_)):
            raise ValueError("nothing to join, or a 0-d tensor for cat")
        if stack and len({a.shape for a in arrays_}) > 1:
            raise ValueError("stack needs equal shapes")
        dtype = promote(*[("tensor", a.dtype.name, 1) for a in arrays_])
        nd = arrays_[0].ndim + (1 if stack else 0)
        if not -max(nd, 1) <= dim < max(nd, 1):
            raise IndexError("dim out of range")
        join = np.stack if stack else np.concatenate
        expected = join([a.astype(dtype) for a in arrays_], axis=dim)
    except (ValueError, IndexError) as e:
        expect_error(run, f"{'stack' if stack else 'cat'} of {[a.shape for a in arrays_]}, dim {dim}: {e}")
        return
    assert_matches(expect_result(run), expected, dtype)


# -- indexing -----------------------------------------------------------------------

@st.composite
def index_case(draw):
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    x = draw(arrays("float64", shape))
    items = []
    for size in shape[:draw(st.integers(0, len(shape)))]:
        kind = draw(st.sampled_from(("int", "slice", "none", "list", "mask", "ellipsis")))
        if kind == "int":
            items.append(draw(st.integers(-size - 2, size + 1)))
        elif kind == "slice":
            bound = st.one_of(st.none(), st.integers(-size - 2, size + 2))
            items.append(slice(draw(bound), draw(bound), draw(st.one_of(st.none(), st.integers(1, 3)))))
        elif kind == "none":
            items.append(None)
        elif kind == "list":
            items.append(draw(st.lists(st.integers(-size - 1, size), max_size=4)))
        elif kind == "mask":
            items.append(np.array(draw(st.lists(st.booleans(), min_size=size, max_size=size + 1))))
        else:
            items.append(Ellipsis)
    return x, tuple(items)


def _as_index_arg(item):
    if isinstance(item, list):
        return mg.tensor(item, dtype=mg.int64)
    if isinstance(item, np.ndarray):
        return mg.tensor(item)
    return item


@FUZZ
@given(case=index_case())
def test_indexing_matches_numpy_or_fails_clearly(case):
    x_np, index = case
    x = tensor_of(x_np, requires_grad=True)
    mg_index = tuple(_as_index_arg(i) for i in index)
    np_index = tuple(np.asarray(i, dtype=np.int64) if isinstance(i, list) else i for i in index)
    try:
        expected = x_np[np_index]
    except IndexError as e:
        expect_error(lambda: x[mg_index], f"numpy refuses index {index}: {e}")
        return
    out = expect_result(lambda: x[mg_index])
    assert_matches(out, expected, "float64")
    out.sum().backward()
    # each element's gradient counts how often the index picked it
    picked = np.arange(x_np.size).reshape(x_np.shape)[np_index]
    counts = np.bincount(np.ravel(picked), minlength=x_np.size).reshape(x_np.shape)
    assert_matches(x.grad, counts.astype(np.float64), "float64")


# -- matmul and linear ----------------------------------------------------------------

@FUZZ
@given(sa=shapes(max_dims=3, max_side=3), sb=shapes(max_dims=3, max_side=3),
       da=st.sampled_from(("float32", "float64", "int64")),
       db=st.sampled_from(("float32", "float64", "int64")), data=st.data())
def test_matmul_matches_numpy_or_fails_clearly(sa, sb, da, db, data):
    if data.draw(mostly(st.just(True), st.just(False))):
        db = da
        if len(sa) >= 1 and len(sb) >= 2:
            sb = sb[:-2] + (sa[-1],) + sb[-1:]  # make the inner sizes agree
        elif len(sa) >= 1 and len(sb) == 1:
            sb = sa[-1:]
    a_np, b_np = data.draw(arrays(da, sa)), data.draw(arrays(db, sb))
    a, b = tensor_of(a_np, True), tensor_of(b_np, True)
    try:
        if da != db:
            raise TypeError("dtypes differ")
        expected = np.matmul(a_np, b_np)
    except (ValueError, TypeError) as e:
        expect_error(lambda: a @ b, f"{sa} @ {sb} ({da}, {db}): {e}")
        return
    out = expect_result(lambda: a @ b)
    assert_matches(out, expected, da, rtol=1e-4)
    if out.requires_grad:
        out.sum().backward()
        assert a.grad.shape == a.shape and b.grad.shape == b.shape


@FUZZ
@given(in_f=st.integers(0, 4), out_f=st.integers(0, 4), bias=st.booleans(),
       layer_dtype=st.sampled_from(FLOATS), x_dtype=st.sampled_from(DTYPES),
       lead=shapes(max_dims=2, max_side=3), last=st.integers(0, 5), data=st.data())
def test_linear_matches_numpy_or_fails_clearly(in_f, out_f, bias, layer_dtype, x_dtype, lead,
                                               last, data):
    if data.draw(mostly(st.just(True), st.just(False))):
        last, x_dtype = in_f, layer_dtype
    lin = nn.Linear(in_f, out_f, bias=bias).to(getattr(mg, layer_dtype))
    x_np = data.draw(arrays(x_dtype, lead + (last,)))
    if data.draw(st.integers(0, 5)) == 0:
        x_np = x_np.reshape(-1)[:1].reshape(()) if x_np.size else np.zeros((), x_dtype)
    x = tensor_of(x_np, requires_grad=True)
    if x_dtype != layer_dtype or x_np.ndim == 0 or x_np.shape[-1] != in_f:
        expect_error(lambda: lin(x), f"Linear({in_f}, {out_f}) {layer_dtype} on {x_dtype} {x_np.shape}")
        return
    out = expect_result(lambda: lin(x))
    w = lin.weight.detach().numpy()
    expected = x_np @ w.T + (lin.bias.detach().numpy() if bias else 0)
    assert_matches(out, expected.astype(layer_dtype), layer_dtype, rtol=1e-4)
    out.sum().backward()
    assert x.grad.shape == x.shape and lin.weight.grad.shape == w.shape


# -- losses ----------------------------------------------------------------------------

def _log_softmax(x, axis):
    m = np.max(x, axis=axis, keepdims=True) if x.size else 0
    return x - m - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def _class_loss_reference(name, x, t, w, ignore_index, reduction, smoothing):
    """PyTorch's cross_entropy / nll_loss for class indices, written out in numpy."""
    class_dim = 0 if x.ndim == 1 else 1
    c = x.shape[class_dim]
    rows = np.moveaxis(x, class_dim, -1).reshape(-1, c)
    tt = t.reshape(-1)
    valid = tt != ignore_index
    if np.any(valid & ((tt < 0) | (tt >= c))):
        raise ValueError("target out of range")
    w = np.ones(c, x.dtype) if w is None else w
    safe = np.where(valid, tt, 0)
    logp = _log_softmax(rows, 1) if name == "cross_entropy" else rows
    picked = -logp[np.arange(len(tt)), safe] * w[safe]
    losses = np.where(valid, picked * (1 - smoothing), 0)
    if smoothing:
        losses = losses + np.where(valid, -(logp * w).sum(1) * smoothing / c, 0)
    if reduction == "none":
        return losses.reshape(t.shape)
    if reduction == "sum":
        return losses.sum()
    return losses.sum() / np.where(valid, w[safe], 0).sum()


@st.composite
def class_loss_case(draw):
    name = draw(st.sampled_from(("cross_entropy", "nll_loss")))
    dtype = draw(st.sampled_from(FLOATS))
    n, c = draw(st.integers(0, 3)), draw(st.integers(0, 4))
    spatial = draw(st.lists(st.integers(0, 2), max_size=1))
    shape = (c,) if draw(st.integers(0, 4)) == 0 else (n, c, *spatial)
    x = draw(arrays(dtype, shape))
    t_shape = () if len(shape) == 1 else (n, *spatial)
    if draw(st.integers(0, 6)) == 0:
        t_shape = draw(shapes(max_dims=2, max_side=3))
    t_dtype = "int64" if draw(st.integers(0, 5)) else draw(st.sampled_from(("float32", "bool")))
    lo = draw(mostly(st.just(0), st.just(-2)))  # mostly class indices, sometimes out of range
    t = draw(arrays(t_dtype, t_shape, lo=lo, hi=max(c - 1, 0) if lo == 0 else c + 1))
    ignore_index = draw(st.sampled_from((-100, -1, 0)))
    weight = draw(arrays(dtype, (c,), lo=0, hi=2)) if draw(st.booleans()) else None
    reduction = draw(mostly(st.sampled_from(("mean", "sum", "none")), st.just("avg")))
    smoothing = draw(mostly(st.sampled_from((0.0, 0.1, 1.0)), st.just(1.5))) \
        if name == "cross_entropy" else 0.0
    return name, x, t, weight, ignore_index, reduction, smoothing


@FUZZ
@given(case=class_loss_case())
def test_class_index_losses_match_reference_or_fail_clearly(case):
    name, x_np, t_np, w_np, ignore_index, reduction, smoothing = case
    x, t = tensor_of(x_np, requires_grad=True), tensor_of(t_np)
    w = None if w_np is None else tensor_of(w_np)
    kwargs = dict(weight=w, ignore_index=ignore_index, reduction=reduction)
    if name == "cross_entropy":
        kwargs["label_smoothing"] = smoothing
    run = lambda: getattr(F, name)(x, t, **kwargs)  # noqa: E731
    sample_shape = () if x_np.ndim == 1 else (x_np.shape[0],) + x_np.shape[2:]
    probabilities = name == "cross_entropy" and t_np.dtype.kind == "f" and t_np.shape == x_np.shape
    assume(not probabilities)  # class-probability targets are covered in test_losses.py
    try:
        if reduction not in ("mean", "sum", "none") or smoothing > 1:
            raise ValueError("bad reduction or label_smoothing")
        if t_np.dtype != np.int64 or t_np.shape != sample_shape:
            raise ValueError("target dtype or shape")
        expected = _class_loss_reference(name, x_np, t_np, w_np, ignore_index, reduction, smoothing)
    except ValueError as e:
        expect_error(run, f"{name}: {e}")
        return
    out = expect_result(run)
    assert_matches(out, np.asarray(expected, x_np.dtype), x_np.dtype, rtol=1e-4)
    if out.numel():
        out.sum().backward()
        assert x.grad.shape == x.shape


ELEMENTWISE_LOSSES = {
    "mse_loss": lambda x, y: (x - y) ** 2,
    "l1_loss": lambda x, y: np.abs(x - y),
    "binary_cross_entropy": lambda x, y: -(y * np.maximum(np.log(x), -100)
                                           + (1 - y) * np.maximum(np.log(1 - x), -100)),
    "binary_cross_entropy_with_logits": lambda x, y: np.maximum(x, 0) - x * y
    + np.log1p(np.exp(-np.abs(x))),
}


@FUZZ
@given(name=st.sampled_from(sorted(ELEMENTWISE_LOSSES)), dtype=st.sampled_from(FLOATS),
       shape=shapes(max_dims=3, max_side=3), reduction=st.sampled_from(("mean", "sum", "none", "max")),
       data=st.data())
def test_elementwise_losses_match_reference_or_fail_clearly(name, dtype, shape, reduction, data):
    probability = name == "binary_cross_entropy"
    lo, hi = (0, 1) if probability and data.draw(st.integers(0, 4)) else (-3, 3)
    x_np = data.draw(arrays(dtype, shape, lo=lo, hi=hi))
    t_shape = shape if data.draw(st.integers(0, 4)) else data.draw(shapes(max_dims=3, max_side=3))
    t_np = data.draw(arrays(dtype, t_shape, lo=0, hi=1))
    x, t = tensor_of(x_np, requires_grad=True), tensor_of(t_np)
    run = lambda: getattr(F, name)(x, t, reduction=reduction)  # noqa: E731
    strict = name.startswith("binary")
    try:
        if reduction not in ("mean", "sum", "none"):
            raise ValueError("bad reduction")
        if t_shape != shape and (strict or np.broadcast_shapes(shape, t_shape) is None):
            raise ValueError("shape mismatch")
        if probability and x_np.size and not (x_np.min() >= 0 and x_np.max() <= 1):
            raise ValueError("probabilities outside [0, 1]")
        x_b, t_b = np.broadcast_arrays(x_np, t_np)
        per = ELEMENTWISE_LOSSES[name](x_b.astype(np.float64), t_b.astype(np.float64))
    except ValueError as e:
        expect_error(run, f"{name}{shape} vs {t_shape}, reduction={reduction!r}: {e}")
        return
    out = expect_result(run)
    expected = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](per)
    assert_matches(out, np.asarray(expected).astype(dtype), dtype, rtol=1e-4)
    if out.numel():
        out.sum().backward()
        assert x.grad.shape == x.shape


@FUZZ
@given(dtype=mostly(st.sampled_from(FLOATS), st.sampled_from(DTYPES)), shape=shapes(max_dims=3),
       dim=st.integers(-4, 3), log=st.booleans(), data=st.data())
def test_softmax_matches_numpy_or_fails_clearly(dtype, shape, dim, log, data):
    x_np = data.draw(arrays(dtype, shape, lo=-20, hi=20))
    x = tensor_of(x_np, requires_grad=True)
    fn = F.log_softmax if log else F.softmax
    if not -max(len(shape), 1) <= dim < max(len(shape), 1) or dtype not in FLOATS:
        expect_error(lambda: fn(x, dim), f"{fn.__name__} of {dtype} {shape} over dim {dim}")
        return
    out = expect_result(lambda: fn(x, dim))
    axis = dim % len(shape) if shape else None
    ls = _log_softmax(x_np.astype(np.float64), axis) if x_np.size else x_np.astype(np.float64)
    assert_matches(out, ls if log else np.exp(ls), dtype, rtol=1e-4)
    out.sum().backward()
    assert x.grad.shape == x.shape


# -- activation and dropout layers ----------------------------------------------------

def _gelu(x):
    from math import erf
    return x * 0.5 * (1 + np.vectorize(erf)(x / math.sqrt(2))) if x.size else x


ACTIVATIONS = {  # name: (make layer from params, numpy reference, params strategy)
    "ReLU": (lambda: nn.ReLU(), lambda x: np.maximum(x, 0)),
    "LeakyReLU": (lambda s: nn.LeakyReLU(s), lambda x, s: np.where(x > 0, x, x * s)),
    "ELU": (lambda a: nn.ELU(a), lambda x, a: np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))),
    "Softplus": (lambda b, th: nn.Softplus(b, th),
                 lambda x, b, th: np.where(x * b > th, x, np.log1p(np.exp(x * b)) / b)),
    "Hardtanh": (lambda lo, hi: nn.Hardtanh(lo, hi), lambda x, lo, hi: np.clip(x, lo, hi)),
    "GELU": (lambda: nn.GELU(), _gelu),
    "SiLU": (lambda: nn.SiLU(), lambda x: x / (1 + np.exp(-x))),
    "Tanh": (lambda: nn.Tanh(), np.tanh),
}
_PARAM_COUNT = {"LeakyReLU": 1, "ELU": 1, "Softplus": 2, "Hardtanh": 2}


@FUZZ
@given(name=st.sampled_from(sorted(ACTIVATIONS)),
       dtype=mostly(st.sampled_from(FLOATS), st.sampled_from(DTYPES)), shape=shapes(max_dims=3),
       data=st.data())
def test_activation_layers_match_numpy_or_fail_clearly(name, dtype, shape, data):
    make, ref = ACTIVATIONS[name]
    params = data.draw(st.lists(mostly(st.floats(-3, 3), st.sampled_from([float("nan"), "x"])),
                                min_size=_PARAM_COUNT.get(name, 0), max_size=_PARAM_COUNT.get(name, 0)))
    bad = [p for p in params if not isinstance(p, float) or p != p]
    if name == "Softplus" and not bad and params[0] == 0:
        bad = ["beta = 0"]
    if name == "Hardtanh" and not bad and params[0] > params[1]:
        bad = ["min_val > max_val"]
    if bad:
        expect_error(lambda: make(*params), f"{name}{tuple(params)}")
        return
    module = expect_result(lambda: make(*params))
    x_np = data.draw(arrays(dtype, shape))
    x = tensor_of(x_np, requires_grad=True)
    if dtype not in FLOATS:
        expect_error(lambda: module(x), f"{name} on a {dtype} tensor")
        return
    if name == "Softplus":  # off the switch point, where float32 rounding picks the branch
        assume(np.all(np.abs(x_np.astype(np.float64) * params[0] - params[1]) > 1e-3))
    out = expect_result(lambda: module(x))
    expected = ref(x_np.astype(np.float64), *params)
    assert_matches(out, np.asarray(expected).astype(dtype), dtype, rtol=1e-4)
    out.sum().backward()
    assert x.grad.shape == x.shape


@FUZZ
@given(p=mostly(st.floats(0, 1), st.one_of(st.floats(-0.5, 1.5), st.just(float("nan")))),
       training=st.booleans(),
       dtype=st.sampled_from(DTYPES), shape=shapes(max_dims=3), data=st.data())
def test_dropout_is_identity_or_scaled_mask_or_fails_clearly(p, training, dtype, shape, data):
    x_np = data.draw(arrays(dtype, shape))
    x = tensor_of(x_np)
    if not 0 <= p <= 1:
        expect_error(lambda: nn.Dropout(p), f"Dropout(p={p})")
        return
    drop = nn.Dropout(p).train(training)
    if training and 0 < p and dtype not in FLOATS:
        expect_error(lambda: drop(x), f"dropout of a {dtype} tensor in training")
        return
    out = expect_result(lambda: drop(x))
    got = out.numpy()
    assert out.shape == x.shape and out.dtype == x.dtype
    if not training or p == 0:
        np.testing.assert_array_equal(got, x_np)
    elif p == 1:
        np.testing.assert_array_equal(got, np.zeros_like(x_np))
    else:
        scaled = (x_np / (1 - p)).astype(dtype)
        assert np.all(np.isclose(got, 0) | np.isclose(got, scaled, rtol=1e-5, atol=1e-6))


# -- normalization, convolution and pooling layers ---------------------------------------

def _in_dtype(module, dtype):
    """The module in a float input's dtype (a mismatch is tested on its own)."""
    return module.to(getattr(mg, dtype)) if dtype in FLOATS else module


def _batch_norm_reference(x, eps=1e-5):
    axes = (0,) + tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


@FUZZ
@given(kind=st.sampled_from(("BatchNorm1d", "BatchNorm2d")), channels=st.integers(1, 3),
       dtype=mostly(st.sampled_from(FLOATS), st.sampled_from(DTYPES)), training=st.booleans(),
       data=st.data())
def test_batch_norm_matches_numpy_or_fails_clearly(kind, channels, dtype, training, data):
    ranks = (2, 3) if kind == "BatchNorm1d" else (4,)
    rank = data.draw(mostly(st.sampled_from(ranks), st.integers(1, 5)))
    shape = data.draw(shapes(min_dims=rank, max_dims=rank, max_side=3))
    if rank >= 2 and data.draw(mostly(st.just(True), st.just(False))):
        shape = (shape[0], channels) + shape[2:]
    bn = _in_dtype(getattr(nn, kind)(channels), dtype).train(training)
    x_np = data.draw(arrays(dtype, shape))
    x = tensor_of(x_np, requires_grad=True)
    per_channel = shape[0] * math.prod(shape[2:]) if len(shape) >= 2 else 0
    if dtype not in FLOATS or len(shape) not in ranks or shape[1] != channels or \
            (training and per_channel == 1):
        expect_error(lambda: bn(x), f"{kind}({channels}) {'train' if training else 'eval'} on "
                                    f"{dtype} {shape}")
        return
    result, error = attempt(lambda: bn(x))
    if per_channel == 0:
        return  # an empty batch: a clear error or an empty result both fine
    assert error is None, f"unexpected {type(error).__name__}: {error}"
    expected = _batch_norm_reference(x_np.astype(np.float64)) if training else \
        x_np / np.sqrt(1 + 1e-5)
    assert_matches(result, expected.astype(dtype), dtype, rtol=1e-3)
    result.sum().backward()
    assert x.grad.shape == x.shape


@FUZZ
@given(normalized=shapes(min_dims=1, max_dims=2, min_side=1, max_side=3),
       lead=shapes(max_dims=2, max_side=3), dtype=st.sampled_from(DTYPES), data=st.data())
def test_layer_norm_matches_numpy_or_fails_clearly(normalized, lead, dtype, data):
    trailing = normalized if data.draw(st.integers(0, 3)) else data.draw(
        shapes(min_dims=1, max_dims=2, min_side=1, max_side=3))
    ln = _in_dtype(nn.LayerNorm(normalized), dtype)
    x_np = data.draw(arrays(dtype, lead + trailing))
    x = tensor_of(x_np, requires_grad=True)
    k = len(normalized)
    if dtype not in FLOATS or x_np.ndim < k or x_np.shape[x_np.ndim - k:] != normalized:
        expect_error(lambda: ln(x), f"LayerNorm({normalized}) on {dtype} {x_np.shape}")
        return
    out = expect_result(lambda: ln(x))
    axes = tuple(range(x_np.ndim - len(normalized), x_np.ndim))
    work = x_np.astype(np.float64)
    expected = (work - work.mean(axis=axes, keepdims=True)) / np.sqrt(
        work.var(axis=axes, keepdims=True) + 1e-5) if work.size else work
    assert_matches(out, expected.astype(dtype), dtype, rtol=1e-3)
    out.sum().backward()
    assert x.grad.shape == x.shape


@FUZZ
@given(groups=st.integers(0, 3), channels=st.integers(1, 6), shape=shapes(min_dims=1, max_dims=4,
                                                                           max_side=3),
       data=st.data())
def test_group_norm_matches_numpy_or_fails_clearly(groups, channels, shape, data):
    if data.draw(mostly(st.just(True), st.just(False))):
        groups = max(groups, 1)
        channels = groups * max(channels // groups, 1)
    if groups == 0 or channels % groups:
        expect_error(lambda: nn.GroupNorm(groups, channels), f"GroupNorm({groups}, {channels})")
        return
    gn = nn.GroupNorm(groups, channels).double()
    if data.draw(mostly(st.just(True), st.just(False))) and len(shape) >= 2:
        shape = (shape[0], channels) + shape[2:]
    x_np = data.draw(arrays("float64", shape))
    x = tensor_of(x_np, requires_grad=True)
    # PyTorch's check: N * C / G * prod(spatial) == 1 has nothing to normalize against
    single = len(shape) >= 2 and shape[0] * channels // groups * math.prod(shape[2:]) == 1
    if len(shape) < 2 or shape[1] != channels or single:
        expect_error(lambda: gn(x), f"GroupNorm({groups}, {channels}) on {shape}")
        return
    result, error = attempt(lambda: gn(x))
    if x_np.size == 0:
        return  # empty batch or spatial dims: a clear error or an empty result
    assert error is None, f"unexpected {type(error).__name__}: {error}"
    g = x_np.reshape(shape[0], groups, -1)
    expected = ((g - g.mean(2, keepdims=True)) / np.sqrt(g.var(2, keepdims=True) + 1e-5))
    assert_matches(result, expected.reshape(shape), "float64", rtol=1e-8)


def _conv2d_reference(x, w, b, stride, padding, dilation, groups):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, oh, ow))
    og = o // groups
    for oc in range(o):
        g = oc // og
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg,
                           i * stride:i * stride + dilation * (kh - 1) + 1:dilation,
                           j * stride:j * stride + dilation * (kw - 1) + 1:dilation]
                out[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
    return out + (0 if b is None else b.reshape(1, -1, 1, 1))


@FUZZ
@given(cin=st.integers(1, 4), cout=st.integers(1, 4), groups=st.integers(1, 3),
       kernel=st.integers(1, 3), stride=mostly(st.integers(1, 2), st.just(0)),
       padding=mostly(st.integers(0, 2), st.just(-1)), dilation=st.integers(1, 2),
       n=mostly(st.integers(1, 2), st.just(0)), channels=st.integers(1, 4),
       size=st.integers(1, 5), bias=st.booleans(), data=st.data())
def test_conv2d_matches_reference_or_fails_clearly(cin, cout, groups, kernel, stride, padding,
                                                    dilation, n, channels, size, bias, data):
    if data.draw(mostly(st.just(True), st.just(False))):
        cin, cout = cin * groups, cout * groups  # channels divisible by groups
    Conv2d = nn.Conv2d
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias)
    if cin % groups or cout % groups or stride < 1 or padding < 0:
        expect_error(lambda: Conv2d(cin, cout, kernel, **args), f"Conv2d({cin}, {cout}, {kernel}, {args})")
        return
    conv = Conv2d(cin, cout, kernel, **args).double()
    if data.draw(mostly(st.just(True), st.just(False))):
        channels = cin
    x_np = data.draw(arrays("float64", (n, channels, size, size)))
    x = tensor_of(x_np, requires_grad=True)
    span = dilation * (kernel - 1) + 1
    if channels != cin or size + 2 * padding < span:
        expect_error(lambda: conv(x), f"Conv2d({cin}, {cout}, {kernel}, {args}) on {x_np.shape}")
        return
    result, error = attempt(lambda: conv(x))
    if n == 0:
        return  # an empty batch: a clear error or an empty result
    assert error is None, f"unexpected {type(error).__name__}: {error}"
    b = conv.bias.detach().numpy() if bias else None
    expected = _conv2d_reference(x_np, conv.weight.detach().numpy(), b, stride, padding, dilation, groups)
    assert_matches(result, expected, "float64", rtol=1e-9)
    result.sum().backward()
    assert x.grad.shape == x.shape and conv.weight.grad.shape == conv.weight.shape


def _pool_reference(x, kernel, stride, padding, reduce):
    n, c, h, w = x.shape
    fill = -np.inf if reduce is np.max else 0.0
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)), constant_values=fill)
    oh, ow = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
    out = np.empty((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            window = xp[:, :, i * stride:i * stride + kernel, j * stride:j * stride + kernel]
            out[:, :, i, j] = reduce(window, axis=(2, 3))
    return out


@FUZZ
@given(kind=st.sampled_from(("MaxPool2d", "AvgPool2d")), kernel=mostly(st.integers(1, 3), st.just(0)),
       stride=mostly(st.one_of(st.none(), st.integers(1, 2)), st.just(0)),
       padding=mostly(st.integers(0, 1), st.sampled_from([-1, 2])),
       shape=st.tuples(mostly(st.integers(1, 2), st.just(0)), st.integers(1, 2), st.integers(1, 5),
                       st.integers(1, 5)),
       data=st.data())
def test_pooling_matches_reference_or_fails_clearly(kind, kernel, stride, padding, shape, data):
    Pool = getattr(nn, kind)
    step = kernel if stride is None else stride
    if kernel < 1 or step < 1 or padding < 0 or padding > kernel // 2:
        def run():
            return Pool(kernel, stride, padding)(tensor_of(np.zeros((1, 1, 4, 4))))
        expect_error(run, f"{kind}({kernel}, {stride}, {padding})")
        return
    pool = Pool(kernel, stride, padding)
    x_np = data.draw(arrays("float64", shape))
    x = tensor_of(x_np, requires_grad=True)
    if min(shape[2:]) + 2 * padding < kernel:
        expect_error(lambda: pool(x), f"{kind}({kernel}, {stride}, {padding}) on {shape}")
        return
    result, error = attempt(lambda: pool(x))
    if shape[0] == 0:
        return  # an empty batch: a clear error or an empty result
    assert error is None, f"unexpected {type(error).__name__}: {error}"
    reduce = np.max if kind == "MaxPool2d" else np.mean
    assert_matches(result, _pool_reference(x_np, kernel, step, padding, reduce), "float64")
    result.sum().backward()
    assert x.grad.shape == x.shape
