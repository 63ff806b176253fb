"""`DataLoader` and `default_collate`, with PyTorch's names and defaults.

Loading always runs in the calling process. Shuffling draws one permutation per
pass from minigrad's global generator, so `mg.manual_seed(n)` reproduces the
order of every epoch. A `TensorDataset` (or a `Subset` of one) is batched by
indexing each tensor once per batch, without a Python loop over samples.
"""
import collections.abc
import numbers

import numpy as np

from .. import dtypes as _dt
from ..device import CPU, get_default_device
from ..ops.shape import stack
from ..random import draw
from ..tensor import Tensor
from .dataset import Subset, TensorDataset


class DataLoader:
    """Iterates over `dataset` in batches of `batch_size` samples.

    shuffle: a new random order each pass (from `mg.manual_seed`'s generator).
    sampler / batch_sampler: iterables of indices / of index lists, as in PyTorch.
    collate_fn: turns a list of samples into a batch (default: `default_collate`).
    drop_last: drop the final batch when it holds fewer than `batch_size` samples.
    batch_size=None yields single samples (numpy arrays converted to tensors).
    num_workers and pin_memory are accepted so PyTorch scripts run unchanged;
    loading happens in the calling process either way.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, sampler=None, batch_sampler=None,
                 num_workers=0, collate_fn=None, pin_memory=False, drop_last=False):
        if batch_size is not None and (isinstance(batch_size, bool) or
                                       not isinstance(batch_size, numbers.Integral) or batch_size <= 0):
            raise ValueError(f"batch_size should be a positive integer value or None, got {batch_size!r}")
        if not isinstance(num_workers, numbers.Integral) or num_workers < 0:
            raise ValueError(f"num_workers option should be non-negative, got {num_workers!r}")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size = None
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None and batch_sampler is None:
            try:
                len(dataset)
            except TypeError:
                raise TypeError(f"DataLoader needs a map-style dataset with __len__ and __getitem__; "
                                f"{type(dataset).__name__} has no __len__") from None
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self._auto_collate = collate_fn is None
        if collate_fn is None:
            self.collate_fn = default_convert if batch_size is None and batch_sampler is None \
                else default_collate

    def __len__(self):
        if self.batch_sampler is not None:
            return len(self.batch_sampler)
        n = len(self.sampler) if self.sampler is not None else len(self.dataset)
        if self.batch_size is None:
            return n
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        # The order is drawn here, when the pass starts, not lazily at the first batch.
        if self.batch_sampler is not None:
            return self._collated([list(b) for b in self.batch_sampler])
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
        elif self.shuffle:
            order = draw(CPU, "permutation", (len(self.dataset),), np.int64)
        else:
            order = None
        if self.batch_size is None:
            indices = range(len(self.dataset)) if order is None else order.tolist()
            return (self.collate_fn(self.dataset[i]) for i in indices)
        n = len(self.dataset) if order is None else len(order)
        stop = n - n % self.batch_size if self.drop_last else n
        bounds = [(s, min(s + self.batch_size, stop)) for s in range(0, stop, self.batch_size)]
        source = _tensor_source(self.dataset) if self._auto_collate else None
        if source is not None:
            return _tensor_batches(*source, order, bounds)
        if order is None:
            return self._collated([range(a, b) for a, b in bounds])
        return self._collated([order[a:b].tolist() for a, b in bounds])

    def _collated(self, batches):
        dataset, collate = self.dataset, self.collate_fn
        for batch in batches:
            yield collate([dataset[i] for i in batch])

    def __repr__(self):
        return (f"DataLoader(dataset={type(self.dataset).__name__}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, drop_last={self.drop_last})")


# -- fast path for tensor datasets ---------------------------------------------

def _tensor_source(dataset):
    """(tensors, row_map) when `dataset` is a TensorDataset, possibly inside Subsets
    (row_map: int64 array of rows, or None for the identity); else None."""
    row_map = None
    while type(dataset) is Subset:  # exact types: a subclass may override __getitem__
        rows = _checked_rows(np.asarray(dataset.indices, dtype=np.int64), len(dataset.dataset), "Subset")
        row_map = rows if row_map is None else rows[row_map]
        dataset = dataset.dataset
    if type(dataset) is not TensorDataset:
        return None
    return dataset.tensors, row_map


def _checked_rows(rows, n, what):
    """`rows` after checking it indexes a dataset of n samples (numpy's own error
    would not say which index or which dataset)."""
    if rows.size and (rows.max() >= n or rows.min() < -n):
        bad = rows[(rows >= n) | (rows < -n)][0]
        raise IndexError(f"DataLoader: {what} index {bad} is out of range for a dataset of {n} samples")
    return rows


def _tensor_batches(tensors, row_map, order, bounds):
    if order is not None:
        _checked_rows(order, len(tensors[0]) if row_map is None else len(row_map), "sampler")
    if row_map is not None:
        order = row_map if order is None else row_map[order]
    on_device = {}  # the epoch's order, moved once to each device that needs it

    def rows(t, a, b):
        if order is None:
            return t._data[a:b].copy()  # a fresh batch, as stacking would give
        idx = on_device.get(t._device)
        if idx is None:
            idx = on_device[t._device] = t._device.backend.from_host(order)
        return t._data[idx[a:b]]

    for a, b in bounds:
        yield [t[slice(a, b) if order is None else order[a:b]] if t.requires_grad
               else Tensor._wrap(rows(t, a, b), t._device) for t in tensors]


# -- collation -----------------------------------------------------------------

def _host_to_tensor(arr):
    """A fresh numpy array as a tensor on the default device (no copy on the CPU)."""
    nd = _dt.canonical_numpy_dtype(arr.dtype)
    if nd != arr.dtype:
        arr = arr.astype(nd)
    dev = get_default_device()
    return Tensor._wrap(dev.backend.from_host(arr), dev)


def _stack_tensors(batch):
    first = batch[0]
    for i, t in enumerate(batch):
        if not isinstance(t, Tensor):
            raise TypeError(f"default_collate: sample 0 is a Tensor but sample {i} is "
                            f"{type(t).__name__}")
        if t.shape != first.shape:
            raise RuntimeError(f"default_collate: stack expects each tensor to be equal size, but got "
                               f"{list(first.shape)} at entry 0 and {list(t.shape)} at entry {i}")
        if t._device is not first._device:
            raise RuntimeError(f"default_collate: samples are on different devices: {first._device} "
                               f"at entry 0 and {t._device} at entry {i}")
    if any(t.requires_grad for t in batch):
        return stack(batch)
    return Tensor._wrap(first.backend.xp.stack([t._data for t in batch]), first._device)


def _stack_arrays(batch):
    first = batch[0]
    for i, a in enumerate(batch):
        if not isinstance(a, np.ndarray) or a.shape != first.shape:
            got = f"shape {list(a.shape)}" if isinstance(a, np.ndarray) else type(a).__name__
            raise RuntimeError(f"default_collate: expected numpy arrays of equal shape; got shape "
                               f"{list(first.shape)} at entry 0 and {got} at entry {i}")
    return _host_to_tensor(np.stack(batch))


def default_collate(batch):
    """Merges a list of samples into a batch, as PyTorch's default_collate does:
    tensors and numpy arrays are stacked along a new first dimension; ints become an
    int64 tensor, floats a float64 tensor, bools a bool tensor; strings stay a list;
    dicts, tuples (returned as lists), namedtuples and lists are collated field by field."""
    elem = batch[0]
    if isinstance(elem, Tensor):
        return _stack_tensors(batch)
    if isinstance(elem, np.ndarray):
        if elem.dtype.kind in "OSUV":
            raise TypeError(f"default_collate: numpy arrays of dtype {elem.dtype} cannot become "
                            "tensors; batch must hold numeric arrays")
        return _stack_arrays(batch)
    if isinstance(elem, (np.number, np.bool_)):
        return _host_to_tensor(np.array(batch))
    if isinstance(elem, (numbers.Integral, float)):
        return _collate_numbers(batch, elem)
    if isinstance(elem, (str, bytes)):
        return list(batch)
    if isinstance(elem, collections.abc.Mapping):
        merged = {key: default_collate([d[key] for d in batch]) for key in elem}
        try:
            return merged if type(elem) is dict else type(elem)(merged)
        except TypeError:  # a mapping type that cannot be built from a dict
            return merged
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(s)) for s in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(s) != size for s in batch):
            raise RuntimeError("default_collate: each element in list of batch should be of equal "
                               f"size; got sizes {[len(s) for s in batch]}")
        return [default_collate(list(s)) for s in zip(*batch)]
    raise TypeError(f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or "
                    f"lists; found {type(elem).__name__}")


def _collate_numbers(batch, elem):
    arr = np.array(batch)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"default_collate: sample 0 is a {type(elem).__name__} but the batch holds "
                        f"{sorted({type(b).__name__ for b in batch})}")
    if arr.dtype.kind == "f" or isinstance(elem, float):
        arr = arr.astype(np.float64, copy=False)  # PyTorch collates Python floats as float64
    return _host_to_tensor(arr)


def default_convert(data):
    """What `batch_size=None` applies to each sample: numpy arrays and numpy scalars
    become tensors; containers are converted element-wise; anything else is kept."""
    if isinstance(data, np.ndarray) and data.dtype.kind not in "OSUV":
        return _host_to_tensor(data.copy())
    if isinstance(data, (np.number, np.bool_)):
        return _host_to_tensor(np.asarray(data))
    if isinstance(data, collections.abc.Mapping):
        return {key: default_convert(v) for key, v in data.items()}
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(v) for v in data))
    if isinstance(data, (list, tuple)):
        return [default_convert(v) for v in data]
    return data
