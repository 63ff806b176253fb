"""conv2d and nn.Conv2d: a direct loop reference over many random
configurations (stride, padding incl. 'same'/'valid', dilation, groups,
rectangular kernels and inputs, batch 1), finite differences in float64,
compiled kernels against the reference ones through the op, PyTorch when
installed, initialization, repr and error messages."""
import math

import numpy as np
import pytest

import minigrad as mg
from minigrad.nn.layers.conv import Conv2d
from minigrad.ops.conv import conv2d

from compiled_kernels import require_compiled_cpu_kernels


def _np(t):
    return np.asarray(t.detach())


# ---------------------------------------------------------------- direct reference

def explicit_padding(padding, kernel, dilation):
    """((top, bottom), (left, right)) for an int/pair/'same'/'valid' padding."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return (ph, ph), (pw, pw)


def naive_conv2d(x, w, b, stride, padding, dilation, groups):
    """Every output element as an explicit sum over its window."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    rows, cols = explicit_padding(padding, (kh, kw), dilation)
    xp = np.pad(x, ((0, 0), (0, 0), rows, cols))
    oh = (xp.shape[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (xp.shape[3] - dw * (kw - 1) - 1) // sw + 1
    og = o // groups
    y = np.zeros((n, o, oh, ow))
    for b_ in range(n):
        for oc in range(o):
            g = oc // og
            for oy in range(oh):
                for ox in range(ow):
                    win = xp[b_, g * cg:(g + 1) * cg, oy * sh:oy * sh + dh * (kh - 1) + 1:dh,
                             ox * sw:ox * sw + dw * (kw - 1) + 1:dw]
                    y[b_, oc, oy, ox] = np.sum(win * w[oc]) + (b[oc] if b is not None else 0.0)
    return y


def naive_conv2d_grads(x, w, dy, stride, padding, dilation, groups):
    """(dx, dw, db) by adding each output gradient into its window."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    rows, cols = explicit_padding(padding, (kh, kw), dilation)
    xp = np.pad(x, ((0, 0), (0, 0), rows, cols))
    dxp, dwt = np.zeros_like(xp), np.zeros_like(w)
    og = o // groups
    for b_, oc, oy, ox in np.ndindex(dy.shape):
        g = oc // og
        win = (b_, slice(g * cg, (g + 1) * cg), slice(oy * sh, oy * sh + dh * (kh - 1) + 1, dh),
               slice(ox * sw, ox * sw + dw * (kw - 1) + 1, dw))
        dxp[win] += w[oc] * dy[b_, oc, oy, ox]
        dwt[oc] += xp[win] * dy[b_, oc, oy, ox]
    dx = dxp[:, :, rows[0]:rows[0] + h, cols[0]:cols[0] + wd]
    return dx, dwt, dy.sum(axis=(0, 2, 3))


def random_config(seed):
    """A valid random configuration: shapes and conv2d keyword arguments."""
    rng = np.random.default_rng(seed)
    while True:
        groups = int(rng.choice([1, 1, 2, 3]))
        kernel = tuple(int(k) for k in rng.integers(1, 4, 2))
        dilation = tuple(int(d) for d in rng.integers(1, 3, 2))
        kind = rng.integers(0, 4)
        padding = ["same", "valid", int(rng.integers(0, 3)), tuple(int(p) for p in rng.integers(0, 3, 2))][kind]
        stride = (1, 1) if padding == "same" else tuple(int(s) for s in rng.integers(1, 4, 2))
        n = 1 if seed % 3 == 0 else int(rng.integers(1, 3))
        c, o = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
        h, w = (int(s) for s in rng.integers(1, 8, 2))
        (t, bt), (l, r) = explicit_padding(padding, kernel, dilation)
        if h + t + bt >= dilation[0] * (kernel[0] - 1) + 1 and w + l + r >= dilation[1] * (kernel[1] - 1) + 1:
            kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
            return (n, c, h, w), (o, c // groups) + kernel, kwargs


def make_operands(seed, dtype=np.float64, bias=True, requires_grad=True):
    x_shape, w_shape, kwargs = random_config(seed)
    rng = np.random.default_rng(1000 + seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b, kwargs


CONFIGS = range(40)


@pytest.fixture(params=["per_sample", "one_product", "one_product_one_thread", "per_sample_fold"])
def products(request, monkeypatch):
    """Each way the op can multiply weights and columns: per-sample products
    of strided views, one product over the merged batch, or (on one thread)
    one product for the weight gradient only; or, on the CPU, the input
    gradient through backend.conv_input_grad (one group, not 1x1), which
    folds each sample's columns as soon as they are made."""
    from minigrad.ops import conv as conv_op
    monkeypatch.setattr(conv_op, "FOLD_PER_SAMPLE_BYTES",
                        0 if request.param == "per_sample_fold" else 1 << 62)
    if request.param != "per_sample":
        monkeypatch.setattr(conv_op, "_PER_SAMPLE_ROWS", 0)
        threads = 1 if request.param.endswith("one_thread") else 2
        monkeypatch.setattr(conv_op, "get_num_threads", lambda: threads)
    else:
        monkeypatch.setattr(conv_op, "_PER_SAMPLE_ROWS", 1 << 30)
    return request.param


@pytest.fixture(params=["kept_columns", "rebuilt_columns"])
def columns(request, monkeypatch):
    """The weight gradient from the forward's columns, or from columns rebuilt in backward."""
    from minigrad.ops import conv as conv_op
    if request.param == "rebuilt_columns":
        monkeypatch.setattr(conv_op, "KEEP_COLUMNS_BYTES", -1)
    return request.param


@pytest.mark.parametrize("seed", CONFIGS)
def test_forward_and_gradients_match_direct_loops(seed, products, columns):
    x, w, b, kw = make_operands(seed, bias=seed % 4 != 1)
    X, W = mg.tensor(x, requires_grad=True), mg.tensor(w, requires_grad=True)
    B = mg.tensor(b, requires_grad=True) if b is not None else None
    y = conv2d(X, W, B, **kw)
    expected = naive_conv2d(x, w, b, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    assert y.shape == expected.shape
    np.testing.assert_allclose(_np(y), expected, rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(seed).standard_normal(expected.shape)
    y.backward(mg.tensor(dy))
    dx, dw, db = naive_conv2d_grads(x, w, dy, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    np.testing.assert_allclose(_np(X.grad), dx, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(W.grad), dw, rtol=1e-12, atol=1e-12)
    if B is not None:
        np.testing.assert_allclose(_np(B.grad), db, rtol=1e-12, atol=1e-12)


def count_backend_calls(monkeypatch, name):
    """A list that grows by one at each call of the CPU backend's kernel `name`."""
    backend = mg.device("cpu").backend
    calls, kernel = [], getattr(backend, name)
    monkeypatch.setattr(backend, name, lambda *args: calls.append(1) or kernel(*args))
    return calls


def test_large_columns_fold_the_input_gradient_per_sample(monkeypatch):
    """From FOLD_PER_SAMPLE_BYTES of columns on, the input gradient takes the
    backend's conv_input_grad (and matches the other path)."""
    from minigrad.ops import conv as conv_op
    calls = count_backend_calls(monkeypatch, "conv_input_grad")
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((4, 6, 9, 8)), rng.standard_normal((5, 6, 3, 3))
    grads = []
    for limit in (1 << 62, 6 * 9 * 4 * 9 * 8 * 8):  # the second: exactly these columns' bytes
        monkeypatch.setattr(conv_op, "FOLD_PER_SAMPLE_BYTES", limit)
        X = mg.tensor(x, requires_grad=True)
        conv2d(X, mg.tensor(w, requires_grad=True), padding=1).sum().backward()
        grads.append(_np(X.grad))
    assert len(calls) == 1
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(12))
def test_gradcheck_input_weight_bias(seed):
    x, w, b, kw = make_operands(seed)
    inputs = [mg.tensor(a, requires_grad=True) for a in (x, w, b)]
    assert mg.gradcheck(lambda *t: conv2d(*t, **kw), inputs)


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_gradgradcheck(seed):
    x, w, b, kw = make_operands(seed)
    inputs = [mg.tensor(a, requires_grad=True) for a in (x, w, b)]
    assert mg.gradgradcheck(lambda *t: conv2d(*t, **kw), inputs)


def test_only_the_needed_gradients_are_computed():
    x, w, b, kw = make_operands(4)
    X, W = mg.tensor(x), mg.tensor(w, requires_grad=True)
    conv2d(X, W, None, **kw).sum().backward()
    assert X.grad is None and W.grad is not None
    X.requires_grad_()
    W2 = mg.tensor(w)
    conv2d(X, W2, None, **kw).sum().backward()
    assert X.grad is not None and W2.grad is None


def _held_bytes(node):
    held = [v for v in vars(node).values() if v is not None and not isinstance(v, mg.Tensor)]
    arrays = [a for v in held for a in (v if isinstance(v, tuple) else (v,)) if hasattr(a, "nbytes")]
    return sum(a.nbytes for a in arrays)


def test_columns_are_kept_for_backward_only_up_to_the_limit(monkeypatch):
    from minigrad.ops import conv as conv_op
    x = mg.randn(4, 3, 10, 10, requires_grad=True)
    w = mg.randn(8, 3, 3, 3, requires_grad=True)
    columns_bytes = 4 * 3 * 9 * 100 * 4
    monkeypatch.setattr(conv_op, "KEEP_COLUMNS_BYTES", columns_bytes - 1)
    baseline = _held_bytes(conv2d(x, w, padding=1).grad_fn)  # over the limit: nothing kept
    monkeypatch.setattr(conv_op, "KEEP_COLUMNS_BYTES", columns_bytes)
    y = conv2d(x, w, padding=1)
    assert _held_bytes(y.grad_fn) == baseline + columns_bytes
    y.sum().backward()
    assert _held_bytes(y.grad_fn) <= baseline  # handed to the weight gradient, then dropped


def test_retained_graph_gives_the_same_weight_gradient_twice():
    x = mg.randn(2, 3, 9, 9)
    w = mg.randn(5, 3, 3, 3, requires_grad=True)
    y = conv2d(x, w, padding=1, stride=2)
    y.sum().backward(retain_graph=True)
    first = w.grad.numpy().copy()
    w.grad = None
    y.sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), first)


@pytest.mark.parametrize("seed", CONFIGS)
def test_forward_without_weight_gradient_matches_direct_loops(seed, monkeypatch):
    """Under no_grad, or with a frozen weight, the columns are not kept and
    the CPU forward (one group, not 1x1, enough column rows) runs through
    backend.conv_forward, one sample at a time; the input gradient still
    flows. (Every configuration counts as having enough column rows here.)"""
    from minigrad.ops import conv as conv_op
    monkeypatch.setattr(conv_op, "_PER_SAMPLE_ROWS", 0)
    calls = count_backend_calls(monkeypatch, "conv_forward")
    x, w, b, kw = make_operands(seed, bias=seed % 4 != 1)
    expected = naive_conv2d(x, w, b, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    W, B = mg.tensor(w), mg.tensor(b) if b is not None else None
    with mg.no_grad():
        np.testing.assert_allclose(_np(conv2d(mg.tensor(x), W, B, **kw)), expected, rtol=1e-12, atol=1e-12)
    X = mg.tensor(x, requires_grad=True)
    y = conv2d(X, W, B, **kw)
    np.testing.assert_allclose(_np(y), expected, rtol=1e-12, atol=1e-12)
    dy = np.random.default_rng(seed).standard_normal(expected.shape)
    y.backward(mg.tensor(dy))
    dx = naive_conv2d_grads(x, w, dy, kw["stride"], kw["padding"], kw["dilation"], kw["groups"])[0]
    np.testing.assert_allclose(_np(X.grad), dx, rtol=1e-12, atol=1e-12)
    from minigrad.ops.conv import ConvParams, _is_pointwise
    params = ConvParams(w.shape[2:], kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    args = params.window(x.shape, w.shape)
    fused_here = kw["groups"] == 1 and not _is_pointwise(args)
    assert len(calls) == (2 if fused_here else 0)


def test_an_inference_forward_takes_the_per_sample_path(monkeypatch):
    calls = count_backend_calls(monkeypatch, "conv_forward")
    x, w = mg.randn(2, 6, 9, 8), mg.randn(5, 6, 3, 3)
    with mg.no_grad():
        y = conv2d(x, w, padding=1)
    assert calls == [1]
    want = naive_conv2d(_np(x).astype(np.float64), _np(w).astype(np.float64), None, (1, 1), (1, 1),
                        (1, 1), 1)
    np.testing.assert_allclose(_np(y), want, rtol=1e-4, atol=1e-4)


def test_frozen_weight_keeps_no_columns():
    x = mg.randn(2, 3, 9, 9, requires_grad=True)
    w = mg.randn(5, 3, 3, 3)
    assert conv2d(x, w, padding=1).grad_fn.kept is None


def test_unbatched_input_equals_batch_of_one(rng):
    x = rng.standard_normal((3, 6, 5))
    w = mg.tensor(rng.standard_normal((4, 3, 2, 3)), requires_grad=True)
    X = mg.tensor(x, requires_grad=True)
    y = conv2d(X, w, stride=(2, 1), padding=1)
    assert y.shape == (4, 4, 5)
    y.sum().backward()
    np.testing.assert_allclose(_np(y), naive_conv2d(x[None], w.detach().numpy(), None, (2, 1), 1, (1, 1), 1)[0],
                               rtol=1e-12, atol=1e-12)
    assert X.grad.shape == (3, 6, 5)


def test_empty_batch():
    w = mg.randn(4, 2, 3, 3, requires_grad=True)
    y = conv2d(mg.zeros(0, 2, 5, 5), w, padding=1)
    assert y.shape == (0, 4, 5, 5)
    y.sum().backward()
    np.testing.assert_array_equal(_np(w.grad), np.zeros((4, 2, 3, 3), np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_and_float64_outputs_keep_their_dtype(dtype):
    x, w, b, kw = make_operands(7, dtype=dtype)
    y = conv2d(mg.tensor(x), mg.tensor(w), mg.tensor(b), **kw)
    assert y._data.dtype == dtype
    expected = naive_conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                            kw["stride"], kw["padding"], kw["dilation"], kw["groups"])
    np.testing.assert_allclose(_np(y), expected, rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-5)


# ---------------------------------------------------------------- compiled vs reference kernels

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("device", ["standin", pytest.param("cuda", marks=pytest.mark.gpu)])
@pytest.mark.parametrize("seed", range(0, 40, 4))
def test_compiled_kernels_match_reference_through_the_op(seed, dtype, device):
    if device == "standin":
        require_compiled_cpu_kernels("im2col")
    x, w, b, kw = make_operands(seed, dtype=dtype)
    dy = np.random.default_rng(seed).standard_normal(
        naive_conv2d(x, w, b, kw["stride"], kw["padding"], kw["dilation"], kw["groups"]).shape).astype(dtype)
    results = []
    for dev in ("cpu", device):
        ts = [mg.tensor(a, device=dev, requires_grad=True) for a in (x, w, b)]
        y = conv2d(*ts, **kw)
        y.backward(mg.tensor(dy, device=dev))
        results.append([np.asarray(y.detach())] + [np.asarray(t.grad) for t in ts])
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for got, want in zip(results[1], results[0]):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, **tol)


# ---------------------------------------------------------------- PyTorch

@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_matches_pytorch(seed):
    torch = pytest.importorskip("torch")
    x, w, b, kw = make_operands(seed, dtype=np.float32)
    dy = None
    outs = []
    for lib in ("mg", "torch"):
        if lib == "mg":
            ts = [mg.tensor(a, requires_grad=True) for a in (x, w, b)]
            y = conv2d(*ts, **kw)
        else:
            ts = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
            y = torch.nn.functional.conv2d(*ts, **kw)
        if dy is None:
            dy = np.random.default_rng(seed).standard_normal(tuple(y.shape)).astype(np.float32)
        y.backward(mg.tensor(dy) if lib == "mg" else torch.tensor(dy))
        outs.append([y.detach().numpy()] + [t.grad.numpy() for t in ts])
    for ours, theirs in zip(*outs):
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same", "valid"])
def test_layer_padding_modes_match_pytorch(mode, padding):
    torch = pytest.importorskip("torch")
    kwargs = dict(kernel_size=(3, 2), padding=padding, padding_mode=mode, dilation=(1, 2))
    ours, theirs = Conv2d(4, 6, groups=2, **kwargs), torch.nn.Conv2d(4, 6, groups=2, **kwargs)
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.detach().numpy()))
        theirs.bias.copy_(torch.from_numpy(ours.bias.detach().numpy()))
    x = np.random.default_rng(3).standard_normal((2, 4, 5, 6)).astype(np.float32)
    X, Xt = mg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, yt = ours(X), theirs(Xt)
    np.testing.assert_allclose(_np(y), yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    np.testing.assert_allclose(_np(X.grad), Xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_np(ours.weight.grad), theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("args", [
    dict(in_channels=3, out_channels=8, kernel_size=3),
    dict(in_channels=4, out_channels=6, kernel_size=(3, 1), stride=2, padding=(1, 0), dilation=2, groups=2,
         bias=False),
    dict(in_channels=2, out_channels=2, kernel_size=4, padding="same", padding_mode="reflect"),
])
def test_layer_repr_matches_pytorch(args):
    torch = pytest.importorskip("torch")
    assert repr(Conv2d(**args)) == repr(torch.nn.Conv2d(**args))


# ---------------------------------------------------------------- the layer

def test_layer_attributes_and_parameters():
    layer = Conv2d(4, 6, 3, stride=2, padding=(1, 0), groups=2)
    assert layer.kernel_size == (3, 3) and layer.stride == (2, 2) and layer.padding == (1, 0)
    assert layer.dilation == (1, 1) and layer.groups == 2 and layer.padding_mode == "zeros"
    assert layer.weight.shape == (6, 2, 3, 3) and layer.bias.shape == (6,)
    assert [n for n, _ in layer.named_parameters()] == ["weight", "bias"]
    assert Conv2d(2, 2, 3, padding="same").padding == "same"
    assert Conv2d(2, 2, 1, bias=False).bias is None
    assert Conv2d(2, 2, 1, dtype=mg.float64).weight.dtype == mg.float64


def test_default_init_is_pytorch_kaiming_uniform():
    mg.manual_seed(0)
    layer = Conv2d(12, 66, (3, 5), groups=3)
    fan_in = 4 * 3 * 5
    bound = 1 / math.sqrt(fan_in)
    w, b = _np(layer.weight), _np(layer.bias)
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # U(-bound, bound): variance bound**2 / 3, extremes near the bounds
    assert w.var() == pytest.approx(bound ** 2 / 3, rel=0.05)
    assert np.abs(w).max() > 0.98 * bound and np.abs(b).max() > 0.8 * bound
    assert abs(w.mean()) < 0.05 * bound


def test_layer_forward_uses_its_parameters_and_gradcheck():
    mg.manual_seed(1)
    layer = Conv2d(2, 4, (2, 3), stride=(1, 2), padding=1, dilation=(2, 1), groups=2).double()
    x = mg.randn(2, 2, 5, 6, dtype=mg.float64, requires_grad=True)
    y = layer(x)
    expected = naive_conv2d(_np(x), _np(layer.weight), _np(layer.bias), (1, 2), 1, (2, 1), 2)
    np.testing.assert_allclose(_np(y), expected, rtol=1e-12, atol=1e-12)
    assert mg.gradcheck_module(layer, x)


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_layer_padding_modes_match_numpy_pad(mode):
    mg.manual_seed(2)
    layer = Conv2d(2, 3, (3, 2), padding="same", padding_mode=mode).double()
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5))
    np_mode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    # 'same' with kernel (3, 2): rows (1, 1), columns (0, 1): the extra one at the end
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 1)), mode=np_mode)
    expected = naive_conv2d(xp, _np(layer.weight), _np(layer.bias), (1, 1), 0, (1, 1), 1)
    y = layer(mg.tensor(x, requires_grad=True))
    assert y.shape == (1, 3, 4, 5)
    np.testing.assert_allclose(_np(y), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(_np(layer(mg.tensor(x[0]))), expected[0], rtol=1e-12, atol=1e-12)
    assert mg.gradcheck_module(layer, mg.tensor(x, requires_grad=True))


def test_layer_state_dict_round_trip():
    a, b = Conv2d(3, 4, 3), Conv2d(3, 4, 3)
    b.load_state_dict(a.state_dict())
    x = mg.randn(2, 3, 6, 6)
    np.testing.assert_array_equal(_np(a(x)), _np(b(x)))


# ---------------------------------------------------------------- errors

def _operands(x_shape=(2, 3, 8, 8), w_shape=(4, 3, 3, 3)):
    return mg.randn(*x_shape), mg.randn(*w_shape)


@pytest.mark.parametrize("x_shape, match", [
    ((3, 8), r"3-D \(unbatched.*4-D.*got input of shape \(3, 8\)"),
    ((1, 1, 3, 8, 8), r"got input of shape \(1, 1, 3, 8, 8\)"),
])
def test_error_on_input_rank(x_shape, match):
    x, w = _operands(x_shape)
    with pytest.raises(ValueError, match=match):
        conv2d(x, w)
    with pytest.raises(ValueError, match=match):
        Conv2d(3, 4, 3)(x)


def test_error_on_channel_count_names_both():
    x, w = _operands((2, 5, 8, 8))
    with pytest.raises(ValueError, match=r"to have 3 channels \(in_channels\), but got 5 channels"):
        conv2d(x, w)
    with pytest.raises(ValueError, match=r"weight of shape \(4, 3, 3, 3\).*input of shape \(2, 5, 8, 8\)"):
        Conv2d(3, 4, 3)(x)
    with pytest.raises(ValueError, match=r"groups=2.*to have 6 channels.*but got 3 channels"):
        conv2d(mg.randn(1, 3, 5, 5), mg.randn(4, 3, 3, 3), groups=2)


def test_error_on_groups_not_dividing_channels():
    with pytest.raises(ValueError, match="in_channels must be divisible by groups, got in_channels=3 and groups=2"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups, got out_channels=5"):
        Conv2d(4, 5, 3, groups=2)
    with pytest.raises(ValueError, match=r"groups=2 must divide out_channels, but weight has 3 output"):
        conv2d(mg.randn(1, 4, 5, 5), mg.randn(3, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        Conv2d(4, 4, 3, groups=0)


def test_error_on_kernel_larger_than_padded_input():
    x, w = _operands((1, 3, 2, 5))
    with pytest.raises(ValueError, match=r"padded input size per channel: \(2 x 5\).*\(3 x 3\).*can't be greater"):
        conv2d(x, w)
    with pytest.raises(ValueError, match=r"\(4 x 7\).*\(5 x 3\)"):
        conv2d(x, w, padding=1, dilation=(2, 1))
    assert conv2d(x, w, padding=1).shape == (1, 4, 2, 5)


@pytest.mark.parametrize("stride", [0, -1, (1, 0)])
def test_error_on_non_positive_stride(stride):
    x, w = _operands()
    with pytest.raises(ValueError, match=r"stride must be greater than zero"):
        conv2d(x, w, stride=stride)
    with pytest.raises(ValueError, match=r"stride must be greater than zero"):
        Conv2d(3, 4, 3, stride=stride)


def test_errors_on_other_arguments():
    x, w = _operands()
    with pytest.raises(ValueError, match="padding must be non-negative"):
        conv2d(x, w, padding=-1)
    with pytest.raises(ValueError, match="dilation must be greater than zero"):
        conv2d(x, w, dilation=0)
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        conv2d(x, w, stride=2, padding="same")
    with pytest.raises(ValueError, match="invalid padding string 'full'"):
        Conv2d(3, 4, 3, padding="full")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(TypeError, match=r"stride must be an int or a tuple of two ints, got \(1, 2, 3\)"):
        conv2d(x, w, stride=(1, 2, 3))
    with pytest.raises(ValueError, match=r"weight must be 4-D.*got weight of shape \(4, 3, 3\)"):
        conv2d(x, mg.randn(4, 3, 3))
    with pytest.raises(ValueError, match=r"expected bias of shape \(4,\).*got bias of shape \(3,\)"):
        conv2d(x, w, mg.randn(3))
    with pytest.raises(TypeError, match="input is minigrad.float64 but weight is minigrad.float32"):
        conv2d(x.double(), w)
    with pytest.raises(TypeError, match="expected a floating point input, got minigrad.int64"):
        conv2d(mg.zeros(2, 3, 8, 8, dtype=mg.int64), w)


def test_error_on_mixed_devices():
    x, w = _operands()
    with pytest.raises(RuntimeError, match="same device"):
        conv2d(x, w.to("standin"))


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("contiguous", [True, False])
def test_pointwise_conv_matches_direct_loops(groups, contiguous):
    """1x1, stride 1, no padding: the input is its own columns (read in place)."""
    rng = np.random.default_rng(groups)
    x = rng.standard_normal((3, 4, 5, 6))
    if not contiguous:
        x = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    w, b = rng.standard_normal((6, 4 // groups, 1, 1)), rng.standard_normal(6)
    X, W, B = (mg.tensor(a, requires_grad=True) for a in (x, w, b))
    y = conv2d(X, W, B, groups=groups)
    np.testing.assert_allclose(_np(y), naive_conv2d(x, w, b, (1, 1), (0, 0), (1, 1), groups),
                               rtol=1e-12, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    y.backward(mg.tensor(dy))
    dx, dw, db = naive_conv2d_grads(x, w, dy, (1, 1), (0, 0), (1, 1), groups)
    for got, want in ((X.grad, dx), (W.grad, dw), (B.grad, db)):
        np.testing.assert_allclose(_np(got), want, rtol=1e-12, atol=1e-12)
