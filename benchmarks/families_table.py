"""Where CBAM sits, and parameters and GFLOPs (Ultralytics' own counts) with and without it, for every family, task
and scale of the installed Ultralytics. The rows, stamped with the versions, are saved to `results`
(benchmarks/results/families.json, committed); the full table in the ``families`` block of `docs` and YOLOv8's rows in
the ``params`` block of `params` are rendered from it (`None` skips a file).

Usage (from the repository root):
    python -m benchmarks.families_table               # docs/families.md and docs/parameters.md, GFLOPs at 640
    python -m benchmarks.families_table scales=n imgsz=320 docs=/tmp/families.md params=None results=/tmp/f.json
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from benchmarks.config import RESULTS_DIR, options, refusing
from benchmarks.readme_tables import checked, markdown_table, save_json, versions, write_rendered
from ultralytics_cbam.utils.names import SCALES

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {"imgsz": 640, "scales": "nslmx", "docs": ROOT / "docs" / "families.md"}
DEFAULTS |= {"params": ROOT / "docs" / "parameters.md", "results": RESULTS_DIR / "families.json"}
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


def full_table(rows: list[Row], imgsz: int) -> str:
    """Every row, grouped by family and task: CBAM's places once per group."""
    cells, previous = [], None
    for r in rows:
        after = r.after if (r.family, r.task, r.after) != previous else '"'
        previous = (r.family, r.task, r.after)
        cells.append([f"{r.model} ({r.task})", after, *r.params_text, r.added, *r.gflops_text(2)])
    header = ["model", "CBAM after stock layers", "params", "with CBAM", "added", f"GFLOPs@{imgsz}", "with CBAM"]
    return "\n".join(markdown_table(header, cells, right=5))


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
    return "\n".join(markdown_table([*header, f"YOLOv8-CBAM GFLOPs@{imgsz}", "added GFLOPs"], cells, right=6))


def rows_of(records: dict) -> list[Row]:
    """The saved rows."""
    return [Row(**{**r, "params": tuple(r["params"]), "gflops": tuple(r["gflops"])}) for r in records["rows"]]


def families_block(records: dict) -> str:
    """The ``families`` block, from the records alone: every row, and the versions measured."""
    imgsz, v = records["settings"]["imgsz"], records["versions"]
    made = f"Ultralytics {v['ultralytics']}, torch {v['torch']}, written by `python -m benchmarks.families_table`."
    return f"{full_table(rows_of(records), imgsz)}\n\n{made}"


def params_block(records: dict) -> str:
    """The ``params`` block, from the records alone."""
    return params_table(rows_of(records), records["settings"]["imgsz"])


BLOCKS = {"docs": ("families", families_block), "params": ("params", params_block)}


def main(argv: list[str] | None = None) -> list[Row]:
    """Build the models, save the rows and write the blocks from them; key=value arguments as DEFAULTS names them."""
    with refusing("benchmarks.families_table"):
        args = DEFAULTS | options(argv, DEFAULTS, "benchmarks.families_table", BLOCKS, ("imgsz",))
        files = {key: checked(args[key], name) for key, (name, _) in BLOCKS.items()}
        imgsz, scales = args["imgsz"], str(args["scales"])
        if not scales or set(scales) - set(SCALES):
            raise ValueError(f"scales must be letters among {SCALES}, got {scales!r}")
    rows = build_rows(imgsz, scales)
    records = {"settings": {"imgsz": imgsz, "scales": scales}, "rows": [asdict(r) for r in rows]}
    save_json(args["results"], {**records, "versions": versions("ultralytics-thop")})
    for key, (name, render) in BLOCKS.items():
        write_rendered(files[key], name, render, args["results"])
    return rows


if __name__ == "__main__":
    main()
