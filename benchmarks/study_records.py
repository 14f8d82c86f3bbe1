"""Raw records of the measurements behind the generated doc blocks, one JSON file each in benchmarks/results, which is
committed beside the scripts: a block is rendered from its file alone, so a test rebuilds it without measuring. For the
studies: every finished run of an `ablate` grid (its settings, metrics and cost), so that a later checkout also resumes
the grid from it."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path


def load_json(file: Path) -> dict:
    """The saved records of `file`."""
    return json.loads(Path(file).read_text(encoding="utf-8"))


def save_json(file: Path, records: dict) -> None:
    """Write the records with sorted keys, one item a line, so that a diff shows what changed."""
    Path(file).parent.mkdir(parents=True, exist_ok=True)
    Path(file).write_text(json.dumps(records, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def versions(*packages: str) -> dict[str, str]:
    """The versions of Python, torch and Ultralytics (as imported, also from an overlay) and of those of the
    distributions `packages` that are installed: the stamp of a measurement."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    import torch
    import ultralytics

    found = {"python": platform.python_version(), "torch": torch.__version__, "ultralytics": ultralytics.__version__}
    for name in packages:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def load_records(file: Path) -> dict:
    """The committed records: {'models': variant -> model YAML, 'runs': [{'variant', 'seed', 'settings', 'record',
    'profile'}]} (an empty set where the file does not exist yet)."""
    return load_json(file) if Path(file).exists() else {"models": {}, "runs": []}


def save_records(file: Path, records: dict) -> None:
    """Write the records, runs sorted by variant and seed, so that a diff shows only new runs."""
    records["runs"].sort(key=lambda r: (r["variant"], r["seed"]))
    save_json(file, records)


def harvest(records: dict, save_dir: Path) -> int:
    """Add every finished run of the grid in `save_dir` (its marker, and its cost from runs.csv) to the records."""
    import csv

    from ultralytics_cbam.ablation.run import MARKER

    file = save_dir / "runs.csv"
    rows = list(csv.DictReader(file.open(encoding="utf-8"))) if file.exists() else []
    added = 0
    for row in rows:
        marker_file = Path(row["run_dir"]) / MARKER
        if not marker_file.exists():
            continue
        marker = json.loads(marker_file.read_text(encoding="utf-8"))
        settings = dict(marker["settings"])
        variant, seed = row["variant"], int(row["seed"])
        records["models"][variant] = settings.pop("model_yaml")
        record = {k: v for k, v in marker["record"].items() if k != "run_dir"}
        profile = {"params": int(row["params"]), "gflops": float(row["gflops"]), "latency_ms": float(row["latency_ms"])}
        entry = {"variant": variant, "seed": seed, "settings": settings, "record": record, "profile": profile}
        added += entry not in records["runs"]
        records["runs"] = [r for r in records["runs"] if (r["variant"], r["seed"]) != (variant, seed)] + [entry]
    return added


def restore(records: dict, save_dir: Path) -> int:
    """Write the marker of every recorded run whose directory in `save_dir` lacks one, so `ablate` skips it."""
    from ultralytics_cbam.ablation.run import MARKER
    from ultralytics_cbam.ablation.variants import slug

    restored = 0
    for r in records["runs"]:
        run_dir = save_dir / f"{slug(r['variant'])}-seed{r['seed']}"
        if not (run_dir / MARKER).exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            settings = {**r["settings"], "model_yaml": records["models"][r["variant"]]}
            record = {**r["record"], "run_dir": str(run_dir)}
            (run_dir / MARKER).write_text(json.dumps({"settings": settings, "record": record}), encoding="utf-8")
            restored += 1
    return restored


def table_runs(records: dict) -> list[dict]:
    """The records as the rows `ablation_stats.summarize` takes."""
    return [{**r["record"], **r["profile"], "variant": r["variant"], "seed": r["seed"]} for r in records["runs"]]


def variants_in(records: dict, order: list[str]) -> list[str]:
    """The variants of `order` that the records hold runs of, in that order."""
    return [v for v in order if any(r["variant"] == v for r in records["runs"])]


def summary(records: dict, order: list[str]) -> list[dict]:
    """The study's table rows (`ablation_stats.summarize`) over the recorded runs, variants in `order`."""
    from ultralytics_cbam.ablation.stats import summarize

    return summarize(table_runs(records), variants_in(records, order))


def write_plot(records: dict, order: list[str], figure: Path) -> None:
    """The runner's plot (paired differences, mAP against latency) of the recorded runs, as a small PNG."""
    import tempfile

    import cv2

    from benchmarks.readme_figures import save_small_png
    from ultralytics_cbam.ablation.report import plot_table

    with tempfile.TemporaryDirectory() as tmp:
        file = Path(tmp) / "plot.png"
        plot_table(summary(records, order), file)
        save_small_png(cv2.imread(str(file)), figure, width=900, colors=64)


def study_args(argv: list[str], defaults: dict, paths: tuple[str, ...]) -> tuple[dict, dict]:
    """A study's settings (`defaults` overridden by key=value pairs; the keys in `paths` as Paths) and the further
    pairs, which go to `ablate`."""
    from ultralytics_cbam.cli import parse_overrides

    given = parse_overrides(argv)
    args = {k: given.pop(k, v) for k, v in defaults.items()}
    for key in paths:
        args[key] = Path(args[key]) if args[key] is not None else None
    return args, given
