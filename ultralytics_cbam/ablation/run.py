"""One run of an ablation grid: train a variant with one seed through the stock Ultralytics trainer, and mark it
finished. Every backend (this process, Ray workers) runs `train_run`."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ultralytics_cbam.integration.compat import quiet_yolo
from ultralytics_cbam.weight_init import gentle_init

__all__ = ("MARKER", "METRICS", "Run", "train_run", "write_json")

MARKER = "ablate.json"  # written into a run directory only once the run has finished
METRICS = {"map50": "metrics/mAP50(B)", "map50_95": "metrics/mAP50-95(B)"}


@dataclass(frozen=True)
class Run:
    """One (variant, seed) run of the grid, as a worker needs it.

    Attributes:
        variant: Variant name.
        seed: Training seed.
        model_file: The variant's model YAML.
        run_dir: The run's directory; it holds MARKER once the run has finished.
        settings: Everything that decides the result; a finished run with other settings is refused on resume.
        device: Training device where train_args name none (a Ray task's GPUs); not part of the settings.
    """

    variant: str
    seed: int
    model_file: Path
    run_dir: Path
    settings: dict
    device: str | None = None


def train_run(run: Run) -> dict:
    """Train one run and mark it finished; a directory left by an unfinished run is removed first.

    Returns:
        (dict): The run's record: variant, seed, map50, map50_95, metrics, final (last row of results.csv), train_s
            and run_dir.
    """
    if run.run_dir.exists():  # killed before it finished
        shutil.rmtree(run.run_dir)
    record = _train(run)
    record.update(variant=run.variant, seed=run.seed, run_dir=str(run.run_dir))
    write_json(run.run_dir / MARKER, {"settings": run.settings, "record": record})
    return record


def gentle_trainer(task_trainer: type) -> type:
    """The task's trainer with CBAM's attention layers started near identity (gentle_init) on the fresh model."""

    class GentleTrainer(task_trainer):
        def get_model(self, *args, **kwargs):
            model = super().get_model(*args, **kwargs)
            return gentle_init(model, imgsz=self.args.imgsz, batch_stats=True)  # a fresh model

    return GentleTrainer


def _train(run: Run) -> dict:
    settings = run.settings
    start = time.perf_counter()
    yolo = quiet_yolo(str(run.model_file))
    if settings.get("weights"):
        yolo.load(settings["weights"])  # every layer the variant shares with the checkpoint, found by layer type
    train_args = dict(settings["train_args"])
    if run.device is not None:
        train_args.setdefault("device", run.device)
    trainer = gentle_trainer(yolo.task_map[yolo.task]["trainer"]) if settings.get("gentle") else None
    metrics = yolo.train(
        **train_args,
        trainer=trainer,
        data=settings["data"],
        epochs=settings["epochs"],
        imgsz=settings["imgsz"],
        batch=settings["batch"],
        seed=settings["seed"],
        project=str(run.run_dir.parent),
        name=run.run_dir.name,
        exist_ok=True,
    )
    results = dict(getattr(metrics, "results_dict", None) or {})
    missing = [k for k in METRICS.values() if k not in results]
    if missing:
        raise RuntimeError(f"training {run.run_dir} gave no box metrics {missing} (ablate compares detection models)")
    record = {key: float(results[k]) for key, k in METRICS.items()}
    record.update(metrics={k: float(v) for k, v in results.items()}, final=_final_row(run.run_dir / "results.csv"))
    record["train_s"] = time.perf_counter() - start
    return record


def _final_row(file: Path) -> dict:
    """Losses and metrics of the last epoch in a run's results.csv (empty if it has none)."""
    try:
        with open(file, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return {}
    last = {k.strip(): v for k, v in rows[-1].items()} if rows else {}
    return {k: float(v) for k, v in last.items() if k.startswith(("train/", "val/", "metrics/"))}


def write_json(file: Path, data: dict) -> None:
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, file)  # atomic: a killed process leaves no half-written marker
