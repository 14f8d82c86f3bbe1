"""Shared test set-up: Ultralytics offline, its settings and runs in temp dirs, real photographs from coco8."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SANDBOX = Path(tempfile.mkdtemp(prefix="ultralytics-cbam-tests-"))
os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_CONFIG_DIR"] = str(_SANDBOX / "config")
os.environ.setdefault("ULTRALYTICS_CBAM_AUTOLOAD", "1")
os.environ["ULTRALYTICS_CBAM_CACHE_DIR"] = str(_SANDBOX / "kernels")  # the C kernels are built once per run

import pytest  # noqa: E402
from ultralytics.utils import SETTINGS  # noqa: E402

SETTINGS.update(
    datasets_dir=str(_SANDBOX / "datasets"),
    runs_dir=str(_SANDBOX / "runs"),
    weights_dir=str(_SANDBOX / "weights"),
    sync=False,
)

REPO = Path(__file__).resolve().parents[1]
COCO8 = REPO.parent / "shared" / "data" / "coco8"


@pytest.fixture(scope="session")
def coco8(tmp_path_factory) -> Path:
    """A writable copy of the coco8 dataset; returns the path of its data YAML."""
    if not COCO8.is_dir():
        raise FileNotFoundError(f"test data not found: {COCO8}")
    dst = tmp_path_factory.mktemp("data") / "coco8"
    shutil.copytree(COCO8, dst)
    for path in dst.rglob("*"):  # the shared copy is read-only
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dst / "coco8.yaml"


@pytest.fixture(scope="session")
def coco8_images(coco8) -> list[Path]:
    """The 4 validation photographs of coco8."""
    return sorted((coco8.parent / "images" / "val").glob("*.jpg"))


@pytest.fixture(scope="session")
def trained_cbam(coco8, tmp_path_factory) -> Path:
    """best.pt of a yolov8n-cbam trained for one short epoch on coco8 (shared by tests that need a checkpoint)."""
    from ultralytics import YOLO

    project = tmp_path_factory.mktemp("runs")
    YOLO("yolov8n-cbam.yaml").train(
        data=str(coco8),
        epochs=1,
        imgsz=64,
        batch=4,
        workers=0,
        device="cpu",
        project=str(project),
        name="train",
        plots=False,
        verbose=False,
        seed=0,
        deterministic=True,
        amp=False,
    )
    best = project / "train" / "weights" / "best.pt"
    assert best.is_file()
    return best


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    """Run a test with 1 and with 2 torch threads: some kernels are chosen by, or split work by, the thread count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)
