"""Where CBAM sits, and parameters and GFLOPs with and without it, for every family, task and scale of the installed
Ultralytics: the full table into the ``families`` block of `docs`, YOLOv8's rows into the ``params`` block of
`params` and, given `readme`, one row per family into its ``families`` block (`None` skips a file).

Usage (from the repository root):
    python -m benchmarks.families_table               # docs/families.md and docs/parameters.md, GFLOPs at 640
    python -m benchmarks.families_table scales=n imgsz=320 docs=/tmp/families.md params=None readme=/tmp/README.md
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.config import options
from benchmarks.readme_tables import checked, write_block

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {"imgsz": 640, "scales": "nslmx", "docs": ROOT / "docs" / "families.md"}
DEFAULTS |= {"params": ROOT / "docs" / "parameters.md", "readme": None}
PARAMS_TASKS = ("detect", "segment", "pose", "obb", "classify")  # the order of docs/parameters.md


@dataclass
class Row:
    """One family, task and scale, stock and with CBAM."""

    family: str
    task: str
    scale: str
    stock: str  # model name, e.g. 'yolo11s-seg.yaml'
    after: str  # the stock layers CBAM follows, e.g. '2 C3k2, 4 C3k2, 6 C3k2, 9 SPPF'
    params: tuple[int, int]  # stock, CBAM
    gflops: tuple[float, float]

    @property
    def model(self) -> str:
        return self.stock.removesuffix(".yaml")

    @property
    def added(self) -> str:
        added = self.params[1] - self.params[0]
        return f"+{added:,} ({100 * added / self.params[0]:.2f} %)"

    @property
    def params_text(self) -> list[str]:
        return [f"{p:,}" for p in self.params]

    def gflops_text(self, digits: int) -> list[str]:
        return [f"{g:.{digits}f}" for g in self.gflops]


def _build(name: str):
    """The Ultralytics model (nn.Module) that YOLO(name) builds, without its summary."""
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    level = LOGGER.level
    LOGGER.setLevel("WARNING")  # classification models print their summary even when not verbose
    try:
        return YOLO(name).model
    finally:
        LOGGER.setLevel(level)


def _cbam_places(model) -> str:
    """'2 C3k2, 4 C3k2, ...': index (in the stock model) and YAML module of every layer a CBAM layer follows."""
    from ultralytics_cbam.modules import is_attention_layer

    rows = model.yaml["backbone"] + model.yaml["head"]
    cbam = [i for i, layer in enumerate(model.model) if is_attention_layer(layer)]
    return ", ".join(f"{i - 1 - n} {rows[i - 1][2]}" for n, i in enumerate(cbam))


def measure(family: str, task: str, scale: str, imgsz: int) -> Row:
    """Build the stock and the CBAM model of one family, task and scale and count their parameters and GFLOPs."""
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    from ultralytics_cbam.cfg.families import families, scaled_name

    stock_yaml = families()[family][task]
    stock, cbam = _build(scaled_name(stock_yaml, scale)), _build(scaled_name(stock_yaml, scale, cbam=True))
    return Row(
        family,
        task,
        scale,
        scaled_name(stock_yaml, scale),
        _cbam_places(cbam),
        (get_num_params(stock), get_num_params(cbam)),
        (get_flops(stock, imgsz), get_flops(cbam, imgsz)),
    )


def scales_of(family: str, task: str) -> list[str]:
    """The scale letters of a family's task, as its stock YAML lists them."""
    import yaml

    from ultralytics_cbam.cfg.families import families, stock_yamls

    path = stock_yamls()[families()[family][task]]
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["scales"])


def build_rows(imgsz: int = 640, scales: str = "nslmx") -> list[Row]:
    """Every family, task and scale (of those in `scales`) of the installed Ultralytics."""
    from ultralytics.utils import TQDM

    from ultralytics_cbam.cfg.families import families

    cases = [
        (family, task, scale)
        for family, tasks in families().items()
        for task in tasks
        for scale in scales_of(family, task)
        if scale in scales
    ]
    return [measure(*case, imgsz) for case in TQDM(cases, desc="Building models")]


def _table(header: list[str], numeric: int, rows: list[list[str]]) -> str:
    """A Markdown table whose last `numeric` columns are right-aligned."""
    align = "|" + "|".join(["---"] * (len(header) - numeric) + ["--:"] * numeric) + "|"
    return "\n".join([f"| {' | '.join(header)} |", align, *(f"| {' | '.join(cells)} |" for cells in rows)])


def full_table(rows: list[Row], imgsz: int) -> str:
    """Every row, grouped by family and task: CBAM's places once per group."""
    cells, previous = [], None
    for r in rows:
        after = r.after if (r.family, r.task, r.after) != previous else '"'
        previous = (r.family, r.task, r.after)
        cells.append([f"{r.model} ({r.task})", after, *r.params_text, r.added, *r.gflops_text(2)])
    header = ["model", "CBAM after stock layers", "params", "with CBAM", "added", f"GFLOPs@{imgsz}", "with CBAM"]
    return _table(header, 5, cells)


def summary_table(rows: list[Row], imgsz: int) -> str:
    """One row per family: detection at the first scale measured, and the tasks the family has."""
    from ultralytics_cbam.cfg.families import families

    cells = []
    for family, tasks in families().items():
        r = next((r for r in rows if r.family == family and r.task == "detect"), None)
        if r is not None:
            cells.append([r.model, ", ".join(tasks), r.after, *r.params_text, *r.gflops_text(2)])
    header = ["model", "tasks of the family", "CBAM after stock layers", "params", "with CBAM", f"GFLOPs@{imgsz}"]
    return _table([*header, "with CBAM"], 4, cells)


def params_table(rows: list[Row], imgsz: int) -> str:
    """YOLOv8's rows, task by task: parameters and GFLOPs with and without CBAM."""
    yolov8 = sorted(
        (r for r in rows if r.family == "yolov8" and r.task in PARAMS_TASKS), key=lambda r: PARAMS_TASKS.index(r.task)
    )
    cells = [
        [r.task, r.scale, *r.params_text, r.added, *r.gflops_text(1), f"{r.gflops[1] - r.gflops[0]:+.2f}"]
        for r in yolov8
    ]
    header = ["task", "scale", "YOLOv8 params", "YOLOv8-CBAM params", "added params", f"YOLOv8 GFLOPs@{imgsz}"]
    return _table([*header, f"YOLOv8-CBAM GFLOPs@{imgsz}", "added GFLOPs"], 6, cells)


def main(argv: list[str] | None = None) -> list[Row]:
    """Build the models and write the tables; key=value arguments as DEFAULTS names them."""
    from ultralytics import __version__

    args = DEFAULTS | options(argv, DEFAULTS, "benchmarks.families_table")
    blocks = {"docs": "families", "params": "params", "readme": "families"}
    files = {key: checked(args[key], block) for key, block in blocks.items() if args[key] is not None}
    rows = build_rows(args["imgsz"], str(args["scales"]))
    imgsz, made = args["imgsz"], f"\n\nUltralytics {__version__}, written by `python -m benchmarks.families_table`."
    tables = {"docs": full_table(rows, imgsz) + made, "params": params_table(rows, imgsz)}
    tables["readme"] = summary_table(rows, imgsz) + made
    for key, path in files.items():
        write_block(path, blocks[key], tables[key])
        print(f"{path}: {blocks[key]} block written")
    return rows


if __name__ == "__main__":
    main()
