"""The reference ablation study: does CBAM help, where, with which settings, against SE and against going one scale up?

Trains (or resumes) one `ablate` grid in three steps:

1. the stock model, CBAM only after the neck ('neck-only'), SE at CBAM's places ('se', the paper's comparator) and
   CBAM at add_cbam's default places, with `seeds` seeds;
2. more seeds of 'baseline', 'neck-only' and 'se', as many as the observed paired differences of 'neck-only' against
   'baseline' say would decide that comparison, one step at a time, until it is decided or the projection passes
   `max_seeds`;
3. the other variants (gentle start, CBAM also after the neck, one half alone, r=8, k=3, the stock model one width scale
   up) with `seeds` seeds.

Every finished run's record (settings, metrics, cost) is kept in `records` (benchmarks/results/ablation-study.json),
which is committed: a later checkout resumes the grid from it, and the README block (table with paired differences and
95% Student's t intervals, the decision, the plot) is written from it alone. Interrupted, the same command resumes.

Usage:
    python -m benchmarks.ablation_study readme=README.md
    python -m benchmarks.ablation_study readme=README.md train=False  # only rewrite the block from the records
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from benchmarks.study_records import (
    harvest,
    load_records,
    restore,
    save_records,
    study_args,
    summary,
    variants_in,
    write_plot,
)

os.environ.setdefault("YOLO_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
FIRST = "baseline,neck-only,se,cbam"
REST = "cbam+gentle,neck,channel,spatial,r8,k3,baseline@s"
ORDER = "baseline,se,cbam,cbam+gentle,neck,neck-only,channel,spatial,r8,k3,baseline@s"
DECIDE, REFERENCE = "neck-only", "baseline"
CAM_VARIANTS = ("baseline", "se", "cbam", "neck-only")
SETTINGS = {"data": "cbam-shapes.yaml", "base": "yolov8n.yaml", "epochs": 30, "imgsz": 128}
COMMAND = "yolo-cbam ablate data={data} base={base} variants={variants} seeds={seeds} epochs={epochs} imgsz={imgsz}"
DEFAULTS = {
    **SETTINGS,
    "seeds": 3,
    "max_seeds": 10,
    "name": "ablation-study",
    "project": None,
    "records": ROOT / "benchmarks" / "results" / "ablation-study.json",
    "readme": None,
    "figure": ROOT / "benchmarks" / "figures" / "ablation.png",
    "cam": ROOT / "benchmarks" / "figures" / "ablation-cam.png",
    "cam_image": 0,
    "train": True,
}


# --- the decision ------------------------------------------------------------------------------------------------


def comparison(records: dict) -> dict:
    """`ablation_stats.compare` of DECIDE with REFERENCE on mAP50-95, over the seeds both have."""
    from ultralytics_cbam.ablation.stats import compare

    by = {
        v: {r["seed"]: r["record"]["map50_95"] for r in records["runs"] if r["variant"] == v}
        for v in (DECIDE, REFERENCE)
    }
    return compare(by[DECIDE], by[REFERENCE])


def decision(records: dict, max_seeds: int) -> tuple[str, int | None]:
    """Where the comparison stands: ('decided', None), ('more', seeds to train) or ('stopped', seeds projected)."""
    from ultralytics_cbam.ablation.stats import SAME, seeds_needed

    result = comparison(records)
    if result["verdict"] != SAME:
        return "decided", None
    needed = seeds_needed(result["mean"], result["sd"])
    if needed is None or needed > max_seeds or result["n"] >= max_seeds:
        return "stopped", needed
    return "more", max(needed, result["n"] + 1)


def decision_text(records: dict, max_seeds: int) -> str:
    """One sentence on how the seeds were chosen and what they decided, in `decision_note`'s words."""
    from ultralytics_cbam.ablation.stats import decision_note

    result = comparison(records)
    head = f"**{DECIDE} vs {REFERENCE}** over {result['n']} seeds: Δ mAP50-95 {result['mean']:+.3f}"
    if result["n"] >= 2:
        head += f" [{result['lo']:+.3f}, {result['hi']:+.3f}]"
    state, _ = decision(records, max_seeds)
    if state == "decided":
        return f"{head}, {result['verdict']}: decided."
    if state == "more":
        return f"{head}: undecided so far ({decision_note(result)})."
    return f"{head}: undecided ({decision_note(result)}); the study's limit is {max_seeds} seeds, so it stopped."


# --- the README block --------------------------------------------------------------------------------------------


def block(records: dict, settings: dict, figure: Path, readme: Path, cam: Path | None = None) -> str:
    """The README block, from the records alone: the command, the table, the decision and the figures."""
    from ultralytics_cbam.ablation.report import markdown_table
    from ultralytics_cbam.ablation.variants import Variant

    order = variants_in(records, ORDER.split(","))
    descriptions = {v: Variant.parse(v).describe(settings["base"]) for v in order}
    command = COMMAND.format(**{**settings, "variants": "<variant>", "seeds": "<its seeds>"})
    table = markdown_table(summary(records, order), descriptions).strip()
    parts = [f"Each row: `{command}`.", table, decision_text(records, settings["max_seeds"])]
    missing = [v for v in ORDER.split(",") if v not in order]
    if missing:
        parts[-1] += f" Not trained yet: {', '.join(missing)} (the same command trains them)."
    link = os.path.relpath(figure, readme.parent).replace(os.sep, "/")
    parts.append(f"![Paired differences of mAP50-95 and mAP50-95 against latency]({link})")
    if cam is not None and cam.exists():
        link = os.path.relpath(cam, readme.parent).replace(os.sep, "/")
        parts.append(f"![LayerCAM of baseline, se, cbam and neck-only on one validation image]({link})")
    return "\n\n".join(parts)


def write_cam(save_dir: Path, data: str, index: int, file: Path) -> bool:
    """LayerCAM of CAM_VARIANTS (seed 0) side by side on one validation image, where this checkout has their weights."""
    import tempfile

    import cv2

    from benchmarks.readme_figures import save_small_png
    from ultralytics_cbam.ablation.runner import validation_images
    from ultralytics_cbam.ablation.variants import slug
    from ultralytics_cbam.integration.compat import check_layercam
    from ultralytics_cbam.visualization.layercam import cam_figures

    models = {v: save_dir / f"{slug(v)}-seed0" / "weights" / "best.pt" for v in CAM_VARIANTS}
    try:
        check_layercam()
    except ImportError as e:
        print(f"no CAM figure: {e}")
        return False
    if not all(f.is_file() for f in models.values()):
        return False
    image = validation_images(data, index + 1)[index]
    with tempfile.TemporaryDirectory() as tmp:
        (figure,) = cam_figures(models, [image], Path(tmp), device="cpu")
        save_small_png(cv2.imread(str(figure)), file, width=900, colors=128)
    return True


# --- main --------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> dict:
    """Run or resume the study and write the README block; returns the records."""
    from benchmarks.readme_tables import check_block, write_block
    from ultralytics_cbam.ablation.runner import ablate, grid_dir

    args, extra = study_args(sys.argv[1:] if argv is None else argv, DEFAULTS, ("records", "readme", "figure", "cam"))
    if args["readme"] is not None:
        check_block(args["readme"], "ablation")  # before the grid, not after it
    records = load_records(args["records"])
    common = {k: args[k] for k in SETTINGS} | {"name": args["name"], "project": args["project"], **extra}
    save_dir = grid_dir(args["project"], args["name"], resume=True)
    if harvest(records, save_dir):  # runs of an interrupted step
        save_records(args["records"], records)
    if args["train"]:
        restore(records, save_dir)

        def step(variants: str, seeds: int | list[int]) -> None:
            if not variants:
                return
            harvest(records, ablate(variants=variants, seeds=seeds, **common).save_dir)
            save_records(args["records"], records)

        step(FIRST, args["seeds"])
        while (state := decision(records, args["max_seeds"]))[0] == "more":
            step(f"{REFERENCE},{DECIDE},se", state[1])
        step(REST, args["seeds"])
    if args["readme"] is not None:
        write_plot(records, ORDER.split(","), args["figure"])
        write_cam(save_dir, args["data"], args["cam_image"], args["cam"])
        write_block(args["readme"], "ablation", block(records, args, args["figure"], args["readme"], args["cam"]))
        print(f"{args['readme']}: ablation block written from {args['records']}")
    return records


if __name__ == "__main__":
    main()
