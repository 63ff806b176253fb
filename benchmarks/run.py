"""Runs the benchmark workloads: minigrad and, when installed, PyTorch on the
same workloads in the same run, interleaved round by round.

    python benchmarks/run.py                 # everything
    python benchmarks/run.py mlp cnn         # workloads whose name contains a word
    python benchmarks/run.py --rounds 5 --json out.json

Prints median ms/step for each side and the minigrad/PyTorch ratio (< 1 means
minigrad is faster). Timings are medians of the per-round medians.

Each library runs in its own worker process. Both use an OpenMP runtime, and
in one process they would share it (same soname): its thread-wait policy and
pool would then be one library's choice imposed on the other. Separate
processes keep each library's own settings; the rounds still alternate, so
both see the same machine conditions.
"""
import argparse
import json
import multiprocessing
import os
import pathlib
import platform
import statistics
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent

# The environment as the user launched the run. Importing minigrad here (to list
# the workloads) sets its OpenMP defaults in os.environ (GOMP_SPINCOUNT, or
# OMP_WAIT_POLICY=PASSIVE, which cost PyTorch's pool ~1 ms per small step), and
# a spawned worker would inherit them. Each worker starts from this copy
# instead, so each library runs with its own defaults.
LAUNCH_ENV = dict(os.environ)

# Pause between the two sides so that one library's idle worker threads (which
# spin for a while after each op) have gone to sleep before the other is timed.
SETTLE_S = 0.3


def _set_thread_env(n):
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(n))


def _import_path():
    sys.path.insert(0, str(HERE))
    try:
        import minigrad  # noqa: F401
    except ImportError:  # running from a source checkout that is not installed
        sys.path.insert(0, str(HERE.parent))


def load_workloads():
    import importlib
    _import_path()
    found = {}
    for path in sorted(HERE.glob("workloads_*.py")):
        module = importlib.import_module(path.stem)
        found.update(module.WORKLOADS)
    return found


def worker(library, threads, env, conn):
    """Times workloads for one library on request: receives (name, seconds), sends seconds."""
    os.environ.clear()
    os.environ.update(env)
    _set_thread_env(threads)
    if library == "torch":
        import torch  # before any minigrad import, so it keeps its own OpenMP settings
        torch.set_num_threads(threads)
    else:
        _import_path()  # minigrad before numpy, so its thread settings take effect
        import minigrad  # noqa: F401
    workloads = load_workloads()
    from harness import time_step
    steps = {}
    while True:
        request = conn.recv()
        if request is None:
            return
        name, seconds = request
        w = workloads[name]
        if name not in steps:
            setup = w.setup_minigrad if library == "minigrad" else w.setup_torch
            steps[name] = setup()
        conn.send(time_step(steps[name], min_seconds=seconds, sync=w.sync if library == "minigrad" else None))


class Side:
    """A worker process for one library."""

    def __init__(self, library, threads):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=worker, args=(library, threads, LAUNCH_ENV, child), daemon=True)
        self.process.start()

    def time(self, name, seconds):
        self.conn.send((name, seconds))
        return self.conn.recv()

    def close(self):
        self.conn.send(None)
        self.process.join(5)


def torch_version():
    try:
        import importlib.metadata as md
        return md.version("torch")
    except Exception:
        return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("filters", nargs="*", help="run workloads whose name contains any of these")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.3, help="minimum timing per round and side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", help="write results to this file")
    args = parser.parse_args(argv)
    workloads = load_workloads()
    if args.filters:
        workloads = {k: v for k, v in workloads.items() if any(f in k for f in args.filters)}
    version = None if args.no_torch else torch_version()
    mg_side = Side("minigrad", args.threads)
    th_side = Side("torch", args.threads) if version else None
    rows = []
    print(f"{'workload':<34}{'minigrad ms':>13}{'torch ms':>11}{'ratio':>8}  note")
    try:
        for name, w in workloads.items():
            use_torch = th_side is not None and w.setup_torch is not None
            mg_times, th_times = [], []
            for _ in range(args.rounds):
                mg_times.append(mg_side.time(name, args.seconds))
                if use_torch:
                    time.sleep(SETTLE_S)
                    th_times.append(th_side.time(name, args.seconds))
                    time.sleep(SETTLE_S)
            mg_ms = statistics.median(mg_times) * 1e3
            th_ms = statistics.median(th_times) * 1e3 if th_times else None
            ratio = mg_ms / th_ms if th_ms else None
            rows.append({"workload": name, "minigrad_ms": mg_ms, "torch_ms": th_ms, "ratio": ratio,
                         "note": w.note})
            th_txt = f"{th_ms:11.3f}" if th_ms is not None else f"{'-':>11}"
            r_txt = f"{ratio:8.2f}" if ratio is not None else f"{'-':>8}"
            print(f"{name:<34}{mg_ms:13.3f}{th_txt}{r_txt}  {w.note}", flush=True)
    finally:
        mg_side.close()
        if th_side is not None:
            th_side.close()
    if args.json:
        meta = {"machine": platform.platform(), "processor": platform.processor(),
                "cpus": os.cpu_count(), "threads": args.threads, "torch": version,
                "rounds": args.rounds}
        pathlib.Path(args.json).write_text(json.dumps({"meta": meta, "results": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
