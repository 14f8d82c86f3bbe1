"""cbam-shapes: a small synthetic data set that rewards both channel ('what') and spatial ('where') attention.

Each image shows coloured shapes on a cluttered, textured background. A target class is one shape in one colour
(e.g. a *red triangle*); every other shape/colour pair is a distractor that shares the shape of one target and the
colour of another, and the background clutter is drawn in the same colours. Finding a target therefore needs both
the colour ('what') and the outline at a place ('where').

Two class sets, named in `CLASS_SETS`, give two tasks for a pretrain -> fine-tune study: ``classes="source"``
(the default: red triangle, green circle, blue square) and ``classes="target"`` (yellow pentagon, magenta star,
cyan cross), which shares no colour and no shape with the source. Any other list of distinct (colour, shape) pairs
from `COLOURS` and `SHAPES` works too. Whatever the set, the distractors are the other pairs of its colours and
shapes, and the clutter is drawn in its colours. The packaged data YAMLs ``cbam-shapes.yaml`` and
``cbam-shapes-target.yaml`` generate the two named sets on first use.

The data set is deterministic: image ``i`` of a split depends only on ``(seed, split, i)`` and the class set (each
set other than the source draws its own scenes, so the target task's images are not recoloured source images). It
is written in the YOLO layout of any task (detect, segment, pose, obb, classify) into a temporary folder that is
renamed into place when complete, so an interrupted run never leaves a half-written data set behind.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import yaml

from ultralytics_cbam.utils.checks import positive_int

__all__ = (
    "CLASSES",
    "CLASS_SETS",
    "COLOURS",
    "KPT_FLIP_IDX",
    "NAMES",
    "SHAPES",
    "TASKS",
    "Shape",
    "class_set",
    "generate",
    "scene",
)

SHAPES = ("circle", "square", "triangle", "pentagon", "star", "cross")
COLOURS = {  # BGR, as OpenCV draws
    "red": (40, 40, 215),
    "green": (60, 175, 40),
    "blue": (215, 95, 35),
    "yellow": (40, 200, 220),
    "magenta": (200, 60, 200),
    "cyan": (210, 190, 40),
}
CLASSES = (("red", "triangle"), ("green", "circle"), ("blue", "square"))  # (colour, shape) of each target class
NAMES = tuple(f"{colour} {shape}" for colour, shape in CLASSES)
CLASS_SETS = {"source": CLASSES, "target": (("yellow", "pentagon"), ("magenta", "star"), ("cyan", "cross"))}
TASKS = ("detect", "segment", "pose", "obb", "classify")
KPT_FLIP_IDX = (0, 3, 2, 1)  # keypoints are the outline's top, right, bottom, left points; a flip swaps right/left
_SPLITS = {"train": 1, "val": 2}
_CLUTTER = ((200, 200, 200), (60, 60, 60), (40, 190, 200))  # light grey, dark grey, ochre: clutter of every set
ClassSet = str | Sequence[Sequence[str]]


def _unit_star(points: int = 5, inner: float = 0.5) -> np.ndarray:
    """Outline of a star with outer radius 1, first point at angle 0."""
    t = np.arange(2 * points) * math.pi / points
    r = np.tile([1.0, inner], points)
    return np.stack((r * np.cos(t), r * np.sin(t)), axis=1)


def _unit_cross(width: float = 0.35) -> np.ndarray:
    """Outline of a plus sign whose arms are `width` (half-width / half-length) thick, corners at radius 1."""
    a = 1 / math.hypot(1, width)
    b = width * a
    x = (b, a, a, b, b, -b, -b, -a, -a, -b, -b, b)
    y = (b, b, -b, -b, -a, -a, -b, -b, b, b, a, a)
    return np.stack((x, y), axis=1)


_OUTLINES = {"star": _unit_star(), "cross": _unit_cross()}  # non-regular outlines at unit radius, angle 0


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
        """Outline as an (N, 2) array of pixel coordinates (x, y), inside the circle of `radius`."""
        if self.shape in _OUTLINES:
            u, c, s = _OUTLINES[self.shape], math.cos(self.angle), math.sin(self.angle)
            x, y = u[:, 0] * c - u[:, 1] * s, u[:, 0] * s + u[:, 1] * c
            return np.stack((self.cx + self.radius * x, self.cy + self.radius * y), axis=1)
        corners = {"circle": 48, "square": 4, "triangle": 3, "pentagon": 5}[self.shape]
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


def class_set(classes: ClassSet = "source") -> tuple[tuple[str, str], ...]:
    """The (colour, shape) pair of each class of a class set.

    Args:
        classes: A name in `CLASS_SETS` ('source', 'target') or distinct (colour, shape) pairs from `COLOURS` and
            `SHAPES`, in class order; their colours and shapes must combine into at least one distractor.

    Raises:
        ValueError: If `classes` is an unknown name or pairs that do not make a class set.
    """
    if isinstance(classes, str):
        if classes not in CLASS_SETS:
            raise ValueError(
                f"classes must be one of {', '.join(CLASS_SETS)} or (colour, shape) pairs, got {classes!r}"
            )
        return CLASS_SETS[classes]
    try:
        pairs = tuple((str(colour), str(shape)) for colour, shape in classes)
    except (TypeError, ValueError):
        raise ValueError(f"classes must be a set name or (colour, shape) pairs, got {classes!r}") from None
    for colour, shape in pairs:
        if colour not in COLOURS or shape not in SHAPES:
            raise ValueError(
                f"classes: ({colour!r}, {shape!r}) is not a colour of {', '.join(COLOURS)} "
                f"and a shape of {', '.join(SHAPES)}"
            )
    if len(set(pairs)) != len(pairs) or not _distractors(pairs):
        raise ValueError(f"classes must be distinct pairs whose colours and shapes also form a distractor, got {pairs}")
    return pairs


def _colours(pairs: tuple[tuple[str, str], ...]) -> list[str]:
    """The colours of a class set, in `COLOURS` order."""
    return [c for c in COLOURS if any(c == colour for colour, _ in pairs)]


def _distractors(pairs: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """Every pair of a class colour and a class shape that is not a class: each shares one attribute with a class."""
    shapes = [s for s in SHAPES if any(s == shape for _, shape in pairs)]
    return [(c, s) for c in _colours(pairs) for s in shapes if (c, s) not in pairs]


def _looks(
    rng: np.random.Generator, target: bool, pairs: tuple[tuple[str, str], ...], others: list[tuple[str, str]]
) -> tuple[str, str, int | None]:
    """Colour, shape and class of a target, or of a distractor that shares exactly one attribute with some target."""
    if target:
        label = int(rng.integers(len(pairs)))
        return (*pairs[label], label)
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


def _background(rng: np.random.Generator, size: int, colours: list[str]) -> np.ndarray:
    """A muted colour field with fine texture and clutter strokes drawn in the target `colours` too."""
    field = cv2.resize(rng.uniform(70, 190, (4, 4, 3)).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
    image = np.clip(field + rng.normal(0, 10, (size, size, 3)), 0, 255).astype(np.uint8)
    palette = [*(COLOURS[c] for c in colours), *_CLUTTER]
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


def _stream(pairs: tuple[tuple[str, str], ...]) -> list[int]:
    """Seed entropy that gives a class set its own scenes; none for the source set, drawn from (seed, split, index)."""
    if pairs == CLASSES:
        return []
    text = ";".join(f"{colour} {shape}" for colour, shape in pairs)
    return [int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")]


def scene(
    seed: int, split: str, index: int, size: int = 160, targets: int | None = None, classes: ClassSet = "source"
) -> tuple[np.ndarray, list[Shape]]:
    """Draw image `index` of `split`: returns the BGR image and its shapes (targets and distractors).

    Args:
        seed: Data set seed.
        split: 'train' or 'val'.
        index: Image number within the split.
        size: Image width and height in pixels.
        targets: Number of target shapes (random 0-3 if None).
        classes: Class set: a name in `CLASS_SETS` or (colour, shape) pairs (see `class_set`); a shape's `label`
            indexes it.
    """
    pairs = class_set(classes)
    others = _distractors(pairs)
    rng = np.random.default_rng([seed, _SPLITS[split], index, *_stream(pairs)])
    image = _background(rng, size, _colours(pairs))
    n_targets = int(rng.integers(0, 4)) if targets is None else targets
    wanted = [True] * n_targets + [False] * int(rng.integers(2, 5))
    shapes: list[Shape] = []
    for target in wanted:
        s = _place(rng, size, shapes, *_looks(rng, target, pairs, others))
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


def _names(pairs: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """Class names of a class set, e.g. 'red triangle'."""
    return tuple(f"{colour} {shape}" for colour, shape in pairs)


def _write_split(
    tmp: Path, split: str, count: int, task: str, size: int, seed: int, pairs: tuple[tuple[str, str], ...]
) -> None:
    from ultralytics.utils import TQDM

    names = _names(pairs)
    for i in TQDM(range(count), desc=f"cbam-shapes {task} {split}"):
        name = f"{split}_{i:05d}"
        if task == "classify":
            image, shapes = scene(seed, split, i, size, targets=1, classes=pairs)
            label = next(s.label for s in shapes if s.label is not None)
            folder = tmp / split / names[label].replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / f"{name}.png"), image)
            continue
        image, shapes = scene(seed, split, i, size, classes=pairs)
        cv2.imwrite(str(tmp / "images" / split / f"{name}.png"), image)
        rows = [_label_line(s, task, size) for s in shapes if s.label is not None]
        (tmp / "labels" / split / f"{name}.txt").write_text("".join(f"{r}\n" for r in rows))


def data_yaml(root: Path, task: str = "detect", classes: ClassSet = "source") -> dict:
    """The Ultralytics data YAML content for a data set at `root` generated for `task` and the class set `classes`."""
    names = dict(enumerate(_names(class_set(classes))))
    data = {"path": str(root), "train": "images/train", "val": "images/val", "names": names}
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
    classes: ClassSet = "source",
) -> Path:
    """Write the data set to `root` unless it is already there; returns `root`.

    For every task but 'classify', `root/data.yaml` is written too, for use as ``data=root/data.yaml``; a classify
    data set is used as ``data=root``. A folder that holds a data set is returned as it is, so give each class set
    its own; an empty folder is filled, and a file or a folder with other content is refused.

    Args:
        root: Data set folder.
        task: One of 'detect', 'segment', 'pose', 'obb', 'classify' (the label format).
        train: Number of training images.
        val: Number of validation images.
        size: Image width and height in pixels.
        seed: Data set seed, a non-negative integer.
        classes: Class set: 'source' (red triangle, green circle, blue square), 'target' (yellow pentagon, magenta
            star, cyan cross; no colour or shape in common with the source), or (colour, shape) pairs (see
            `class_set`).
    """
    from ultralytics.utils import LOGGER

    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    for name, value in (("train", train), ("val", val), ("size", size)):
        positive_int(name, value)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    pairs = class_set(classes)
    root = Path(root).resolve()
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()  # an empty folder: the data set is renamed into its place below
    if root.is_dir():
        done = ("train", "val") if task == "classify" else ("data.yaml",)
        if all((root / name).exists() for name in done):  # renamed into place whole: complete
            return root
        missing = ", ".join(name for name in done if not (root / name).exists())
        raise FileExistsError(
            f"folder '{root}' holds no cbam-shapes {task} data set (no {missing}); empty it or give another folder"
        )
    if root.exists():
        raise FileExistsError(f"'{root}' is a file, not a data set folder; give another folder")
    tmp = root.with_name(f".{root.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        for split in ("train", "val"):
            if task != "classify":
                (tmp / "images" / split).mkdir(parents=True)
                (tmp / "labels" / split).mkdir(parents=True)
        for split, count in (("train", train), ("val", val)):
            _write_split(tmp, split, count, task, size, seed, pairs)
        if task != "classify":
            text = yaml.safe_dump(data_yaml(root, task, pairs), sort_keys=False, allow_unicode=True)
            (tmp / "data.yaml").write_text(text, encoding="utf-8")
        try:
            tmp.rename(root)
        except OSError:
            if not root.exists():  # otherwise another process finished the same data set first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    LOGGER.info(
        f"cbam-shapes: {train} train and {val} val images ({task}, {', '.join(_names(pairs))}) written to {root}"
    )
    return root
