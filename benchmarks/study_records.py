"""What the two studies' scripts share: their records, every finished run of an `ablate` grid (its settings, metrics
and cost), committed in benchmarks/results so that a later checkout resumes the grid from them; their run (`Study`);
and the pieces of their blocks."""

from __future__ import annotations

import csv
import inspect
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.config import RESULTS_DIR, refusing, typed_values
from benchmarks.readme_figures import save_small_png
from benchmarks.readme_tables import check_block, load_json, save_json, write_block

COMMAND = "yolo-cbam ablate data={data} base={base} variants={variants} seeds={seeds} epochs={epochs} imgsz={imgsz}"


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


def restore(records: dict, save_dir: Path) -> None:
    """Write the marker of every recorded run whose directory in `save_dir` lacks one, so `ablate` skips it."""
    from ultralytics_cbam.ablation.run import MARKER
    from ultralytics_cbam.ablation.variants import slug

    for r in records["runs"]:
        run_dir = save_dir / f"{slug(r['variant'])}-seed{r['seed']}"
        if not (run_dir / MARKER).exists():
            run_dir.mkdir(parents=True, exist_ok=True)
            settings = {**r["settings"], "model_yaml": records["models"][r["variant"]]}
            record = {**r["record"], "run_dir": str(run_dir)}
            (run_dir / MARKER).write_text(json.dumps({"settings": settings, "record": record}), encoding="utf-8")


def variants_in(records: dict, order: str) -> list[str]:
    """The variants of `order` (comma-separated) that the records hold runs of, in that order."""
    return [v for v in order.split(",") if any(r["variant"] == v for r in records["runs"])]


def summary(records: dict, order: str) -> list[dict]:
    """The study's table rows (`ablation_stats.summarize`) over the recorded runs, variants in `order`."""
    from ultralytics_cbam.ablation.stats import summarize

    runs = [{**r["record"], **r["profile"], "variant": r["variant"], "seed": r["seed"]} for r in records["runs"]]
    return summarize(runs, variants_in(records, order))


def table(records: dict, order: str, base: str) -> str:
    """The runner's Markdown table of the recorded runs, variants in `order`, each described as built on `base`."""
    from ultralytics_cbam.ablation.report import markdown_table
    from ultralytics_cbam.ablation.variants import Variant

    descriptions = {v: Variant.parse(v).describe(base) for v in variants_in(records, order)}
    return markdown_table(summary(records, order), descriptions).strip()


def image(alt: str, file: Path, readme: Path) -> str:
    """A Markdown image of `file`, linked relative to `readme`."""
    return f"![{alt}]({os.path.relpath(file, readme.parent).replace(os.sep, '/')})"


def save_figure(draw: Callable[[Path], Path], file: Path, colors: int) -> None:
    """Save the figure that `draw` writes into a temporary directory (it returns its path) as a PNG 900 px wide."""
    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        save_small_png(cv2.imread(str(draw(Path(tmp)))), file, width=900, colors=colors)


def write_plot(records: dict, order: str, figure: Path) -> None:
    """The runner's plot (paired differences, mAP against latency) of the recorded runs, as a small PNG."""
    from ultralytics_cbam.ablation.report import plot_table

    def draw(tmp: Path) -> Path:
        plot_table(summary(records, order), tmp / "plot.png")
        return tmp / "plot.png"

    save_figure(draw, figure, colors=64)


def study_defaults(name: str, figure: Path, settings: dict, **more: object) -> dict:
    """A study's defaults: its `settings` and `more`, and the keys every study has (records named after the study)."""
    records = RESULTS_DIR / f"{name}.json"
    common = {"name": name, "project": None, "records": records, "readme": None, "figure": figure, "train": True}
    return {**settings, "seeds": 3, **more, **common}


class Study:
    """One run of a study's script: its settings, its records and its `ablate` grid, resumed from the records."""

    def __init__(self, block: str, defaults: dict, argv: list[str] | None, script: str) -> None:
        """Take `defaults` overridden by the key=value pairs of `argv` (default: the command line's; the further pairs
        go to `ablate`), check them and that `readme` has the doc block `block` (before any training; a mistake
        exits with one line naming `script`), and add the finished runs of an interrupted grid to the records."""
        from ultralytics_cbam.ablation.runner import grid_dir
        from ultralytics_cbam.cli import parse_overrides

        self.block, self.extra = block, parse_overrides(sys.argv[1:] if argv is None else argv)
        args = {k: self.extra.pop(k, v) for k, v in defaults.items()}
        paths = {"readme"} | {k for k, v in defaults.items() if isinstance(v, Path)}
        self.args = args | {k: Path(args[k]) for k in paths if args[k] is not None}
        with refusing(script):
            self._check(defaults)
        self.records = load_records(self.args["records"])
        self.save_dir = grid_dir(self.args["project"], self.args["name"], resume=True)
        if harvest(self.records, self.save_dir):
            self.save()

    def _check(self, defaults: dict) -> None:
        """Check the study's settings (counts, flags), the further pairs as `ablate` would, and the doc block."""
        from ultralytics_cbam.ablation.arguments import check_arguments
        from ultralytics_cbam.ablation.runner import ablate

        counts = [key for key, default in defaults.items() if type(default) is int and default > 0]
        self.args = typed_values(self.args, defaults, positive=counts)
        if taken := sorted({"variants", "base"} & set(self.extra)):  # those the study's steps choose
            raise ValueError(f"{', '.join(taken)}: the study sets it itself")
        ablate_args = inspect.signature(ablate).parameters
        checked = inspect.signature(check_arguments).parameters
        options = {k: v for k, v in {**self.extra, **self.args}.items() if k in checked and k != "train_args"}
        check_arguments({k: v for k, v in self.extra.items() if k not in ablate_args}, **options)
        if self.args["readme"] is not None:
            check_block(self.args["readme"], self.block)

    def save(self) -> None:
        """Save the records."""
        save_records(self.args["records"], self.records)

    def step(self, variants: str, **kwargs: object) -> None:
        """Train `variants` (none: nothing) in the grid, `ablate` given `kwargs` and the further pairs, the recorded
        runs skipped; add the finished runs to the records and save them."""
        from ultralytics_cbam.ablation.runner import ablate

        if variants:
            restore(self.records, self.save_dir)
            kwargs |= {"name": self.args["name"], "project": self.args["project"]}
            harvest(self.records, ablate(variants=variants, **kwargs, **self.extra).save_dir)
            self.save()

    def write(self, content: str) -> None:
        """Write the doc block into `readme`."""
        write_block(self.args["readme"], self.block, content)
        print(f"{self.args['readme']}: {self.block} block written from {self.args['records']}")
