"""Benchmark settings: the 'short' and 'full' presets and key=value overrides."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PARTS = ("module", "model", "compiled", "onnx", "train", "memory", "size", "variants")


@dataclass
class BenchConfig:
    """What to measure and how long.

    Attributes:
        mode: 'short' (a smoke run) or 'full'.
        parts: Which of module, model (eager inference), compiled (inference and training step through
            torch.compile), onnx, train, memory, size, variants (ways to write CBAM's forward, in ONNX Runtime) to run.
        devices: 'cpu' and, where present, 'cuda'.
        threads: torch (and ONNX Runtime) intra-op threads, the same for every candidate; default all CPUs.
        scales: Module-level feature-map shapes come from these YOLOv8 scales.
        model_scales: Scales compared at model level.
        imgsz: Image size for feature-map shapes and model-level inference.
        module_batches: Batch sizes at module level.
        model_batches: Batch sizes for model-level inference (eager, compiled, ONNX Runtime) and the variants.
        train_batch: Batch size of the training step.
        train_imgsz: Image size of the training step.
        rounds: Interleaved samples per candidate at module level and per forward variant.
        model_rounds: Interleaved samples per candidate at model level (at least).
        model_seconds: Time per candidate at model level; fast comparisons run more rounds to fill it.
        warmup: Untimed calls per candidate before timing.
        min_sample_s: Shortest module-level sample; fast calls repeat within a sample.
        variant_seconds: Time per forward variant and case; fast cases run more rounds to fill it.
        seed: Seed for weights and inputs.
        save_dir: Folder for the JSON and Markdown results.
        name: File stem of the results; default '<device>-<mode>'.
    """

    mode: str = "short"
    parts: tuple[str, ...] = PARTS
    devices: tuple[str, ...] = ()
    threads: int = 0
    scales: tuple[str, ...] = ("n", "s")
    model_scales: tuple[str, ...] = ("n", "s")
    imgsz: int = 640
    module_batches: tuple[int, ...] = (1, 16)
    model_batches: tuple[int, ...] = (1, 8)
    train_batch: int = 8
    train_imgsz: int = 640
    rounds: int = 15
    model_rounds: int = 11
    model_seconds: float = 20.0
    warmup: int = 2
    min_sample_s: float = 0.05
    variant_seconds: float = 5.0
    seed: int = 0
    save_dir: Path = RESULTS_DIR
    name: str = ""


PRESETS = {
    "short": {
        "model_scales": ("n",),
        "rounds": 5,
        "model_rounds": 5,
        "model_seconds": 2.0,
        "variant_seconds": 0.5,
        "warmup": 1,
        "min_sample_s": 0.02,
        "train_batch": 4,
        "train_imgsz": 640,
    },
    "full": {},
}


def build_config(overrides: dict) -> BenchConfig:
    """A BenchConfig from a preset ('mode', default 'short') and key=value overrides; bad keys or values raise."""
    overrides = dict(overrides)
    mode = overrides.pop("mode", "short")
    if mode not in PRESETS:
        raise ValueError(f"mode must be one of {sorted(PRESETS)}, got {mode!r}")
    fields = {f.name: f for f in dataclasses.fields(BenchConfig) if f.name != "mode"}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ValueError(f"unknown benchmark setting(s) {', '.join(unknown)}; valid: {', '.join(fields)}")
    values = {**PRESETS[mode], **{k: _coerce(k, v, fields[k].type) for k, v in overrides.items()}}
    cfg = BenchConfig(mode=mode, **values)
    bad_parts = sorted(set(cfg.parts) - set(PARTS))
    if bad_parts:
        raise ValueError(f"parts {bad_parts} unknown; choose from {', '.join(PARTS)}")
    if not cfg.devices:
        cfg.devices = ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",)
    if "cuda" in cfg.devices and not torch.cuda.is_available():
        raise ValueError("devices includes 'cuda' but CUDA is not available")
    cfg.threads = cfg.threads or os.cpu_count() or 1  # Ultralytics' import sets OMP_NUM_THREADS=1; use all cores
    cfg.name = cfg.name or f"{'-'.join(cfg.devices)}-{mode}"
    for key in ("threads", "imgsz", "train_batch", "train_imgsz", "rounds", "model_rounds"):
        if getattr(cfg, key) < 1:
            raise ValueError(f"{key} must be a positive integer, got {getattr(cfg, key)!r}")
    return cfg


def _coerce(key: str, value, annotation: str):
    """Turn CLI values ('n,s', 8, 'cpu') into the field's type."""
    if annotation.startswith("tuple"):
        items = (
            value.split(",") if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else [value]
        )
        items = [i.strip() if isinstance(i, str) else i for i in items if i != ""]
        if "int" in annotation:
            try:
                return tuple(int(i) for i in items)
            except (TypeError, ValueError):
                raise ValueError(f"{key} must be integers separated by commas, got {value!r}") from None
        return tuple(str(i) for i in items)
    if annotation == "Path":
        return Path(value)
    if annotation in {"int", "float"}:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return int(value) if annotation == "int" else float(value)
    if annotation == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be True or False, got {value!r}")
        return value
    return str(value)
