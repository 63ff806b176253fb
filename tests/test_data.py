"""Datasets, DataLoader and default_collate: batching, shuffling reproducible
under mg.manual_seed, drop_last, the TensorDataset fast path (checked against
the per-sample path), collation rules (checked against PyTorch's when present)."""
import collections

import numpy as np
import pytest

import minigrad as mg
from minigrad.data import (DataLoader, Dataset, Subset, TensorDataset, default_collate,
                           random_split)


class Rows(Dataset):
    """The rows of some tensors, served one sample at a time (the generic path)."""

    def __init__(self, *tensors):
        self.tensors = tensors

    def __getitem__(self, i):
        return tuple(t[i] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


def toy(n=10, rng=None):
    rng = rng or np.random.default_rng(0)
    x = mg.tensor(rng.standard_normal((n, 3)).astype(np.float32))
    y = mg.arange(n)
    return x, y


def orders(loader, epochs=2):
    """The sample order of each pass, read from the labels (y = arange)."""
    return [np.concatenate([y.numpy() for _, y in loader]).tolist() for _ in range(epochs)]


# -- datasets ------------------------------------------------------------------

def test_tensor_dataset_indexes_rows_and_checks_sizes():
    x, y = toy(5)
    ds = TensorDataset(x, y)
    assert len(ds) == 5
    xi, yi = ds[3]
    np.testing.assert_array_equal(xi.numpy(), x.numpy()[3])
    assert yi.item() == 3
    with pytest.raises(ValueError, match=r"Size mismatch.*\[5, 4\]"):
        TensorDataset(x, mg.arange(4))
    with pytest.raises(TypeError, match="argument 1 is ndarray"):
        TensorDataset(x, np.arange(5))
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(mg.tensor(1.0))


def test_random_split_covers_the_dataset_disjointly_and_reproducibly():
    ds = TensorDataset(*toy(10))
    mg.manual_seed(3)
    a, b = random_split(ds, [7, 3])
    assert (len(a), len(b)) == (7, 3)
    assert sorted(a.indices + b.indices) == list(range(10))
    mg.manual_seed(3)
    a2, _ = random_split(ds, [0.7, 0.3])
    assert a2.indices == a.indices
    assert a[0][1].item() == a.indices[0]
    with pytest.raises(ValueError, match=r"sum of input lengths \(9\)"):
        random_split(ds, [5, 4])


# -- DataLoader: batching ------------------------------------------------------

@pytest.mark.parametrize("n, batch_size, drop_last, sizes", [
    (10, 3, False, [3, 3, 3, 1]), (10, 3, True, [3, 3, 3]), (9, 3, False, [3, 3, 3]),
    (9, 3, True, [3, 3, 3]), (2, 5, False, [2]), (2, 5, True, []), (10, 1, False, [1] * 10),
])
def test_batches_in_order_with_the_right_sizes_and_len(n, batch_size, drop_last, sizes):
    x, y = toy(n)
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, drop_last=drop_last)
    batches = list(loader)
    assert len(loader) == len(sizes) == len(batches)
    assert [len(b[1]) for b in batches] == sizes
    for xb, yb in batches:
        assert isinstance(xb, mg.Tensor) and xb.dtype == mg.float32 and yb.dtype == mg.int64
        np.testing.assert_array_equal(xb.numpy(), x.numpy()[yb.numpy()])
    kept = sum(sizes)
    assert np.concatenate([b[1].numpy() for b in batches] or [[]]).tolist() == list(range(kept))


def test_batches_are_fresh_memory():
    x, y = toy(6)
    xb, _ = next(iter(DataLoader(TensorDataset(x, y), batch_size=4)))
    with mg.no_grad():
        xb.mul_(0.0)
    assert np.abs(x.numpy()[:4]).sum() > 0


def test_shuffle_gives_a_new_permutation_each_pass_and_manual_seed_reproduces_them():
    ds = TensorDataset(*toy(50))
    loader = DataLoader(ds, batch_size=8, shuffle=True)
    mg.manual_seed(11)
    first = orders(loader, 3)
    for order in first:
        assert sorted(order) == list(range(50))
    assert first[0] != first[1] and first[1] != first[2] and first[0] != list(range(50))
    mg.manual_seed(11)
    assert orders(loader, 3) == first
    mg.manual_seed(12)
    assert orders(loader, 1)[0] != first[0]


def test_shuffle_draws_from_minigrad_s_global_generator():
    mg.manual_seed(5)
    untouched = mg.rand(3).numpy()
    mg.manual_seed(5)
    iter(DataLoader(TensorDataset(*toy(20)), batch_size=4))  # no shuffle: no draw
    np.testing.assert_array_equal(mg.rand(3).numpy(), untouched)
    mg.manual_seed(5)
    iter(DataLoader(TensorDataset(*toy(20)), batch_size=4, shuffle=True))  # drawn when a pass starts
    assert not np.array_equal(mg.rand(3).numpy(), untouched)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("subset", [False, True])
def test_tensor_dataset_fast_path_matches_the_per_sample_path(shuffle, drop_last, subset):
    x, y = toy(23)
    mask = mg.tensor(np.arange(23) % 3 == 0)
    fast, slow = TensorDataset(x, y, mask), Rows(x, y, mask)
    if subset:
        picks = [5, 1, 22, 7, 7, 0, 13, 2, 9, 19, 4, 11]
        reverse = list(range(23))[::-1]
        fast, slow = Subset(Subset(fast, reverse), picks), Subset(Subset(slow, reverse), picks)
    batches = []
    for ds in (fast, slow):
        mg.manual_seed(2)
        batches.append(list(DataLoader(ds, batch_size=5, shuffle=shuffle, drop_last=drop_last)))
    assert len(batches[0]) == len(batches[1]) > 0
    for bf, bs in zip(*batches):
        assert isinstance(bf, list) and isinstance(bs, list) and len(bf) == len(bs) == 3
        for tf, ts in zip(bf, bs):
            assert tf.shape == ts.shape and tf.dtype == ts.dtype and tf.device == ts.device
            np.testing.assert_array_equal(tf.numpy(), ts.numpy())


@pytest.mark.parametrize("device", ["standin", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_fast_path_on_another_device_matches_cpu(device):
    x, y = toy(17)
    results = []
    for dev in ("cpu", device):
        mg.manual_seed(9)
        loader = DataLoader(TensorDataset(x.to(dev), y.to(dev)), batch_size=4, shuffle=True)
        results.append(list(loader))
    for (xc, yc), (xs, ys) in zip(*results):
        assert xs.device == device and ys.device == device
        np.testing.assert_array_equal(np.asarray(xs), xc.numpy())
        np.testing.assert_array_equal(np.asarray(ys), yc.numpy())


def test_batches_of_a_tensor_that_requires_grad_carry_the_graph():
    w = mg.tensor(np.arange(12.0).reshape(6, 2), requires_grad=True)
    mg.manual_seed(0)
    for (wb,) in DataLoader(TensorDataset(w), batch_size=4, shuffle=True):
        (wb * 2).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full((6, 2), 2.0))


def test_custom_dataset_with_numpy_samples_and_int_labels():
    class Squares(Dataset):
        def __getitem__(self, i):
            return np.full((2, 2), i, dtype=np.float32), i * i

        def __len__(self):
            return 7

    xb, yb = list(DataLoader(Squares(), batch_size=3))[-1]
    assert xb.shape == (1, 2, 2) and xb.dtype == mg.float32
    assert yb.dtype == mg.int64 and yb.tolist() == [36]


def test_sampler_batch_sampler_and_batch_size_none():
    ds = TensorDataset(*toy(6))
    with_sampler = DataLoader(ds, batch_size=2, sampler=[5, 4, 3, 2, 1, 0])
    assert len(with_sampler) == 3 and orders(with_sampler, 1)[0] == [5, 4, 3, 2, 1, 0]
    by_batch = DataLoader(ds, batch_sampler=[[0, 2], [4], [1, 3, 5]])
    assert len(by_batch) == 3 and [b[1].tolist() for b in by_batch] == [[0, 2], [4], [1, 3, 5]]
    single = DataLoader(ds, batch_size=None)
    samples = list(single)
    assert len(single) == 6 and samples[2][1].item() == 2 and samples[2][0].shape == (3,)
    collated = DataLoader(ds, batch_size=4, collate_fn=lambda batch: len(batch))
    assert list(collated) == [4, 2]
    with pytest.raises(IndexError, match="sampler index 6 is out of range for a dataset of 6 samples"):
        list(DataLoader(ds, batch_size=2, sampler=[0, 6]))
    with pytest.raises(IndexError, match="Subset index -7 is out of range"):
        list(DataLoader(Subset(ds, [1, -7]), batch_size=2))
    with pytest.raises(IndexError, match="sampler index 2 is out of range for a dataset of 2 samples"):
        list(DataLoader(Subset(ds, [1, 3]), batch_size=2, sampler=[2]))


def test_loader_argument_errors():
    ds = TensorDataset(*toy(4))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size should be a positive integer"):
            DataLoader(ds, batch_size=bad)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(ds, sampler=[0, 1], shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        DataLoader(ds, batch_sampler=[[0]], batch_size=2)
    with pytest.raises(ValueError, match="drop_last"):
        DataLoader(ds, batch_size=None, drop_last=True)
    with pytest.raises(ValueError, match="num_workers"):
        DataLoader(ds, num_workers=-1)

    class NoLen(Dataset):
        def __getitem__(self, i):
            return i

    with pytest.raises(TypeError, match="NoLen has no __len__"):
        DataLoader(NoLen())
    assert len(DataLoader(ds, batch_size=3, num_workers=2, pin_memory=True)) == 2


# -- default_collate -------------------------------------------------------------

Point = collections.namedtuple("Point", "xy label")


def test_default_collate_rules():
    batch = default_collate([
        {"img": np.ones((2, 2), np.float64) * i, "id": i, "w": i / 2, "ok": i % 2 == 0, "name": f"s{i}",
         "pair": (mg.tensor([i, i]), np.int32(i)), "pt": Point(np.float32(i), i)}
        for i in range(3)])
    assert batch["img"].shape == (3, 2, 2) and batch["img"].dtype == mg.float64
    assert batch["id"].dtype == mg.int64 and batch["id"].tolist() == [0, 1, 2]
    assert batch["w"].dtype == mg.float64 and batch["w"].tolist() == [0.0, 0.5, 1.0]
    assert batch["ok"].dtype == mg.bool and batch["ok"].tolist() == [True, False, True]
    assert batch["name"] == ["s0", "s1", "s2"]
    pair = batch["pair"]
    assert isinstance(pair, list) and pair[0].tolist() == [[0, 0], [1, 1], [2, 2]]
    assert pair[1].dtype == mg.int64 and pair[1].tolist() == [0, 1, 2]
    assert isinstance(batch["pt"], Point) and batch["pt"].xy.dtype == mg.float32
    assert default_collate([[1, 2.5], [3, 4]])[0].dtype == mg.int64
    assert default_collate([1, 2.5]).tolist() == [1.0, 2.5]  # no silent truncation to int


def test_default_collate_errors_name_the_problem():
    with pytest.raises(RuntimeError, match=r"equal size, but got \[2\] at entry 0 and \[3\] at entry 1"):
        default_collate([mg.zeros(2), mg.zeros(3)])
    with pytest.raises(RuntimeError, match=r"shape \[2\] at entry 0 and shape \[3\] at entry 1"):
        default_collate([np.zeros(2), np.zeros(3)])
    with pytest.raises(RuntimeError, match="different devices"):
        default_collate([mg.zeros(2), mg.zeros(2).to("standin")])
    with pytest.raises(RuntimeError, match="equal size"):
        default_collate([[1, 2], [3]])
    with pytest.raises(TypeError, match="found object"):
        default_collate([object(), object()])
    with pytest.raises(TypeError, match="dtype <U1"):
        default_collate([np.array(["a"]), np.array(["b"])])
    with pytest.raises(TypeError, match="sample 0 is a Tensor but sample 1 is int"):
        default_collate([mg.zeros(1), 3])


def test_default_collate_matches_pytorch():
    torch = pytest.importorskip("torch")
    from torch.utils.data import default_collate as torch_collate
    rng = np.random.default_rng(0)
    samples = [(rng.standard_normal((3, 2)), rng.standard_normal(4).astype(np.float32), int(i), float(i) / 3,
                {"k": rng.integers(0, 5, size=2)}) for i in range(4)]
    ours, theirs = default_collate(samples), torch_collate(samples)
    assert type(ours) is type(theirs) is list and len(ours) == len(theirs)

    def compare(a, b):
        if isinstance(b, torch.Tensor):
            assert a.shape == tuple(b.shape) and a.dtype.name == str(b.dtype).replace("torch.", "")
            np.testing.assert_array_equal(a.numpy(), b.numpy())
        elif isinstance(b, dict):
            assert set(a) == set(b)
            for k in b:
                compare(a[k], b[k])
        else:
            for x, y in zip(a, b):
                compare(x, y)

    compare(ours, theirs)
