"""Checkpoints saved by ultralytics-cbam 0.1.0 load with the current code and give the outputs stored beside them."""

from __future__ import annotations

from pathlib import Path

import torch

from ultralytics_cbam import CBAM, ChannelAttention, SpatialAttention

LEGACY = Path(__file__).resolve().parent / "data" / "legacy"


def test_model_checkpoint_from_0_1_0_gives_its_stored_outputs():
    from ultralytics import YOLO

    stored = torch.load(LEGACY / "outputs-0.1.0.pt")
    model = YOLO(str(LEGACY / "yolov8t-cbam-0.1.0.pt")).model.float().eval()
    assert [type(m) for m in model.modules() if isinstance(m, CBAM)] == [CBAM] * 4
    with torch.no_grad():
        out = model(stored["image"])[0]
    torch.testing.assert_close(out, stored["model"], atol=1e-3, rtol=1e-4)


def test_pickled_layers_from_0_1_0_give_their_stored_outputs():
    stored = torch.load(LEGACY / "outputs-0.1.0.pt")
    layers = torch.load(LEGACY / "layers-0.1.0.pt", weights_only=False).eval()
    assert [type(m) for m in layers] == [CBAM, ChannelAttention, SpatialAttention]
    with torch.no_grad():
        out = layers(stored["features"])
    torch.testing.assert_close(out, stored["layers"], atol=1e-5, rtol=1e-4)
    # the stored outputs are CBAM's: the same input through randomly re-initialised layers gives others
    other = torch.nn.Sequential(CBAM(16, 4, 3, bias=True), ChannelAttention(16, 8), SpatialAttention(5)).eval()
    assert not torch.allclose(other(stored["features"]), stored["layers"], atol=1e-3)
