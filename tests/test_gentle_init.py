"""Gentle start: CBAM inserted into a trained model, paper initialisation against gentle_init, measured on coco8."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from ultralytics import YOLO
from ultralytics.nn import tasks

from ultralytics_cbam.modules import CBAM
from ultralytics_cbam.weight_init import gentle_init, paper_init

IMGSZ = 64


@pytest.fixture(scope="module")
def source(coco8, tmp_path_factory) -> Path:
    """A stock yolov8n trained briefly on coco8's training photographs (listed 32 times per epoch, single class)."""
    project = tmp_path_factory.mktemp("source")
    images = sorted((coco8.parent / "images" / "train").glob("*.jpg"))
    (project / "train.txt").write_text("\n".join(map(str, images * 32)) + "\n")
    names = coco8.read_text().split("names:", 1)[1]
    data = project / "data.yaml"
    data.write_text(f"path: {coco8.parent}\ntrain: {project / 'train.txt'}\nval: images/train\nnames:{names}")
    YOLO("yolov8n.yaml").train(
        data=str(data),
        epochs=8,
        imgsz=IMGSZ,
        batch=8,
        workers=0,
        device="cpu",
        project=str(project),
        name="train",
        plots=False,
        val=False,
        seed=0,
        deterministic=True,
        amp=False,
        mosaic=0.0,
        single_cls=True,
        optimizer="AdamW",
        lr0=0.002,
        warmup_epochs=0,
    )
    return project / "train" / "weights" / "last.pt"


def transplant(source: Path, gentle: bool, images: list[Path]) -> YOLO:
    """yolov8n-cbam with every tensor of `source`; its CBAM layers with the paper's or the gentle initialisation."""
    torch.manual_seed(0)
    model = YOLO("yolov8n-cbam.yaml")
    model.model = tasks.DetectionModel("yolov8n-cbam.yaml", nc=YOLO(source).model.nc, verbose=False)
    model.load(source)
    if gentle:
        gentle_init(model, images=images, imgsz=IMGSZ)
    return model


def raw_predictions(model: YOLO, images: list[Path]) -> torch.Tensor:
    """Decoded head output (boxes in pixels, class scores) for the letterboxed images, in eval mode."""
    import cv2
    import numpy as np
    from ultralytics.data.augment import LetterBox

    letterbox = LetterBox((IMGSZ, IMGSZ), auto=False)
    batch = np.stack([letterbox(image=cv2.imread(str(p)))[:, :, ::-1].transpose(2, 0, 1) for p in images])
    x = torch.from_numpy(np.ascontiguousarray(batch)).float() / 255
    with torch.no_grad():
        y = model.model.eval()(x)
    return y[0] if isinstance(y, (list, tuple)) else y


def map50(model: YOLO, data: Path, project: Path) -> float:
    kwargs = {"batch": 4, "workers": 0, "device": "cpu", "plots": False, "verbose": False, "single_cls": True}
    return float(model.val(data=str(data), imgsz=IMGSZ, project=str(project), **kwargs).box.map50)


# --- the module itself -----------------------------------------------------------------------------------------


def test_gentle_init_keeps_the_module_and_starts_near_identity():
    torch.manual_seed(0)
    cbam = CBAM(64)
    shapes = {k: v.shape for k, v in cbam.state_dict().items()}
    x = torch.randn(4, 64, 20, 20).relu()
    gentle_init(cbam, gate=0.99, images=x)
    assert {k: v.shape for k, v in cbam.state_dict().items()} == shapes
    # The module's forward is unchanged: re-state CBAM's formula with the module's own weights.
    w1, w2, ws = cbam.channel.fc1.weight[:, :, 0, 0], cbam.channel.fc2.weight[:, :, 0, 0], cbam.spatial.conv.weight
    mlp = lambda v: torch.relu(v @ w1.T) @ w2.T  # noqa: E731
    channel = torch.sigmoid(mlp(x.mean((2, 3))) + mlp(x.amax((2, 3))))[:, :, None, None]
    y = x * channel
    maps = torch.cat((y.mean(1, keepdim=True), y.amax(1, keepdim=True)), 1)
    spatial = torch.sigmoid(torch.nn.functional.conv2d(maps, ws, padding=ws.shape[-1] // 2))
    torch.testing.assert_close(cbam(x), y * spatial)
    # Calibrated on x: the channel gate reaches 0.99 on every map, the spatial gate on 95% of positions.
    assert channel.min() >= 0.99 - 1e-3
    assert torch.quantile(spatial.flatten(), 0.05) >= 0.99 - 1e-3


def test_gates_never_fall_below_one_half():
    """Both logits are a positive weight times a descriptor that cannot be negative (up to the 1% noise)."""
    torch.manual_seed(1)
    cbam = gentle_init(CBAM(32, reduction=4), images=torch.randn(2, 32, 16, 16).relu())
    for x in (torch.randn(3, 32, 16, 16), -torch.rand(3, 32, 16, 16), torch.zeros(1, 32, 8, 8)):
        channel = cbam.channel.gate(x)
        assert channel.min() > 0.5 - 1e-2
        assert cbam.spatial.gate(x * channel).min() > 0.5 - 1e-2


def test_channel_mlp_with_bias_gets_a_constant_gate():
    cbam = gentle_init(CBAM(32, bias=True), gate=0.95, images=torch.rand(2, 32, 8, 8))
    for x in (torch.randn(3, 32, 8, 8) * 10, torch.zeros(1, 32, 4, 4)):
        assert (cbam.channel.gate(x) - 0.95).abs().max() < 0.03


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match=r"gate must be a number between 0\.5 and 1"):
        gentle_init(CBAM(16), gate=1.0)
    with pytest.raises(ValueError, match=r"contains no CBAM"):
        gentle_init(torch.nn.Conv2d(3, 3, 1))
    with pytest.raises(FileNotFoundError, match=r"nowhere\.jpg"):
        gentle_init(YOLO("yolov8n-cbam.yaml"), images="nowhere.jpg")
    with pytest.raises(ValueError, match=r"imgsz must be a positive integer, got 0"):
        gentle_init(YOLO("yolov8n-cbam.yaml"), imgsz=0)
    for init in (gentle_init, paper_init):  # both change a model in place: a path names none to change
        with pytest.raises(TypeError, match=r"model must be a YOLO object or a torch module .*'yolov8n-cbam\.pt'"):
            init("yolov8n-cbam.pt")
    with pytest.raises(ValueError, match=r"DetectionModel contains no CBAM"):
        paper_init(YOLO("yolov8n.yaml").model)


def test_default_is_the_paper_initialisation():
    """Built from the YAML, a CBAM layer holds PyTorch's default weights; paper_init restores them after gentle."""
    model = YOLO("yolov8n-cbam.yaml").model
    cbam = model.model[3]
    for conv in (cbam.channel.fc1, cbam.channel.fc2, cbam.spatial.conv):
        fan_in = conv.weight[0].numel()  # kaiming_uniform(a=sqrt(5)) bound: 1 / sqrt(fan_in)
        assert conv.weight.abs().max() <= 1 / math.sqrt(fan_in)
        assert conv.weight.std() > 0.4 / math.sqrt(fan_in)  # spread over the range, not a fixed pattern
    gentle_init(model, imgsz=64)
    assert cbam.spatial.conv.weight.abs().max() > 1  # the gentle centre tap
    paper_init(model)
    assert cbam.spatial.conv.weight.abs().max() <= 1 / math.sqrt(cbam.spatial.conv.weight[0].numel())


# --- measured on coco8 -----------------------------------------------------------------------------------------


def test_transplant_on_coco8_gentle_keeps_the_source_outputs(source, coco8, tmp_path):
    """Before any fine-tuning: how far each transplant's predictions are from the trained source model's."""
    images = sorted((coco8.parent / "images" / "train").glob("*.jpg"))  # the photographs the source learned
    models = {
        "source": YOLO(source),
        "paper": transplant(source, False, images),
        "gentle": transplant(source, True, images),
    }
    y = {name: raw_predictions(m, images) for name, m in models.items()}
    score_gap = {n: (y[n][:, 4:] - y["source"][:, 4:]).abs().max().item() for n in ("paper", "gentle")}
    box_gap = {n: (y[n][:, :4] - y["source"][:, :4]).abs().mean().item() for n in ("paper", "gentle")}
    print(f"\nmax |class score - source|: {score_gap}; mean |box - source| (px at {IMGSZ}): {box_gap}")
    scores = y["source"][:, 4:]
    assert scores.max() > 3 * scores.median()  # the source's scores depend on what it sees
    assert score_gap["gentle"] < score_gap["paper"] / 10
    assert box_gap["gentle"] < box_gap["paper"] / 10

    # mAP50 before fine-tuning: with this little training all three may still be near 0 (see the benchmark).
    labels = {name: map50(m, coco8, tmp_path / "val") for name, m in models.items()}
    print(f"mAP50 on coco8 val: {labels}")
    assert abs(labels["gentle"] - labels["source"]) <= abs(labels["paper"] - labels["source"]) + 1e-3
