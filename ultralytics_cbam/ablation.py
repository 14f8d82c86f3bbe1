"""Ablation runner: build CBAM variants of YOLOv8, train each with the same settings and seeds, compare them.

Example:
    >>> from ultralytics_cbam import ablate
    >>> results = ablate(data="cbam-shapes.yaml", variants="baseline,cbam,channel,spatial", epochs=30, seeds=3)
    >>> print(results.markdown.read_text())
"""

from __future__ import annotations

import copy
import csv
import inspect
import json
import math
import os
import re
import shutil
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ("AblationResults", "Variant", "ablate", "build_variant", "insert_layers", "parse_seeds", "summarize")

DEFAULT_VARIANTS = "baseline,cbam,channel,spatial,r8,r32,k3,neck"
STOCK_YAML, CBAM_YAML = "yolov8.yaml", "yolov8-cbam.yaml"
NECK_BLOCKS = ("C2f",)  # head blocks that 'neck' variants follow with attention
MARKER = "ablate.json"  # written into a run directory only once the run has finished
METRICS = {"map50": "metrics/mAP50(B)", "map50_95": "metrics/mAP50-95(B)"}
RESERVED = ("model", "data", "epochs", "imgsz", "batch", "seed", "project", "name", "exist_ok", "resume")
_PLACEMENTS = {"cbam": "backbone", "neck": "backbone+neck", "neck-only": "neck"}
_MODULES = {"channel": "ChannelAttention", "spatial": "SpatialAttention"}


# --- model YAML surgery ------------------------------------------------------------------------------------------


def insert_layers(d: dict, rows: dict[int, list]) -> dict:
    """Return a copy of model dict `d` with `rows[j]` inserted right after layer j.

    Every layer that read layer j, by absolute or relative 'from' index, reads the inserted layer instead, so the
    inserted layer refines j's output for the whole network. Inserted rows should take 'from' -1.

    Args:
        d: Model dictionary with 'backbone' and 'head' lists of [from, repeats, module, args] rows.
        rows: Layer index (over backbone + head) -> row to insert after that layer.

    Returns:
        The new model dictionary; `d` is not modified.
    """
    old = [list(row) for row in d["backbone"] + d["head"]]
    for j in rows:
        if isinstance(j, bool) or not isinstance(j, int) or not 0 <= j < len(old):
            raise ValueError(f"cannot insert after layer {j!r}: the model has layers 0..{len(old) - 1}")
    new_index, output_of, shift = [], [], 0
    for j in range(len(old)):
        new_index.append(j + shift)
        shift += j in rows
        output_of.append(j + shift)  # the layer that now carries old layer j's output

    def remap(x: int, j: int) -> int:
        if x < 0 <= -(j + x + 1):  # -1 of layer 0: the input image
            return x
        source = output_of[x if x >= 0 else j + x]
        return source if x >= 0 else source - new_index[j]

    out = {k: copy.deepcopy(v) for k, v in d.items() if k not in ("backbone", "head")}
    out["backbone"], out["head"] = [], []
    for j, (f, n, m, args) in enumerate(old):
        section = out["backbone"] if j < len(d["backbone"]) else out["head"]
        section.append([[remap(x, j) for x in f] if isinstance(f, list) else remap(f, j), n, m, copy.deepcopy(args)])
        if j in rows:
            section.append(copy.deepcopy(list(rows[j])))
    return out


def _base_yaml(name: str) -> dict:
    from ultralytics.utils.checks import check_yaml

    d = _load_yaml(check_yaml(name))
    return {k: v for k, v in d.items() if k not in ("yaml_file", "scale")}


def _load_yaml(path: str | Path) -> object:
    """The contents of a YAML file (Ultralytics' `YAML` helper is missing from its older releases)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Variant:
    """One model of the grid.

    Attributes:
        name: Label in tables, plots and run directory names.
        placement: 'none', 'backbone' (the article's), 'backbone+neck', 'neck', or 'file' for a user YAML.
        module: Attention row module: 'CBAM', 'ChannelAttention' or 'SpatialAttention'.
        reduction: Channel-attention reduction ratio r.
        kernel_size: Spatial-attention kernel size k.
        file: The user's model YAML for placement 'file'.
    """

    name: str
    placement: str = "backbone"
    module: str = "CBAM"
    reduction: int = 16
    kernel_size: int = 7
    file: Path | None = None

    @classmethod
    def parse(cls, name: str) -> Variant:
        """Variant from a name: tokens joined by '+' (e.g. 'cbam', 'neck+r8', 'spatial+k3') or a model YAML path."""
        name = str(name).strip()
        if name.endswith((".yaml", ".yml")):
            return cls._from_file(name)
        if name == "baseline":
            return cls(name, placement="none")
        fields: dict = {}
        for token in name.split("+"):
            key, value = cls._token(name, token)
            if key in fields:
                raise ValueError(f"variant '{name}': sets {key} twice")
            fields[key] = value
        if fields.get("module") == "ChannelAttention" and "kernel_size" in fields:
            raise ValueError(f"variant '{name}': k (kernel size) does not apply to channel attention")
        if fields.get("module") == "SpatialAttention" and "reduction" in fields:
            raise ValueError(f"variant '{name}': r (reduction) does not apply to spatial attention")
        return cls(name, **fields)

    @staticmethod
    def _token(name: str, token: str) -> tuple[str, object]:
        if token in _PLACEMENTS:
            return "placement", _PLACEMENTS[token]
        if token in _MODULES:
            return "module", _MODULES[token]
        match = re.fullmatch(r"([rk])(\d+)", token)
        if match and int(match[2]) > 0 and (match[1] == "r" or int(match[2]) % 2):
            return ("reduction" if match[1] == "r" else "kernel_size"), int(match[2])
        if match:
            kind = "a positive integer" if match[1] == "r" else "a positive odd integer"
            raise ValueError(f"variant '{name}': {token[0]} must be {kind}, got '{token}'")
        raise ValueError(
            f"unknown variant '{name}' (part '{token}'); use baseline, cbam, channel, spatial, r<N>, k<N>, neck, "
            "neck-only, several joined by '+' (e.g. neck+r8), or a model YAML file"
        )

    @classmethod
    def _from_file(cls, name: str) -> Variant:
        from ultralytics.utils.checks import check_yaml

        try:
            file = Path(check_yaml(name))
        except FileNotFoundError:
            raise FileNotFoundError(f"variant model YAML '{name}' not found") from None
        return cls(file.stem, placement="file", file=file)

    def describe(self) -> str:
        """One line saying what the variant is."""
        if self.placement == "none":
            return "stock YOLOv8, no attention"
        if self.placement == "file":
            return f"model YAML {self.file}"
        where = {"backbone": "after backbone C2f P2-P4 and SPPF", "neck": "after neck C2fs"}
        where["backbone+neck"] = f"{where['backbone']}, and {where['neck']}"
        return f"{self.module}({', '.join(f'{k}={v}' for k, v in self.args().items())}) {where[self.placement]}"

    def args(self) -> dict:
        """The attention rows' YAML args by name."""
        if self.module == "ChannelAttention":
            return {"r": self.reduction}
        if self.module == "SpatialAttention":
            return {"k": self.kernel_size}
        return {"r": self.reduction, "k": self.kernel_size}


def build_variant(variant: Variant) -> dict:
    """The model dictionary of a variant, derived from stock yolov8.yaml or the packaged yolov8-cbam.yaml."""
    if variant.placement == "file":
        d = _load_yaml(variant.file)
        if not isinstance(d, dict) or "backbone" not in d or "head" not in d:
            raise ValueError(f"variant model YAML '{variant.file}' has no 'backbone' and 'head' sections")
        return d
    if variant.placement == "none":
        return _base_yaml(STOCK_YAML)
    d = _base_yaml(CBAM_YAML if variant.placement in ("backbone", "backbone+neck") else STOCK_YAML)
    if variant.placement in ("backbone+neck", "neck"):
        first_head = len(d["backbone"])
        layers = d["backbone"] + d["head"]
        neck = [i for i in range(first_head, len(layers)) if layers[i][2] in NECK_BLOCKS]
        d = insert_layers(d, {i: [-1, 1, "CBAM", []] for i in neck})
    for row in d["backbone"] + d["head"]:
        if row[2] == "CBAM":
            row[2], row[3] = variant.module, list(variant.args().values())
    return d


def _model_file_name(variant: Variant, scale: str) -> str:
    """A file name from which Ultralytics reads the model scale: its own for user YAMLs that name one."""
    from ultralytics.nn.tasks import guess_model_scale

    if variant.file is not None and guess_model_scale(variant.file):
        return variant.file.name
    return f"yolov8{scale}-{_slug(variant.name)}.yaml"


def _dump_model_yaml(d: dict, header: str) -> str:
    """Model YAML text with one flow-style line per layer row."""

    def flow(value) -> str:
        return yaml.safe_dump([value], default_flow_style=True, width=10**6).strip()[1:-1]

    lines = [f"# {line}" for line in header.splitlines()]
    for key, value in d.items():
        if key in ("backbone", "head"):
            lines += [f"{key}:", *(f"  - {flow(row)}" for row in value)]
        elif isinstance(value, dict):
            lines += [f"{key}:", *(f"  {flow(k)}: {flow(v)}" for k, v in value.items())]
        else:
            lines.append(f"{flow(key)}: {flow(value)}")
    return "\n".join(lines) + "\n"


def _slug(name: str) -> str:
    return re.sub(r"[^\w.+-]", "_", name)


# --- grid arguments ----------------------------------------------------------------------------------------------


def parse_seeds(seeds: int | str | Sequence[int]) -> list[int]:
    """Seeds of the grid: an int n means seeds 0..n-1; a list or 'a,b,c' names them."""
    if isinstance(seeds, str):
        try:
            seeds = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise ValueError(f"seeds must be a count or a list of integers, got {seeds!r}") from None
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be at least 1, got {seeds}")
        return list(range(seeds))
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise ValueError(f"seeds must be a count or a list of integers, got {seeds!r}")
    for s in seeds:
        if isinstance(s, bool) or not isinstance(s, int) or s < 0:
            raise ValueError(f"seeds must be non-negative integers, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds lists a seed twice: {list(seeds)}")
    return list(seeds)


def parse_variants(variants: str | Sequence[str]) -> list[Variant]:
    """Variants of the grid from 'a,b,c' or a list of names and model YAML paths."""
    names = variants.split(",") if isinstance(variants, str) else list(variants)
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise ValueError("variants is empty; e.g. variants=baseline,cbam")
    parsed = [Variant.parse(n) for n in names]
    seen: set[str] = set()
    for v in parsed:
        if v.name in seen:
            raise ValueError(f"variant '{v.name}' is listed twice")
        seen.add(v.name)
    return parsed


# --- measurements ------------------------------------------------------------------------------------------------


def profile(model, imgsz: int, runs: int = 20, warmup: int = 3) -> dict:
    """Parameters, GFLOPs at imgsz, and median CPU latency (ms) of a batch-1 forward pass of the fused model."""
    import torch
    from ultralytics.utils.torch_utils import get_flops

    params = sum(p.numel() for p in model.parameters())
    gflops = get_flops(model, imgsz)
    net = copy.deepcopy(model).to("cpu").float().eval()
    if hasattr(net, "fuse"):
        net = net.fuse(verbose=False)
    x = torch.zeros(1, 3, imgsz, imgsz)
    times = []
    with torch.inference_mode():
        for k in range(warmup + runs):
            start = time.perf_counter()
            net(x)
            if k >= warmup:
                times.append((time.perf_counter() - start) * 1000)
    return {"params": params, "gflops": gflops, "latency_ms": statistics.median(times)}


def summarize(runs: list[dict], order: Sequence[str] | None = None) -> list[dict]:
    """One row per variant: runs, params, GFLOPs, mean latency and mean/std (sample, NaN for one run) of mAP."""
    by_variant: dict[str, list[dict]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], []).append(run)
    names = [n for n in order if n in by_variant] if order is not None else list(by_variant)
    rows = []
    for name in names:
        group = by_variant[name]
        row = {"variant": name, "runs": len(group), "params": group[0]["params"], "gflops": group[0]["gflops"]}
        row["latency_ms"] = statistics.fmean(r["latency_ms"] for r in group)
        for key in METRICS:
            values = [r[key] for r in group]
            row[f"{key}_mean"] = statistics.fmean(values)
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else math.nan
        rows.append(row)
    return rows


# --- outputs -----------------------------------------------------------------------------------------------------

RUN_COLUMNS = ("variant", "seed", "params", "gflops", "latency_ms", "map50", "map50_95", "train_s", "run_dir")
TABLE_COLUMNS = ("variant", "runs", "params", "gflops", "latency_ms", "map50_mean", "map50_std")
TABLE_COLUMNS += ("map50_95_mean", "map50_95_std")


def _write_csv(file: Path, rows: list[dict], columns: Sequence[str]) -> None:
    def cell(value):
        return "" if isinstance(value, float) and math.isnan(value) else value

    with open(file, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([cell(row[c]) for c in columns] for row in rows)


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def markdown_table(rows: list[dict], descriptions: dict[str, str]) -> str:
    """The results table in Markdown, mAP as mean ± std over seeds."""
    lines = [
        "| variant | model | seeds | params (M) | GFLOPs | latency (ms) | mAP50 | mAP50-95 |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant']} | {descriptions.get(r['variant'], '')} | {r['runs']} | {r['params'] / 1e6:.3f} "
            f"| {r['gflops']:.2f} | {r['latency_ms']:.1f} | {_mean_std(r['map50_mean'], r['map50_std'])} "
            f"| {_mean_std(r['map50_95_mean'], r['map50_95_std'])} |"
        )
    return "\n".join(lines) + "\n"


def plot_table(rows: list[dict], file: Path) -> None:
    """Bars of mAP50 and mAP50-95 per variant (error bars: std over seeds), and mAP50-95 against latency."""
    import numpy as np
    from matplotlib.figure import Figure

    names = [r["variant"] for r in rows]
    x = np.arange(len(rows))
    fig = Figure(figsize=(max(6.0, 1.0 * len(rows) + 4), 4), dpi=100)
    bars, scatter = fig.subplots(1, 2, gridspec_kw={"width_ratios": [max(len(rows), 2), 2]})
    for offset, key, label in ((-0.2, "map50", "mAP50"), (0.2, "map50_95", "mAP50-95")):
        means = [r[f"{key}_mean"] for r in rows]
        stds = [0 if math.isnan(r[f"{key}_std"]) else r[f"{key}_std"] for r in rows]
        bars.bar(x + offset, means, 0.4, yerr=stds, capsize=3, label=label)
    top = max([r[f"{k}_mean"] + (0 if math.isnan(r[f"{k}_std"]) else r[f"{k}_std"]) for r in rows for k in METRICS])
    bars.set_ylim(0, max(top, 0.01) * 1.15)
    bars.set_xticks(x, names, rotation=30, ha="right")
    bars.set_ylabel("mAP (mean ± std over seeds)")
    bars.legend()
    for r in rows:
        std = 0 if math.isnan(r["map50_95_std"]) else r["map50_95_std"]
        scatter.errorbar(r["latency_ms"], r["map50_95_mean"], yerr=std, fmt="o", capsize=3)
        point = (r["latency_ms"], r["map50_95_mean"])
        scatter.annotate(r["variant"], point, fontsize=8, xytext=(3, 3), textcoords="offset points")
    scatter.set_ylim(0, max(top, 0.01) * 1.15)
    scatter.set_xlabel("CPU latency, batch 1 (ms)")
    scatter.set_ylabel("mAP50-95")
    fig.tight_layout()
    fig.savefig(file)


# --- the runner --------------------------------------------------------------------------------------------------


@dataclass
class AblationResults:
    """What an ablation produced.

    Attributes:
        save_dir: Directory of the grid: variant YAMLs in models/, one training run directory per variant and seed.
        runs: One dict per finished run (variant, seed, params, gflops, latency_ms, map50, map50_95, ...).
        table: One dict per variant with mean and std over seeds (see `summarize`).
        files: 'runs_csv', 'csv', 'markdown' and 'plot' output files.
    """

    save_dir: Path
    runs: list[dict] = field(default_factory=list)
    table: list[dict] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def markdown(self) -> Path:
        """The Markdown results table."""
        return self.files["markdown"]


def _grid_dir(project: str | None, name: str, resume: bool) -> Path:
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.files import increment_path

    base = Path(project or "")
    if not base.is_absolute():  # relative projects live under runs/detect, as in Ultralytics
        base = Path(SETTINGS["runs_dir"]) / "detect" / base
    path = base / name
    return (path if resume else increment_path(path)).resolve()


def _read_marker(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / MARKER).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _jsonable(data: dict) -> dict:
    """`data` as it reads back from JSON (tuples become lists, other objects strings)."""
    return json.loads(json.dumps(data, default=str))


def _write_json(file: Path, data: dict) -> None:
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, file)  # atomic: a killed process leaves no half-written marker


def _check_settings(run_dir: Path, finished: dict, settings: dict) -> None:
    old, new = finished.get("settings", {}), _jsonable(settings)
    differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if differing:
        raise ValueError(
            f"finished run {run_dir} used other settings ({', '.join(differing)} differ); "
            "use resume=False or another name= for a new grid"
        )


def _train(model_file: Path, run_dir: Path, settings: dict, latency_runs: int) -> dict:
    from ultralytics import YOLO

    start = time.perf_counter()
    quiet = {"verbose": False} if "verbose" in inspect.signature(YOLO.__init__).parameters else {}  # not in 8.1
    yolo = YOLO(str(model_file), **quiet)
    metrics = yolo.train(
        **settings["train_args"],
        data=settings["data"],
        epochs=settings["epochs"],
        imgsz=settings["imgsz"],
        batch=settings["batch"],
        seed=settings["seed"],
        project=str(run_dir.parent),
        name=run_dir.name,
        exist_ok=True,
    )
    results = dict(getattr(metrics, "results_dict", None) or {})
    missing = [k for k in METRICS.values() if k not in results]
    if missing:
        raise RuntimeError(f"training {run_dir} gave no box metrics {missing} (ablate compares detection models)")
    record = {key: float(results[k]) for key, k in METRICS.items()}
    record.update(profile(yolo.model, settings["imgsz"], latency_runs))
    record.update(train_s=time.perf_counter() - start, metrics={k: float(v) for k, v in results.items()})
    return record


def ablate(
    data: str = "cbam-shapes.yaml",
    variants: str | Sequence[str] = DEFAULT_VARIANTS,
    epochs: int = 50,
    seeds: int | str | Sequence[int] = 3,
    scale: str = "n",
    imgsz: int = 640,
    batch: int | float = 16,
    project: str | None = None,
    name: str = "ablate",
    resume: bool = True,
    latency_runs: int = 20,
    **train_args,
) -> AblationResults:
    """Train every variant with every seed through the stock Ultralytics trainer and tabulate the results.

    Variants: 'baseline' (stock YOLOv8), 'cbam' (CBAM after backbone C2f P2-P4 and SPPF, as in the design article),
    'channel' / 'spatial' (channel or spatial attention only, same places), 'r8', 'r32', ... (reduction), 'k3', ...
    (kernel size), 'neck' (also after the neck C2fs), 'neck-only' (only there), combinations joined by '+' such as
    'neck+r8', and model YAML paths. Re-running with the same project/name skips finished runs and redoes runs that
    were killed. Writes runs.csv (every run), results.csv and results.md (mean ± std over seeds) and results.png.

    Args:
        data: Dataset YAML.
        variants: Comma-separated names or a list of names and model YAML paths.
        epochs: Training epochs of every run.
        seeds: Number of seeds (0..n-1) or a list of seeds; every variant trains once per seed.
        scale: Model scale n, s, m, l or x of the built-in variants.
        imgsz: Training, GFLOPs and latency image size.
        batch: Training batch size.
        project: Output project directory (default runs/detect).
        name: Grid directory name; a re-run with the same name resumes the grid.
        resume: Continue the grid in project/name; False starts a new grid in an incremented directory.
        latency_runs: Timed forward passes per run for the median CPU latency.
        **train_args: Further Ultralytics training settings, the same for every run (e.g. device, workers, lr0).

    Returns:
        AblationResults with the save directory, the runs, the summary table and the output files.
    """
    from ultralytics.utils import LOGGER, colorstr

    prefix = colorstr("ablate:")
    reserved = sorted(set(train_args) & set(RESERVED))
    if reserved:
        raise ValueError(f"ablate sets {', '.join(reserved)} itself (use seeds=, project=, name=, resume=)")
    if scale not in ("n", "s", "m", "l", "x"):
        raise ValueError(f"scale must be one of n, s, m, l, x, got {scale!r}")
    for key, value in (("epochs", epochs), ("imgsz", imgsz), ("latency_runs", latency_runs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{key} must be a positive integer, got {value!r}")
    grid_variants, grid_seeds = parse_variants(variants), parse_seeds(seeds)
    save_dir = _grid_dir(project, name, resume)
    (save_dir / "models").mkdir(parents=True, exist_ok=True)
    train_args = {"plots": False, **train_args}

    # Plan the grid: write each variant's YAML, and check every finished run against the current settings.
    plan = []
    for variant in grid_variants:
        model_file = save_dir / "models" / _model_file_name(variant, scale)
        text = _dump_model_yaml(build_variant(variant), f"ablation variant '{variant.name}': {variant.describe()}")
        model_file.write_text(text, encoding="utf-8")
        for seed in grid_seeds:
            run_dir = save_dir / f"{_slug(variant.name)}-seed{seed}"
            settings = {"data": str(data), "epochs": epochs, "imgsz": imgsz, "batch": batch, "seed": seed}
            settings.update(model_yaml=text, train_args=train_args)
            finished = _read_marker(run_dir)
            if finished is not None:
                _check_settings(run_dir, finished, settings)
            plan.append((variant, seed, model_file, run_dir, settings, finished))

    results = AblationResults(save_dir)
    files = {k: save_dir / f for k, f in (("runs_csv", "runs.csv"), ("csv", "results.csv"))}
    files |= {"markdown": save_dir / "results.md", "plot": save_dir / "results.png"}
    descriptions = {v.name: v.describe() for v in grid_variants}
    durations = []
    LOGGER.info(f"{prefix} {len(plan)} runs ({len(grid_variants)} variants x {len(grid_seeds)} seeds) in {save_dir}")
    for k, (variant, seed, model_file, run_dir, settings, finished) in enumerate(plan, 1):
        where = f"run {k}/{len(plan)} ({variant.name}, seed {seed})"
        if finished is not None:
            LOGGER.info(f"{prefix} {where} finished earlier, skipped")
            record = finished["record"]
        else:
            eta = f", about {statistics.fmean(durations) * (len(plan) - k + 1) / 60:.1f} min left" if durations else ""
            LOGGER.info(f"{prefix} {where} training{eta}")
            if run_dir.exists():  # killed before it finished
                LOGGER.info(f"{prefix} {where} was not finished, starting it again")
                shutil.rmtree(run_dir)
            record = _train(model_file, run_dir, settings, latency_runs)
            durations.append(record["train_s"])
            record.update(variant=variant.name, seed=seed, run_dir=str(run_dir))
            _write_json(run_dir / MARKER, {"settings": settings, "record": record})
            LOGGER.info(f"{prefix} {where} done: mAP50 {record['map50']:.4f}, mAP50-95 {record['map50_95']:.4f}")
        results.runs.append(record)
        results.table = summarize(results.runs, [v.name for v in grid_variants])
        _write_outputs(results, files, descriptions)
    results.files = files
    LOGGER.info(f"{prefix} results in {files['markdown']}\n{files['markdown'].read_text(encoding='utf-8')}")
    return results


def _write_outputs(results: AblationResults, files: dict[str, Path], descriptions: dict[str, str]) -> None:
    _write_csv(files["runs_csv"], results.runs, RUN_COLUMNS)
    _write_csv(files["csv"], results.table, TABLE_COLUMNS)
    files["markdown"].write_text(markdown_table(results.table, descriptions), encoding="utf-8")
    plot_table(results.table, files["plot"])
