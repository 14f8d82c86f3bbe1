"""The reference ablation study: does CBAM help, where, with which settings, and does it beat going one scale up?

Trains (or resumes) one `ablate` grid: the stock model, CBAM at add_cbam's default places, CBAM started near identity
(gentle_init), also or only after the neck, channel or spatial attention alone, r=8 and k=3, and the stock model one
width scale up ('baseline@s'), each with every seed. Then writes the grid's table and plot (paired differences from
the baseline and from 'baseline@s' with 95% Student's t intervals) into the README's ``<!-- ablation:start -->``
block and benchmarks/figures/ablation.png. Interrupted, the same command resumes the grid; a finished grid only
rewrites the block.

Usage:
    python benchmarks/ablation_study.py --readme README.md
    python benchmarks/ablation_study.py --readme README.md backend=ray address=auto gpus_per_run=1
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")
if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2

from benchmarks.readme_figures import FIGURES, save_small_png
from benchmarks.readme_tables import check_block, write_block

VARIANTS = "baseline,cbam,cbam+gentle,neck,neck-only,channel,spatial,r8,k3,baseline@s"
COMMAND = "yolo-cbam ablate data={data} base={base} variants={variants} seeds={seeds} epochs={epochs} imgsz={imgsz}"


def block(results, command: str, figure: Path, readme: Path) -> str:
    """The README block: the command, the results table and the figure."""
    table = results.markdown.read_text(encoding="utf-8").strip()
    link = os.path.relpath(figure, readme.parent).replace(os.sep, "/")
    return f"`{command}`\n\n{table}\n\n![Paired differences of mAP50-95 and mAP50-95 against latency]({link})"


def main() -> None:
    """Parse the arguments, run or resume the grid, and write the README block."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="cbam-shapes.yaml")
    parser.add_argument("--base", default="yolov8n.yaml")
    parser.add_argument("--variants", default=VARIANTS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--name", default="ablation-study", help="grid directory under runs/detect; reused to resume")
    parser.add_argument("--readme", type=Path, help="README whose ablation block receives the table and figure")
    parser.add_argument("--figure", type=Path, default=FIGURES / "ablation.png")
    parser.add_argument("extra", nargs="*", help="further key=value arguments for ablate (backend=ray, device=0, ...)")
    args = parser.parse_args()
    if args.readme is not None:
        check_block(args.readme, "ablation")  # before the grid, not after it

    from ultralytics_cbam.ablation import ablate
    from ultralytics_cbam.cli import parse_overrides

    settings = {k: getattr(args, k) for k in ("data", "base", "variants", "seeds", "epochs", "imgsz")}
    command = COMMAND.format(**settings) + "".join(f" {pair}" for pair in args.extra)
    results = ablate(**settings, name=args.name, **parse_overrides(args.extra))
    save_small_png(cv2.imread(str(results.files["plot"])), args.figure, width=900, colors=64)
    if args.readme is not None:
        write_block(args.readme, "ablation", block(results, command, args.figure, args.readme))
        print(f"{args.readme}: ablation block written from {results.save_dir}")


if __name__ == "__main__":
    main()
