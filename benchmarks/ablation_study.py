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

from pathlib import Path

from benchmarks.readme_figures import FIGURES
from benchmarks.study_records import COMMAND, Study, image, save_figure, study_defaults, table, variants_in, write_plot

ROOT = Path(__file__).resolve().parents[1]
FIRST = "baseline,neck-only,se,cbam"
REST = "cbam+gentle,neck,channel,spatial,r8,k3,baseline@s"
ORDER = "baseline,se,cbam,cbam+gentle,neck,neck-only,channel,spatial,r8,k3,baseline@s"
DECIDE, REFERENCE = "neck-only", "baseline"
CAM_VARIANTS = ("baseline", "se", "cbam", "neck-only")
SETTINGS = {"data": "cbam-shapes.yaml", "base": "yolov8n.yaml", "epochs": 30, "imgsz": 128}
DEFAULTS = study_defaults(
    "ablation-study", FIGURES / "ablation.png", SETTINGS, max_seeds=10, cam=FIGURES / "ablation-cam.png", cam_image=0
)


def comparison(records: dict) -> dict:
    """`ablation_stats.compare` of DECIDE with REFERENCE on mAP50-95, over the seeds both have."""
    from ultralytics_cbam.ablation.stats import compare

    runs = records["runs"]
    by = {v: {r["seed"]: r["record"]["map50_95"] for r in runs if r["variant"] == v} for v in (DECIDE, REFERENCE)}
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


def block(records: dict, settings: dict, figure: Path, readme: Path, cam: Path | None = None) -> str:
    """The README block, from the records alone: the command, the table, the decision and the figures."""
    command = COMMAND.format(**{**settings, "variants": "<variant>", "seeds": "<its seeds>"})
    parts = [f"Each row: `{command}`.", table(records, ORDER, settings["base"])]
    parts.append(decision_text(records, settings["max_seeds"]))
    trained = variants_in(records, ORDER)
    if missing := [v for v in ORDER.split(",") if v not in trained]:
        parts[-1] += f" Not trained yet: {', '.join(missing)} (the same command trains them)."
    parts.append(image("Paired differences of mAP50-95 and mAP50-95 against latency", figure, readme))
    if cam is not None and cam.exists():
        parts.append(image("LayerCAM of baseline, se, cbam and neck-only on one validation image", cam, readme))
    return "\n\n".join(parts)


def write_cam(save_dir: Path, data: str, index: int, file: Path) -> None:
    """LayerCAM of CAM_VARIANTS (seed 0) side by side on one validation image, where this checkout has their weights."""
    from ultralytics_cbam.ablation.runner import validation_images
    from ultralytics_cbam.ablation.variants import slug
    from ultralytics_cbam.integration.compat import check_layercam
    from ultralytics_cbam.visualization.layercam import cam_figures

    models = {v: save_dir / f"{slug(v)}-seed0" / "weights" / "best.pt" for v in CAM_VARIANTS}
    try:
        check_layercam()
    except ImportError as e:
        print(f"no CAM figure: {e}")
        return
    if all(f.is_file() for f in models.values()):
        image_file = validation_images(data, index + 1)[index]
        save_figure(lambda tmp: cam_figures(models, [image_file], tmp, device="cpu")[0], file, colors=128)


def main(argv: list[str] | None = None) -> dict:
    """Run or resume the study and write the README block; returns the records."""
    study = Study("ablation", DEFAULTS, argv, script="benchmarks.ablation_study")
    args, records = study.args, study.records
    if args["train"]:
        settings = {k: args[k] for k in SETTINGS}
        study.step(FIRST, seeds=args["seeds"], **settings)
        while (state := decision(records, args["max_seeds"]))[0] == "more":
            study.step(f"{REFERENCE},{DECIDE},se", seeds=state[1], **settings)
        study.step(REST, seeds=args["seeds"], **settings)
    if args["readme"] is not None:
        write_plot(records, ORDER, args["figure"])
        write_cam(study.save_dir, args["data"], args["cam_image"], args["cam"])
        study.write(block(records, args, args["figure"], args["readme"], args["cam"]))
    return records


if __name__ == "__main__":
    main()
