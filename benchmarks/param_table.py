"""Parameters and GFLOPs of YOLOv8 and YOLOv8-CBAM at every scale and task, computed by building the models.

Usage (from the repository root):
    python benchmarks/param_table.py                  # prints the table, writes benchmarks/results/param_table.md
    python benchmarks/param_table.py readme=docs/parameters.md  # ... and into its <!-- params:start --> block
    python benchmarks/param_table.py imgsz=320 save=/tmp/params.md
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.readme_tables import check_block, write_block

os.environ.setdefault("YOLO_OFFLINE", "1")

SCALES = ("n", "s", "m", "l", "x")
TASKS = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb", "classify": "-cls"}
DEFAULT_SAVE = Path(__file__).resolve().parent / "results" / "param_table.md"


def model_yamls(task: str, scale: str) -> tuple[str, str]:
    """Stock and CBAM model YAML names, e.g. ('yolov8n-seg.yaml', 'yolov8n-seg-cbam.yaml')."""
    suffix = TASKS[task]
    return f"yolov8{scale}{suffix}.yaml", f"yolov8{scale}{suffix}-cbam.yaml"


def measure(task: str, yaml: str, imgsz: int) -> tuple[int, float]:
    """(parameters, GFLOPs at imgsz) of a `task` model built from `yaml`, as Ultralytics counts them."""
    from ultralytics.nn import tasks
    from ultralytics.utils import LOGGER
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    model_class = {
        "detect": tasks.DetectionModel,
        "segment": tasks.SegmentationModel,
        "pose": tasks.PoseModel,
        "obb": tasks.OBBModel,
        "classify": tasks.ClassificationModel,
    }[task]
    level = LOGGER.level
    LOGGER.setLevel("WARNING")  # ClassificationModel prints its summary even when not verbose
    try:
        model = model_class(yaml, verbose=False)
    finally:
        LOGGER.setLevel(level)
    return get_num_params(model), get_flops(model, imgsz)


def build_rows(imgsz: int = 640) -> list[dict]:
    """One row per (task, scale) with both models' parameters and GFLOPs."""
    from ultralytics.utils import TQDM

    rows = []
    cases = [(task, scale) for task in TASKS for scale in SCALES]
    for task, scale in TQDM(cases, desc="Building models"):
        (base_params, base_flops), (cbam_params, cbam_flops) = (
            measure(task, y, imgsz) for y in model_yamls(task, scale)
        )
        rows.append(
            {
                "task": task,
                "scale": scale,
                "yolov8_params": base_params,
                "cbam_params": cbam_params,
                "yolov8_gflops": base_flops,
                "cbam_gflops": cbam_flops,
            }
        )
    return rows


def markdown(rows: list[dict], imgsz: int) -> str:
    """The rows as one Markdown table."""
    lines = [
        f"| task | scale | YOLOv8 params | YOLOv8-CBAM params | added params | YOLOv8 GFLOPs@{imgsz} | "
        f"YOLOv8-CBAM GFLOPs@{imgsz} | added GFLOPs |",
        "|---|---|--:|--:|--:|--:|--:|--:|",
    ]
    for r in rows:
        added = r["cbam_params"] - r["yolov8_params"]
        lines.append(
            f"| {r['task']} | {r['scale']} | {r['yolov8_params']:,} | {r['cbam_params']:,} | "
            f"+{added:,} ({100 * added / r['yolov8_params']:.2f} %) | {r['yolov8_gflops']:.1f} | "
            f"{r['cbam_gflops']:.1f} | {r['cbam_gflops'] - r['yolov8_gflops']:+.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    """Build the table, print it and save it; key=value arguments: imgsz (640), save (results/param_table.md),
    readme (a README whose params block receives the table)."""
    args = dict(a.split("=", 1) for a in (sys.argv[1:] if argv is None else argv) if "=" in a)
    unknown = set(args) - {"imgsz", "save", "readme"}
    bad = [a for a in (sys.argv[1:] if argv is None else argv) if "=" not in a]
    if unknown or bad:
        raise SystemExit(
            f"param_table.py: unknown argument(s) {sorted(unknown) + bad}; use imgsz=640 save=PATH readme=README.md"
        )
    try:
        imgsz = int(args.get("imgsz", 640))
    except ValueError:
        raise SystemExit(f"param_table.py: imgsz must be an integer, got {args['imgsz']!r}") from None
    save = Path(args.get("save", DEFAULT_SAVE))
    readme = Path(args["readme"]) if "readme" in args else None
    if readme is not None:
        check_block(readme, "params")
    table = markdown(build_rows(imgsz), imgsz)
    save.parent.mkdir(parents=True, exist_ok=True)
    save.write_text(table)
    if readme is not None:
        write_block(readme, "params", table.rstrip("\n"))
    print(table)
    return table


if __name__ == "__main__":
    main()
