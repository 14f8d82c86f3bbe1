"""The local backend: the grid's runs one after another in this process."""

from __future__ import annotations

import statistics
from collections.abc import Callable

from ultralytics_cbam.ablation.run import Run, train_run

__all__ = ("run_locally",)


def run_locally(todo: list[tuple[int, Run]], total: int, add: Callable[[Run, dict], None]) -> None:
    """Train the runs one after another in this process."""
    from ultralytics.utils import LOGGER, colorstr

    prefix, durations = colorstr("ablate:"), []
    for done, (k, run) in enumerate(todo):
        where = f"run {k}/{total} ({run.variant}, seed {run.seed})"
        left = len(todo) - done
        eta = f", about {statistics.fmean(durations) * left / 60:.1f} min left" if durations else ""
        LOGGER.info(f"{prefix} {where} training{eta}")
        if run.run_dir.exists():
            LOGGER.info(f"{prefix} {where} was not finished, starting it again")
        record = train_run(run)
        durations.append(record["train_s"])
        LOGGER.info(f"{prefix} {where} done: mAP50 {record['map50']:.4f}, mAP50-95 {record['map50_95']:.4f}")
        add(run, record)
