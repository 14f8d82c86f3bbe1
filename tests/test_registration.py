"""YAML rows that name the CBAM layers: arguments, inferred channels, readable summary and clear errors."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from ultralytics.nn.tasks import ClassificationModel, DetectionModel
from ultralytics.utils import LOGGER

from ultralytics_cbam import CBAM, ChannelAttention, ModelYAMLError, SpatialAttention


def tiny(rows: list, width: float = 1.0) -> dict:
    """A small classifier: Conv(16) -> rows -> Classify."""
    return {
        "nc": 5,
        "depth_multiple": 1.0,
        "width_multiple": width,
        "backbone": [[-1, 1, "Conv", [16, 3, 2]], *rows],
        "head": [[-1, 1, "Classify", [5]]],
    }


def build(rows: list, width: float = 1.0, verbose: bool = False) -> ClassificationModel:
    return ClassificationModel(cfg=tiny(rows, width), ch=3, nc=5, verbose=verbose)


@pytest.mark.parametrize("width", [0.25, 0.5, 1.0, 1.5, 0.8])
def test_channels_are_inferred_at_any_width(width):
    model = build([[-1, 1, "CBAM", []], [-1, 1, "Conv", [32, 3, 2]], [-1, 1, "ChannelAttention", [8]]], width)
    c1 = math.ceil(16 * width / 8) * 8
    c2 = math.ceil(32 * width / 8) * 8
    cbam, ca = model.model[1], model.model[3]
    assert isinstance(cbam, CBAM)
    assert cbam.channel.channels == c1
    assert isinstance(ca, ChannelAttention)
    assert ca.channels == c2
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 5)


def test_row_arguments_reach_the_layers():
    model = build(
        [
            [-1, 1, "CBAM", [8, 3]],
            [-1, 1, "ChannelAttention", [4]],
            [-1, 1, "SpatialAttention", [5]],
            [-1, 1, "CBAM", [2, 1, True]],
        ]
    )
    cbam, ca, sa, biased = model.model[1:5]
    assert (cbam.channel.reduction, cbam.spatial.kernel_size) == (8, 3)
    assert cbam.channel.fc1.out_channels == 16 // 8
    assert ca.reduction == 4
    assert isinstance(sa, SpatialAttention)
    assert sa.kernel_size == 5
    assert biased.channel.fc1.bias is not None
    assert biased.spatial.kernel_size == 1
    assert model.model[1].type == "ultralytics_cbam.modules.CBAM"


def test_summary_shows_channels_and_defaults():
    lines = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    LOGGER.addHandler(handler)
    try:
        build([[-1, 1, "CBAM", []], [-1, 1, "ChannelAttention", [4]], [-1, 1, "SpatialAttention", []]], verbose=True)
    finally:
        LOGGER.removeHandler(handler)
    text = "\n".join(lines)
    assert "ultralytics_cbam.modules.CBAM" in text
    assert "[16, 16, 7]" in text  # channels, reduction, kernel_size
    assert "[16, 4]" in text
    assert "[7]" in text


def test_layers_built_directly_are_plain():
    """Outside a YAML build the registered names are the plain classes with explicit channels."""
    from ultralytics.nn import tasks

    layer = tasks.CBAM(24, 8, 3)
    assert type(layer) is CBAM
    assert layer.channel.channels == 24


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ([-1, 1, "CBM", []], r"layer 1 .*unknown module 'CBM'. Did you mean 'CBAM'"),
        ([-1, 1, "SpatialAtention", [7]], r"unknown module 'SpatialAtention'. Did you mean 'SpatialAttention'"),
        (
            [-1, 1, "CBAM", [0]],
            r"layer 1 \(backbone row 1: \[-1, 1, 'CBAM', \[0\]\]\): reduction must be a positive integer, got 0",
        ),
        ([-1, 1, "CBAM", [16, 4]], r"kernel_size must be a positive odd integer, got 4"),
        ([-1, 1, "CBAM", ["x"]], r"reduction must be a positive integer, got 'x'"),
        ([-1, 1, "CBAM", [16, 7, False, 1]], r"CBAM takes at most 3 args \[reduction, kernel_size, bias\]; the input"),
        (  # channels first, as other CBAM rows take them: the hint says what the args are
            [-1, 1, "CBAM", [128, 16, 7]],
            r"bias must be a bool, got 7 \(CBAM args: \[reduction, kernel_size, bias\]; the input channels are infer",
        ),
        ([[-1, 0], 1, "CBAM", []], r"takes one input feature map, but 'from' is \[-1, 0\]"),
        ([5, 1, "CBAM", []], r"'from' index 5 does not name an earlier layer"),
        ([-1, 0, "CBAM", []], r"repeats must be a positive integer"),
        ([-1, 1, "CBAM"], r"a row must be \[from, repeats, module, args\]"),
    ],
)
def test_bad_rows_name_the_row(row, pattern):
    with pytest.raises(ModelYAMLError, match=pattern):
        build([row])


def test_cbam_after_a_head_is_refused():
    cfg = {
        "nc": 2,
        "backbone": [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [16, 3, 2]]],
        "head": [[[0, 1, 2], 1, "Detect", ["nc"]], [-1, 1, "CBAM", []]],
    }
    with pytest.raises(ModelYAMLError, match=r"layer 4 .*output of Detect, not a feature map"):
        DetectionModel(cfg=cfg, ch=3, nc=2, verbose=False)


def test_missing_sections_are_named(tmp_path):
    cfg = tiny([])
    del cfg["backbone"]
    with pytest.raises(ModelYAMLError, match="no 'backbone' list"):
        ClassificationModel(cfg=cfg, ch=3, nc=5, verbose=False)


def test_error_names_the_yaml_file(tmp_path):
    path = tmp_path / "my-model.yaml"
    rows = ["[-1, 1, Conv, [16, 3, 2]]", "[-1, 1, CBAMM, []]"]
    path.write_text(f"nc: 5\nbackbone:\n  - {rows[0]}\n  - {rows[1]}\nhead:\n  - [-1, 1, Classify, [5]]\n")
    with pytest.raises(ModelYAMLError, match=r"my-model.yaml', layer 1 \(backbone row 1"):
        ClassificationModel(cfg=str(path), ch=3, nc=5, verbose=False)


def test_version_comes_from_the_package_metadata():
    import importlib.metadata
    import re
    from pathlib import Path

    import ultralytics_cbam

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    declared = re.search(r'^version = "([^"]+)"', pyproject, flags=re.MULTILINE)[1]
    assert ultralytics_cbam.__version__ == importlib.metadata.version("ultralytics-cbam") == declared
