"""The committed figures of the documentation, saved small."""

from __future__ import annotations

from pathlib import Path

import cv2
from PIL import Image

FIGURES = Path(__file__).resolve().parent / "figures"


def save_small_png(image_bgr, file: Path, width: int, colors: int) -> None:
    """Resize to `width` px and save as a palette PNG, which keeps the committed file small."""
    h, w = image_bgr.shape[:2]
    small = cv2.resize(image_bgr, (width, round(h * width / w)), interpolation=cv2.INTER_AREA)
    rgb = Image.fromarray(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
    file.parent.mkdir(parents=True, exist_ok=True)
    rgb.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(file, optimize=True)
