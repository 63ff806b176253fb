"""Normalization workloads: one forward + backward step (input, weight and
bias gradients) of BatchNorm2d(64) and GroupNorm(8, 64) on (64, 64, 32, 32)
and LayerNorm(512) on (128, 64, 512), float32, each with its PyTorch twin.

Part of `benchmarks/run.py`; run this file directly for the full report:

    python benchmarks/workloads_norm.py [--threads 2] [--rounds 3]

which adds the achieved bandwidth: the bytes a fused implementation must
move (forward reads x and writes y, backward reads dy and x and writes dx:
5 x the input's size), divided by the step time, next to the machine's copy
bandwidth measured here (a large array copy reads and writes each byte once).
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

from harness import Workload, time_step

# (name, layer arguments, input shape)
CASES = {
    "norm_batchnorm2d_fwd_bwd": (("BatchNorm2d", (64,)), (64, 64, 32, 32)),
    "norm_groupnorm_8x64_fwd_bwd": (("GroupNorm", (8, 64)), (64, 64, 32, 32)),
    "norm_layernorm_512_fwd_bwd": (("LayerNorm", (512,)), (128, 64, 512)),
}

# bytes moved per step, in units of the input's size (see the module docstring)
PASSES = 5


def _arrays(shape):
    rng = np.random.default_rng(0)
    return (rng.standard_normal(shape).astype(np.float32),
            rng.standard_normal(shape).astype(np.float32))


def norm_step(libname, layer, shape):
    """Forward + backward of one norm layer; both libraries spell it the same way."""
    def setup():
        if libname == "minigrad":
            import minigrad as lib
            from minigrad.nn.layers import normalization as layers
        else:
            import torch as lib
            layers = lib.nn
        module = getattr(layers, layer[0])(*layer[1])
        x_np, g_np = _arrays(shape)
        x, g = lib.tensor(x_np, requires_grad=True), lib.tensor(g_np)

        def step():
            x.grad = None
            module.zero_grad()
            module(x).backward(g)
        return step
    return setup


WORKLOADS = {
    name: Workload(norm_step("minigrad", layer, shape), norm_step("torch", layer, shape),
                   f"{layer[0]}{layer[1]} on {shape}, float32")
    for name, (layer, shape) in CASES.items()
}


def copy_bandwidth(nbytes=1 << 28, repeats=5, torch=None):
    """Bytes per second of the best of `repeats` large copies (each byte read
    once and written once): numpy's (one thread), and torch's (its thread
    pool) when given; returns the larger and a description."""
    src = np.ones(nbytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    results = {}

    def best(copy):
        copy()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            copy()
            times.append(time.perf_counter() - t0)
        return 2 * src.nbytes / min(times)

    results["numpy copy"] = best(lambda: np.copyto(dst, src))
    if torch is not None:
        ts, td = torch.from_numpy(src), torch.from_numpy(dst)
        results["torch copy_"] = best(lambda: td.copy_(ts))
    name = max(results, key=results.get)
    return results[name], name


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--no-torch", action="store_true")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(args.threads))
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    bandwidth, how = copy_bandwidth(torch=torch)
    print(f"copy bandwidth: {bandwidth / 1e9:.1f} GB/s ({how}, {args.threads} threads)")
    print(f"{'workload':<30}{'ms':>9}{'GB/s':>8}{'of copy':>9}{'torch ms':>10}{'ratio':>8}")
    for name, (layer, shape) in CASES.items():
        w = WORKLOADS[name]
        ours = w.setup_minigrad()
        theirs = w.setup_torch() if torch is not None else None
        ms, tms = [], []
        for _ in range(args.rounds):  # interleaved, so both see the same machine state
            ms.append(time_step(ours, min_seconds=args.seconds))
            if theirs is not None:
                tms.append(time_step(theirs, min_seconds=args.seconds))
        t = statistics.median(ms)
        moved = PASSES * 4 * int(np.prod(shape))
        line = f"{name:<30}{t * 1e3:9.2f}{moved / t / 1e9:8.1f}{moved / t / bandwidth:9.0%}"
        if tms:
            tt = statistics.median(tms)
            line += f"{tt * 1e3:10.2f}{t / tt:8.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [here, os.path.dirname(here)]  # the harness, and minigrad from this checkout
    main()
