"""The README's figure: the CBAM spatial attention maps of one image as `yolo-cbam visualize` saves them, by default
of a yolov8n-cbam first trained briefly on cbam-shapes (no download, a few minutes on a CPU).

Usage (from the repository root):
    python -m benchmarks.attention_figure
    python -m benchmarks.attention_figure model=runs/detect/train/weights/best.pt image=street.jpg out=/tmp/a.png
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import cv2
import numpy as np

from benchmarks.config import options
from benchmarks.readme_figures import FIGURES, save_small_png

WIDTH, COLORS = 800, 112  # of the saved figure: width in pixels, palette size
DEFAULTS = {
    "model": None,  # trained CBAM checkpoint; default: train yolov8n-cbam on `data` first
    "data": "cbam-shapes.yaml",  # dataset of the example training and of the default image
    "image": None,  # image to show; default: the first validation image of `data`
    "epochs": 10,  # of the example training
    "imgsz": 160,  # training and inference image size
    "out": FIGURES / "attention.png",
}


def train_example_model(data: str, epochs: int, imgsz: int, project: Path) -> Path:
    """Train yolov8n-cbam from scratch for a few epochs on CPU; return its best.pt."""
    from ultralytics import YOLO

    YOLO("yolov8n-cbam.yaml").train(
        data=data, epochs=epochs, imgsz=imgsz, batch=4, workers=0, device="cpu", seed=0, plots=False,
        project=str(project), name="train", exist_ok=True, verbose=False,
    )  # fmt: skip
    return project / "train" / "weights" / "best.pt"


def enlarged(image: np.ndarray, width: int, imgsz: int) -> np.ndarray:
    """`image` enlarged by a whole factor (pixels repeated) so that its grid is drawn at least `width` px wide, where
    Ultralytics' letterbox then gives the model the same input; else `image` unchanged."""
    from ultralytics.data.augment import LetterBox

    from ultralytics_cbam.visualization.rendering import GRID_COLUMNS, GRID_TILE_MAX

    h, w = image.shape[:2]
    factor = min(math.ceil(width / (GRID_COLUMNS * w)), max(GRID_TILE_MAX // max(h, w), 1))  # tiles not shrunk again
    big = cv2.resize(image, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)
    letterbox = LetterBox(imgsz, auto=True, stride=32)
    return big if np.array_equal(letterbox(image=big), letterbox(image=image)) else image


def main(argv: list[str] | None = None) -> Path:
    """Write the figure; key=value arguments as DEFAULTS names them."""
    from ultralytics_cbam.ablation.runner import validation_images
    from ultralytics_cbam.visualization.attention_maps import visualize

    args = DEFAULTS | options(argv, DEFAULTS, "benchmarks.attention_figure", ("model", "image"), ("epochs", "imgsz"))
    out, imgsz = Path(args["out"]), args["imgsz"]
    with tempfile.TemporaryDirectory() as tmp:
        model = args["model"] or train_example_model(args["data"], args["epochs"], imgsz, Path(tmp))
        image = enlarged(cv2.imread(str(args["image"] or validation_images(args["data"], 1)[0])), WIDTH, imgsz)
        (maps,) = visualize(model, source=image, imgsz=imgsz, normalize=True, project=tmp, name="figure")
        save_small_png(cv2.imread(str(maps.files[0])), out, WIDTH, COLORS)
    print(f"saved {out} ({out.stat().st_size / 1024:.0f} KB)")
    return out


if __name__ == "__main__":
    main()
