"""Map-style datasets: `Dataset`, `TensorDataset`, `Subset` and `random_split`,
with PyTorch's names and semantics."""
import math
import numbers

from ..device import CPU
from ..random import draw
from ..tensor import Tensor


class Dataset:
    """A map-style dataset: subclasses implement `__getitem__(index)` and `__len__()`.

    `DataLoader` asks `len(dataset)` for the number of samples and fetches them
    by integer index."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")


class TensorDataset(Dataset):
    """Samples are the rows of tensors that share their first dimension:
    `dataset[i] == (t[i] for t in tensors)`, as a tuple."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        for i, t in enumerate(tensors):
            if not isinstance(t, Tensor):
                raise TypeError(f"TensorDataset expects Tensors; argument {i} is {type(t).__name__} "
                                "(convert numpy arrays with mg.tensor or mg.from_numpy)")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: argument {i} is a 0-d tensor; each tensor needs a "
                                 "first dimension indexing the samples")
        sizes = [t.shape[0] for t in tensors]
        if len(set(sizes)) != 1:
            raise ValueError(f"Size mismatch between tensors: first dimensions are {sizes}; "
                             "all tensors must hold the same number of samples")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return self.tensors[0].shape[0]


class Subset(Dataset):
    """The samples of `dataset` at `indices`, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, index):
        return self.dataset[self.indices[index]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths):
    """Splits `dataset` into non-overlapping `Subset`s of the given lengths (counts,
    or fractions summing to 1 as in PyTorch), drawing the permutation from
    minigrad's global generator so `mg.manual_seed` reproduces it."""
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(f, numbers.Real) and 0 <= f <= 1 for f in lengths) \
            and math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = [int(math.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):  # round-robin the remainder, as PyTorch does
            counts[i % len(counts)] += 1
        lengths = counts
    if any(not isinstance(k, numbers.Integral) or k < 0 for k in lengths):
        raise ValueError(f"random_split: lengths must be non-negative integers or fractions summing "
                         f"to 1, got {lengths}")
    if sum(lengths) != n:
        raise ValueError(f"random_split: sum of input lengths ({sum(lengths)}) does not equal the "
                         f"length of the input dataset ({n})")
    order = draw(CPU, "permutation", (n,), "int64").tolist()
    subsets, start = [], 0
    for k in lengths:
        subsets.append(Subset(dataset, order[start:start + k]))
        start += k
    return subsets
