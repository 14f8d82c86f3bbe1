"""The fine-tuning study: does CBAM help a pretrained model fine-tuned on a task of its own?

1. Pretrains the stock model on the source task (`source`, red triangle, green circle, blue square) with the stock
   trainer into `project`/pretrain, unless its finished checkpoint is there; an interrupted pretraining is resumed.
2. Fine-tunes every variant of that checkpoint (the stock model, CBAM, CBAM started near identity, CBAM only after
   the neck, SE) on the target task (`data`, yellow pentagon, magenta star, cyan cross) with `seeds` seeds: one
   `ablate` grid whose base is the checkpoint, so every run starts from its weights.

The pretraining's record (its settings, the digest of its weights, its source-task mAP) and every finished run's record
are kept in `records` (benchmarks/results/transfer-study.json), which is committed; the doc block (commands, table with
paired differences and 95% Student's t intervals, the pretraining's mAP, the plot) is written from it alone.
Interrupted, the same command resumes.

Usage:
    python -m benchmarks.transfer_study readme=docs/transfer-study.md
    python -m benchmarks.transfer_study readme=docs/transfer-study.md train=False  # only rewrite the block
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
from pathlib import Path

from benchmarks.readme_figures import FIGURES
from benchmarks.study_records import COMMAND, Study, image, study_defaults, table, variants_in, write_plot

VARIANTS = "baseline,cbam,cbam+gentle,neck-only,se"
PRETRAIN = "pretrain"  # the pretraining's directory in the project
CHECKPOINT = f"runs/detect/{PRETRAIN}/weights/best.pt"  # where the commands below put it
SETTINGS = {"model": "yolov8n.yaml", "source": "cbam-shapes.yaml", "pretrain_epochs": 30}
SETTINGS |= {"data": "cbam-shapes-target.yaml", "epochs": 15, "imgsz": 128}
PRETRAIN_COMMAND = (
    "yolo train model={model} data={source} epochs={pretrain_epochs} imgsz={imgsz} seed=0 name=" + PRETRAIN
)
DEFAULTS = study_defaults("transfer-study", FIGURES / "transfer.png", SETTINGS)


def load_checkpoint(file: Path) -> dict | None:
    """The checkpoint in `file`, None where there is none."""
    import torch

    return torch.load(file, map_location="cpu", weights_only=False) if file.is_file() else None


def digest(ckpt: dict) -> str:
    """SHA-256 of the checkpoint model's weights (not of the file, which also holds dates and paths)."""
    sha = hashlib.sha256()
    for key, value in ckpt["model"].state_dict().items():
        sha.update(key.encode())
        sha.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


def trained_with(ckpt: dict) -> dict:
    """The pretraining's settings in a checkpoint (its model YAML, also after a resume, which names last.pt)."""
    keep = ("data", "epochs", "imgsz", "seed", "batch")
    model = ckpt.get("ema") or ckpt["model"]  # an unfinished checkpoint keeps its model as "ema"
    return {"model": model.yaml.get("yaml_file")} | {k: ckpt["train_args"].get(k) for k in keep}


def pretrain(args: dict, train_args: dict) -> Path:
    """The finished checkpoint of the pretraining: found, resumed from last.pt, or trained."""
    from ultralytics import YOLO

    from ultralytics_cbam.ablation.runner import grid_dir

    run_dir = grid_dir(args["project"], PRETRAIN, resume=True)
    best, last = run_dir / "weights" / "best.pt", run_dir / "weights" / "last.pt"
    pretraining = {"data": args["source"], "epochs": args["pretrain_epochs"], "imgsz": args["imgsz"]}
    wanted = {"model": args["model"], **pretraining}
    for file in (best, last):
        if (ckpt := load_checkpoint(file)) is None:
            continue
        given = {k: trained_with(ckpt)[k] for k in wanted}
        if [Path(str(v)).name for v in given.values()] != [Path(str(v)).name for v in wanted.values()]:
            raise ValueError(f"{file} was trained with {given}, not {wanted}; use another project=")
        if file == best and ckpt["epoch"] == -1:  # -1: the trainer finished it
            return best
        if file == last and ckpt["epoch"] >= 0:
            YOLO(str(last)).train(resume=True)
            return best
    shutil.rmtree(run_dir, ignore_errors=True)  # interrupted before its first checkpoint
    options = {"plots": False, "batch": 16, **train_args}
    YOLO(args["model"]).train(**options, **pretraining, seed=0, project=str(run_dir.parent), name=run_dir.name)
    return best


def record_pretrain(records: dict, best: Path) -> None:
    """Record the checkpoint (settings, weights digest, source-task metrics) and point the recorded runs at it."""
    ckpt = load_checkpoint(best)
    weights, recorded = digest(ckpt), records.get("pretrain", {}).get("digest")
    if records["runs"] and weights != recorded:
        raise ValueError(
            f"the recorded runs were fine-tuned from another checkpoint than {best}; use another records= file"
        )
    metrics = ckpt["train_metrics"]  # the validation of the checkpoint's epoch
    records["pretrain"] = {
        "weights": str(best),
        "digest": weights,
        "settings": trained_with(ckpt),
        "record": {"map50": metrics["metrics/mAP50(B)"], "map50_95": metrics["metrics/mAP50-95(B)"]},
    }
    for run in records["runs"]:  # the same weights, maybe under another path
        run["settings"]["weights"] = str(best)


def block(records: dict, settings: dict, figure: Path, readme: Path) -> str:
    """The doc block, from the records alone: the commands, the pretraining's mAP, the table and the plot."""
    order = variants_in(records, VARIANTS)
    seeds = max((sum(r["variant"] == v for r in records["runs"]) for v in order), default=settings["seeds"])
    variants = ",".join(order) or VARIANTS
    command = COMMAND.format(**{**settings, "base": CHECKPOINT, "variants": variants, "seeds": seeds})
    parts = [f"Pretraining: `{PRETRAIN_COMMAND.format(**settings)}`", f"Fine-tuning: `{command}`"]
    if (pre := records.get("pretrain")) is not None:
        used = pre["settings"]
        parts.append(
            f"The checkpoint ({used['model']}, {used['epochs']} epochs at {used['imgsz']} px on "
            f"{Path(used['data']).name}, seed {used['seed']}) scores mAP50 {pre['record']['map50']:.3f}, "
            f"mAP50-95 {pre['record']['map50_95']:.3f} on the source task's validation set."
        )
    if not order:
        return "\n\n".join([*parts, "No fine-tuning run is recorded yet."])
    parts.append(table(records, VARIANTS, CHECKPOINT))
    alt = "Fine-tuned: paired differences of mAP50-95, and each variant's mAP50-95 with its cost"
    return "\n\n".join([*parts, image(alt, figure, readme)])


def main(argv: list[str] | None = None) -> dict:
    """Run or resume the study and write the doc block; returns the records."""
    from ultralytics_cbam.ablation.runner import ablate

    study = Study("transfer", DEFAULTS, argv, script="benchmarks.transfer_study")
    args, records = study.args, study.records
    if args["train"]:
        only_ablate = set(inspect.signature(ablate).parameters) - {"batch", "train_args"}
        best = pretrain(args, {k: v for k, v in study.extra.items() if k not in only_ablate})
        record_pretrain(records, best)
        study.save()
        study.step(VARIANTS, base=str(best), **{k: args[k] for k in ("data", "epochs", "imgsz", "seeds")})
    if args["readme"] is not None:
        if records["runs"]:
            write_plot(records, VARIANTS, args["figure"])
        study.write(block(records, args, args["figure"], args["readme"]))
    return records


if __name__ == "__main__":
    main()
