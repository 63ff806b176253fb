"""Anomaly detection: where an op was created (recorded in forward), which op
produced a non-finite gradient (checked in backward), and the error-if-nonfinite
guard of gradient clipping. The basic case lives in test_autograd.py."""
import math
import warnings

import numpy as np
import pytest

import minigrad as mg
from minigrad import nn
from minigrad.autograd import Function, detect_anomaly, is_anomaly_enabled, set_detect_anomaly

THIS_FILE = __file__.rsplit("/", 1)[-1]


@pytest.fixture(autouse=True)
def _quiet_numpy():
    # log(0), 1/0 and sqrt(-1) are the point of these tests: numpy's warnings are noise
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _raise_message(fn):
    with pytest.raises(RuntimeError) as info:
        fn()
    return str(info.value)


def test_message_names_the_op_and_the_user_line_that_created_it():
    x = mg.tensor([4.0, 0.0], requires_grad=True)
    with detect_anomaly():
        y = x.sqrt()  # the culprit: d sqrt / dx = inf at 0
        loss = (y * 3.0).sum()
        msg = _raise_message(loss.backward)
    assert "SqrtBackward" in msg and "non-finite" in msg and "input 0" in msg
    assert "MulBackward" not in msg  # the first op producing the bad value, not a later one
    assert THIS_FILE in msg and "y = x.sqrt()  # the culprit" in msg


def test_inf_and_nan_are_both_caught():
    x = mg.tensor([0.0, 2.0], requires_grad=True)
    with detect_anomaly():
        msg = _raise_message(lambda: x.log().sum().backward())  # 1/0 = inf
    assert "LogBackward" in msg
    y = mg.tensor([-1.0, 2.0], requires_grad=True)
    with detect_anomaly():
        msg = _raise_message(lambda: (y.sqrt() * 0.0 + y).sum().backward())  # 0 * inf = nan
    assert "SqrtBackward" in msg


def test_without_anomaly_mode_the_bad_gradient_flows_through():
    x = mg.tensor([4.0, 0.0], requires_grad=True)
    (x.sqrt() * 3.0).sum().backward()
    assert math.isfinite(x.grad.tolist()[0]) and math.isinf(x.grad.tolist()[1])


def test_anomaly_mode_leaves_finite_results_unchanged():
    mg.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x, y = mg.randn(4, 5), mg.tensor([0, 2, 1, 2])

    def grads(anomaly):
        model.zero_grad()
        with set_detect_anomaly(anomaly):
            nn.CrossEntropyLoss()(model(x), y).backward()
        return [p.grad.numpy().copy() for p in model.parameters()]

    for plain, checked in zip(grads(False), grads(True)):
        np.testing.assert_array_equal(plain, checked)


def test_forward_records_creation_site_only_in_anomaly_mode():
    x = mg.ones(3, requires_grad=True)
    assert (x * 2).grad_fn.creation_trace is None
    with detect_anomaly():
        y = x * 2
    assert "y = x * 2" in y.grad_fn.creation_trace
    assert THIS_FILE in y.grad_fn.creation_trace


def test_trace_of_a_layer_shows_user_line_and_layer_code():
    layer = nn.Linear(2, 2)
    with mg.no_grad():
        layer.weight.fill_(float("inf"))
    x = mg.tensor([[0.0, 0.0]], requires_grad=True)
    with detect_anomaly():
        out = layer(x)  # the line a user should see
        msg = _raise_message(lambda: (out * 0.0).sum().backward())  # dx = 0 @ inf = nan
    assert "LinearBackward" in msg
    assert "out = layer(x)  # the line a user should see" in msg
    assert "nn/layers/linear.py" in msg  # where inside minigrad the op was made


class _NanGrad(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        return g * float("nan")


class _WrongShapeGrad(Function):
    @staticmethod
    def forward(ctx, x):
        return x * 1.0

    @staticmethod
    def backward(ctx, g):
        return g.sum()


def test_custom_function_is_named():
    x = mg.ones(3, requires_grad=True)
    with detect_anomaly():
        y = _NanGrad.apply(x)
        msg = _raise_message(lambda: y.sum().backward())
    assert "_NanGradBackward" in msg and "y = _NanGrad.apply(x)" in msg


def test_error_inside_backward_gets_the_creation_site_as_a_note():
    x = mg.ones(3, requires_grad=True)
    with detect_anomaly():
        y = _WrongShapeGrad.apply(x)  # creation site of the failing op
        with pytest.raises(RuntimeError, match=r"gradient of shape \(\) for input 0 of shape \(3,\)") as info:
            y.sum().backward()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    if hasattr(info.value, "add_note"):  # Python >= 3.11
        assert "_WrongShapeGradBackward" in notes and "creation site of the failing op" in notes


def test_op_recorded_before_the_mode_was_switched_on_says_so():
    x = mg.tensor([0.0], requires_grad=True)
    y = x.sqrt()
    with detect_anomaly():
        msg = _raise_message(lambda: y.sum().backward())
    assert "SqrtBackward" in msg and "trace unavailable" in msg


def test_check_nan_false_disables_the_check():
    x = mg.tensor([0.0], requires_grad=True)
    with detect_anomaly(check_nan=False):
        x.sqrt().sum().backward()
    assert math.isinf(x.grad.item())


def test_set_detect_anomaly_as_call_and_as_context_manager():
    assert not is_anomaly_enabled()
    set_detect_anomaly(True)
    try:
        assert is_anomaly_enabled()
        with set_detect_anomaly(False):
            assert not is_anomaly_enabled()
        assert is_anomaly_enabled()  # restored on exit
    finally:
        set_detect_anomaly(False)
    assert not is_anomaly_enabled()
    with detect_anomaly():
        with detect_anomaly():
            pass
        assert is_anomaly_enabled()  # nested exit restores, not clears
    assert not is_anomaly_enabled()


def test_mode_is_restored_after_an_error():
    x = mg.tensor([0.0], requires_grad=True)
    with pytest.raises(RuntimeError):
        with detect_anomaly():
            x.sqrt().sum().backward()
    assert not is_anomaly_enabled()


def test_double_backward_is_checked_too():
    x = mg.tensor([0.0, 1.0], requires_grad=True)
    with detect_anomaly():
        y = (x ** 3).sum()
        (g,) = mg.autograd.grad(y, x, create_graph=True)  # 3 x^2: finite
        h = (g.sqrt()).sum()  # d sqrt(3 x^2) at x = 0: inf
        msg = _raise_message(h.backward)
    assert "SqrtBackward" in msg


# -- clip_grad_norm_(error_if_nonfinite=True) ----------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_raises_on_nonfinite_total(bad, norm_type):
    a = mg.zeros(3, requires_grad=True)
    b = mg.zeros(2, requires_grad=True)
    a.grad = mg.tensor([1.0, bad, 2.0])
    b.grad = mg.tensor([1.0, 1.0])
    with pytest.raises(RuntimeError, match=r"total norm of order .* is non-finite .*error_if_nonfinite=False"):
        nn.utils.clip_grad_norm_([a, b], 1.0, norm_type=norm_type, error_if_nonfinite=True)
    assert np.isnan(a.grad.numpy()[1]) or np.isinf(a.grad.numpy()[1])  # nothing was scaled
    assert b.grad.tolist() == [1.0, 1.0]


def test_clip_grad_norm_default_returns_the_nonfinite_norm():
    a = mg.zeros(2, requires_grad=True)
    a.grad = mg.tensor([float("inf"), 1.0])
    total = nn.utils.clip_grad_norm_([a], 1.0)
    assert math.isinf(total.item())


def test_clip_grad_norm_finite_total_does_not_raise():
    a = mg.zeros(2, requires_grad=True)
    a.grad = mg.tensor([3.0, 4.0])
    total = nn.utils.clip_grad_norm_([a], 1.0, error_if_nonfinite=True)
    assert total.item() == pytest.approx(5.0)
    np.testing.assert_allclose(a.grad.numpy(), [0.6, 0.8], rtol=1e-5)
