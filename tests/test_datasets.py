"""load_digits (scikit-learn's real 8x8 digits) and the IDX reader behind
load_mnist, on small IDX files written here: values, shapes, the split, and a
clear error for every kind of broken file."""
import gzip
import re
import struct
import sys

import numpy as np
import pytest

import minigrad as mg
from minigrad.data import datasets
from minigrad.data.datasets import load_digits, load_mnist, read_idx

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(">i2"): 0x0B,
             np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(arr):
    """An IDX file's bytes, written from the format description (big-endian)."""
    arr = np.asarray(arr)
    big = arr.astype(arr.dtype.newbyteorder(">")) if arr.dtype.itemsize > 1 else arr
    code = IDX_CODES[big.dtype]
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + big.tobytes()


def write(path, data, gz=False):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def mnist_like(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 3, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5, dtype=np.uint8)
    return tmp_path, images, labels


# -- digits ----------------------------------------------------------------------

def test_load_digits_gives_the_real_digits_split_stratified_and_deterministic():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    x_train, y_train, x_test, y_test = split = load_digits()
    assert isinstance(split, datasets.Split) and split.x_test is x_test
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert x_train.dtype == mg.float32 and y_train.dtype == mg.int64
    xs = np.concatenate([x_train.numpy(), x_test.numpy()])
    assert xs.min() == 0.0 and xs.max() == 1.0
    # every image is one of scikit-learn's, with its label, exactly once
    digits = sklearn_datasets.load_digits()
    ours = sorted(zip(map(bytes, (xs * 16).round().astype(np.uint8)),
                      np.concatenate([y_train.numpy(), y_test.numpy()]).tolist()))
    theirs = sorted(zip(map(bytes, digits.data.astype(np.uint8)), digits.target.tolist()))
    assert ours == theirs
    # stratified: each class keeps its share (within one image) in the test part
    test_counts = np.bincount(y_test.numpy(), minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * np.bincount(digits.target)) <= 1)
    again = load_digits()
    for a, b in zip(split, again):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    other = load_digits(seed=1)
    assert not np.array_equal(other.y_train.numpy(), y_train.numpy())


def test_load_digits_options():
    pytest.importorskip("sklearn")
    flat = load_digits(test_size=0.5, seed=3)
    images = load_digits(test_size=0.5, seed=3, flatten=False, device="standin")
    assert images.x_train.shape == (898, 1, 8, 8) and images.x_test.shape == (899, 1, 8, 8)
    assert images.x_train.device == "standin"
    np.testing.assert_array_equal(np.asarray(images.x_train).reshape(-1, 64), flat.x_train.numpy())
    assert load_digits(test_size=100).x_test.shape == (100, 64)
    for bad in (0.0, 1.0, 1, 5000, "0.2", True):
        with pytest.raises(ValueError, match="test_size"):
            load_digits(test_size=bad)


def test_load_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes the import fail
    with pytest.raises(ImportError, match=re.escape("pip install minigrad[examples]")):
        load_digits()


# -- IDX reader ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_reads_every_type_in_native_byte_order(tmp_path, dtype, gz):
    rng = np.random.default_rng(1)
    arr = (rng.standard_normal((2, 3, 4)) * 50).astype(np.dtype(dtype).newbyteorder("="))
    back = read_idx(write(tmp_path / "a.idx", idx_bytes(arr), gz))
    assert back.dtype == arr.dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("names", [("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                                   ("train-images.idx3-ubyte.gz", "train-labels.idx1-ubyte.gz")])
def test_load_mnist_reads_standard_file_names_gzipped_or_not(mnist_like, names):
    root, images, labels = mnist_like
    for name, arr in zip(names, (images, labels)):
        write(root / name, idx_bytes(arr), gz=name.endswith(".gz"))
    x, y = load_mnist(root)
    assert x.shape == (5, 12) and x.dtype == mg.float32 and y.dtype == mg.int64
    np.testing.assert_allclose(x.numpy(), images.reshape(5, 12) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y.numpy(), labels)
    x4, _ = load_mnist(str(root), flatten=False, device="standin")
    assert x4.shape == (5, 1, 3, 4) and x4.device == "standin"


def test_load_mnist_reads_the_t10k_files_and_detects_gzip_by_content(mnist_like):
    root, images, labels = mnist_like
    write(root / "t10k-images-idx3-ubyte", idx_bytes(images), gz=True)  # gzipped without .gz
    write(root / "t10k-labels-idx1-ubyte.gz", idx_bytes(labels))  # .gz but plain
    x, y = load_mnist(root, kind="t10k")
    np.testing.assert_array_equal(y.numpy(), labels)
    assert x.shape == (5, 12)


def mnist_dir(root, images_bytes, labels_bytes):
    write(root / "train-images-idx3-ubyte", images_bytes)
    write(root / "train-labels-idx1-ubyte", labels_bytes)
    return root


@pytest.mark.parametrize("broken, which, message", [
    (lambda im, lb: (b"", lb), "images", "too short"),
    (lambda im, lb: (b"\x00\x00\x08", lb), "images", "too short"),
    (lambda im, lb: (b"\x1f\x8b" + im, lb), "images", "gzip"),
    (lambda im, lb: (b"\x01" + im[1:], lb), "images", "bad magic number 0x01000803"),
    (lambda im, lb: (im[:2] + b"\x07" + im[3:], lb), "images", "bad magic number"),
    (lambda im, lb: (im[:10], lb), "images", "truncated IDX header"),
    (lambda im, lb: (im[:-1], lb), "images", r"truncated.*\[5, 3, 4\].*60 data bytes.*59"),
    (lambda im, lb: (im + b"\x00", lb), "images", "trailing bytes"),
    (lambda im, lb: (im, lb[:-2]), "labels", "truncated"),
    (lambda im, lb: (lb, im), "images", "expected MNIST images"),
    (lambda im, lb: (im, idx_bytes(np.arange(5, dtype=">i4"))), "labels", "found int32"),
    (lambda im, lb: (im, idx_bytes(np.arange(4, dtype=np.uint8))), "images",
     "holds 5 images but .*train-labels-idx1-ubyte holds 4 labels"),
])
def test_broken_mnist_files_are_clear_errors_naming_the_file(mnist_like, broken, which, message):
    root, images, labels = mnist_like
    im, lb = broken(idx_bytes(images), idx_bytes(labels))
    mnist_dir(root, im, lb)
    named = root / f"train-{which}-idx{3 if which == 'images' else 1}-ubyte"
    with pytest.raises(ValueError, match=re.escape(str(named)) + ".*" + message):
        load_mnist(root)


def test_truncated_gzip_is_a_clear_error(mnist_like):
    root, images, labels = mnist_like
    data = gzip.compress(idx_bytes(images))
    write(root / "train-images-idx3-ubyte.gz", data[: len(data) // 2])
    write(root / "train-labels-idx1-ubyte.gz", idx_bytes(labels), gz=True)
    with pytest.raises(ValueError, match=re.escape(str(root / "train-images-idx3-ubyte.gz")) + ".*gzip"):
        load_mnist(root)


def test_missing_files_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        load_mnist(tmp_path)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist(tmp_path / "absent")
    with pytest.raises(ValueError, match="kind must be 'train' or 't10k'"):
        load_mnist(tmp_path, kind="test")
