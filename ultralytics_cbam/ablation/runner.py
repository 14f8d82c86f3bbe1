"""Ablation runner: train CBAM variants of any YOLO model with the same settings and seeds, and say what helped.

Every variant trains once per seed through the stock Ultralytics trainer, one run after another or as Ray tasks on a
cluster (``backend=ray``). The tables give each variant's cost (parameters, GFLOPs, CPU latency), mAP as mean ± std
over seeds, and its paired difference from ``baseline`` (and from the stock model one scale up, e.g. ``baseline@s``)
seed by seed, with a 95% Student's t interval and a verdict.

Example:
    >>> from ultralytics_cbam import ablate
    >>> results = ablate(data="cbam-shapes.yaml", variants="baseline,cbam,baseline@s", epochs=30, seeds=3)
    >>> print(results.markdown.read_text())
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ultralytics_cbam.ablation.arguments import check_arguments
from ultralytics_cbam.ablation.local_backend import run_locally
from ultralytics_cbam.ablation.ray_backend import run_on_ray
from ultralytics_cbam.ablation.report import write_outputs
from ultralytics_cbam.ablation.run import MARKER, Run, train_run
from ultralytics_cbam.ablation.stats import summarize
from ultralytics_cbam.ablation.variants import (
    DEFAULT_BASE,
    Variant,
    build_variant,
    is_checkpoint,
    model_file_name,
    parse_variants,
    slug,
)
from ultralytics_cbam.integration.compat import check_layercam, quiet_yolo
from ultralytics_cbam.utils.model_inputs import checkpoint_file, is_yaml_path
from ultralytics_cbam.utils.run_dirs import run_dir
from ultralytics_cbam.visualization.layercam import cam_figures

__all__ = ("AblationResults", "Run", "Variant", "ablate", "build_variant", "parse_seeds", "summarize", "train_run")

DEFAULT_VARIANTS = "baseline,cbam,channel,spatial,r8,r32,k3,neck"


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


# --- measurements ------------------------------------------------------------------------------------------------


def profile(model, imgsz: int, runs: int = 20, warmup: int = 3) -> dict:
    """Parameters, GFLOPs at imgsz, and median CPU latency (ms) of a batch-1 forward pass of the fused model."""
    import copy

    import torch
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    params = get_num_params(model)
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


def _profile_file(model_file: Path, nc: int | None, imgsz: int, runs: int) -> dict:
    """`profile` of the model a run trains: the variant's YAML with the data set's number of classes."""
    model = quiet_yolo(str(model_file)).model
    if nc is not None and getattr(model, "nc", nc) != nc:
        model = type(model)(str(model_file), nc=nc, verbose=False)
    return profile(model, imgsz, runs)


def validation_images(data: str, n: int) -> list[Path]:
    """The first `n` images of the data set's validation split (a folder, a list file or a list of these)."""
    from ultralytics.data.utils import IMG_FORMATS, check_det_dataset

    val = check_det_dataset(str(data))["val"]
    images: list[Path] = []
    for item in val if isinstance(val, (list, tuple)) else [val]:
        item = Path(item)
        if item.is_dir():
            images += sorted(f for f in item.rglob("*") if f.suffix[1:].lower() in IMG_FORMATS)
        elif item.suffix == ".txt":
            lines = item.read_text(encoding="utf-8").split()
            images += [(item.parent / line).resolve() if line.startswith("./") else Path(line) for line in lines]
    return images[:n]


def _cam(results: AblationResults, data: str, seed: int, n_images: int) -> None:
    """LayerCAM of every variant's run with `seed` on the first validation images, side by side (`yolo-cbam cam`)."""
    from ultralytics.utils import LOGGER, colorstr

    try:
        check_layercam()
    except ImportError as e:
        LOGGER.info(f"{colorstr('ablate:')} no CAM figure: {e}")
        return
    runs = [r for r in results.runs if r["seed"] == seed]
    models = {r["variant"]: Path(r["run_dir"]) / "weights" / "best.pt" for r in runs}
    models = {name: file for name, file in models.items() if file.is_file()}
    if models:
        files = cam_figures(models, validation_images(data, n_images), results.files["cam"], device="cpu")
        LOGGER.info(f"{colorstr('ablate:')} LayerCAM of seed {seed} side by side in {files[0].parent}")


def _dataset_classes(data: str) -> int | None:
    """The data set's number of classes; resolving it first also prepares the data set once, before any worker."""
    from ultralytics.data.utils import check_det_dataset

    try:
        return int(check_det_dataset(str(data))["nc"])
    except Exception as e:
        raise FileNotFoundError(f"data '{data}' could not be prepared as a detection data set: {e}") from e


# --- outputs -----------------------------------------------------------------------------------------------------


@dataclass
class AblationResults:
    """What an ablation produced.

    Attributes:
        save_dir: Directory of the grid: variant YAMLs in models/, one training run directory per variant and seed.
        runs: One dict per finished run (variant, seed, params, gflops, latency_ms, map50, map50_95, ...).
        table: One dict per variant: mean and std over seeds, paired differences and verdicts (see `summarize`).
        files: 'runs_csv', 'csv', 'markdown' and 'plot' output files, and 'cam', the folder of the LayerCAM figures.
    """

    save_dir: Path
    runs: list[dict] = field(default_factory=list)
    table: list[dict] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def markdown(self) -> Path:
        """The Markdown results table."""
        return self.files["markdown"]


def grid_dir(project: str | None, name: str, resume: bool) -> Path:
    """The grid's directory: project/name (a relative project under runs/detect); a new one unless resuming."""
    return run_dir("detect", project, name, exist_ok=resume)


def _read_marker(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / MARKER).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _jsonable(data: dict) -> dict:
    """`data` as it reads back from JSON (tuples become lists, other objects strings)."""
    return json.loads(json.dumps(data, default=str))


def _check_settings(run_dir: Path, finished: dict, settings: dict) -> None:
    old, new = finished.get("settings", {}), _jsonable(settings)
    differing = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if differing:
        raise ValueError(
            f"finished run {run_dir} used other settings ({', '.join(differing)} differ); "
            "use resume=False or another name= for a new grid"
        )


# --- the runner --------------------------------------------------------------------------------------------------


def ablate(
    data: str = "cbam-shapes.yaml",
    variants: str | Sequence[str] = DEFAULT_VARIANTS,
    base: str = DEFAULT_BASE,
    epochs: int = 50,
    seeds: int | str | Sequence[int] = 3,
    imgsz: int = 640,
    batch: int | float = 16,
    project: str | None = None,
    name: str = "ablate",
    resume: bool = True,
    latency_runs: int = 20,
    backend: str = "local",
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    cam_images: int = 3,
    **train_args,
) -> AblationResults:
    """Train every variant with every seed through the stock Ultralytics trainer and tabulate the results.

    Variants, each derived from `base` with `add_cbam`'s inserter: 'baseline' (the base model), 'cbam' (CBAM at
    add_cbam's default placement, after each backbone stage from stride 4 on), 'channel' / 'spatial' (channel or
    spatial attention only, same places), 'r8', 'r32', ... (reduction), 'k3', ... (kernel size), 'neck' (also after the
    neck blocks that feed the head), 'neck-only' (only there), 'gentle' (attention started near identity), any of them
    joined by '+' such as 'neck+r8', '@<scale>' for another model scale (e.g. 'baseline@s', the equal-compute
    reference one width scale up), and model YAML paths (trained as they are). Re-running with the same project/name
    skips finished runs, trains runs that were killed again, and refuses finished runs with other settings. Writes
    runs.csv (every run), results.csv and results.md (mean ± std over seeds, paired differences from 'baseline' and
    'baseline@<scale>' with 95% Student's t intervals and verdicts) and results.png.

    Args:
        data: Dataset YAML.
        variants: Comma-separated names or a list of names and model YAML paths.
        base: Model the variants derive from: a model YAML, as an Ultralytics name ('yolov8n.yaml', 'yolo11s.yaml',
            'yolo26n.yaml') or a file, whose scale letter sets the variants' scale; or a trained checkpoint
            ('path/to/best.pt'), whose model every variant extends and whose weights every run starts from (the
            layers a variant shares with it; attention layers start as the variant initialises them), to compare the
            variants when fine-tuning a pretrained model.
        epochs: Training epochs of every run.
        seeds: Number of seeds (0..n-1) or a list of seeds; every variant trains once per seed.
        imgsz: Training, GFLOPs and latency image size.
        batch: Training batch size.
        project: Output project directory (default runs/detect).
        name: Grid directory name; a re-run with the same name resumes the grid.
        resume: Continue the grid in project/name; False starts a new grid in an incremented directory.
        latency_runs: Timed forward passes per variant for the median CPU latency (on this machine).
        backend: 'local' (one run after another in this process) or 'ray' (each run a Ray task; needs
            ``pip install "ultralytics-cbam[ray]"``, and with several nodes a project directory they all share).
        address: Ray cluster to use: 'auto', 'ray://host:10001', ...; None starts a local one for the grid (or uses
            the one this process already joined).
        cpus_per_run: CPUs Ray reserves for each run.
        gpus_per_run: GPUs Ray reserves for each run (0: runs train on CPU unless train_args name a device).
        cam_images: Validation images of the LayerCAM figure (cam/ beside results.md: one panel per variant, the
            first seed's runs, as `yolo-cbam cam` draws them; needs Ultralytics >= 8.4.113); 0 for none.
        **train_args: Further Ultralytics training settings, the same for every run (e.g. device, workers, lr0),
            checked against Ultralytics' config before any work.

    Returns:
        AblationResults with the save directory, the runs, the summary table and the output files.
    """
    from ultralytics.utils import LOGGER, colorstr

    prefix = colorstr("ablate:")
    check_arguments(
        train_args,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        resume=resume,
        latency_runs=latency_runs,
        backend=backend,
        cam_images=cam_images,
        cpus_per_run=cpus_per_run,
        gpus_per_run=gpus_per_run,
    )
    if not (is_checkpoint(base) or is_yaml_path(base)):
        raise ValueError(f"base must be a model YAML (.yaml) or a checkpoint (.pt), got {base!r}")
    if is_checkpoint(base):
        if "pretrained" in train_args:
            raise ValueError("ablate: base= is a checkpoint, which every run starts from; pretrained= cannot be given")
        base = str(Path(checkpoint_file(base)).resolve())
    grid_variants, grid_seeds = parse_variants(variants), parse_seeds(seeds)
    built = {v.name: build_variant(v, base) for v in grid_variants}  # bad variants fail before anything is written
    nc = _dataset_classes(data)
    save_dir = grid_dir(project, name, resume)
    (save_dir / "models").mkdir(parents=True, exist_ok=True)
    train_args = {"plots": False, **train_args}

    # Plan the grid: write each variant's YAML, and check every finished run against the current settings.
    plan, profiles = [], {}
    for variant in grid_variants:
        _, text, scale = built[variant.name]
        model_file = save_dir / "models" / model_file_name(variant, base, scale)
        model_file.write_text(text, encoding="utf-8")
        profiles[variant.name] = _profile_file(model_file, nc, imgsz, latency_runs)
        for seed in grid_seeds:
            settings = {"data": str(data), "epochs": epochs, "imgsz": imgsz, "batch": batch, "seed": seed}
            settings.update(model_yaml=text, train_args=train_args, **({"gentle": True} if variant.gentle else {}))
            if is_checkpoint(base):
                settings["weights"] = base
            run = Run(variant.name, seed, model_file, save_dir / f"{slug(variant.name)}-seed{seed}", settings)
            finished = _read_marker(run.run_dir)
            if finished is not None:
                _check_settings(run.run_dir, finished, settings)
            plan.append((run, finished))

    results = AblationResults(save_dir)
    results.files = {k: save_dir / f for k, f in (("runs_csv", "runs.csv"), ("csv", "results.csv"))}
    results.files |= {"markdown": save_dir / "results.md", "plot": save_dir / "results.png", "cam": save_dir / "cam"}
    descriptions = {v.name: v.describe(base) for v in grid_variants}
    order = {(run.variant, run.seed): k for k, (run, _) in enumerate(plan)}

    def add(run: Run, record: dict) -> None:
        results.runs.append({**record, **profiles[run.variant]})
        results.runs.sort(key=lambda r: order[(r["variant"], r["seed"])])
        results.table = summarize(results.runs, [v.name for v in grid_variants])
        write_outputs(results.runs, results.table, results.files, descriptions)

    LOGGER.info(f"{prefix} {len(plan)} runs ({len(grid_variants)} variants x {len(grid_seeds)} seeds) in {save_dir}")
    todo = []
    for k, (run, finished) in enumerate(plan, 1):
        if finished is not None:
            LOGGER.info(f"{prefix} run {k}/{len(plan)} ({run.variant}, seed {run.seed}) finished earlier, skipped")
            add(run, finished["record"])
        else:
            todo.append((k, run))
    if backend == "ray":
        failed = run_on_ray(todo, len(plan), add, address, cpus_per_run, gpus_per_run)
        if failed:
            lines = "\n".join(f"  {run.variant}, seed {run.seed}: {error}" for run, error in failed)
            raise RuntimeError(
                f"{len(failed)} of {len(plan)} runs failed; the others are in {save_dir}. Run the same ablate "
                f"command again to train the failed runs again:\n{lines}"
            )
    else:
        run_locally(todo, len(plan), add)
    if cam_images:
        _cam(results, data, grid_seeds[0], cam_images)
    for row in results.table:
        if row["warning"]:
            LOGGER.warning(f"{prefix} {row['variant']}: {row['warning']}")
    LOGGER.info(f"{prefix} results in {results.markdown}\n{results.markdown.read_text(encoding='utf-8')}")
    return results
