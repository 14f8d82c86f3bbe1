"""Interleaved wall-clock timing (every candidate of a comparison in turn, round after round, in one process), paired
ratios with their intervals, and peak memory."""

from __future__ import annotations

import itertools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import torch


@dataclass(frozen=True)
class Timing:
    """Summary of one candidate's samples, in milliseconds per call."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    samples: int
    calls_per_sample: int
    samples_ms: tuple[float, ...] = ()  # in round order, for paired ratios

    @property
    def min_ms(self) -> float:
        return min(self.samples_ms) if self.samples_ms else self.median_ms

    def as_dict(self) -> dict:
        """The summary for a results JSON, with every sample (ms per call, in round order, unrounded)."""
        rounded = {key: round(getattr(self, key), 4) for key in ("median_ms", "min_ms", "q1_ms", "q3_ms")}
        counts = {"samples": self.samples, "calls_per_sample": self.calls_per_sample}
        return {**rounded, **counts, "samples_ms": list(self.samples_ms)}


def _timed(fn: Callable[[], object], calls: int, device: torch.device | str) -> float:
    """Seconds per call of `calls` calls, with the device's queued kernels waited for before and after."""
    sync = (lambda: torch.cuda.synchronize(device)) if torch.device(device).type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    sync()
    return (time.perf_counter() - start) / calls


def interleaved(
    candidates: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int = 2,
    min_sample_s: float = 0.0,
    device: torch.device | str = "cpu",
    min_seconds: float = 0.0,
    settle_s: float = 0.0,
) -> dict[str, Timing]:
    """Time each candidate `rounds` times, interleaved A B C, B C A, C A B, ... after `warmup` calls of each.

    Rotating the order each round spreads slow and fast phases of a shared machine over all candidates alike. Calls
    shorter than `min_sample_s` repeat inside one sample (the same count for every candidate), so that timer
    resolution and per-call jitter stay small against it; fast comparisons get more rounds, up to `min_seconds` per
    candidate. `settle_s` is an untimed pause before each sample, for candidates whose idle threads keep spinning for
    a while after a call (ONNX Runtime's). `device` is synchronized around each sample. Returns name -> Timing.
    """
    if not candidates:
        raise ValueError("interleaved() needs at least one candidate")
    if rounds < 1:
        raise ValueError(f"rounds must be a positive integer, got {rounds!r}")
    names = list(candidates)
    for _ in range(warmup):
        for name in names:
            candidates[name]()
    slowest = max(_timed(candidates[name], 1, device) for name in names)
    calls = max(1, math.ceil(min_sample_s / max(slowest, 1e-9)))
    rounds = max(rounds, math.ceil(min_seconds / max(calls * slowest, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if settle_s:
                time.sleep(settle_s)
            samples[name].append(_timed(candidates[name], calls, device))
    return {name: _summary(samples[name], calls) for name in names}


def _summary(seconds: list[float], calls: int) -> Timing:
    ms = [s * 1e3 for s in seconds]
    q1, median, q3 = statistics.quantiles(ms, n=4, method="inclusive") if len(ms) > 1 else (ms[0],) * 3
    return Timing(median, q1, q3, len(ms), calls, tuple(ms))


def paired_ratio(a: Timing, b: Timing) -> float:
    """Median over rounds of a / b, each round's two samples taken back to back (robust to load that drifts)."""
    return statistics.median(_round_ratios(a, b))


def paired_ratio_interval(a: Timing, b: Timing, confidence: float = 0.95) -> tuple[float, float]:
    """A distribution-free confidence interval for `paired_ratio(a, b)`: the order statistics of the round ratios
    that bracket their median with at least `confidence` if rounds are independent (the sign test's interval). With
    too few rounds for that confidence it is the whole range of the ratios.

    It covers the noise within one run; drift of the machine's speed between runs is not in it.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    ratios = sorted(_round_ratios(a, b))
    n = len(ratios)
    # In units of 2**-n, the probability of each count of a Binomial(n, 1/2); exact, as 2**n overflows a float.
    tail = Fraction(1 - confidence) / 2 * 2**n
    rank, below = 1, math.comb(n, 0) + math.comb(n, 1)  # below: 2**n P(count <= rank)
    while rank < (n + 1) // 2 and below <= tail:
        rank += 1
        below += math.comb(n, rank)
    return ratios[rank - 1], ratios[n - rank]


def _round_ratios(a: Timing, b: Timing) -> list[float]:
    return [x / y for x, y in zip(a.samples_ms, b.samples_ms, strict=True)]


def ratio(a: Timing, b: Timing, digits: int) -> tuple[float, list[float]]:
    """`paired_ratio(a, b)` and its 95 % interval, rounded to `digits` decimals."""
    return round(paired_ratio(a, b), digits), [round(v, digits) for v in paired_ratio_interval(a, b)]


def peak_memory_mib(fn: Callable[[], object], device: torch.device | str) -> float | None:
    """Peak of the memory PyTorch holds during `fn()`, above what it held at the start, in MiB.

    On CPU the allocations and frees that the profiler records are replayed in time order; on CUDA the caching
    allocator's peak statistic is used. Returns None where neither is available.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - start) / 2**20
    if device.type != "cpu":
        return None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        return None
    events = sorted(
        (e.start_ns(), e.nbytes()) for e in results.events() if e.name() == "[memory]" and e.device_type().name == "CPU"
    )
    return max(itertools.accumulate((nbytes for _, nbytes in events), initial=0)) / 2**20  # the most held at once
