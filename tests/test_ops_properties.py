"""Property tests: random broadcastable shapes, forward values against numpy,
gradient shapes against input shapes."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minigrad as mg

OPS = {
    "add": (lambda a, b: a + b, np.add),
    "sub": (lambda a, b: a - b, np.subtract),
    "mul": (lambda a, b: a * b, np.multiply),
    "div": (lambda a, b: a / (b.abs() + 1.0), lambda a, b: a / (np.abs(b) + 1.0)),
    "maximum": (mg.maximum, np.maximum),
    "minimum": (mg.minimum, np.minimum),
}


@settings(max_examples=60, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4),
       op=st.sampled_from(sorted(OPS)), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**31 - 1))
def test_binary_forward_matches_numpy_and_grad_shapes(shapes, op, dtype, seed):
    r = np.random.default_rng(seed)
    an = r.standard_normal(shapes.input_shapes[0]).astype(dtype)
    bn = r.standard_normal(shapes.input_shapes[1]).astype(dtype)
    fn, ref = OPS[op]
    a = mg.tensor(an, requires_grad=True)
    b = mg.tensor(bn, requires_grad=True)
    out = fn(a, b)
    expected = ref(an, bn)
    assert out.shape == expected.shape
    assert out.dtype.np == expected.dtype
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-6, atol=1e-6)
    out.sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
    assert a.grad.dtype == a.dtype and b.grad.dtype == b.dtype


@settings(max_examples=60, deadline=None)
@given(arr=hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
                      elements=st.floats(-10, 10)),
       data=st.data())
def test_reductions_match_numpy(arr, data):
    ndim = arr.ndim
    dims = data.draw(st.lists(st.integers(0, ndim - 1), unique=True, min_size=1, max_size=ndim))
    keep = data.draw(st.booleans())
    t = mg.tensor(arr, requires_grad=True)
    axis = tuple(dims)
    for name, ref in (("sum", np.sum), ("mean", np.mean), ("amax", np.amax), ("amin", np.amin)):
        out = getattr(t, name)(dim=axis, keepdim=keep)
        np.testing.assert_allclose(out.detach().numpy(), ref(arr, axis=axis, keepdims=keep), rtol=1e-12)
        out.sum().backward()
        assert t.grad.shape == t.shape
        t.grad = None
    np.testing.assert_allclose(t.logsumexp(dim=axis).detach().numpy(),
                               np.log(np.exp(arr).sum(axis=axis)), rtol=1e-10, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(min_dims=0, max_dims=2, max_side=4,
                                                 signature="(m,n),(n,p)->(m,p)"),
       seed=st.integers(0, 2**31 - 1))
def test_matmul_matches_numpy(shapes, seed):
    r = np.random.default_rng(seed)
    an = r.standard_normal(shapes.input_shapes[0])
    bn = r.standard_normal(shapes.input_shapes[1])
    a = mg.tensor(an, requires_grad=True)
    b = mg.tensor(bn, requires_grad=True)
    out = a @ b
    np.testing.assert_allclose(out.detach().numpy(), an @ bn, rtol=1e-10, atol=1e-12)
    out.sum().backward()
    assert a.grad.shape == a.shape and b.grad.shape == b.shape
