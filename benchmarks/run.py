"""Runs the benchmark workloads: minigrad and, when installed, PyTorch on the
same workloads in the same run, interleaved round by round.

    python benchmarks/run.py                 # everything
    python benchmarks/run.py mlp cnn         # workloads whose name contains a word
    python benchmarks/run.py --rounds 5 --json out.json

Prints median ms/step for each side and the minigrad/PyTorch ratio (< 1 means
minigrad is faster). Timings are medians of the per-round medians.
"""
import argparse
import importlib
import json
import os
import pathlib
import platform
import statistics
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import time_step  # noqa: E402

try:
    import minigrad  # noqa: F401
except ImportError:  # running from a source checkout that is not installed
    sys.path.insert(0, str(HERE.parent))


def _threads(n):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))


def load_workloads():
    found = {}
    for path in sorted(HERE.glob("workloads_*.py")):
        module = importlib.import_module(path.stem)
        for name, w in module.WORKLOADS.items():
            found[name] = w
    return found


def torch_or_none(threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("filters", nargs="*", help="run workloads whose name contains any of these")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.3, help="minimum timing per round and side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="write results to this file")
    args = parser.parse_args(argv)
    _threads(args.threads)
    workloads = load_workloads()
    if args.filters:
        workloads = {k: v for k, v in workloads.items() if any(f in k for f in args.filters)}
    torch = None if args.no_torch else torch_or_none(args.threads)
    rows = []
    print(f"{'workload':<34}{'minigrad ms':>13}{'torch ms':>11}{'ratio':>8}  note")
    for name, w in workloads.items():
        mg_step = w.setup_minigrad()
        th_step = w.setup_torch() if (torch is not None and w.setup_torch) else None
        mg_times, th_times = [], []
        for _ in range(args.rounds):
            mg_times.append(time_step(mg_step, min_seconds=args.seconds, sync=w.sync))
            if th_step is not None:
                th_times.append(time_step(th_step, min_seconds=args.seconds))
        mg_ms = statistics.median(mg_times) * 1e3
        th_ms = statistics.median(th_times) * 1e3 if th_times else None
        ratio = mg_ms / th_ms if th_ms else None
        rows.append({"workload": name, "minigrad_ms": mg_ms, "torch_ms": th_ms, "ratio": ratio,
                     "note": w.note})
        th_txt = f"{th_ms:11.3f}" if th_ms is not None else f"{'-':>11}"
        r_txt = f"{ratio:8.2f}" if ratio is not None else f"{'-':>8}"
        print(f"{name:<34}{mg_ms:13.3f}{th_txt}{r_txt}  {w.note}", flush=True)
    if args.json:
        meta = {"machine": platform.platform(), "processor": platform.processor(),
                "cpus": os.cpu_count(), "threads": args.threads,
                "torch": getattr(torch, "__version__", None), "rounds": args.rounds}
        pathlib.Path(args.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
