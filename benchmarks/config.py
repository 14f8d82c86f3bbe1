"""The key=value command line of the benchmark scripts, and the benchmark settings: 'short' and 'full' presets."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PARTS = ("module", "model", "compiled", "onnx", "train", "memory", "size", "variants")


def options(argv: list[str] | None, valid: Iterable[str], prog: str) -> dict:
    """The key=value arguments (default: the command line's) with Ultralytics' value parsing.

    Raises:
        SystemExit: One line naming an argument not of the form key=value, or unknown keys and the valid ones.
    """
    from ultralytics_cbam.cli import parse_overrides

    try:
        given = parse_overrides(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        raise SystemExit(f"{prog}: {str(e).partition(': ')[2]}") from None
    valid = list(valid)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise SystemExit(f"{prog}: unknown argument(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    return given


def listed(value: object) -> list:
    """'a,b', ('a', 'b') or a single value as a list."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


@dataclass
class BenchConfig:
    """What to measure and how long; every field can be given as key=value."""

    mode: str = "short"  # 'short' (a smoke run) or 'full'
    # module, model (eager inference), compiled (inference and training step through torch.compile), onnx, train,
    # memory, size, variants (ways to write CBAM's forward, in ONNX Runtime)
    parts: tuple[str, ...] = PARTS
    devices: tuple[str, ...] = ()  # default 'cpu' and, where present, 'cuda'
    threads: int = 0  # torch (and ONNX Runtime) intra-op threads, the same for every candidate; default all CPUs
    scales: tuple[str, ...] = ("n", "s")  # YOLOv8 scales whose CBAM layers give the module-level shapes
    model_scales: tuple[str, ...] = ("n", "s")  # compared at model level
    imgsz: int = 640  # of the feature-map shapes and of model-level inference
    module_batches: tuple[int, ...] = (1, 16)
    model_batches: tuple[int, ...] = (1, 8)  # of model-level inference (eager, compiled, ONNX Runtime), and variants
    train_batch: int = 8  # of the training step
    train_imgsz: int = 640
    rounds: int = 15  # interleaved samples per candidate at module level and per forward variant
    model_rounds: int = 11  # interleaved samples per candidate at model level (at least)
    model_seconds: float = 20.0  # time per candidate at model level; fast comparisons run more rounds to fill it
    warmup: int = 2  # untimed calls per candidate before timing
    min_sample_s: float = 0.05  # shortest module-level sample; fast calls repeat within a sample
    variant_seconds: float = 5.0  # time per forward variant and case; fast cases run more rounds to fill it
    seed: int = 0  # of weights and inputs
    save_dir: Path = RESULTS_DIR  # folder of the JSON and Markdown results
    name: str = ""  # their file stem; default '<device>-<mode>'


PRESETS = {
    "short": {"model_scales": ("n",), "rounds": 5, "model_rounds": 5, "model_seconds": 2.0, "variant_seconds": 0.5}
    | {"warmup": 1, "min_sample_s": 0.02, "train_batch": 4},
    "full": {},
}
FIELDS = [f.name for f in dataclasses.fields(BenchConfig)]


def build_config(overrides: dict) -> BenchConfig:
    """A BenchConfig from a preset ('mode', default 'short') and key=value overrides; bad keys or values raise."""
    import torch

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


def _coerce(key: str, value: object, annotation: str) -> object:
    """A command-line value ('n,s', 8, 'cpu') as the field's type."""
    if annotation.startswith("tuple"):
        try:
            return tuple(int(i) if "int" in annotation else str(i) for i in listed(value))
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be integers separated by commas, got {value!r}") from None
    if annotation == "Path":
        return Path(value)
    if annotation in {"int", "float"}:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return int(value) if annotation == "int" else float(value)
    return str(value)
