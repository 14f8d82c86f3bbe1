"""How much a freshly inserted CBAM disturbs a trained model: paper initialisation against gentle_init, on coco8
(docs/gentle-init.md): a yolov8n trained on coco8's training photographs moved into yolov8n-cbam, compared with the
source before and, given `finetune` epochs, after fine-tuning; the tables go into the ``gentle`` block of `readme`.

Usage (from the repository root):
    python -m benchmarks.gentle_init epochs=60 finetune=10 readme=docs/gentle-init.md
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import torch
from ultralytics import YOLO
from ultralytics.nn import tasks

from benchmarks.config import listed, options
from benchmarks.readme_tables import checked, write_block
from ultralytics_cbam.weight_init import gentle_init

COCO8 = Path(__file__).resolve().parents[1] / "tests" / "data" / "coco8"
TRAIN = {"batch": 8, "workers": 0, "device": "cpu", "plots": False, "seed": 0, "deterministic": True, "amp": False}
TRAIN |= {"mosaic": 0.0, "single_cls": True, "optimizer": "AdamW", "lr0": 0.002, "warmup_epochs": 0, "val": False}
REPEATS = 16  # times each training photograph is listed per epoch
DEFAULTS = {
    "epochs": 60,  # of the source model
    "imgsz": 128,
    "gates": (0.9, 0.95, 0.99, 0.999),  # the gentle_init gates compared
    "finetune": 0,  # fine-tuning epochs of each transplant
    "source": None,  # a trained checkpoint to use instead of training one
    "readme": None,
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


def main(argv: list[str] | None = None) -> str:
    """Measure and print the tables; key=value arguments as DEFAULTS names them."""
    args = DEFAULTS | options(argv, DEFAULTS, "benchmarks.gentle_init")
    epochs, imgsz, finetune, source = args["epochs"], args["imgsz"], args["finetune"], args["source"]
    readme = checked(args["readme"], "gentle")
    work = Path(tempfile.mkdtemp(prefix="gentle-init-"))
    os.environ.setdefault("YOLO_CONFIG_DIR", str(work / "config"))
    data = dataset(work, REPEATS)
    if source is None:
        YOLO("yolov8n.yaml").train(data=str(data), epochs=epochs, imgsz=imgsz, project=str(work), name="src", **TRAIN)
        source = work / "src" / "weights" / "last.pt"
    trained = YOLO(source)
    images = sorted((data.parent / "images" / "train").glob("*.jpg"))
    pseudo = pseudo_labels(data, trained, imgsz, work / "pseudo")
    ys = predictions(trained, images, imgsz)

    rows = [("source (no CBAM)", trained)]
    for gate in [None, *map(float, listed(args["gates"]))]:
        torch.manual_seed(0)
        model = YOLO("yolov8n-cbam.yaml")
        model.model = tasks.DetectionModel("yolov8n-cbam.yaml", nc=trained.model.nc, verbose=False)
        model.load(source)
        if gate is not None:
            gentle_init(model, gate=gate, imgsz=imgsz)
        rows.append(("CBAM, paper init" if gate is None else f"CBAM, gentle_init(gate={gate})", model))

    header = "| model | max Δ class score | mean Δ box (px) | mAP50 (labels) | mAP50 (source's detections) |"
    lines = [header, "|---|---|---|---|---|"]
    for name, model in rows:
        y = predictions(model, images, imgsz)
        score, box = (y[:, 4:] - ys[:, 4:]).abs().max().item(), (y[:, :4] - ys[:, :4]).abs().mean().item()
        labels, agree = map50(model, data, imgsz, work / "val"), map50(model, pseudo, imgsz, work / "val")
        lines.append(f"| {name} | {score:.3f} | {box:.2f} | {labels:.3f} | {agree:.3f} |")
    if finetune:
        lines += ["", f"| model | mAP50 (labels) after {finetune} fine-tuning epochs |", "|---|---|"]
        for name, model in rows[1:]:
            model.train(data=str(data), epochs=finetune, imgsz=imgsz, project=str(work), name="ft", **TRAIN)
            lines.append(f"| {name} | {map50(model, data, imgsz, work / 'val'):.3f} |")
    print(f"\nsource: yolov8n, {epochs} epochs at {imgsz} px on coco8's training photographs\n")
    print("\n".join(lines))
    if readme is not None:
        write_block(readme, "gentle", "\n".join(lines))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
