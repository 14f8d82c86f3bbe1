"""A CBAM training run killed mid-epoch (SIGKILL) resumes from last.pt, with the CLI and in Python, and finishes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import read_csv, yolo_cli
from ultralytics import YOLO

from ultralytics_cbam.modules import CBAM

EPOCHS = 2
# Stops the run inside its second epoch, after last.pt of the first epoch is written, and waits there to be killed.
TRAIN_UNTIL_KILLED = f"""
import sys, time
from pathlib import Path
from ultralytics import YOLO

data, project, marker = sys.argv[1:4]

def wait_mid_epoch(trainer):
    if trainer.epoch == 1:
        Path(marker).write_text(str(trainer.epoch))
        time.sleep(600)

model = YOLO("yolov8n-cbam.yaml")
model.add_callback("on_train_batch_end", wait_mid_epoch)
model.train(data=data, epochs={EPOCHS}, imgsz=64, batch=2, workers=0, device="cpu", plots=False, amp=False,
            project=project, name="run")
"""


def cbam_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{k}": v.detach().float().clone()
        for name, m in model.named_modules()
        if isinstance(m, CBAM)
        for k, v in m.state_dict().items()
    }


def epochs_in_results(run: Path) -> list[int]:
    return [int(float(row["epoch"])) for row in read_csv(run / "results.csv")]


@pytest.fixture(scope="module")
def killed_run(coco8, tmp_path_factory) -> Path:
    """A copy of a run killed with SIGKILL in the middle of epoch 2 of 2 (restore it with `restore`)."""
    project = tmp_path_factory.mktemp("resume")
    marker = project / "mid-epoch"
    proc = subprocess.Popen(
        [sys.executable, "-c", TRAIN_UNTIL_KILLED, str(coco8), str(project), str(marker)],
        cwd=project,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not marker.exists():
        if proc.poll() is not None:
            pytest.fail(f"training ended before it could be killed:\n{proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("training did not reach its second epoch in time")
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    run = project / "run"
    assert epochs_in_results(run) == [1]  # killed inside epoch 2, which never finished
    assert torch.load(run / "weights" / "last.pt", map_location="cpu", weights_only=False)["epoch"] == 0
    shutil.copytree(run, project / "killed")
    return run


def restore(run: Path) -> Path:
    """Put the killed run back in place (each test resumes it from the same state); returns its last.pt."""
    shutil.rmtree(run, ignore_errors=True)
    shutil.copytree(run.parent / "killed", run)
    return run / "weights" / "last.pt"


def assert_finished(run: Path) -> None:
    assert epochs_in_results(run) == list(range(1, EPOCHS + 1))
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(run / "weights" / name, map_location="cpu", weights_only=False)
        assert ckpt["epoch"] == -1  # Ultralytics marks a finished run's checkpoints this way
        assert cbam_weights(ckpt["model"])


def test_cli_resume_finishes_planned_epochs(killed_run):
    last = restore(killed_run)
    done = yolo_cli(["train", "resume", f"model={last}"], killed_run.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"from epoch 2 to {EPOCHS} total epochs" in done.stdout + done.stderr
    assert_finished(killed_run)


def test_python_resume_starts_from_last_pt_cbam_weights(killed_run):
    last = restore(killed_run)
    ckpt = torch.load(last, map_location="cpu", weights_only=False)
    saved = cbam_weights(ckpt["ema"])
    assert len(saved) == 3 * 4  # three weights in each of the four CBAM layers of yolov8n-cbam
    at_resume = {}

    def on_train_start(trainer) -> None:
        at_resume["model"] = cbam_weights(trainer.model)
        at_resume["ema"] = cbam_weights(trainer.ema.ema)
        at_resume["start_epoch"] = trainer.start_epoch

    model = YOLO(last)
    model.add_callback("on_train_start", on_train_start)
    model.train(resume=True)
    assert at_resume["start_epoch"] == 1
    for which in ("model", "ema"):
        assert at_resume[which].keys() == saved.keys()
        differs = [k for k in saved if not torch.equal(at_resume[which][k], saved[k])]
        assert not differs, f"{which} CBAM weights at resume differ from last.pt: {differs}"
    assert_finished(killed_run)
