"""Where CBAM sits, and parameters and GFLOPs with and without it, for every YOLO family of the installed Ultralytics.

Builds '<stock>.yaml' and '<stock>-cbam.yaml' (e.g. 'yolo11s-seg.yaml' and 'yolo11s-seg-cbam.yaml') for every family,
task and scale, and writes the full table into the ``<!-- families:start -->`` block of docs/families.md and a summary
(detection at scale n, one row per family) into the block of the same name of a file given with --readme.

Usage (from the repository root):
    python benchmarks/families_table.py                    # docs/families.md, GFLOPs at 640
    python benchmarks/families_table.py --scales n --imgsz 320 --readme /tmp/README.md --docs /tmp/families.md
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.readme_tables import check_block, write_block

os.environ.setdefault("YOLO_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
BLOCK = "families"


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

    from ultralytics_cbam.families import families, scaled_name

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

    from ultralytics_cbam.families import families, stock_yamls

    path = stock_yamls()[families()[family][task]]
    return list(yaml.safe_load(path.read_text(encoding="utf-8"))["scales"])


def build_rows(imgsz: int = 640, scales: str = "nslmx") -> list[Row]:
    """Every family, task and scale (of those in `scales`) of the installed Ultralytics."""
    from ultralytics.utils import TQDM

    from ultralytics_cbam.families import families

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
    lines = [
        f"| model | CBAM after stock layers | params | with CBAM | added | GFLOPs@{imgsz} | with CBAM |",
        "|---|---|--:|--:|--:|--:|--:|",
    ]
    previous = None
    for r in rows:
        after = r.after if (r.family, r.task, r.after) != previous else '"'
        previous = (r.family, r.task, r.after)
        lines.append(
            f"| {r.model} ({r.task}) | {after} | {r.params[0]:,} | {r.params[1]:,} | "
            f"{r.added} | {r.gflops[0]:.2f} | {r.gflops[1]:.2f} |"
        )
    return "\n".join(lines)


def summary_table(rows: list[Row], imgsz: int) -> str:
    """One row per family: detection at the first scale measured, and the tasks the family has."""
    from ultralytics_cbam.families import families

    lines = [
        f"| model | tasks of the family | CBAM after stock layers | params | with CBAM | GFLOPs@{imgsz} | with CBAM |",
        "|---|---|---|--:|--:|--:|--:|",
    ]
    for family, tasks in families().items():
        r = next((r for r in rows if r.family == family and r.task == "detect"), None)
        if r is not None:
            lines.append(
                f"| {r.model} | {', '.join(tasks)} | {r.after} | {r.params[0]:,} | {r.params[1]:,} | "
                f"{r.gflops[0]:.2f} | {r.gflops[1]:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    from ultralytics import __version__

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imgsz", type=int, default=640, help="image size of the GFLOPs")
    parser.add_argument("--scales", default="nslmx", help="scale letters to build, e.g. 'n' or 'ns'")
    parser.add_argument("--readme", type=Path, help="also write the summary (scale n) into this file's block")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "families.md")
    args = parser.parse_args()
    for path in (args.readme, args.docs):
        if path is not None:
            check_block(path, BLOCK)

    rows = build_rows(args.imgsz, args.scales)
    made = f"Ultralytics {__version__}, written by `python benchmarks/families_table.py`."
    write_block(args.docs, BLOCK, f"{full_table(rows, args.imgsz)}\n\n{made}")
    if args.readme is not None:
        write_block(args.readme, BLOCK, f"{summary_table(rows, args.imgsz)}\n\n{made}")
    print(f"{args.docs}: {len(rows)} models with and without CBAM")


if __name__ == "__main__":
    main()
