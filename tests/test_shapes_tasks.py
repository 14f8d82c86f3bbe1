"""cbam-shapes class sets: the default (source) data set unchanged, a target task with other classes, by data name."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import yolo_cli

from ultralytics_cbam import cbam_shapes as shapes

RECORDED = Path(__file__).parent / "data" / "cbam_shapes_default.sha256"
SMALL = {"train": 6, "val": 3, "size": 96}
TARGET = shapes.class_set("target")


def digests(root: Path, prefix: str = "") -> dict[str, str]:
    """SHA-256 of every file under `root` by `prefix` + relative path; data.yaml with its absolute root as 'ROOT'."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            if p.name == "data.yaml":
                data = data.replace(str(root).encode(), b"ROOT")
            out[f"{prefix}{p.relative_to(root).as_posix()}"] = hashlib.sha256(data).hexdigest()
    return out


def test_default_data_set_matches_recorded_digests(tmp_path):
    # The digests were written by the generator before class sets existed (see the file's header): the default
    # data set, every task's files, must stay byte-identical. PNG encoding and the random streams belong to OpenCV
    # and NumPy, so the bytes are only comparable on the versions that recorded them.
    text = RECORDED.read_text(encoding="utf-8")
    versions = dict(re.findall(r"(\w+)=(\S+)", re.search(r"^# versions: (.*)$", text, re.M).group(1)))
    running = {"numpy": np.__version__, "opencv": cv2.__version__}
    if running != versions:
        pytest.skip(f"digests recorded with {versions}, running {running}")
    expected = dict(reversed(line.split("  ", 1)) for line in text.splitlines() if line and not line.startswith("#"))
    actual = {}
    for task in shapes.TASKS:
        actual |= digests(shapes.generate(tmp_path / task, task=task, train=8, val=4), f"{task}/")
    assert actual == expected


def test_target_classes_are_other_colours_and_shapes():
    source = shapes.class_set()
    assert source == shapes.CLASSES == shapes.class_set("source")
    assert len(set(TARGET)) == len(TARGET) == 3 and not set(TARGET) & set(source)
    # each class its own colour and shape, none of them a source colour or shape: only low-level features carry over
    for i in (0, 1):
        assert len({pair[i] for pair in TARGET}) == 3 and not {p[i] for p in TARGET} & {p[i] for p in source}
    assert shapes.data_yaml(Path("x"), classes="target")["names"] == {
        i: f"{colour} {shape}" for i, (colour, shape) in enumerate(TARGET)
    }


def test_target_distractors_share_exactly_one_attribute():
    looks = [(s.colour, s.shape, s.label) for i in range(40) for s in shapes.scene(0, "train", i, classes="target")[1]]
    for colour, shape, label in looks:
        assert label == (TARGET.index((colour, shape)) if (colour, shape) in TARGET else None)
    distractors = {(c, s) for c, s, label in looks if label is None}
    for colour, shape in distractors:  # the colour of one class and the shape of another
        shared = [(colour == c) + (shape == s) for c, s in TARGET]
        assert max(shared) == 1 and shared.count(1) == 2, (colour, shape)
    assert len(distractors) == 6  # all the pairs of class colours and class shapes that are not classes
    assert sum(label is not None for *_, label in looks) > 20


@pytest.mark.parametrize("task", ["detect", "segment"])
def test_written_labels_are_the_drawn_targets(task, tmp_path):
    root = shapes.generate(tmp_path / task, task=task, classes="target", **SMALL)
    size, checked = SMALL["size"], 0
    for split in ("train", "val"):
        for i in range(SMALL[split]):
            image, drawn = shapes.scene(0, split, i, size, classes="target")
            name = f"{split}_{i:05d}"
            assert np.array_equal(cv2.imread(str(root / "images" / split / f"{name}.png")), image)
            rows = [
                np.array(r.split(), float) for r in (root / "labels" / split / f"{name}.txt").read_text().split("\n")
            ]
            rows = [r for r in rows if r.size]
            targets = [s for s in drawn if s.label is not None]
            for row, s in zip(rows, targets, strict=True):
                x1, y1, x2, y2 = s.box()
                want = [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1] if task == "detect" else s.polygon().ravel()
                assert row[0] == s.label and np.allclose(row[1:], np.array(want) / size, atol=1e-6)
                # the box centre lies inside the shape (all but the star are convex; the star's core is wide enough)
                pixel = image[int((y1 + y2) / 2), int((x1 + x2) / 2)].astype(float)
                colour = np.array(shapes.COLOURS[TARGET[s.label][0]], float)
                assert np.all(pixel >= 0.85 * colour - 2) and np.all(pixel <= np.minimum(1.1 * colour, 255) + 2)
                checked += 1
    assert checked > 5


def test_same_classes_same_bytes(tmp_path):
    target = digests(shapes.generate(tmp_path / "a", classes="target", **SMALL))
    spelled = [list(pair) for pair in TARGET]  # pairs as a YAML list gives them
    assert digests(shapes.generate(tmp_path / "b", classes=spelled, **SMALL)) == target
    assert digests(shapes.generate(tmp_path / "c", classes="target", seed=1, **SMALL)) != target
    source = digests(shapes.generate(tmp_path / "d", **SMALL))
    assert digests(shapes.generate(tmp_path / "e", classes=list(shapes.CLASSES), **SMALL)) == source
    # the target task draws its own scenes: no image is a recoloured source image
    images = [k for k in source if k.endswith(".png")]
    assert images and all(source[k] != target[k] for k in images)


def test_classify_folders_are_target_names(tmp_path):
    root = shapes.generate(tmp_path / "cls", task="classify", classes="target", **SMALL)
    folders = {p.parent.name for p in root.glob("*/*/*.png")}
    assert folders and folders <= {f"{c}_{s}" for c, s in TARGET}


@pytest.mark.parametrize(
    "classes",
    [
        "purple",  # not a set name
        [("red", "hexagon")],  # not a shape
        [("red", "triangle")],  # one class: no pair left for a distractor
        [("red", "triangle"), ("red", "triangle"), ("green", "circle")],  # a class twice
        ["red triangle", "green circle"],  # names, not pairs
    ],
)
def test_bad_classes_are_named(classes, tmp_path):
    with pytest.raises(ValueError, match="classes"):
        shapes.generate(tmp_path / "ds", classes=classes)
    assert not (tmp_path / "ds").exists()


def test_target_data_name_trains_with_the_stock_trainer(tmp_path):
    # The target task by its packaged data name: generated on first use, one short epoch of yolov8n from scratch.
    args = ["model=yolov8n.yaml", "data=cbam-shapes-target.yaml", "epochs=1", "imgsz=64", "fraction=0.1"]
    done = yolo_cli(["train", *args, "workers=0", "plots=False", f"project={tmp_path}", "name=target"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "target" / "weights" / "best.pt").is_file()
    log = done.stdout + done.stderr
    assert all(f"{c} {s}" in log for c, s in TARGET), log[-3000:]  # the validation table names the target classes
