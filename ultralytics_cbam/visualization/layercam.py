"""Class activation maps of several models side by side, as in the Grad-CAM figure of the CBAM paper.

Each panel is Ultralytics' own LayerCAM of one model's predictions (what `yolo predict visualize=True` saves), titled
with the model's name and its top prediction; one figure per image.

Example:
    >>> from ultralytics_cbam.visualization.layercam import cam
    >>> figures = cam("runs/detect/baseline/weights/best.pt,runs/detect/cbam/weights/best.pt", source="images/")
    >>> [p.title for p in figures[0].panels]  # ['baseline', 'cbam']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ultralytics_cbam.integration.compat import check_layercam, quiet_yolo
from ultralytics_cbam.utils.checks import flag, image_size, unit_interval
from ultralytics_cbam.utils.model_inputs import checkpoint_file, is_yaml_path
from ultralytics_cbam.utils.run_dirs import run_dir, unique_name
from ultralytics_cbam.utils.sources import image_files, split_list

__all__ = ("CamFigure", "Panel", "cam", "cam_figures", "cam_panels", "figure", "model_name")

FIGURE_WIDTH = 900  # pixels
COLUMNS = 3  # panels per row at most
GAP = 8  # pixels between panels
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass
class Panel:
    """One model's LayerCAM of one image: model name, top prediction ('person 0.87'), and Ultralytics' overlay of
    the heatmap on the letterboxed image (BGR uint8) with the file it saved it to."""

    title: str
    prediction: str
    overlay: np.ndarray
    file: Path


@dataclass
class CamFigure:
    """The panels of all models for one image and the figure they were tiled into."""

    image: Path
    panels: list[Panel]
    file: Path


def model_name(model) -> str:
    """A checkpoint's stem, or its run's name for weights/best.pt and weights/last.pt."""
    path = Path(str(getattr(model, "ckpt_path", None) or getattr(model, "model_name", None) or model))
    if path.stem in {"best", "last"}:
        folder = path.absolute().parent
        return folder.parent.name if folder.name == "weights" else folder.name
    return path.stem


def _load(model):
    """A YOLO model from a YOLO object, a model YAML or a checkpoint path (or asset name); errors name the bad model."""
    from torch import nn
    from ultralytics.engine.model import Model

    if isinstance(model, (str, Path)):
        model = quiet_yolo(str(model) if is_yaml_path(model) else checkpoint_file(model))
    elif not isinstance(model, Model):
        raise TypeError(f"models must be checkpoint paths or YOLO models, got {type(model).__name__}")
    if not isinstance(model.model, nn.Module):
        raise ValueError(f"model '{model_name(model)}' is no PyTorch model; LayerCAM needs a .pt checkpoint")
    return model


def _check_predict(imgsz, conf, classes) -> None:
    """Check the predict arguments before any model runs or folder is made; errors name the argument."""
    if imgsz is not None:
        image_size(imgsz)
    unit_interval("conf", conf)
    ids = [] if classes is None else classes if isinstance(classes, (list, tuple)) else [classes]
    if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in ids):
        raise ValueError(f"classes must be a class id or a list of class ids (integers >= 0), got {classes!r}")


def _prediction(result, conf: float) -> str:
    """'class score' of a result's most confident prediction."""
    if result.probs is not None:
        return f"{result.names[result.probs.top1]} {float(result.probs.top1conf):.2f}"
    boxes = result.obb if getattr(result, "obb", None) is not None else result.boxes
    if boxes is None or not len(boxes):
        return f"no detection >= {conf:g}"
    i = int(boxes.conf.argmax())
    return f"{result.names[int(boxes.cls[i])]} {float(boxes.conf[i]):.2f}"


def cam_panels(models: dict, images: list[Path], save_dir: Path, **predict) -> list[list[Panel]]:
    """For each image, one Panel per model (title -> YOLO model): Ultralytics' predictor runs with visualize=True and
    `predict` arguments (conf, imgsz, ...), saving its overlays into save_dir/overlays/<title>, which are read back."""
    predict = {k: v for k, v in predict.items() if v is not None}
    panels: list[list[Panel]] = [[] for _ in images]
    folders: set[str] = set()
    for title, yolo in models.items():
        safe = unique_name("".join(c if c.isalnum() or c in "-_." else "_" for c in title), folders)
        args = dict(project=str(save_dir / "overlays"), name=safe, exist_ok=True, save=False, verbose=False)
        folder = save_dir / "overlays" / safe
        previous = yolo.predictor  # a YOLO object passed in keeps its own predictor and settings
        try:
            for image, row in zip(images, panels, strict=True):
                before = set(folder.glob("*.jpg"))
                result = yolo.predict(str(image), visualize=True, **args, **predict)[0]
                new = sorted(set(folder.glob("*.jpg")) - before)
                if len(new) != 1:
                    raise RuntimeError(f"Ultralytics saved {len(new)} class activation maps for {image} ({title})")
                row.append(
                    Panel(title, _prediction(result, predict.get("conf", 0.25)), cv2.imread(str(new[0])), new[0])
                )
        finally:
            yolo.predictor = previous
    return panels


def _fit_text(text: str, width: int, scale: float, thickness: int) -> tuple[str, float]:
    """Shrink the font down to 0.4, then cut the text, until it fits `width` pixels."""
    while scale > 0.4 and cv2.getTextSize(text, FONT, scale, thickness)[0][0] > width:
        scale = max(scale * 0.9, 0.4)
    full, k = text, len(text)
    while k > 1 and cv2.getTextSize(text, FONT, scale, thickness)[0][0] > width:
        k -= 1
        text = full[:k] + "..."
    return text, scale


def figure(panels: list[Panel], width: int = FIGURE_WIDTH) -> np.ndarray:
    """Tile panels into as few rows of at most COLUMNS as fit them, as even as can be (4 panels: 2 by 2), each under
    its title and prediction; a short last row is centred.

    Returns:
        BGR uint8 image `width` pixels wide.
    """
    n = len(panels)
    rows = math.ceil(n / COLUMNS)
    cols = math.ceil(n / rows)
    pw = (width - (cols - 1) * GAP) // cols
    margin = (width - cols * pw - (cols - 1) * GAP) // 2
    ph = max(math.ceil(pw * p.overlay.shape[0] / p.overlay.shape[1]) for p in panels)
    scale = min(max(pw / 520, 0.5), 0.9)
    line = cv2.getTextSize("Ag", FONT, scale, 2)[0][1] + round(14 * scale)
    band = 2 * line + round(10 * scale)
    cell = band + ph
    canvas = np.full((rows * cell + (rows - 1) * GAP, width, 3), 255, dtype=np.uint8)
    for k, p in enumerate(panels):
        r, c = divmod(k, cols)
        x = margin + (2 * c + cols - min(cols, n - r * cols)) * (pw + GAP) // 2
        y = r * (cell + GAP)
        for i, (text, thickness, colour) in enumerate(((p.title, 2, (0, 0, 0)), (p.prediction, 1, (60, 60, 60)))):
            text, s = _fit_text(text, pw - 8, scale, thickness)
            tw = cv2.getTextSize(text, FONT, s, thickness)[0][0]
            cv2.putText(canvas, text, (x + (pw - tw) // 2, y + (i + 1) * line), FONT, s, colour, thickness, cv2.LINE_AA)
        h, w = p.overlay.shape[:2]
        gain = min(pw / w, ph / h)
        size, smooth = (round(w * gain), round(h * gain)), cv2.INTER_AREA if gain < 1 else cv2.INTER_LINEAR
        tile = cv2.resize(p.overlay, size, interpolation=smooth)
        top, left = y + band + (ph - tile.shape[0]) // 2, x + (pw - tile.shape[1]) // 2
        canvas[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    return canvas


def _task(models: dict) -> str:
    """The task all models share."""
    tasks = {title: yolo.task for title, yolo in models.items()}
    if len(set(tasks.values())) > 1:
        given = ", ".join(f"{title} ({task})" for title, task in tasks.items())
        raise ValueError(f"models of different tasks cannot share a figure: {given}")
    return next(iter(tasks.values()))


def _write(models: dict, images: list[Path], save_dir: Path, **predict) -> list[CamFigure]:
    """Compute the panels of every image and save their figures."""
    from ultralytics.utils import LOGGER, colorstr

    save_dir.mkdir(parents=True, exist_ok=True)
    figures, stems = [], set()
    for image, panels in zip(images, cam_panels(models, images, save_dir, **predict), strict=True):
        file = save_dir / f"{unique_name(image.stem, stems)}_cam.jpg"
        cv2.imwrite(str(file), figure(panels))
        figures.append(CamFigure(image, panels, file))
    LOGGER.info(f"{colorstr('cam:')} {len(figures)} figure(s) of {len(models)} model(s) saved to {save_dir}")
    return figures


def cam_figures(models: dict, images: list, save_dir: Path, imgsz=None, conf: float = 0.25, device=None) -> list[Path]:
    """Write `<image stem>_cam.jpg` into `save_dir` (created if needed) for each image, one panel per model.

    `models` maps panel titles to checkpoint paths or YOLO models; the other arguments are those of `cam`. Returns the
    figure files.
    """
    check_layercam()
    _check_predict(imgsz, conf, None)
    if not models:
        raise ValueError("models is empty: give {title: checkpoint}")
    loaded = {str(title): _load(m) for title, m in models.items()}
    _task(loaded)
    figures = _write(loaded, image_files(list(images)), Path(save_dir), imgsz=imgsz, conf=conf, device=device)
    return [f.file for f in figures]


def cam(
    models=None,
    source=None,
    imgsz: int | list[int] | None = None,
    conf: float = 0.25,
    classes: int | list[int] | None = None,
    project: str | None = None,
    name: str = "cam",
    exist_ok: bool = False,
    device: str | None = None,
) -> list[CamFigure]:
    """Save one figure per image with Ultralytics' LayerCAM of each model side by side (`yolo predict visualize=True`).

    Each panel is titled with the model's name (the checkpoint's stem, or its run's name for best.pt and last.pt) and
    its most confident prediction. Figures go to `<stem>_cam.jpg` in runs/<task>/<name>, Ultralytics' overlays of each
    model to its `overlays/<model>` folder.

    Args:
        models: Checkpoint paths (comma-separated or a list) or YOLO models, all of one task.
        source: Image, folder of images, glob, or a list of these.
        imgsz: Inference size; default each checkpoint's training size, as in Ultralytics' predict.
        conf: Confidence threshold of the predictions that are explained and titled.
        classes: Explain only predictions of these class ids.
        project: Output project directory (default runs/<task>).
        name: Output directory name, incremented if it exists unless exist_ok.
        exist_ok: Reuse an existing output directory.
        device: Device, e.g. 'cpu' or '0'.

    Returns:
        One CamFigure per image: its panels (title, prediction, overlay) and figure file.
    """
    check_layercam()
    flag("exist_ok", exist_ok)
    _check_predict(imgsz, conf, classes)
    paths = split_list(models)
    if not paths:
        raise ValueError("models is required: checkpoints to compare, e.g. models=baseline.pt,cbam.pt")
    images = image_files(source)
    names: set[str] = set()
    loaded = {unique_name(model_name(m), names): _load(m) for m in paths}
    save_dir = run_dir(_task(loaded), project, name, exist_ok, mkdir=True)
    return _write(loaded, images, save_dir, imgsz=imgsz, conf=conf, classes=classes, device=device)
