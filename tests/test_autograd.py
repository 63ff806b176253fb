import threading

import numpy as np
import pytest

import minigrad as mg
from minigrad.autograd import Function


def test_gradients_accumulate_until_zeroed():
    w = mg.tensor([1.0, 2.0], requires_grad=True)
    (w * 3).sum().backward()
    (w * 3).sum().backward()
    assert w.grad.tolist() == [6.0, 6.0]
    w.grad = None
    (w * w).sum().backward()
    assert w.grad.tolist() == [2.0, 4.0]


def test_second_backward_without_retain_graph_is_a_clear_error():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]


def test_backward_on_non_scalar_needs_gradient():
    x = mg.ones(2, 3, requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2, 3\)"):
        y.backward()
    y.backward(mg.ones(2, 3))
    assert x.grad.tolist() == [[2.0] * 3] * 2


def test_gradient_shape_must_match():
    x = mg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"gradient has shape \(2,\).*\(3,\)"):
        (x * 2).backward(mg.ones(2))


def test_backward_without_grad_is_clear_error():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mg.ones(2).sum().backward()


def test_broadcast_gradients_are_unbroadcast():
    a = mg.randn(4, 1, 3, requires_grad=True)
    b = mg.randn(5, 1, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.shape == (4, 1, 3) and b.grad.shape == (5, 1)
    an, bn = a.detach().numpy(), b.detach().numpy()
    assert np.allclose(a.grad.numpy(), np.broadcast_to(bn.sum(), (4, 1, 3)), rtol=1e-5)
    assert np.allclose(b.grad.numpy(), np.full((5, 1), an.sum()), rtol=1e-5)


def test_no_grad_and_enable_grad():
    x = mg.ones(2, requires_grad=True)
    with mg.no_grad():
        y = x * 2
        assert not mg.is_grad_enabled()
        with mg.enable_grad():
            z = x * 2
    assert not y.requires_grad and z.requires_grad and mg.is_grad_enabled()

    @mg.no_grad()
    def f(t):
        return t * 2
    assert not f(x).requires_grad


def test_grad_mode_is_thread_local():
    seen = {}
    inside = threading.Event()
    release = threading.Event()

    def worker():
        with mg.no_grad():
            inside.set()
            release.wait(5)
            seen["worker"] = mg.is_grad_enabled()

    th = threading.Thread(target=worker)
    th.start()
    inside.wait(5)
    seen["main"] = mg.is_grad_enabled()
    x = mg.ones(1, requires_grad=True)
    seen["main_records"] = (x * 2).requires_grad
    release.set()
    th.join()
    assert seen == {"worker": False, "main": True, "main_records": True}


def test_leaf_grads_never_share_memory():
    a = mg.zeros(3, requires_grad=True)
    b = mg.zeros(3, requires_grad=True)
    (a + b).sum().backward()
    a.grad.mul_(10.0)
    assert b.grad.tolist() == [1.0, 1.0, 1.0]
    c = mg.zeros(3, requires_grad=True)
    c.sum().backward()
    c.grad.add_(1.0)  # writable even though the graph broadcast a scalar
    assert c.grad.tolist() == [2.0, 2.0, 2.0]


def test_create_graph_gives_second_derivative():
    x = mg.tensor([0.3, -1.2, 2.0], dtype=mg.float64, requires_grad=True)
    y = (x ** 3).sum()
    (g,) = mg.autograd.grad(y, x, create_graph=True)
    assert np.allclose(g.detach().numpy(), 3 * x.detach().numpy() ** 2)
    g.sum().backward()
    assert np.allclose(x.grad.numpy(), 6 * x.detach().numpy())


def test_backward_create_graph_then_gradient_penalty():
    w = mg.tensor([1.5, -0.5], dtype=mg.float64, requires_grad=True)
    x = mg.tensor([2.0, 3.0], dtype=mg.float64, requires_grad=True)
    out = (w * x).tanh().sum()
    (gx,) = mg.autograd.grad(out, x, create_graph=True)
    penalty = (gx * gx).sum()
    penalty.backward()
    assert mg.gradcheck(lambda w: (mg.autograd.grad((w * x).tanh().sum(), x, create_graph=True)[0] ** 2).sum(),
                        (w,))


def test_autograd_grad_does_not_touch_leaf_grads():
    a = mg.ones(2, requires_grad=True)
    b = mg.ones(2, requires_grad=True)
    (ga,) = mg.autograd.grad((a * b).sum(), [a])
    assert a.grad is None and b.grad is None and ga.tolist() == [1.0, 1.0]


def test_autograd_grad_unused_input():
    a = mg.ones(2, requires_grad=True)
    b = mg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="not used"):
        mg.autograd.grad((a * 2).sum(), [a, b])
    ga, gb = mg.autograd.grad((a * 2).sum(), [a, b], allow_unused=True)
    assert gb is None


def test_grad_wrt_intermediate():
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    (gh,) = mg.autograd.grad(y, h)
    assert gh.tolist() == [6.0, 12.0]


class Cube(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x * x


def test_custom_function_gradcheck_and_double_backward():
    x = mg.randn(4, dtype=mg.float64, requires_grad=True)
    assert mg.gradcheck(Cube.apply, (x,))
    assert mg.gradgradcheck(Cube.apply, (x,))


class BadShape(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g.sum()


def test_custom_function_wrong_grad_shape_is_named():
    x = mg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"BadShape.*shape \(\).*input 0 of shape \(3,\)"):
        BadShape.apply(x).sum().backward()


def test_tensor_hooks():
    x = mg.ones(3, requires_grad=True)
    h = x * 2
    seen = []
    h.register_hook(lambda g: seen.append(g.tolist()))
    handle = x.register_hook(lambda g: g * 10)
    h.sum().backward()
    assert seen == [[1.0, 1.0, 1.0]]
    assert x.grad.tolist() == [20.0, 20.0, 20.0]
    handle.remove()
    x.grad = None
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_retain_grad():
    x = mg.ones(2, requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    assert h.grad.tolist() == [6.0, 6.0]


def test_graph_is_freed_after_backward():
    import gc
    import weakref
    x = mg.randn(100, requires_grad=True)
    y = x.exp()
    ref = weakref.ref(y)
    loss = (y * 2).sum()
    del y
    assert ref() is not None  # kept alive by the graph
    loss.backward()
    gc.disable()
    try:
        assert ref() is None  # freed by reference counting alone
    finally:
        gc.enable()


def test_detect_anomaly_names_the_op():
    x = mg.tensor([0.0, 1.0], requires_grad=True)
    with mg.autograd.detect_anomaly():
        y = x.sqrt()
        with pytest.raises(RuntimeError, match=r"SqrtBackward.*non-finite"):
            y.sum().backward()


def test_leaf_grad_takes_arrays_whose_flags_have_no_writeable():
    # CuPy arrays are always writable and their flags have no `writeable`:
    # a gradient on the GPU must be stored as it is, not fail or be copied
    from minigrad.autograd import _leaf_grad

    class DeviceFlags:
        c_contiguous = True

    class DeviceArray:
        base = None
        flags = DeviceFlags()

        def copy(self):
            raise AssertionError("a writable gradient was copied")

    g = mg.Tensor._wrap(DeviceArray(), mg.device("cpu"))
    assert _leaf_grad(g, set()) is g
