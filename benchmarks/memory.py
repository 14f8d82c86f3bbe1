"""Peak memory that PyTorch allocates during one call, on CPU (profiler allocation events) or CUDA (allocator stats)."""

from __future__ import annotations

from collections.abc import Callable

import torch


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
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20
