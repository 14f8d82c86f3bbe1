"""The key=value command line of the scripts, and the benchmark settings with their 'short' and 'full' presets."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from ultralytics_cbam.utils.checks import flag, positive_int
from ultralytics_cbam.utils.names import SCALES

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PARTS = ("module", "model", "compiled", "onnx", "train", "memory", "variants")


def options(
    argv: list[str] | None, valid: Iterable[str], prog: str, files: Iterable[str] = (), positive: Iterable[str] = ()
) -> dict:
    """The key=value arguments (default: the command line's), with Ultralytics' value parsing; where `valid` is a dict
    of defaults, a value whose default is a bool, number or tuple is converted to its type (numbers not negative).

    Raises:
        SystemExit: One line naming an argument not of the form key=value, unknown keys and the valid ones, a value
            not of its default's type, an argument of `files` (a path or paths) that names no file, or one of
            `positive` (given or not) that is no positive integer.
    """
    from ultralytics_cbam.cli import parse_overrides

    try:
        given = parse_overrides(sys.argv[1:] if argv is None else argv)
    except SystemExit as e:
        raise SystemExit(f"{prog}: {str(e).partition(': ')[2]}") from None
    defaults, valid = valid if isinstance(valid, dict) else {}, list(valid)
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise SystemExit(f"{prog}: unknown argument(s) {', '.join(unknown)}; valid: {', '.join(valid)}")
    with refusing(prog):
        given = typed_values(given, defaults, positive)
        for key in files:
            if missing := [p for p in listed(given.get(key)) if p is not None and not Path(p).is_file()]:
                raise FileNotFoundError(f"{key}: {missing[0]} is not a file")
    return given


@contextlib.contextmanager
def refusing(prog: str) -> Iterator[None]:
    """Turn the ValueError, TypeError, LookupError or OSError of a script's argument checks into one line naming it."""
    try:
        yield
    except (ValueError, TypeError, LookupError, OSError) as e:
        raise SystemExit(f"{prog}: {e}") from None


def listed(value: object) -> list:
    """'a,b', ('a', 'b') or a single value as a list."""
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


@dataclasses.dataclass
class BenchConfig:
    """What to measure and for how long; every field can be given as key=value."""

    mode: str = "short"  # 'short' (a smoke run: SHORT's settings) or 'full' (these)
    parts: tuple[str, ...] = PARTS
    threads: int = 0  # intra-op threads of torch and ONNX Runtime; default: every CPU
    scales: tuple[str, ...] = ("n", "s")  # YOLOv8 scales whose CBAM layers give the module-level shapes
    model_scales: tuple[str, ...] = ("n", "s")  # compared at model level
    imgsz: int = 640  # of the feature-map shapes, model-level inference and the training step
    module_batches: tuple[int, ...] = (1, 16)
    model_batches: tuple[int, ...] = (1, 8)  # of model-level inference and of the forward variants
    train_batch: int = 8
    rounds: int = 15  # samples per candidate at module level and per forward variant
    model_rounds: int = 11  # samples per candidate at model level, at least
    model_seconds: float = 20.0  # per candidate at model level: fast comparisons run more rounds to fill it
    variant_seconds: float = 5.0  # the same per forward variant and case
    warmup: int = 2  # untimed calls per candidate
    min_sample_s: float = 0.05  # shortest module-level sample: fast calls repeat within one
    save_dir: Path = RESULTS_DIR
    name: str = ""  # file stem of the results; default 'cpu-<mode>'


SHORT = {"model_scales": ("n",), "rounds": 5, "model_rounds": 5, "model_seconds": 2.0, "variant_seconds": 0.5}
SHORT |= {"warmup": 1, "min_sample_s": 0.02, "train_batch": 4}
FIELDS = [f.name for f in dataclasses.fields(BenchConfig)]


def build_config(overrides: dict) -> BenchConfig:
    """The preset of `mode` (default 'short') with the overrides of `options(argv, FIELDS, ...)`; bad values raise."""
    mode = overrides.get("mode", "short")
    if mode not in ("short", "full"):
        raise ValueError(f"mode must be 'short' or 'full', got {mode!r}")
    defaults = BenchConfig()
    given = {key: typed(key, value, getattr(defaults, key)) for key, value in overrides.items() if key != "mode"}
    cfg = BenchConfig(mode=mode, **(SHORT if mode == "short" else {}) | given)
    if not set(cfg.parts) <= set(PARTS):
        raise ValueError(f"parts must be among {', '.join(PARTS)}, got {','.join(cfg.parts)}")
    if min(cfg.rounds, cfg.model_rounds, cfg.imgsz, cfg.train_batch, *cfg.module_batches, *cfg.model_batches) < 1:
        raise ValueError("rounds, model_rounds, imgsz and batch sizes must be positive")
    if bad := sorted(set(cfg.scales + cfg.model_scales) - set(SCALES)):
        raise ValueError(f"scales and model_scales must be among {', '.join(SCALES)}; got {', '.join(bad)}")
    cfg.threads = cfg.threads or os.cpu_count() or 1  # Ultralytics' import sets OMP_NUM_THREADS=1
    cfg.name = cfg.name or f"cpu-{mode}"
    return cfg


def typed_values(given: dict, defaults: dict, positive: Iterable[str] = ()) -> dict:
    """`given` with each value whose default is a bool, number or tuple as the default's type (`typed`); the values of
    `positive` (given or default) must be positive integers. A bad value raises a ValueError or TypeError naming it."""
    for key in positive:
        positive_int(key, given.get(key, defaults.get(key)))
    return {
        k: typed(k, v, defaults[k]) if isinstance(defaults.get(k), (int, float, tuple)) else v for k, v in given.items()
    }


def typed(key: str, value: object, default: object) -> object:
    """A command-line value ('n,s', 8, 'x') as the type of the default (of each item for a tuple), numbers not
    negative."""
    if isinstance(default, tuple):
        return tuple(typed(key, v, default[0]) for v in listed(value))
    kind = type(default)
    if kind is bool:
        return flag(key, value)
    try:
        if kind in (int, float) and (type(value) not in (int, kind, str) or kind(value) < 0):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        kind_name = {int: "non-negative integer", float: "non-negative number"}.get(kind, kind.__name__)
        raise ValueError(f"{key} must be a {kind_name}, got {value!r}") from None
