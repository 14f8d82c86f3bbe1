"""cbam-shapes: a small synthetic data set that rewards both channel ('what') and spatial ('where') attention.

Each image shows coloured shapes on a cluttered, textured background. A target class is one shape in one colour
(e.g. a *red triangle*); every other shape/colour pair is a distractor that shares the shape of one target and the
colour of another, and the background clutter is drawn in the same colours. Finding a target therefore needs both
the colour ('what') and the outline at a place ('where').

The data set is deterministic: image ``i`` of a split depends only on ``(seed, split, i)``. It is written in the
YOLO layout of any task (detect, segment, pose, obb, classify) into a temporary folder that is renamed into place
when complete, so an interrupted run never leaves a half-written data set behind.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

__all__ = ("CLASSES", "COLOURS", "KPT_FLIP_IDX", "NAMES", "SHAPES", "TASKS", "Shape", "generate", "scene")

SHAPES = ("circle", "square", "triangle")
COLOURS = {"red": (40, 40, 215), "green": (60, 175, 40), "blue": (215, 95, 35)}  # BGR, as OpenCV draws
CLASSES = (("red", "triangle"), ("green", "circle"), ("blue", "square"))  # (colour, shape) of each target class
NAMES = tuple(f"{colour} {shape}" for colour, shape in CLASSES)
TASKS = ("detect", "segment", "pose", "obb", "classify")
KPT_FLIP_IDX = (0, 3, 2, 1)  # keypoints are the outline's top, right, bottom, left points; a flip swaps right/left
_SPLITS = {"train": 1, "val": 2}


@dataclass(frozen=True)
class Shape:
    """One drawn shape: its look, pose in pixels, and target class (None for a distractor)."""

    shape: str
    colour: str
    cx: float
    cy: float
    radius: float
    angle: float
    label: int | None

    def polygon(self) -> np.ndarray:
        """Outline as an (N, 2) array of pixel coordinates (x, y)."""
        corners = {"circle": 48, "square": 4, "triangle": 3}[self.shape]
        start = self.angle + (math.pi / 4 if self.shape == "square" else 0.0)
        t = start + np.arange(corners) * 2 * math.pi / corners
        return np.stack((self.cx + self.radius * np.cos(t), self.cy + self.radius * np.sin(t)), axis=1)

    def box(self) -> tuple[float, float, float, float]:
        """Axis-aligned box (x1, y1, x2, y2) of the outline."""
        p = self.polygon()
        return (*p.min(0), *p.max(0))

    def keypoints(self) -> np.ndarray:
        """The outline's top, right, bottom and left points as a (4, 2) array."""
        p = self.polygon()
        return p[[p[:, 1].argmin(), p[:, 0].argmax(), p[:, 1].argmax(), p[:, 0].argmin()]]

    def oriented_box(self) -> np.ndarray:
        """Corners (4, 2) of the outline's minimum-area rotated rectangle."""
        return cv2.boxPoints(cv2.minAreaRect(self.polygon().astype(np.float32))).astype(np.float64)


def _looks(rng: np.random.Generator, target: bool) -> tuple[str, str, int | None]:
    """Colour, shape and class of a target, or of a distractor that shares exactly one attribute with some target."""
    if target:
        label = int(rng.integers(len(CLASSES)))
        return (*CLASSES[label], label)
    others = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in CLASSES]
    colour, shape = others[int(rng.integers(len(others)))]
    return colour, shape, None


def _place(rng: np.random.Generator, size: int, placed: list[Shape], colour: str, shape: str, label: int | None):
    """A shape at a random pose that does not touch the shapes already placed, or None if none fits."""
    for _ in range(50):
        radius = float(rng.uniform(0.07, 0.13) * size)
        cx, cy = (float(v) for v in rng.uniform(radius + 1, size - radius - 1, 2))
        if all(math.hypot(cx - s.cx, cy - s.cy) > radius + s.radius + 2 for s in placed):
            return Shape(shape, colour, cx, cy, radius, float(rng.uniform(0, 2 * math.pi)), label)
    return None


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted colour field with fine texture and clutter strokes drawn in the target colours too."""
    field = cv2.resize(rng.uniform(70, 190, (4, 4, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    image = np.clip(field + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    palette = [*COLOURS.values(), (200, 200, 200), (60, 60, 60), (40, 190, 200)]
    for _ in range(int(rng.integers(6, 12))):
        p1, p2 = (tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(2))
        colour = palette[int(rng.integers(len(palette)))]
        cv2.line(image, p1, p2, colour, int(rng.integers(1, 3)), cv2.LINE_AA)
    for _ in range(int(rng.integers(2, 5))):  # small blobs: right colour, wrong (no) shape
        centre = tuple(int(v) for v in rng.integers(0, size, 2))
        axes = tuple(int(v) for v in rng.integers(2, max(3, size // 30), 2))
        colour = palette[int(rng.integers(len(palette)))]
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
    return image


def scene(
    seed: int, split: str, index: int, size: int = 160, targets: int | None = None
) -> tuple[np.ndarray, list[Shape]]:
    """Draw image `index` of `split`: returns the BGR image and its shapes (targets and distractors).

    Args:
        seed: Data set seed.
        split: 'train' or 'val'.
        index: Image number within the split.
        size: Image width and height in pixels.
        targets: Number of target shapes (random 0-3 if None).
    """
    rng = np.random.default_rng([seed, _SPLITS[split], index])
    image = _background(rng, size)
    n_targets = int(rng.integers(0, 4)) if targets is None else targets
    wanted = [True] * n_targets + [False] * int(rng.integers(2, 5))
    shapes: list[Shape] = []
    for target in wanted:
        s = _place(rng, size, shapes, *_looks(rng, target))
        if s is not None:
            shapes.append(s)
    for s in shapes:
        colour = np.clip(np.array(COLOURS[s.colour]) * rng.uniform(0.85, 1.1), 0, 255)
        cv2.fillPoly(image, [np.round(s.polygon() * 16).astype(np.int32)], colour.tolist(), cv2.LINE_AA, shift=4)
    return image, shapes


def _label_line(s: Shape, task: str, size: int) -> str:
    """One YOLO label row for a target shape in the format of `task` (coordinates normalised by the image size)."""
    x1, y1, x2, y2 = s.box()
    box = np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]) / size
    if task == "detect":
        values = box
    elif task == "segment":
        values = s.polygon().ravel() / size
    elif task == "pose":
        visible = np.full((len(s.keypoints()), 1), 2.0)
        values = np.concatenate((box, np.hstack((s.keypoints() / size, visible)).ravel()))
    else:  # obb
        values = np.clip(s.oriented_box() / size, 0, 1).ravel()
    return " ".join([str(s.label), *(f"{v:.6f}" for v in values)])


def _write_split(tmp: Path, split: str, count: int, task: str, size: int, seed: int) -> None:
    from ultralytics.utils import TQDM

    for i in TQDM(range(count), desc=f"cbam-shapes {task} {split}"):
        name = f"{split}_{i:05d}"
        if task == "classify":
            image, shapes = scene(seed, split, i, size, targets=1)
            label = next(s.label for s in shapes if s.label is not None)
            folder = tmp / split / NAMES[label].replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{name}.png"), image)
            continue
        image, shapes = scene(seed, split, i, size)
        cv2.imwrite(str(tmp / "images" / split / f"{name}.png"), image)
        rows = [_label_line(s, task, size) for s in shapes if s.label is not None]
        (tmp / "labels" / split / f"{name}.txt").write_text("".join(f"{r}\n" for r in rows))


def data_yaml(root: Path, task: str = "detect") -> dict:
    """The Ultralytics data YAML content for a generated data set at `root`."""
    data = {"path": str(root), "train": "images/train", "val": "images/val", "names": dict(enumerate(NAMES))}
    if task == "pose":
        data |= {"kpt_shape": [4, 3], "flip_idx": list(KPT_FLIP_IDX)}
    return data


def generate(
    root: str | os.PathLike,
    task: str = "detect",
    train: int = 320,
    val: int = 80,
    size: int = 160,
    seed: int = 0,
) -> Path:
    """Write the data set to `root` unless it is already there; returns `root`.

    For every task but 'classify', `root/data.yaml` is written too, for use as ``data=root/data.yaml``; a classify
    data set is used as ``data=root``.

    Args:
        root: Data set folder.
        task: One of 'detect', 'segment', 'pose', 'obb', 'classify' (the label format).
        train: Number of training images.
        val: Number of validation images.
        size: Image width and height in pixels.
        seed: Data set seed.
    """
    from ultralytics.utils import LOGGER

    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    for name, value in (("train", train), ("val", val), ("size", size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    root = Path(root).resolve()
    if root.exists():
        return root
    tmp = root.with_name(f".{root.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        for split in ("train", "val"):
            if task != "classify":
                (tmp / "images" / split).mkdir(parents=True)
                (tmp / "labels" / split).mkdir(parents=True)
        for split, count in (("train", train), ("val", val)):
            _write_split(tmp, split, count, task, size, seed)
        if task != "classify":
            text = yaml.safe_dump(data_yaml(root, task), sort_keys=False, allow_unicode=True)
            (tmp / "data.yaml").write_text(text, encoding="utf-8")
        try:
            tmp.rename(root)
        except OSError:
            if not root.exists():  # otherwise another process finished the same data set first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    LOGGER.info(f"cbam-shapes: {train} train and {val} val images ({task}) written to {root}")
    return root
