"""Training CBAM models with the stock CLI and Python API, for every task: CBAM weights learn, checkpoints are saved."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from helpers import read_csv, yolo_cli
from ultralytics import YOLO

from ultralytics_cbam.cbam_shapes import generate
from ultralytics_cbam.cfg.packaged import packaged_yaml
from ultralytics_cbam.modules import CBAM

TRAIN = {"epochs": 1, "imgsz": 64, "batch": 4, "workers": 0, "device": "cpu", "plots": False, "amp": False}
# No warm-up and a fixed learning rate, so a few steps move every weight by more than fp16 rounding in the checkpoint;
# nominal batch = batch, so every batch ends in an optimizer step (older Ultralytics releases accumulate nbs / batch
# batches per step even when an epoch has fewer).
LEARN = {"warmup_epochs": 0, "optimizer": "AdamW", "lr0": 0.002, "nbs": TRAIN["batch"]}
TASK_YAMLS = {
    "segment": "yolov8n-seg-cbam.yaml",
    "pose": "yolov8n-pose-cbam.yaml",
    "obb": "yolov8n-obb-cbam.yaml",
    "classify": "yolov8n-cls-cbam.yaml",
}


def cbam_rows(yaml_name: str) -> int:
    """Number of CBAM rows in a packaged model YAML, read from the file itself."""
    d = yaml.safe_load(packaged_yaml(re.sub(r"^yolov8[nslmx]", "yolov8", yaml_name)).read_text())
    return sum(row[2] == "CBAM" for row in d["backbone"] + d["head"])


def cbam_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """Every parameter of every CBAM layer in `model`, by name."""
    return {
        f"{name}.{pname}": p
        for name, m in model.named_modules()
        if isinstance(m, CBAM)
        for pname, p in m.named_parameters()
    }


def watch_cbam(model: YOLO) -> dict:
    """Record CBAM weights at the start and end of training and the largest gradient each one receives."""
    seen: dict = {"grad": {}}

    def on_train_start(trainer) -> None:
        params = cbam_parameters(trainer.model)
        seen["start"] = {k: p.detach().clone() for k, p in params.items()}
        seen["requires_grad"] = {k: p.requires_grad for k, p in params.items()}
        for k, p in params.items():
            seen["grad"][k] = 0.0
            p.register_hook(lambda g, k=k: seen["grad"].__setitem__(k, max(seen["grad"][k], g.abs().max().item())))

    def on_train_end(trainer) -> None:
        seen["end"] = {k: p.detach().clone() for k, p in cbam_parameters(trainer.model).items()}

    model.add_callback("on_train_start", on_train_start)
    model.add_callback("on_train_end", on_train_end)
    return seen


def read_losses(run: Path) -> list[float]:
    """All training loss values that results.csv records."""
    rows = read_csv(run / "results.csv")
    assert rows, "results.csv has no epoch"
    return [float(v) for row in rows for k, v in row.items() if k.startswith("train/")]


def checkpoint_cbam(path: Path) -> dict[str, torch.Tensor]:
    """CBAM weights stored in a checkpoint (fp16, as Ultralytics saves them)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model = ckpt["ema"] if ckpt.get("ema") is not None else ckpt["model"]
    return {k: p.detach() for k, p in cbam_parameters(model).items()}


def assert_cbam_learned(seen: dict, run: Path, yaml_name: str) -> None:
    """Every CBAM weight trains: not frozen, gets a gradient (so it is in the forward pass) and moves."""
    expected_layers = cbam_rows(yaml_name)
    assert len(seen["start"]) == 3 * expected_layers  # fc1.weight, fc2.weight and spatial conv.weight per layer
    assert all(seen["requires_grad"].values()), "a CBAM weight is frozen"
    no_grad = [k for k, g in seen["grad"].items() if not g > 0]
    assert not no_grad, f"CBAM weights without gradient (bypassed): {no_grad}"
    unchanged = [k for k in seen["start"] if torch.equal(seen["start"][k], seen["end"][k])]
    assert not unchanged, f"CBAM weights unchanged by training: {unchanged}"
    for name in ("best.pt", "last.pt"):
        stored = checkpoint_cbam(run / "weights" / name)
        assert stored.keys() == seen["start"].keys()
        same = [k for k, w in stored.items() if torch.equal(w.half(), seen["start"][k].half())]
        assert not same, f"{name} holds the initial CBAM weights for {same}"
    assert all(math.isfinite(v) for v in read_losses(run))


def test_python_api_trains_every_cbam_layer(coco8, tmp_path):
    model = YOLO("yolov8n-cbam.yaml")
    seen = watch_cbam(model)
    model.train(data=str(coco8), **TRAIN, **LEARN, project=str(tmp_path), name="py")
    assert_cbam_learned(seen, tmp_path / "py", "yolov8n-cbam.yaml")
    assert YOLO(tmp_path / "py" / "weights" / "best.pt").task == "detect"


def test_cli_trains_and_saves_checkpoints(coco8, tmp_path):
    args = [f"{k}={v}" for k, v in TRAIN.items()]
    done = yolo_cli(
        ["train", "model=yolov8n-cbam.yaml", f"data={coco8}", *args, f"project={tmp_path}", "name=cli"], tmp_path
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "cli"
    assert all(math.isfinite(v) for v in read_losses(run))
    for name in ("best.pt", "last.pt"):
        model = YOLO(run / "weights" / name).model
        assert sum(isinstance(m, CBAM) for m in model.modules()) == cbam_rows("yolov8n-cbam.yaml")


@pytest.mark.parametrize("task", list(TASK_YAMLS))
def test_every_task_trains_one_epoch(task, tmp_path):
    data = generate(tmp_path / f"shapes-{task}", task=task, train=8, val=4, size=96)
    yaml_name = TASK_YAMLS[task]
    model = YOLO(yaml_name)
    seen = watch_cbam(model)
    data_arg = data if task == "classify" else data / "data.yaml"
    model.train(data=str(data_arg), **TRAIN, **LEARN, project=str(tmp_path), name=task)
    assert_cbam_learned(seen, tmp_path / task, yaml_name)
    assert YOLO(tmp_path / task / "weights" / "best.pt").task == task
