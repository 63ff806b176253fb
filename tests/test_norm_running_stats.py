"""Running statistics of the normalization layers, as PyTorch keeps them:
closed-form recursions over several steps (momentum 0.1, 0.3 and None, the
cumulative average), the unbiased variance in the update, eval mode using
them, track_running_stats=False, num_batches_tracked, state_dict and moves,
and PyTorch over the same steps when installed."""
import numpy as np
import pytest

import minigrad as mg
from minigrad.nn.layers.normalization import (BatchNorm1d, BatchNorm2d, BatchNorm3d,
                                              InstanceNorm1d, InstanceNorm2d)
from minigrad.ops import norm as F


def _np(t):
    return np.asarray(t.detach())


def batch_moments(x, axes):
    """(mean, biased var, unbiased var) per channel over `axes`."""
    count = np.prod([x.shape[a] for a in axes])
    mean = x.mean(axis=axes)
    var = x.var(axis=axes)
    return mean, var, var * count / (count - 1)


def expected_running(batches, axes, momentum):
    """The running mean/var after each batch: exponential average with
    `momentum`, or the cumulative average (factor 1/k at batch k) for None;
    both start from mean 0, var 1."""
    rm, rv = np.zeros(batches[0].shape[1]), np.ones(batches[0].shape[1])
    history = []
    for k, x in enumerate(batches, start=1):
        mean, _, unbiased = batch_moments(x, axes)
        f = 1.0 / k if momentum is None else momentum
        rm = (1 - f) * rm + f * mean
        rv = (1 - f) * rv + f * unbiased
        history.append((rm, rv))
    return history


BN_CASES = [(BatchNorm1d, (6, 3)), (BatchNorm1d, (4, 3, 5)), (BatchNorm2d, (2, 3, 3, 5)),
            (BatchNorm3d, (2, 3, 2, 3, 2))]


@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("cls,shape", BN_CASES)
def test_batch_norm_running_stats_follow_the_closed_form(rng, cls, shape, momentum):
    module = cls(3, momentum=momentum).double()
    batches = [rng.standard_normal(shape) * (1 + k) + k for k in range(5)]
    axes = (0,) + tuple(range(2, len(shape)))
    for k, (x, (rm, rv)) in enumerate(zip(batches, expected_running(batches, axes, momentum)), 1):
        module(mg.tensor(x))
        np.testing.assert_allclose(_np(module.running_mean), rm, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(_np(module.running_var), rv, rtol=1e-12)
        assert module.num_batches_tracked.item() == k


@pytest.mark.parametrize("cls,shape", BN_CASES)
def test_eval_uses_running_stats_and_leaves_them(rng, cls, shape):
    module = cls(3, momentum=0.3).double()
    for k in range(3):
        module(mg.tensor(rng.standard_normal(shape) + k))
    module.eval()
    rm, rv = _np(module.running_mean).copy(), _np(module.running_var).copy()
    x = rng.standard_normal(shape) * 3
    out = _np(module(mg.tensor(x)))
    c = (1, 3) + (1,) * (len(shape) - 2)
    np.testing.assert_allclose(out, (x - rm.reshape(c)) / np.sqrt(rv.reshape(c) + module.eps),
                               rtol=1e-12)
    np.testing.assert_array_equal(_np(module.running_mean), rm)
    np.testing.assert_array_equal(_np(module.running_var), rv)
    assert module.num_batches_tracked.item() == 3


def test_training_normalizes_with_the_biased_variance(rng):
    # batch of 2: biased var is a quarter of the squared difference, unbiased a half
    x = np.array([[1.0], [3.0]])
    module = BatchNorm1d(1, momentum=1.0).double()
    out = _np(module(mg.tensor(x)))
    np.testing.assert_allclose(out[:, 0], [-1 / np.sqrt(1 + 1e-5), 1 / np.sqrt(1 + 1e-5)])
    np.testing.assert_allclose(_np(module.running_var), [2.0])
    np.testing.assert_allclose(_np(module.running_mean), [2.0])


def test_momentum_zero_keeps_and_one_replaces():
    x = mg.tensor(np.arange(12.0).reshape(4, 3))
    keep = BatchNorm1d(3, momentum=0.0).double()
    keep(x)
    np.testing.assert_array_equal(_np(keep.running_mean), np.zeros(3))
    replace = BatchNorm1d(3, momentum=1.0).double()
    replace(x)
    np.testing.assert_allclose(_np(replace.running_mean), [4.5, 5.5, 6.5])
    np.testing.assert_allclose(_np(replace.running_var), [15.0, 15.0, 15.0])


def test_functional_updates_the_given_tensors_in_place(rng):
    rm, rv = mg.zeros(3, dtype=mg.float64), mg.ones(3, dtype=mg.float64)
    rm_data, rv_data = rm._data, rv._data
    x = rng.standard_normal((5, 3, 4))
    F.batch_norm(mg.tensor(x), rm, rv, training=True, momentum=0.2)
    mean, _, unbiased = batch_moments(x, (0, 2))
    assert rm._data is rm_data and rv._data is rv_data
    np.testing.assert_allclose(_np(rm), 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(_np(rv), 0.8 + 0.2 * unbiased, rtol=1e-12)
    assert not rm.requires_grad and rm.grad_fn is None


def test_float32_running_stats_of_a_large_mean(rng):
    module = BatchNorm2d(2, momentum=1.0)
    x = (1e4 + rng.standard_normal((8, 2, 5, 5))).astype(np.float32)
    module(mg.tensor(x))
    mean, _, unbiased = batch_moments(x.astype(np.float64), (0, 2, 3))
    np.testing.assert_allclose(_np(module.running_mean), mean, rtol=1e-7)
    np.testing.assert_allclose(_np(module.running_var), unbiased, rtol=1e-4)


def test_without_tracking_there_are_no_buffers_and_batch_stats_in_both_modes(rng):
    module = BatchNorm2d(3, track_running_stats=False).double()
    assert module.running_mean is None and module.num_batches_tracked is None
    assert list(module.state_dict()) == ["weight", "bias"] and list(module.buffers()) == []
    x = rng.standard_normal((2, 3, 2, 2))
    train_out = _np(module(mg.tensor(x)))
    eval_out = _np(module.eval()(mg.tensor(x)))
    np.testing.assert_array_equal(train_out, eval_out)
    mean, var, _ = batch_moments(x, (0, 2, 3))
    np.testing.assert_allclose(eval_out, (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5),
                               rtol=1e-12)


def test_reset_running_stats(rng):
    module = BatchNorm1d(3)
    module(mg.tensor(rng.standard_normal((4, 3)).astype(np.float32)))
    module.reset_running_stats()
    np.testing.assert_array_equal(_np(module.running_mean), np.zeros(3))
    np.testing.assert_array_equal(_np(module.running_var), np.ones(3))
    assert module.num_batches_tracked.item() == 0


# ---------------------------------------------------------------- instance norm

@pytest.mark.parametrize("momentum", [0.1, 0.3])
@pytest.mark.parametrize("cls,shape", [(InstanceNorm1d, (2, 3, 5)), (InstanceNorm2d, (3, 3, 2, 4)),
                                       (InstanceNorm1d, (3, 7))])
def test_instance_norm_running_stats_average_the_instances(rng, cls, shape, momentum):
    module = cls(3, momentum=momentum, track_running_stats=True).double()
    rm, rv = np.zeros(3), np.ones(3)
    for k in range(4):
        x = rng.standard_normal(shape) * (k + 1) + k
        module(mg.tensor(x))
        xb = x if len(shape) == module._ranks[1] else x[None]
        spatial = tuple(range(2, xb.ndim))
        count = np.prod(xb.shape[2:])
        mean = xb.mean(axis=spatial).mean(axis=0)
        unbiased = (xb.var(axis=spatial) * count / (count - 1)).mean(axis=0)
        rm = (1 - momentum) * rm + momentum * mean
        rv = (1 - momentum) * rv + momentum * unbiased
        np.testing.assert_allclose(_np(module.running_mean), rm, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(_np(module.running_var), rv, rtol=1e-12)
    # PyTorch does not count batches for instance norm
    assert module.num_batches_tracked.item() == 0
    module.eval()
    x = rng.standard_normal(shape)
    spatial_dims = len(shape) - (2 if len(shape) == module._ranks[1] else 1)
    c = (3,) + (1,) * spatial_dims
    np.testing.assert_allclose(_np(module(mg.tensor(x))), (x - rm.reshape(c)) / np.sqrt(rv.reshape(c) + 1e-5),
                               rtol=1e-12)


def test_instance_norm_momentum_none_means_no_update(rng):
    module = InstanceNorm1d(2, momentum=None, track_running_stats=True).double()
    module(mg.tensor(rng.standard_normal((3, 2, 4)) + 5))
    np.testing.assert_array_equal(_np(module.running_mean), np.zeros(2))
    np.testing.assert_array_equal(_np(module.running_var), np.ones(2))


# ---------------------------------------------------------------- state_dict and moves

def test_state_dict_round_trip_and_old_checkpoints(rng):
    module = BatchNorm1d(3, momentum=0.5)
    for _ in range(2):
        module(mg.tensor(rng.standard_normal((4, 3)).astype(np.float32)))
    sd = module.state_dict()
    assert list(sd) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    fresh = BatchNorm1d(3)
    fresh.load_state_dict(sd)
    for key in sd:
        np.testing.assert_array_equal(_np(fresh.state_dict()[key]), _np(sd[key]))
    # a checkpoint from before num_batches_tracked existed loads with 0 batches
    old = {k: v for k, v in sd.items() if k != "num_batches_tracked"}
    fresh.load_state_dict(old)
    assert fresh.num_batches_tracked.item() == 0


def test_buffers_move_with_to(rng):
    module = BatchNorm2d(3)
    module.to(mg.float64)
    assert module.running_mean.dtype == mg.float64 and module.running_var.dtype == mg.float64
    assert module.num_batches_tracked.dtype == mg.int64
    module.to("standin")
    assert all(b.device == "standin" for b in module.buffers())
    module(mg.tensor(rng.standard_normal((2, 3, 2, 2)), device="standin"))
    assert module.num_batches_tracked.item() == 1


# ---------------------------------------------------------------- PyTorch

@pytest.mark.parametrize("momentum", [0.1, 0.3, None])
@pytest.mark.parametrize("name,shape", [("BatchNorm1d", (5, 3)), ("BatchNorm1d", (2, 3, 4)),
                                        ("BatchNorm2d", (2, 3, 3, 3)), ("BatchNorm3d", (2, 3, 2, 2, 2)),
                                        ("InstanceNorm1d", (2, 3, 6)), ("InstanceNorm2d", (2, 3, 2, 3))])
def test_running_stats_match_pytorch_over_several_steps(rng, name, shape, momentum):
    torch = pytest.importorskip("torch")
    import minigrad.nn.layers.normalization as ours_mod
    kwargs = {"momentum": momentum}
    if name.startswith("Instance"):
        kwargs.update(affine=True, track_running_stats=True)
    ours = getattr(ours_mod, name)(3, **kwargs)
    theirs = getattr(torch.nn, name)(3, **kwargs)
    for step in range(4):
        x = (rng.standard_normal(shape) * (step + 1) + step).astype(np.float32)
        np.testing.assert_allclose(_np(ours(mg.tensor(x))), theirs(torch.from_numpy(x)).detach().numpy(),
                                   rtol=1e-4, atol=1e-4)
        for (key, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
            np.testing.assert_allclose(_np(a), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=key)
    ours.eval()
    theirs.eval()
    x = rng.standard_normal(shape).astype(np.float32)
    np.testing.assert_allclose(_np(ours(mg.tensor(x))), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)
