"""Timing helpers shared by every workload.

A workload module is `benchmarks/workloads_<area>.py` exposing
`WORKLOADS`: a dict name -> `Workload(setup_minigrad, setup_torch=None, note='')`,
where each setup function returns a zero-argument callable performing one
step (it is called many times). Results are median milliseconds per step; the
torch variant runs in the same process, interleaved round by round, so the
ratio is measured under the same machine conditions.
"""
import dataclasses
import statistics
import time


@dataclasses.dataclass
class Workload:
    setup_minigrad: callable
    setup_torch: callable = None
    note: str = ""
    sync: callable = None  # called after each timed step (device synchronisation)


def time_step(step, min_steps=10, min_seconds=0.2, warmup=3, sync=None):
    """Median seconds per call of `step` over at least min_steps calls / min_seconds."""
    for _ in range(warmup):
        step()
    if sync:
        sync()
    samples = []
    start = time.perf_counter()
    while len(samples) < min_steps or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        step()
        if sync:
            sync()
        samples.append(time.perf_counter() - t0)
        if len(samples) > 100000:
            break
    return statistics.median(samples)


def time_batched(step, number, rounds=7, sync=None):
    """For sub-microsecond ops: median over rounds of (time for `number` calls)/number."""
    for _ in range(min(number, 100)):
        step()
    results = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(number):
            step()
        if sync:
            sync()
        results.append((time.perf_counter() - t0) / number)
    return statistics.median(results)
