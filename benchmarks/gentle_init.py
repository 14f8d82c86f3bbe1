"""How much a freshly inserted CBAM disturbs a trained model: paper initialisation against gentle_init, on coco8
(docs/gentle-init.md): a yolov8n trained on coco8's training photographs moved into yolov8n-cbam, compared with the
source before and, given `finetune` epochs, after fine-tuning. Every number, with the settings and versions, is saved
to `results` (benchmarks/results/gentle-init.json, committed); the ``gentle`` block of `readme` is rendered from it.

Usage (from the repository root):
    python -m benchmarks.gentle_init readme=docs/gentle-init.md  # 60 source epochs, 10 fine-tuning epochs
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from ultralytics import YOLO
from ultralytics.nn import tasks

from benchmarks.config import RESULTS_DIR, listed, options, refusing
from benchmarks.readme_tables import checked, markdown_table, measure_and_write, versions
from ultralytics_cbam.weight_init import gentle_init

COCO8 = Path(__file__).resolve().parents[1] / "tests" / "data" / "coco8"
TRAIN = {"batch": 8, "workers": 0, "device": "cpu", "plots": False, "seed": 0, "deterministic": True, "amp": False}
TRAIN |= {"mosaic": 0.0, "single_cls": True, "optimizer": "AdamW", "lr0": 0.002, "warmup_epochs": 0, "val": False}
REPEATS = 16  # times each training photograph is listed per epoch
DEFAULTS = {
    "epochs": 60,  # of the source model
    "imgsz": 128,
    "gates": (0.9, 0.95, 0.99, 0.999),  # the gentle_init gates compared
    "finetune": 10,  # fine-tuning epochs of each transplant
    "source": None,  # a trained checkpoint to use instead of training one
    "readme": None,
    "results": RESULTS_DIR / "gentle-init.json",
}


def dataset(folder: Path, repeats: int) -> Path:
    """coco8 with its training photographs listed `repeats` times (more steps per epoch) and validated on them."""
    shutil.copytree(COCO8, folder / "coco8")
    for path in (folder / "coco8").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    images = sorted((folder / "coco8" / "images" / "train").glob("*.jpg"))
    (folder / "coco8" / "train.txt").write_text("\n".join(map(str, images * repeats)) + "\n")
    names = (COCO8 / "coco8.yaml").read_text().split("names:", 1)[1]
    data = folder / "coco8" / "bench.yaml"
    data.write_text(f"path: {folder / 'coco8'}\ntrain: train.txt\nval: images/train\nnames:{names}")
    return data


def pseudo_labels(data: Path, model: YOLO, imgsz: int, folder: Path, top: int = 20) -> Path:
    """The photographs labelled with the source model's `top` most confident detections."""
    images = sorted((data.parent / "images" / "train").glob("*.jpg"))
    found = []
    for result in model.predict(images, imgsz=imgsz, conf=0.001, verbose=False):
        found += [(float(b.conf), Path(result.path).stem, b.xywhn[0].tolist()) for b in result.boxes]
    found.sort(key=lambda f: -f[0])
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir(parents=True)
    for image in images:
        shutil.copy(image, folder / "images" / image.name)
        rows = [f"0 {' '.join(f'{v:.6f}' for v in xywh)}" for _, stem, xywh in found[:top] if stem == image.stem]
        (folder / "labels" / f"{image.stem}.txt").write_text("\n".join(rows) + "\n" if rows else "")
    out = folder / "data.yaml"
    out.write_text(f"path: {folder}\ntrain: images\nval: images\nnames:\n  0: object\n")
    return out


def map50(model: YOLO, data: Path, imgsz: int, project: Path) -> float:
    kwargs = {"batch": 4, "workers": 0, "device": "cpu", "plots": False, "verbose": False, "single_cls": True}
    return float(model.val(data=str(data), imgsz=imgsz, project=str(project), **kwargs).box.map50)


def predictions(model: YOLO, images: list[Path], imgsz: int) -> torch.Tensor:
    import cv2
    import numpy as np
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox((imgsz, imgsz), auto=False)
    batch = np.stack([letterbox(image=cv2.imread(str(p)))[:, :, ::-1].transpose(2, 0, 1) for p in images])
    with torch.no_grad():
        y = model.model.eval()(torch.from_numpy(np.ascontiguousarray(batch)).float() / 255)
    return y[0] if isinstance(y, (list, tuple)) else y


def measure(args: dict, work: Path) -> dict:
    """Train (or load) the source, move it into yolov8n-cbam with each initialisation and measure; the records."""
    epochs, imgsz, finetune, source = args["epochs"], args["imgsz"], args["finetune"], args["source"]
    gates = [float(g) for g in listed(args["gates"])]
    data = dataset(work, REPEATS)
    if source is None:
        YOLO("yolov8n.yaml").train(data=str(data), epochs=epochs, imgsz=imgsz, project=str(work), name="src", **TRAIN)
    weights = work / "src" / "weights" / "last.pt" if source is None else source
    trained = YOLO(weights)
    images = sorted((data.parent / "images" / "train").glob("*.jpg"))
    pseudo = pseudo_labels(data, trained, imgsz, work / "pseudo")
    ys = predictions(trained, images, imgsz)

    models = [("source (no CBAM)", None, trained)]
    for gate in [None, *gates]:
        torch.manual_seed(0)
        model = YOLO("yolov8n-cbam.yaml")
        model.model = tasks.DetectionModel("yolov8n-cbam.yaml", nc=trained.model.nc, verbose=False)
        model.load(weights)
        if gate is not None:
            gentle_init(model, gate=gate, imgsz=imgsz)
        models.append(("CBAM, paper init" if gate is None else f"CBAM, gentle_init(gate={gate})", gate, model))

    rows = []
    for name, gate, model in models:
        y = predictions(model, images, imgsz)
        rows.append(
            {
                "model": name,
                "gate": gate,
                "max_score_diff": (y[:, 4:] - ys[:, 4:]).abs().max().item(),
                "mean_box_diff_px": (y[:, :4] - ys[:, :4]).abs().mean().item(),
                "map50_labels": map50(model, data, imgsz, work / "val"),
                "map50_source_detections": map50(model, pseudo, imgsz, work / "val"),
            }
        )
    for row, (_, _, model) in zip(rows[1:], models[1:], strict=True) if finetune else []:
        model.train(data=str(data), epochs=finetune, imgsz=imgsz, project=str(work), name="ft", **TRAIN)
        row["map50_labels_finetuned"] = map50(model, data, imgsz, work / "val")
    source = None if source is None else Path(source).name
    settings = {"epochs": epochs, "imgsz": imgsz, "gates": gates, "finetune": finetune, "source": source}
    return {"settings": {**settings, "repeats": REPEATS, "train": TRAIN}, "versions": versions(), "rows": rows}


def block(records: dict) -> str:
    """The doc block, from the records alone: the disturbance table and, after fine-tuning, the mAP50 table."""
    rows, settings, v = records["rows"], records["settings"], records["versions"]
    columns = {
        "model": "{model}",
        "max Δ class score": "{max_score_diff:.3f}",
        "mean Δ box (px)": "{mean_box_diff_px:.2f}",
    }
    columns |= {"mAP50 (labels)": "{map50_labels:.3f}", "mAP50 (source's detections)": "{map50_source_detections:.3f}"}
    lines = markdown_table(list(columns), [[cell.format(**r) for cell in columns.values()] for r in rows])
    if settings["finetune"]:
        header = ["model", f"mAP50 (labels) after {settings['finetune']} fine-tuning epochs"]
        lines += ["", *markdown_table(header, [[r["model"], f"{r['map50_labels_finetuned']:.3f}"] for r in rows[1:]])]
    source = f"`{settings['source']}`" if settings["source"] else f"yolov8n trained {settings['epochs']} epochs"
    lines += ["", f"Source: {source} at {settings['imgsz']} px; Ultralytics {v['ultralytics']}, torch {v['torch']}."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    """Measure, save the records and write the block from them; key=value arguments as DEFAULTS names them."""
    with refusing("benchmarks.gentle_init"):
        args = DEFAULTS | options(argv, DEFAULTS, "benchmarks.gentle_init", ("source", "readme"), ("epochs", "imgsz"))
        readme = checked(args["readme"], "gentle")
        if not all(0.5 < gate < 1 for gate in args["gates"]):
            raise ValueError(f"gates must be numbers between 0.5 and 1 (exclusive), got {args['gates']}")
    return measure_and_write(readme, "gentle", block, args["results"], lambda work: measure(args, work))


if __name__ == "__main__":
    main()
