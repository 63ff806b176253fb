"""PyTorch-like tensor repr."""
import numpy as np

from . import dtypes as _dt


def _format_array(arr):
    if arr.size == 0:
        return "[]"
    opts = dict(separator=", ", prefix="tensor(", threshold=1000, edgeitems=3)
    if arr.dtype.kind == "f":
        finite = arr[np.isfinite(arr)]
        big = finite.size and (np.abs(finite).max() >= 1e8 or
                               (np.abs(finite[finite != 0]).min() < 1e-4 if (finite != 0).any() else False))
        if big:
            opts.update(formatter={"float_kind": lambda v: f"{v:.4e}"})
        elif finite.size and np.all(finite == np.round(finite)):
            opts.update(precision=0, floatmode="maxprec", suppress_small=True)  # like "1., 2."
        else:
            opts.update(precision=4, floatmode="fixed", suppress_small=True)
    return np.array2string(arr, **opts)


def tensor_repr(t):
    arr = t._device.backend.to_host(t._data)
    body = _format_array(arr) if arr.ndim else _format_scalar(arr)
    extras = []
    if arr.size == 0 and arr.ndim > 1:
        extras.append(f"size={tuple(arr.shape)}")
    if t._device.type != "cpu":
        extras.append(f"device='{t._device}'")
    dt = t._data.dtype
    if dt not in (_dt.float32.np, _dt.int64.np, _dt.bool_.np) or (arr.size == 0 and dt != _dt.float32.np):
        extras.append(f"dtype={_dt._BY_NP[dt]!r}")
    if t._node is not None:
        extras.append(f"grad_fn=<{t._node.name}Backward>")
    elif t.requires_grad:
        extras.append("requires_grad=True")
    if extras:
        return f"tensor({body}, {', '.join(extras)})"
    return f"tensor({body})"


def _format_scalar(arr):
    v = arr.item()
    if arr.dtype.kind == "f":
        if v == int(v) and abs(v) < 1e16 if np.isfinite(v) else False:
            return f"{v:.0f}."
        return f"{v:.4f}" if np.isfinite(v) and 1e-4 <= abs(v) < 1e8 else f"{v:.4e}" if np.isfinite(v) else str(v)
    return str(v)
