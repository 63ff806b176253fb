"""Each fused CUDA kernel against the reference kernel it replaces (the same
function of minigrad/backend/reference run with xp=cupy), on the shapes of
the training workloads, float32, in one process, interleaved round by round.

    python benchmarks/cuda_kernels.py [--rounds 3] [filters ...]

Prints median ms per call of each side and their ratio (< 1: the fused
kernel is faster). Needs a CUDA device (mg.cuda.is_available()).
"""
import argparse
import functools
import importlib
import inspect
import statistics
import sys

import numpy as np

from harness import time_step


def _cases(cupy):
    """name -> (backend function name, reference area, arguments)."""
    rng = np.random.default_rng(0)

    def arr(*shape, dtype=np.float32):
        return cupy.asarray(rng.standard_normal(shape).astype(dtype))

    def conv_geometry(k, s, p, h, w):
        oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        return (k, k, s, s, p, p, 1, 1, oh, ow)

    cases = {}
    for shape in ((128, 512), (512, 16, 28, 28)):
        x, dy = arr(*shape), arr(*shape)
        tag = "x".join(map(str, shape))
        for kind in ("relu", "gelu"):
            cases[f"{kind} fwd {tag}"] = ("activation_forward", "activation", (kind, x))
            cases[f"{kind} bwd {tag}"] = ("activation_backward", "activation", (kind, x, x, dy))
    for n, c in ((128, 10), (512, 1000)):
        logits = arr(n, c)
        target = cupy.asarray(rng.integers(0, c, n))
        lse = cupy.log(cupy.exp(logits).sum(axis=1))
        ce = (target, None, -100, 0.0)
        cases[f"cross_entropy fwd {n}x{c}"] = ("cross_entropy_forward", "loss", (logits,) + ce)
        cases[f"cross_entropy bwd {n}x{c}"] = ("cross_entropy_backward", "loss",
                                               (logits,) + ce + (lse, arr(n)))
        cases[f"log_softmax fwd {n}x{c}"] = ("softmax_forward", "loss", (logits, 1, True))
    for shape in ((128, 512, 1), (512, 16, 784)):
        x, dy, w = arr(*shape), arr(*shape), arr(shape[1])
        mean, rstd = x.mean(axis=(0, 2)), 1 / x.std(axis=(0, 2))
        tag = "x".join(map(str, shape))
        cases[f"batch_norm fwd {tag}"] = ("batch_norm_forward", "norm", (x, w, w, 1e-5, True))
        cases[f"batch_norm bwd {tag}"] = ("batch_norm_backward", "norm",
                                          (dy, x, mean, rstd, w, True))
        cases[f"batch_norm apply {tag}"] = ("batch_norm_apply", "norm",
                                            (x, mean, rstd, w, w, True))
    stats = [arr(512) for _ in range(2)] + [arr(512), arr(512) ** 2]
    cases["running_stats_update 512"] = ("running_stats_update", "norm", (*stats, 128, 0.1))
    for shape in ((128, 1, 512, 1), (64, 8, 8, 196)):
        x, dy, w = arr(*shape), arr(*shape), arr(*shape[1:3])
        tag = "x".join(map(str, shape))
        mean, rstd = x.mean(axis=(2, 3)), 1 / x.std(axis=(2, 3))
        cases[f"group_norm fwd {tag}"] = ("group_norm_forward", "norm", (x, w, w, 1e-5, True))
        cases[f"group_norm bwd {tag}"] = ("group_norm_backward", "norm",
                                          (dy, x, mean, rstd, w, True))
    for n, c, h in ((512, 1, 28), (512, 16, 14)):
        x, geo = arr(n, c, h, h), conv_geometry(3, 1, 1, h, h)
        cols = arr(c * 9, n * h * h)
        tag = f"{n}x{c}x{h}x{h}"
        cases[f"im2col {tag}"] = ("im2col", "conv", (x,) + geo + (True,))
        cases[f"col2im {tag}"] = ("col2im", "conv", (cols, h, h) + geo + (True,))
    x = arr(512, 16, 28, 28)
    pool = conv_geometry(2, 2, 0, 28, 28)
    _, idx = importlib.import_module("minigrad.backend.reference.conv").max_pool2d_forward(
        cupy, x, *pool)
    cases["max_pool fwd 512x16x28x28 k2"] = ("max_pool2d_forward", "conv", (x,) + pool)
    cases["max_pool bwd 512x16x28x28 k2"] = ("max_pool2d_backward", "conv",
                                             (arr(512, 16, 14, 14), idx, 28, 28))
    return cases


def _with_window(ref_fn, args, window):
    """max_pool2d_backward takes the pooling geometry where its signature has it."""
    if window is not None and "window" in inspect.signature(ref_fn).parameters:
        return args, {"window": window}
    return args, {}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.1)
    parser.add_argument("filters", nargs="*")
    opts = parser.parse_args()
    import minigrad as mg
    if not mg.cuda.is_available():
        sys.exit("no CUDA device: nothing to measure")
    be = mg.device("cuda").backend
    cupy = be.xp
    sync = cupy.cuda.runtime.deviceSynchronize
    print(f"{'kernel':38s} {'fused ms':>9s} {'ref ms':>9s} {'ratio':>6s}")
    for name, (fn_name, area, args) in _cases(cupy).items():
        if opts.filters and not any(f in name for f in opts.filters):
            continue
        ref_fn = getattr(importlib.import_module(f"minigrad.backend.reference.{area}"), fn_name)
        kwargs = {}
        if fn_name == "max_pool2d_backward":
            args, kwargs = _with_window(ref_fn, args, (2, 2, 2, 2, 0, 0, 1, 1, 14, 14))
        fused = functools.partial(getattr(be, fn_name), *args, **kwargs)
        reference = functools.partial(ref_fn, cupy, *args, **kwargs)
        if fn_name not in be.compiled:
            print(f"{name:38s} (no fused kernel)")
            continue
        sides = {"fused": [], "ref": []}
        try:
            for _ in range(opts.rounds):
                for side, step in (("fused", fused), ("ref", reference)):
                    sides[side].append(time_step(step, min_seconds=opts.seconds, sync=sync))
        except Exception as e:  # one broken kernel does not hide the others' timings
            print(f"{name:38s} failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            continue
        f, r = (statistics.median(sides[s]) * 1e3 for s in ("fused", "ref"))
        print(f"{name:38s} {f:9.3f} {r:9.3f} {f / r:6.2f}", flush=True)


if __name__ == "__main__":
    main()
