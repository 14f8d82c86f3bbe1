"""Exported CBAM models (ONNX static and dynamic, TorchScript) and single-attention models (ONNX) compute what the
PyTorch model computes."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from helpers import load_yaml
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel

from ultralytics_cbam import CBAM
from ultralytics_cbam.cfg.packaged import packaged_yaml

IMGSZ = 64
# Max abs difference allowed between an exported model's output and PyTorch's, over box coordinates (pixels) and
# class scores. float32 kernels differ only in summation order, which stays orders of magnitude below this.
EXPORT_TOLERANCE = 1e-3


def batch(paths: list[Path], size: int, n: int = 1) -> torch.Tensor:
    """`n` real photographs resized to size x size, as an RGB float batch in [0, 1]."""
    images = [cv2.resize(cv2.imread(str(p)), (size, size))[..., ::-1] for p in paths[:n]]
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))).float() / 255


def pytorch_output(weights: Path, x: torch.Tensor) -> np.ndarray:
    """Output of the fused PyTorch model, as the exporter fuses it."""
    model = YOLO(weights).model.fuse().eval()
    with torch.no_grad():
        return model(x)[0].numpy()


def onnx_output(path: Path, x: torch.Tensor) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]


def input_dims(path: Path) -> list:
    """The ONNX model's input dimensions: ints for static ones, names for dynamic ones."""
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims]


@pytest.fixture
def weights(trained_cbam, tmp_path) -> Path:
    """A private copy of the trained checkpoint, so each export writes beside its own copy."""
    return Path(shutil.copy(trained_cbam, tmp_path / "best.pt"))


def assert_close(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= EXPORT_TOLERANCE


def test_onnx_static_matches_pytorch(weights, coco8_images):
    path = Path(YOLO(weights).export(format="onnx", imgsz=IMGSZ, dynamic=False))
    assert input_dims(path) == [1, 3, IMGSZ, IMGSZ]
    x = batch(coco8_images, IMGSZ)
    assert_close(onnx_output(path, x), pytorch_output(weights, x))


def test_onnx_dynamic_runs_at_several_sizes(weights, coco8_images):
    path = Path(YOLO(weights).export(format="onnx", imgsz=IMGSZ, dynamic=True))
    assert all(isinstance(d, str) for d in input_dims(path)[:1] + input_dims(path)[2:])
    for n, size in ((1, 64), (1, 96), (2, 128), (1, 160)):
        x = batch(coco8_images, size, n)
        expected = pytorch_output(weights, x)
        anchors = sum((size // s) ** 2 for s in (8, 16, 32))
        assert expected.shape[0] == n and expected.shape[2] == anchors
        assert_close(onnx_output(path, x), expected)


def test_torchscript_matches_pytorch(weights, coco8_images):
    path = Path(YOLO(weights).export(format="torchscript", imgsz=IMGSZ))
    x = batch(coco8_images, IMGSZ)
    with torch.no_grad():
        got = torch.jit.load(str(path), map_location="cpu")(x)
    got = (got[0] if isinstance(got, (list, tuple)) else got).numpy()
    assert_close(got, pytorch_output(weights, x))


def standard_ops(path: Path) -> list[str]:
    """The ONNX model's operator types, after checking that all are standard ONNX operators."""
    nodes = onnx.load(str(path)).graph.node
    assert {n.domain for n in nodes} <= {""}, "only standard ONNX operators"
    return [n.op_type for n in nodes]


@pytest.mark.parametrize("layer", ["ChannelAttention", "SpatialAttention"])
def test_single_attention_models_export_and_match(layer, tmp_path, coco8_images):
    """Models with ChannelAttention or SpatialAttention rows in CBAM's places export through `format=onnx` in standard
    operators and compute what PyTorch computes."""
    d = load_yaml(packaged_yaml("yolov8-cbam.yaml"))
    d["backbone"] = [[f, n, layer if m == "CBAM" else m, a] for f, n, m, a in d["backbone"]]
    model = DetectionModel({**d, "scale": "n"}, verbose=False)
    layers = [m for m in model.modules() if type(m).__name__ == layer]
    assert len(layers) == 4
    torch.manual_seed(0)
    with torch.no_grad():
        for p in (p for m in layers for p in m.parameters()):
            p.normal_(0, 0.5)  # gates far from 0.5, so that a wrong formula shows
    torch.save({"model": model}, tmp_path / "model.pt")
    path = Path(YOLO(tmp_path / "model.pt").export(format="onnx", imgsz=IMGSZ))
    standard_ops(path)
    x = batch(coco8_images, IMGSZ)
    assert_close(onnx_output(path, x), pytorch_output(tmp_path / "model.pt", x))


def test_torch_export_based_onnx_matches_pytorch(weights, tmp_path, coco8_images):
    """torch.onnx.export's default exporter from torch 2.9 on (torch.export-based, behind Ultralytics 8.1 and 8.2's
    `format=onnx`) records a trained CBAM model in standard operators that compute what PyTorch computes."""
    model = YOLO(weights).model.fuse().eval()
    x = batch(coco8_images, IMGSZ)
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), input_names=["images"], opset_version=18, dynamo=True)
    ops = standard_ops(path)
    assert ops.count("Sigmoid") >= 2 * sum(isinstance(m, CBAM) for m in model.modules())
    assert_close(onnx_output(path, x), pytorch_output(weights, x))
