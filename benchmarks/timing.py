"""Interleaved timing of competing callables in one process, paired ratios with their 95 % intervals, peak memory."""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable


def _seconds(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved(
    candidates: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int = 2,
    min_sample_s: float = 0.0,
    min_seconds: float = 0.0,
    settle_s: float = 0.0,
) -> dict[str, dict]:
    """Time each candidate round after round, the order rotated every round (A B C, B C A, ...), after warm-up calls.

    A sample repeats calls up to `min_sample_s` (the same count for every candidate); fast comparisons run more
    rounds, up to `min_seconds` per candidate; `settle_s` is an untimed pause before each sample. Returns by name
    the median and minimum and every sample (`samples_ms`, in round order) in milliseconds per call.
    """
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    slowest = max(max(_seconds(candidates[name], 1) for name in names), 1e-9)
    calls = max(1, math.ceil(min_sample_s / slowest))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(max(rounds, math.ceil(min_seconds / (calls * slowest)))):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            time.sleep(settle_s)
            samples[name].append(_seconds(candidates[name], calls) * 1e3)
    return {
        name: {"median_ms": round(statistics.median(ms), 4), "min_ms": round(min(ms), 4), "samples": len(ms)}
        | {"calls_per_sample": calls, "samples_ms": ms}
        for name, ms in samples.items()
    }


def paired_ratio(ours: list[float], theirs: list[float], digits: int = 4) -> tuple[float, list[float]]:
    """The median over rounds of ours / theirs, each round's two samples taken back to back, and its 95 % interval,
    rounded to `digits` decimals.

    The interval is the sign test's: the k-th smallest and k-th largest round ratio for the largest k with
    P(Binomial(n, 1/2) < k) <= 2.5 %, or the whole range where n is too small for any. It covers the noise within
    one run, not the drift of the machine's speed between runs.
    """
    ratios = sorted(a / b for a, b in zip(ours, theirs, strict=True))
    n, k, below = len(ratios), 1, 1 + len(ratios)  # below: 2**n P(count <= k), in integers as 2**n overflows floats
    while k < (n + 1) // 2 and 40 * below <= 2**n:
        k += 1
        below += math.comb(n, k)
    return round(statistics.median(ratios), digits), [round(ratios[k - 1], digits), round(ratios[n - k], digits)]


def peak_memory_mib(fn: Callable[[], object]) -> float:
    """The most memory PyTorch held on CPU at once during `fn()`, above what it held before, in MiB: the allocations
    and frees the profiler records, replayed in time order."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = prof.profiler.kineto_results.events()
    held = sorted(
        (e.start_ns(), e.nbytes()) for e in events if e.name() == "[memory]" and e.device_type().name == "CPU"
    )
    return max(itertools.accumulate((nbytes for _, nbytes in held), initial=0)) / 2**20
