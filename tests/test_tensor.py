import numpy as np
import pytest

import minigrad as mg


def test_dtype_inference_follows_pytorch():
    assert mg.tensor([1.0, 2.0]).dtype == mg.float32
    assert mg.tensor([1, 2]).dtype == mg.int64
    assert mg.tensor([True, False]).dtype == mg.bool
    assert mg.tensor(np.zeros(3)).dtype == mg.float64
    assert mg.tensor(np.zeros(3, dtype=np.int32)).dtype == mg.int64
    assert mg.tensor(np.zeros(3, dtype=np.float16)).dtype == mg.float32
    assert mg.tensor(2.5).shape == ()
    assert mg.tensor([[1, 2], [3, 4]], dtype=mg.float64).dtype == mg.float64


def test_tensor_copies_numpy_but_from_numpy_shares():
    a = np.arange(4.0)
    t = mg.tensor(a)
    s = mg.from_numpy(a)
    a[0] = 10.0
    assert t[0].item() == 0.0
    assert s[0].item() == 10.0


def test_factories_shapes_and_dtypes():
    assert mg.zeros(2, 3).shape == (2, 3)
    assert mg.ones((4,)).dtype == mg.float32
    assert mg.full((2, 2), 7).dtype == mg.int64
    assert mg.full((2, 2), 7.0).dtype == mg.float32
    assert mg.arange(5).dtype == mg.int64
    assert mg.arange(0, 1, 0.25).tolist() == [0.0, 0.25, 0.5, 0.75]
    assert mg.zeros_like(mg.ones(3, dtype=mg.float64)).dtype == mg.float64
    assert mg.randn(3, 4, requires_grad=True).requires_grad
    assert mg.eye(3).numpy().trace() == 3.0
    with pytest.raises(ValueError, match="negative dimension"):
        mg.zeros(-1, 2)


def test_manual_seed_reproduces_draws():
    mg.manual_seed(7)
    a = mg.randn(5).numpy().copy()
    b = mg.rand(5).numpy().copy()
    mg.manual_seed(7)
    assert np.array_equal(a, mg.randn(5).numpy())
    assert np.array_equal(b, mg.rand(5).numpy())


def test_randn_statistics():
    mg.manual_seed(0)
    x = mg.randn(200000).numpy()
    assert abs(x.mean()) < 0.01 and abs(x.std() - 1) < 0.01


def test_repr_looks_like_pytorch():
    assert repr(mg.tensor([1.0, 2.0])) == "tensor([1., 2.])"
    assert repr(mg.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(mg.tensor([0.5], dtype=mg.float64)) == "tensor([0.5000], dtype=minigrad.float64)"
    assert repr(mg.tensor([1.5], requires_grad=True)) == "tensor([1.5000], requires_grad=True)"
    y = mg.tensor([1.5], requires_grad=True) * 2
    assert "grad_fn=<MulBackward>" in repr(y)


def test_attributes_and_conversions():
    t = mg.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.ndim == 2 and t.numel() == 4 and t.size() == (2, 2) and t.size(1) == 2
    assert t.device == "cpu" and t.device == mg.device("cpu")
    assert t.is_leaf and t.grad is None
    assert t.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    assert t.sum().item() == 10.0
    assert float(t[1, 1]) == 4.0
    assert t.double().dtype == mg.float64 and t.long().dtype == mg.int64
    assert t.to(mg.float64).dtype == mg.float64
    assert t.to("cpu") is t
    with pytest.raises(ValueError, match="only one element"):
        t.item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(t)


def test_numpy_requires_detach_when_tracking():
    t = mg.ones(2, requires_grad=True)
    with pytest.raises(RuntimeError, match="detach"):
        t.numpy()
    assert t.detach().numpy().tolist() == [1.0, 1.0]


def test_data_shares_storage_without_graph():
    t = mg.ones(3, requires_grad=True)
    d = t.data
    assert not d.requires_grad
    d[0] = 5.0
    assert t.detach().numpy()[0] == 5.0


def test_int_promotion_matches_pytorch():
    i = mg.arange(4)
    assert (i * 0.5).dtype == mg.float32
    assert (i / 2).dtype == mg.float32
    assert (i + 1).dtype == mg.int64
    assert (mg.ones(2, dtype=mg.float64) * i[:2]).dtype == mg.float64


def test_only_float_tensors_require_grad():
    with pytest.raises(RuntimeError, match="floating point"):
        mg.tensor([1, 2], requires_grad=True)


def test_inplace_on_leaf_requiring_grad_is_refused_outside_no_grad():
    w = mg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="in-place"):
        w.add_(1.0)
    with mg.no_grad():
        w.add_(1.0)
    assert w.detach().numpy().tolist() == [2.0, 2.0, 2.0]


def test_numpy_operands_mix_in():
    t = mg.tensor([1.0, 2.0])
    assert (t + np.array([1.0, 1.0], dtype=np.float32)).tolist() == [2.0, 3.0]
    assert (np.array([1.0, 1.0], dtype=np.float32) + t).tolist() == [2.0, 3.0]
    assert (2 - t).tolist() == [1.0, 0.0]
    assert (t ** 2).tolist() == [1.0, 4.0]
    assert (2 ** t).tolist() == [2.0, 4.0]


def test_comparisons_return_bool_tensors():
    t = mg.tensor([1.0, 2.0, 3.0])
    m = t > 1.5
    assert m.dtype == mg.bool and m.tolist() == [False, True, True]
    assert (t == 2.0).tolist() == [False, True, False]
    assert t[m].tolist() == [2.0, 3.0]


def test_max_min_with_dim_return_values_and_indices():
    t = mg.tensor([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]])
    v, i = t.max(dim=1)
    assert v.tolist() == [5.0, 6.0] and i.tolist() == [1, 2]
    v, i = t.min(axis=0, keepdims=True)
    assert v.shape == (1, 3) and i.tolist() == [[0, 1, 0]]
    assert t.max().item() == 6.0
    assert t.argmax().item() == 5


def test_var_std_correction():
    x = np.random.default_rng(0).standard_normal((4, 5))
    t = mg.tensor(x)
    assert np.allclose(t.var().item(), x.var(ddof=1))
    assert np.allclose(t.var(unbiased=False).numpy(), x.var())
    assert np.allclose(t.std(dim=1, correction=0).numpy(), x.std(axis=1))
    assert np.allclose(t.var(1, keepdim=True).numpy(), x.var(axis=1, ddof=1, keepdims=True))


def test_shape_ops():
    t = mg.arange(24).reshape(2, 3, 4)
    assert t.permute(2, 0, 1).shape == (4, 2, 3)
    assert t.transpose(0, 2).shape == (4, 3, 2)
    assert t.flatten(1).shape == (2, 12)
    assert t.unsqueeze(0).shape == (1, 2, 3, 4)
    assert t.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert mg.zeros(1, 3, 1).squeeze().shape == (3,)
    assert mg.zeros(1, 3, 1).squeeze(0).shape == (3, 1)
    assert mg.zeros(3, 1).expand(3, 4).shape == (3, 4)
    assert mg.zeros(3, 1).expand(2, -1, 5).shape == (2, 3, 5)
    assert t.view(-1).shape == (24,)
    assert mg.cat([mg.zeros(2, 3), mg.ones(2, 1)], dim=1).shape == (2, 4)
    assert mg.stack([mg.zeros(2), mg.ones(2)], dim=1).tolist() == [[0.0, 1.0], [0.0, 1.0]]
    assert t.T.shape == (4, 3, 2)


def test_indexing_variants():
    x = np.arange(60.0).reshape(3, 4, 5)
    t = mg.tensor(x)
    assert np.array_equal(t[1].numpy(), x[1])
    assert np.array_equal(t[:, 1:3].numpy(), x[:, 1:3])
    assert np.array_equal(t[..., -1].numpy(), x[..., -1])
    assert np.array_equal(t[None, 0].numpy(), x[None, 0])
    assert np.array_equal(t[[0, 2, 2]].numpy(), x[[0, 2, 2]])
    assert np.array_equal(t[mg.tensor([0, 1]), :, mg.tensor([4, 3])].numpy(), x[[0, 1], :, [4, 3]])
    assert np.array_equal(t[t > 30].numpy(), x[x > 30])


def test_setitem():
    t = mg.zeros(3, 3)
    t[1] = 2.0
    t[:, 0] = mg.tensor([7.0, 8.0, 9.0])
    assert t.numpy().tolist() == [[7, 0, 0], [8, 2, 2], [9, 0, 0]]


def test_rng_state_round_trip_continues_the_stream():
    mg.manual_seed(3)
    mg.randn(10)
    state = mg.get_rng_state()
    a = mg.randn(5).numpy().copy()
    mg.manual_seed(99)
    mg.set_rng_state(state)
    assert np.array_equal(mg.randn(5).numpy(), a)
    with pytest.raises(ValueError, match="get_rng_state"):
        mg.set_rng_state({"nope": 1})


def test_explicit_float64_keeps_full_precision_of_python_floats():
    assert mg.tensor([0.6, 0.8], dtype=mg.float64).tolist() == [0.6, 0.8]
    assert mg.tensor(0.1, dtype=mg.float64).item() == 0.1


def test_deepcopy_copies_data_and_grad():
    import copy
    t = mg.ones(3, requires_grad=True)
    (t * 2).sum().backward()
    c = copy.deepcopy(t)
    with mg.no_grad():
        c.add_(1.0)
    assert t.tolist() == [1.0, 1.0, 1.0] and c.tolist() == [2.0, 2.0, 2.0]
    assert c.requires_grad and c.grad.tolist() == [2.0, 2.0, 2.0]
