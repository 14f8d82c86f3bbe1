"""The cbam-shapes data set: deterministic, labelled by shape AND colour, generated offline on first use by name."""

from __future__ import annotations

import hashlib
import inspect
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import yolo_cli

from ultralytics_cbam import cbam_shapes as shapes

# The data set's definition, restated: a target is one shape in one colour; BGR channel that dominates each colour.
TARGETS = {("red", "triangle"): 0, ("green", "circle"): 1, ("blue", "square"): 2}
DOMINANT_CHANNEL = {"red": 2, "green": 1, "blue": 0}
SMALL = {"train": 6, "val": 3, "size": 96}


def digest(root: Path) -> dict[str, str]:
    """SHA-256 of every file under `root`, by relative path (data.yaml excluded: it records the absolute root)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "data.yaml"
    }


def test_generation_is_deterministic(tmp_path):
    first = digest(shapes.generate(tmp_path / "a", **SMALL))
    assert first == digest(shapes.generate(tmp_path / "b", **SMALL))
    assert len(first) == 2 * (SMALL["train"] + SMALL["val"])  # an image and a label file each
    other_seed = digest(shapes.generate(tmp_path / "c", **SMALL, seed=1))
    assert other_seed.keys() == first.keys() and other_seed != first


def test_targets_are_defined_by_shape_and_colour():
    looks = [(s.colour, s.shape, s.label) for i in range(40) for s in shapes.scene(0, "train", i)[1]]
    for colour, shape, label in looks:
        assert label == TARGETS.get((colour, shape))
    distractors = {(c, s) for c, s, label in looks if label is None}
    target_colours = {c for c, _ in TARGETS}
    target_shapes = {s for _, s in TARGETS}
    # every distractor shares exactly one attribute with the targets' look: colour alone or shape alone never decides
    assert distractors and all(c in target_colours and s in target_shapes for c, s in distractors)
    assert {c for c, _ in distractors} == target_colours and {s for _, s in distractors} == target_shapes
    assert sum(label is not None for *_, label in looks) > 20


def test_labels_sit_on_pixels_of_their_class_colour(tmp_path):
    root = shapes.generate(tmp_path / "det", train=20, val=2, size=128)
    colour_of = {label: colour for (colour, _), label in TARGETS.items()}
    checked = 0
    for label_file in sorted((root / "labels" / "train").glob("*.txt")):
        image = cv2.imread(str(root / "images" / "train" / f"{label_file.stem}.png")).astype(int)
        for row in np.loadtxt(label_file, ndmin=2):
            cls, x, y, w, h = row
            assert 0 < x - w / 2 < x + w / 2 < 1 and 0 < y - h / 2 < y + h / 2 < 1
            pixel = image[int(y * 128), int(x * 128)]  # a box centre lies inside its (convex, centred) shape
            channel = DOMINANT_CHANNEL[colour_of[int(cls)]]
            assert all(pixel[channel] > pixel[c] + 60 for c in range(3) if c != channel), (label_file.name, pixel)
            checked += 1
    assert checked > 15


@pytest.mark.parametrize(("task", "values_per_row"), [("segment", None), ("pose", 1 + 4 + 4 * 3), ("obb", 1 + 8)])
def test_label_formats(task, values_per_row, tmp_path):
    root = shapes.generate(tmp_path / task, task=task, **SMALL)
    files = (root / "labels" / "train").glob("*.txt")
    rows = [np.array(line.split(), float) for f in files for line in f.read_text().splitlines()]
    assert rows
    corners = {"triangle": 3, "square": 4}
    for row in rows:
        if values_per_row is None:  # a polygon: class, then an x, y pair per outline point
            shape = next(s for (_, s), label in TARGETS.items() if label == row[0])
            assert len(row) == 1 + 2 * corners[shape] if shape in corners else len(row) > 1 + 2 * 8
        else:
            assert len(row) == values_per_row
        assert row[0] in TARGETS.values() and np.all((row[1:] >= 0) & (row[1:] <= 2))
    if task == "pose":
        assert all(np.all(r[7::3] == 2) for r in rows)  # every keypoint visible


def test_classify_layout(tmp_path):
    root = shapes.generate(tmp_path / "cls", task="classify", **SMALL)
    for split, count in (("train", SMALL["train"]), ("val", SMALL["val"])):
        files = list((root / split).glob("*/*.png"))
        assert len(files) == count
        assert {f.parent.name for f in files} <= {n.replace(" ", "_") for n in shapes.NAMES}


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    real_imwrite, calls = cv2.imwrite, []

    def failing_imwrite(*args):
        calls.append(args[0])
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real_imwrite(*args)

    monkeypatch.setattr(cv2, "imwrite", failing_imwrite)
    with pytest.raises(KeyboardInterrupt):
        shapes.generate(tmp_path / "ds", **SMALL)
    assert list(tmp_path.iterdir()) == []  # neither the data set nor its partial folder
    monkeypatch.setattr(cv2, "imwrite", real_imwrite)
    assert len(digest(shapes.generate(tmp_path / "ds", **SMALL))) == 2 * (SMALL["train"] + SMALL["val"])


@pytest.mark.parametrize(
    ("kwargs", "named"), [({"task": "depth"}, "task"), ({"train": 0}, "train"), ({"size": 1.5}, "size")]
)
def test_bad_arguments_are_named(kwargs, named, tmp_path):
    with pytest.raises(ValueError, match=named):
        shapes.generate(tmp_path / "ds", **kwargs)
    assert not (tmp_path / "ds").exists()


def test_packaged_yaml_generates_offline_on_first_use(tmp_path, monkeypatch):
    from ultralytics.data import utils

    monkeypatch.setattr(utils, "DATASETS_DIR", tmp_path)
    data = utils.check_det_dataset("cbam-shapes.yaml")  # by bare name, like the model YAMLs
    root = tmp_path / "cbam-shapes"
    assert Path(data["path"]) == root
    assert data["names"] == dict(enumerate(shapes.NAMES)) and data["nc"] == 3
    defaults = inspect.signature(shapes.generate).parameters
    assert len(list((root / "images" / "train").glob("*.png"))) == defaults["train"].default
    assert len(list((root / "images" / "val").glob("*.png"))) == defaults["val"].default
    stamp = (root / "images" / "val" / "val_00000.png").stat().st_mtime_ns
    utils.check_det_dataset("cbam-shapes.yaml")
    assert (root / "images" / "val" / "val_00000.png").stat().st_mtime_ns == stamp  # generated once, then reused
    image, _ = shapes.scene(0, "val", 0, inspect.signature(shapes.generate).parameters["size"].default)
    assert np.array_equal(cv2.imread(str(root / "images" / "val" / "val_00000.png")), image)


def test_quick_start_command_runs_with_data_by_name(tmp_path):
    # The README's main command, shortened: a fraction of one epoch at a small size.
    args = ["model=yolov8n-cbam.yaml", "data=cbam-shapes.yaml", "epochs=1", "imgsz=64", "fraction=0.1"]
    done = yolo_cli(["train", *args, "workers=0", "plots=False", f"project={tmp_path}", "name=quick"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "quick" / "weights" / "best.pt").is_file()
    log = done.stdout + done.stderr  # 10 % of the 320 training images ('32 images' in older releases' scan)
    assert re.search(r"\b32 train\b", log) or re.search(r"Scanning .*\b32 images", log), log[-3000:]
