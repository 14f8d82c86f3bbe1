"""Packaged model YAMLs: the article's placement, stock everything else, exact parameter counts at every scale."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import ultralytics
import yaml
from ultralytics import YOLO

from ultralytics_cbam import CBAM
from ultralytics_cbam.cfg.packaged import YAML_DIR

STOCK_DIR = Path(ultralytics.__file__).parent / "cfg" / "models" / "v8"
TASKS = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb", "classify": "-cls"}
SCALES = "nslmx"
# CBAM inputs, as the stock base widths of the rows they follow: C2f of P2, P3, P4, then SPPF (or the P5 C2f for cls)
CBAM_BASE_WIDTHS = [128, 256, 512, 1024]


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def cbam_params(c: int, r: int = 16, k: int = 7) -> int:
    return 2 * c * max(c // r, 1) + 2 * k * k


def scaled(c: int, width: float, max_channels: int) -> int:
    return math.ceil(min(c, max_channels) * width / 8) * 8


def n_params(model) -> int:
    return sum(p.numel() for p in model.model.parameters())


def without_cbam(rows: list) -> list:
    """Drop CBAM rows and renumber 'from' references as if they had never been there."""
    kept = [i for i, row in enumerate(rows) if row[2] != "CBAM"]
    # a reference to a CBAM row means its input, i.e. the previous kept row
    new_index = {}
    for i, row in enumerate(rows):
        new_index[i] = new_index[i - 1] if row[2] == "CBAM" else len([j for j in kept if j < i])
    out = []
    for i in kept:
        f, n, m, args = rows[i]
        refs = [f] if isinstance(f, int) else f
        resolved = [new_index[i + x if x < 0 else x] if not (x == -1 and i == 0) else -1 for x in refs]
        me = new_index[i]
        resolved = [x - me if (r < 0 and x == me - 1) else x for x, r in zip(resolved, refs, strict=True)]
        out.append([resolved[0] if isinstance(f, int) else resolved, n, m, args])
    return out


@pytest.mark.parametrize("task", TASKS)
def test_yaml_is_stock_plus_cbam_at_article_places(task):
    suffix = TASKS[task]
    ours = load(YAML_DIR / f"yolov8{suffix}-cbam.yaml")
    stock = load(STOCK_DIR / f"yolov8{suffix}.yaml")
    rows = ours["backbone"] + ours["head"]
    assert without_cbam(rows) == stock["backbone"] + stock["head"]
    assert {k: v for k, v in ours.items() if k not in {"backbone", "head"}} == {
        k: v for k, v in stock.items() if k not in {"backbone", "head"}
    }
    after = [rows[i - 1][2] for i, row in enumerate(rows) if row[2] == "CBAM"]
    assert after == (["C2f"] * 4 if task == "classify" else ["C2f", "C2f", "C2f", "SPPF"])
    assert all(row[2] == "CBAM" for row in ours["backbone"][-1:])  # the backbone ends in CBAM: P5 / feat3
    if task != "classify":
        cbam_rows = [i for i, row in enumerate(rows) if row[2] == "CBAM"]
        concat_refs = {x for row in ours["head"] if row[2] == "Concat" for x in row[0] if x != -1}
        assert set(cbam_rows[1:]) <= concat_refs  # the neck reads P3, P4 and P5 from the CBAM outputs


@pytest.mark.parametrize("task", TASKS)
def test_every_scale_is_stock_plus_cbam_params(task):
    suffix = TASKS[task]
    scales = load(STOCK_DIR / f"yolov8{suffix}.yaml")["scales"]
    for scale in SCALES:
        _, width, max_channels = scales[scale]
        stock = YOLO(f"yolov8{scale}{suffix}.yaml", task=task)
        ours = YOLO(f"yolov8{scale}{suffix}-cbam.yaml")
        added = sum(cbam_params(scaled(c, width, max_channels)) for c in CBAM_BASE_WIDTHS)
        assert n_params(ours) == n_params(stock) + added, f"yolov8{scale}{suffix}-cbam"
        assert ours.task == task
        assert ours.model.yaml["scale"] == scale
        cbams = [m for m in ours.model.modules() if isinstance(m, CBAM)]
        assert [m.channel.channels for m in cbams] == [scaled(c, width, max_channels) for c in CBAM_BASE_WIDTHS]


def test_yolov8n_cbam_adds_exactly_11272():
    assert cbam_params(32) + cbam_params(64) + cbam_params(128) + cbam_params(256) == 11_272
    assert n_params(YOLO("yolov8n-cbam.yaml")) - n_params(YOLO("yolov8n.yaml")) == 11_272


@pytest.mark.parametrize("task", TASKS)
def test_every_model_runs_forward(task):
    suffix = TASKS[task]
    for scale in "nx" if task == "detect" else "n":
        model = YOLO(f"yolov8{scale}{suffix}-cbam.yaml").model.eval()
        with torch.inference_mode():
            out = model(torch.rand(2, 3, 64, 64))
        first = out
        while isinstance(first, (tuple, list)):
            first = first[0]
        assert first.shape[0] == 2
        assert torch.isfinite(first).all()
