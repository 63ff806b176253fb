"""`mg.save` / `mg.load`: checkpoints in the safetensors format, without pickle.

A checkpoint is a state_dict-like mapping: nested dicts (str or int keys), lists
and tuples holding Tensors, numpy arrays and plain values (None, bool, int,
float, str), e.g. `model.state_dict()` or `optimizer.state_dict()`.

- Tensors become safetensors tensors named by their dotted path ('0.weight',
  'state.0.exp_avg'): for a module's state_dict these are the names PyTorch
  uses, so the file also loads with `safetensors.torch.load_file`.
- The structure and the plain values go into the header metadata as JSON
  (key 'minigrad.structure'), so `load` rebuilds the exact object: int keys
  stay ints, tuples (e.g. Adam's betas) stay tuples.
- Loading parses JSON and raw tensor bytes, nothing else: no code can run.
- Saving is atomic: the bytes go to a temporary file in the target's directory,
  are flushed and fsynced, and the file is renamed over the target (then the
  directory is fsynced). A crash or error mid-save leaves any previous file as it was.
"""
import json
import math
import numbers
import os
import secrets
import struct
from collections.abc import Mapping

import numpy as np
import safetensors.numpy as safetensors_numpy

from . import dtypes as _dt
from .device import CPU, device as _device_cls
from .tensor import Tensor

_STRUCTURE_KEY = "minigrad.structure"
_FORMAT_KEY = "minigrad.format"
_FORMAT_VERSION = "1"
_TAG = "$"  # every JSON object in the structure is a tagged node: plain dicts never appear raw
_SUPPORTED = "Tensors, numpy arrays, None, bool, int, float, str, and dicts, lists and tuples of them"


# -- save ----------------------------------------------------------------------

def save(obj, path):
    """Writes `obj` (a state_dict-like mapping) to `path` in the safetensors format, atomically."""
    if not isinstance(obj, Mapping):
        hint = " (call .state_dict() on it first)" if hasattr(obj, "state_dict") else ""
        raise TypeError(f"mg.save expects a state_dict-like mapping such as model.state_dict() or "
                        f"optimizer.state_dict(), got {type(obj).__name__}{hint}")
    path = os.fspath(path)
    arrays = {}
    structure = _encode(obj, (), arrays)
    # 'format': 'pt' tells loaders such as transformers' that names and layouts follow PyTorch's.
    metadata = {"format": "pt", _FORMAT_KEY: _FORMAT_VERSION,
                _STRUCTURE_KEY: json.dumps(structure, separators=(",", ":"), allow_nan=False)}
    payload = safetensors_numpy.save(arrays, metadata=metadata)
    _atomic_write(path, payload)


def _dotted(path):
    return ".".join(path)


def _store(arrays, path, arr, tag):
    key = _dotted(path)
    if key in arrays:
        raise ValueError(f"mg.save: two tensors would both be stored under the name {key!r} (a key "
                         "containing '.' clashes with a nested path); rename one of them")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"mg.save: cannot store the numpy array at {key!r}: dtype {arr.dtype} is "
                        "not numeric")
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    arrays[key] = arr if arr.flags.c_contiguous else arr.copy(order="C")  # keeps 0-d shapes
    return {_TAG: tag, "key": key}


def _encode(value, path, arrays):
    """The JSON structure of `value`; tensors are moved into `arrays` under dotted names."""
    if isinstance(value, Tensor):
        return _store(arrays, path, value.backend.to_host(value._data), "tensor")
    if isinstance(value, np.ndarray):
        return _store(arrays, path, value, "ndarray")
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else {_TAG: "float", "value": repr(value)}
    if isinstance(value, Mapping):
        items = []
        for k, v in value.items():
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, (str, numbers.Integral)):
                raise TypeError(f"mg.save: dict keys must be str or int, got {k!r} "
                                f"({type(k).__name__}) at {_dotted(path) or 'the top level'!r}")
            k = k if isinstance(k, str) else int(k)
            items.append([k, _encode(v, path + (str(k),), arrays)])
        return {_TAG: "dict", "items": items}
    if isinstance(value, (list, tuple)):
        items = [_encode(v, path + (str(i),), arrays) for i, v in enumerate(value)]
        return items if isinstance(value, list) else {_TAG: "tuple", "items": items}
    raise TypeError(f"mg.save: cannot store a {type(value).__name__} at {_dotted(path)!r}; "
                    f"checkpoints hold {_SUPPORTED}")


def _write_payload(f, payload):
    f.write(payload)


def _atomic_write(path, payload):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"mg.save: cannot write {path!r}: directory {directory!r} does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never write through an existing file or link; mode 0o666 lets the umask decide.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_payload(f, payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Makes the rename itself durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- load ----------------------------------------------------------------------

def load(path, device=None):
    """Reads a checkpoint written by `save` (or any safetensors file, returned as a
    flat {name: Tensor} dict). Tensors are put on `device` (default: the CPU)."""
    dev = None if device is None else _device_cls(device)
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    header = _read_header(raw, path)
    try:
        arrays = safetensors_numpy.load(raw)
    except Exception as e:  # safetensors reports malformed files with its own error type
        raise ValueError(f"{path}: not a valid safetensors file ({e})") from None
    metadata = header.get("__metadata__") or {}
    structure = metadata.get(_STRUCTURE_KEY)
    if structure is None:  # written by another tool: its tensors under their own names
        return {name: _tensor(arrays[name], dev, path, canonical=True)
                for name in header if name != "__metadata__"}
    try:
        tree = json.loads(structure)
    except ValueError as e:
        raise ValueError(f"{path}: corrupt checkpoint: its structure metadata is not valid JSON "
                         f"({e})") from None
    used = set()
    obj = _Decoder(arrays, used, dev, path).decode(tree)
    unused = sorted(set(arrays) - used)
    if unused:
        raise ValueError(f"{path}: corrupt checkpoint: tensors {unused} are not named in its "
                         "structure metadata")
    return obj


def _read_header(raw, path):
    """The safetensors JSON header, after checks that give a clear error for
    truncated files and for other formats (pickles are recognized, never run)."""
    if raw[:1] == b"\x80" and raw[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05") \
            or raw[:4] == b"PK\x03\x04":
        raise ValueError(f"{path}: not a safetensors file: it looks like a pickle or a torch.save "
                         "archive. minigrad never unpickles (unpickling can run arbitrary code); "
                         "convert it once with safetensors.torch.save_file(state_dict, path) in "
                         "PyTorch and load that")
    if len(raw) < 8:
        raise ValueError(f"{path}: not a safetensors file: {len(raw)} bytes, too short for the "
                         "8-byte header length (empty or truncated)")
    n = struct.unpack("<Q", raw[:8])[0]
    if n > len(raw) - 8:
        raise ValueError(f"{path}: truncated or not a safetensors file: the header claims {n} "
                         f"bytes but only {len(raw) - 8} follow")
    try:
        header = json.loads(raw[8:8 + n])
    except ValueError:
        raise ValueError(f"{path}: not a safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file: its header is not a JSON object")
    return header


def _tensor(arr, dev, path, canonical=False):
    if arr.dtype not in _dt._BY_NP:
        if not canonical:
            raise ValueError(f"{path}: corrupt checkpoint: a tensor has dtype {arr.dtype}, which "
                             "minigrad tensors cannot hold")
        arr = arr.astype(_dt.canonical_numpy_dtype(arr.dtype))
    if not arr.flags.writeable:
        arr = arr.copy()
    t = Tensor._wrap(arr, CPU)
    return t if dev is None or dev is CPU else t.to(dev)


class _Decoder:
    """Rebuilds the saved object from its JSON structure and the file's arrays."""

    def __init__(self, arrays, used, dev, path):
        self.arrays, self.used, self.dev, self.path = arrays, used, dev, path

    def corrupt(self, what):
        return ValueError(f"{self.path}: corrupt checkpoint structure: {what}")

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            raise self.corrupt(f"unexpected JSON value {node!r}")
        tag = node.get(_TAG)
        if tag in ("tensor", "ndarray"):
            arr = self.array(node.get("key"))
            return _tensor(arr, self.dev, self.path) if tag == "tensor" else arr
        if tag == "tuple":
            return tuple(self.decode(v) for v in self.items(node))
        if tag == "dict":
            out = {}
            for pair in self.items(node):
                if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int))
                        and not isinstance(pair[0], bool)):
                    raise self.corrupt(f"bad dict item {pair!r}")
                out[pair[0]] = self.decode(pair[1])
            return out
        if tag == "float" and node.get("value") in ("nan", "inf", "-inf"):
            return float(node["value"])
        raise self.corrupt(f"unknown node {node!r}")

    def items(self, node):
        items = node.get("items")
        if not isinstance(items, list):
            raise self.corrupt(f"node {node.get(_TAG)!r} has no list of items")
        return items

    def array(self, key):
        if not isinstance(key, str) or key not in self.arrays:
            raise self.corrupt(f"it names tensor {key!r}, which the file does not hold")
        self.used.add(key)
        return self.arrays[key]
