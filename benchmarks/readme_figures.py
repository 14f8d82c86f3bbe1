"""Make the README's example figure: the CBAM spatial attention maps of one image, as `yolo-cbam visualize` saves them.

Without --model it first trains yolov8n-cbam briefly on --data (the built-in cbam-shapes by default, which needs no
download; 10 epochs take a few minutes on a CPU). Small images are enlarged by a whole factor (nearest neighbour, so
the model sees the same letterboxed input) for the grid to be drawn at least at the figure's width, with sharp text.

Usage:
    python benchmarks/readme_figures.py
    python benchmarks/readme_figures.py --model runs/detect/train/weights/best.pt --image street.jpg
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

FIGURES = Path(__file__).resolve().parent / "figures"


def train_example_model(data: str, epochs: int, imgsz: int, project: Path) -> Path:
    """Train yolov8n-cbam from scratch for a few epochs on CPU; return its best.pt."""
    from ultralytics import YOLO

    YOLO("yolov8n-cbam.yaml").train(
        data=data, epochs=epochs, imgsz=imgsz, batch=4, workers=0, device="cpu", seed=0, plots=False,
        project=str(project), name="train", exist_ok=True, verbose=False,
    )  # fmt: skip
    return project / "train" / "weights" / "best.pt"


def first_val_image(data: str) -> Path:
    """The first image of the dataset's validation split."""
    from ultralytics.data.utils import IMG_FORMATS, check_det_dataset

    val = check_det_dataset(data)["val"]
    folders = val if isinstance(val, list) else [val]
    images = sorted(p for f in folders for p in Path(f).rglob("*") if p.suffix[1:].lower() in IMG_FORMATS)
    if not images:
        raise FileNotFoundError(f"no validation images found for {data}")
    return images[0]


def enlarged(image: np.ndarray, width: int, imgsz: int) -> np.ndarray:
    """`image` enlarged by a whole factor so that its grid is drawn at least `width` px wide.

    Pixels are repeated (nearest neighbour), so Ultralytics' bilinear letterbox, which samples within each block of
    equal pixels, gives the model the input of the original image; where it would not, `image` comes back unchanged.
    """
    from ultralytics.data.augment import LetterBox

    from ultralytics_cbam.attention_maps import GRID_COLUMNS, GRID_TILE_MAX

    h, w = image.shape[:2]
    factor = min(math.ceil(width / (GRID_COLUMNS * w)), max(GRID_TILE_MAX // max(h, w), 1))  # tiles not shrunk again
    big = cv2.resize(image, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)
    letterbox = LetterBox(imgsz, auto=True, stride=32)
    return big if np.array_equal(letterbox(image=big), letterbox(image=image)) else image


def save_small_png(image_bgr, file: Path, width: int, colors: int) -> None:
    """Resize to `width` px and save as a palette PNG, which keeps the committed file small."""
    h, w = image_bgr.shape[:2]
    small = cv2.resize(image_bgr, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    rgb = Image.fromarray(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
    file.parent.mkdir(parents=True, exist_ok=True)
    rgb.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(file, optimize=True)


def main() -> None:
    """Parse the arguments and write the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="trained CBAM checkpoint; default: train yolov8n-cbam on --data first")
    parser.add_argument("--data", default="cbam-shapes.yaml", help="dataset for the example training and default image")
    parser.add_argument("--image", help="image to show; default: the first validation image of --data")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the example training")
    parser.add_argument("--imgsz", type=int, default=160, help="training and inference image size")
    parser.add_argument("--width", type=int, default=800, help="width of the saved figure in pixels")
    parser.add_argument("--colors", type=int, default=112, help="palette size of the saved PNG")
    parser.add_argument("--out", type=Path, default=FIGURES / "attention.png", help="output PNG")
    args = parser.parse_args()

    from ultralytics_cbam.attention_maps import visualize

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or train_example_model(args.data, args.epochs, args.imgsz, Path(tmp))
        image = cv2.imread(str(args.image or first_val_image(args.data)))
        image = enlarged(image, args.width, args.imgsz)
        (maps,) = visualize(model, source=image, imgsz=args.imgsz, normalize=True, project=tmp, name="figure")
        save_small_png(cv2.imread(str(maps.files[0])), args.out, args.width, args.colors)
    print(f"saved {args.out} ({args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
