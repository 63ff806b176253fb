"""Real data: the 8x8 handwritten digits that scikit-learn ships (`load_digits`)
and MNIST read from the IDX files a user has downloaded (`load_mnist`).
Nothing here downloads anything."""
import collections
import gzip
import math
import numbers
import os
import struct
import zlib

import numpy as np

from ..tensor import from_numpy

Split = collections.namedtuple("Split", "x_train y_train x_test y_test")
Split.__doc__ = "A train/test split of tensors; unpacks as (x_train, y_train, x_test, y_test)."


def _to_tensor(arr, device):
    t = from_numpy(np.ascontiguousarray(arr))
    return t if device is None else t.to(device)


# -- scikit-learn's digits -----------------------------------------------------

def load_digits(test_size=0.2, seed=0, flatten=True, device=None):
    """The 1797 real 8x8 handwritten digits (UCI optdigits test set) bundled with
    scikit-learn, split into train and test parts.

    The split is stratified (each digit keeps its share in both parts) and drawn
    with `seed`, independently of `mg.manual_seed`, so the same arguments always
    give the same split; the defaults give 1437 training and 360 test images.
    Images are float32 in [0, 1] (the 0..16 gray levels divided by 16), shaped
    (N, 64), or (N, 1, 8, 8) with flatten=False; labels are int64 in 0..9.
    Returns a `Split(x_train, y_train, x_test, y_test)` of Tensors on `device`
    (default: the CPU). Needs scikit-learn (`pip install minigrad[examples]`).
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
        from sklearn.model_selection import train_test_split
    except ImportError as e:
        raise ImportError("load_digits needs scikit-learn, which ships the digits data; install it "
                          "with `pip install minigrad[examples]` (or `pip install scikit-learn`)") from e
    fraction = isinstance(test_size, float) and 0 < test_size < 1
    count = isinstance(test_size, numbers.Integral) and not isinstance(test_size, bool) \
        and 10 <= test_size <= 1787
    if not (fraction or count):
        raise ValueError(f"load_digits: test_size must be a fraction in (0, 1) or a number of test "
                         f"images between 10 and 1787 (one per class at least), got {test_size!r}")
    digits = sklearn_digits()
    images = (digits.data / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    if not flatten:
        images = images.reshape(-1, 1, 8, 8)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_size, random_state=seed, stratify=labels)
    return Split(*(_to_tensor(a, device) for a in (x_train, y_train, x_test, y_test)))


# -- IDX files (MNIST and friends) ---------------------------------------------

# Type codes of the IDX format (third byte of the magic number); data is big-endian.
_IDX_TYPES = {0x08: np.dtype(np.uint8), 0x09: np.dtype(np.int8), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != _GZIP_MAGIC:  # by content, not by name: a gunzipped file may keep its .gz
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({e})") from None


def read_idx(path):
    """The array stored in an IDX file (gzipped or not), in native byte order.

    Checks the magic number (two zero bytes, a known type code, the number of
    dimensions) and that the data size is exactly what the header's dimensions
    say; a truncated or corrupt file raises ValueError naming the file."""
    path = os.fspath(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise ValueError(f"{path}: not an IDX file: {len(raw)} bytes, too short for the 4-byte magic "
                         "number (the file is empty or truncated)")
    magic = struct.unpack(">I", raw[:4])[0]
    code, ndim = raw[2], raw[3]
    if raw[:2] != b"\0\0" or code not in _IDX_TYPES or ndim == 0:
        raise ValueError(f"{path}: not an IDX file: bad magic number 0x{magic:08X} (an IDX magic "
                         "number is two zero bytes, a type code 08, 09, 0B, 0C, 0D or 0E, and the "
                         "number of dimensions)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX header: {ndim} dimensions need {header} header bytes, "
                         f"the file has {len(raw)}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = _IDX_TYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    have = len(raw) - header
    if have != expected:
        problem = "truncated" if have < expected else "has trailing bytes"
        raise ValueError(f"{path}: corrupt IDX file ({problem}): its header gives dimensions "
                         f"{list(dims)} of {dtype.name} ({expected} data bytes) but it holds "
                         f"{have} data bytes")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else arr


def _find_idx(directory, kind, what, idx_dims):
    tried = []
    for sep in ("-", "."):  # train-images-idx3-ubyte (LeCun's names) or train-images.idx3-ubyte
        for ext in (".gz", ""):
            name = f"{kind}-{what}{sep}idx{idx_dims}-ubyte{ext}"
            tried.append(name)
            candidate = os.path.join(directory, name)
            if os.path.isfile(candidate):
                return candidate
    raise FileNotFoundError(f"load_mnist: no {what} file for kind={kind!r} in {directory!r}; looked "
                            f"for {', '.join(tried)}. Download the four MNIST IDX files (gzipped or "
                            "not) into that directory.")


def _read_mnist_part(directory, kind, what, ndim):
    path = _find_idx(directory, kind, what, ndim)
    arr = read_idx(path)
    if arr.dtype != np.uint8 or arr.ndim != ndim:
        raise ValueError(f"{path}: expected MNIST {what}: unsigned bytes in {ndim} dimensions "
                         f"(magic number 0x0000080{ndim}), found {arr.dtype} in {arr.ndim} dimensions")
    return path, arr


def load_mnist(path, kind="train", flatten=True, device=None):
    """MNIST (or a drop-in such as Fashion-MNIST) from the standard IDX files in
    directory `path`: `{kind}-images-idx3-ubyte` and `{kind}-labels-idx1-ubyte`,
    each optionally gzipped (`.gz`); kind is 'train' or 't10k' (the test set).

    Returns (images, labels) as Tensors on `device` (default: the CPU): images
    float32 in [0, 1] (bytes divided by 255), shaped (N, rows*cols), or
    (N, 1, rows, cols) with flatten=False; labels int64. Magic numbers, the
    dimensions and sizes in each header, and the image/label counts are checked;
    a corrupt or truncated file raises ValueError naming it."""
    if kind not in ("train", "t10k"):
        raise ValueError(f"load_mnist: kind must be 'train' or 't10k', got {kind!r}")
    directory = os.fspath(path)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"load_mnist: {directory!r} is not a directory; pass the directory "
                                "that holds the MNIST IDX files")
    images_path, images = _read_mnist_part(directory, kind, "images", 3)
    labels_path, labels = _read_mnist_part(directory, kind, "labels", 1)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"load_mnist: {images_path} holds {images.shape[0]} images but "
                         f"{labels_path} holds {labels.shape[0]} labels")
    n, rows, cols = images.shape
    x = images.astype(np.float32) / np.float32(255)
    x = x.reshape(n, rows * cols) if flatten else x.reshape(n, 1, rows, cols)
    return _to_tensor(x, device), _to_tensor(labels.astype(np.int64), device)
