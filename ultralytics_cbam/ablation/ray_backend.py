"""Ray backend of the ablation runner: each (variant, seed) run is one Ray task.

Workers are fresh interpreters of the cluster's Python environment; where ultralytics-cbam is installed there, its
``ultralytics_cbam.pth`` activates CBAM in each of them, so they build CBAM models without an import. Every run writes
into the grid's project directory, which several nodes must therefore share (NFS, a mounted bucket, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ultralytics_cbam.ablation.run import Run, train_run

_INSTALL = 'backend=ray needs Ray: pip install "ultralytics-cbam[ray]"'


def _ray():
    try:
        import ray
    except ImportError as e:
        raise ImportError(f"{_INSTALL} ({e})") from e
    return ray


def _device(gpus_per_run: float) -> str:
    """The device a run trains on: CPU without GPUs, else the GPUs Ray made visible to the task."""
    return "cpu" if gpus_per_run == 0 else ",".join(map(str, range(max(1, math.floor(gpus_per_run)))))


def _check_resources(ray, cpus_per_run: float, gpus_per_run: float) -> None:
    from ultralytics.utils import LOGGER

    have = ray.cluster_resources()
    for key, need in (("CPU", cpus_per_run), ("GPU", gpus_per_run)):
        if need > have.get(key, 0):
            LOGGER.warning(
                f"ablate: each run asks for {need} {key} but the Ray cluster has {have.get(key, 0)}; the runs wait "
                f"until nodes with enough {key}s join (set {key.lower()}s_per_run= lower otherwise)"
            )


def run_on_ray(
    todo: list[tuple[int, Run]],
    total: int,
    add: Callable[[Run, dict], None],
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
) -> list[tuple[Run, str]]:
    """Train the runs as Ray tasks, as many at once as the cluster's resources allow.

    Args:
        todo: (position in the grid, run) of every run to train.
        total: Number of runs in the whole grid, finished ones included.
        add: Called on this process with each finished run and its record.
        address: Ray cluster address ('auto', 'ray://...'); None starts a local cluster for the grid, or uses the one
            this process already joined.
        cpus_per_run: CPUs reserved for each run.
        gpus_per_run: GPUs reserved for each run.

    Returns:
        (list): (run, error) of every run that failed; a run whose worker died is one of them.
    """
    ray = _ray()
    from ultralytics.utils import LOGGER, TQDM, colorstr

    prefix = colorstr("ablate:")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False)
    failed = []
    try:
        _check_resources(ray, cpus_per_run, gpus_per_run)
        task = ray.remote(train_run)
        pending = {}
        for k, run in todo:
            if run.run_dir.exists():
                LOGGER.info(f"{prefix} run {k}/{total} ({run.variant}, seed {run.seed}) was not finished, queued again")
            options = {"num_cpus": cpus_per_run, "num_gpus": gpus_per_run, "max_retries": 0}
            run = Run(run.variant, run.seed, run.model_file, run.run_dir, run.settings, _device(gpus_per_run))
            ref = task.options(name=f"ablate {run.variant} seed {run.seed}", **options).remote(run)
            pending[ref] = (k, run)
        LOGGER.info(f"{prefix} {len(todo)} runs queued on Ray ({cpus_per_run} CPU, {gpus_per_run} GPU each)")
        bar = TQDM(total=total, initial=total - len(todo), desc=f"{prefix} runs")
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                k, run = pending.pop(ref)
                where = f"run {k}/{total} ({run.variant}, seed {run.seed})"
                try:
                    record = ray.get(ref)
                except ray.exceptions.RayError as e:
                    error = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    failed.append((run, f"{type(e).__name__}: {error}"))
                    LOGGER.warning(f"{prefix} {where} failed ({type(e).__name__}); a re-run trains it again")
                else:
                    add(run, record)
                    LOGGER.info(
                        f"{prefix} {where} done: mAP50 {record['map50']:.4f}, mAP50-95 {record['map50_95']:.4f}"
                    )
                bar.set_postfix(pending=len(pending), failed=len(failed))
                bar.update(1)
        finally:
            bar.close()
            for ref in pending:  # interrupted: stop what still runs
                ray.cancel(ref, force=True)
    finally:
        if started:
            ray.shutdown()
    return failed
