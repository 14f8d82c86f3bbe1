"""Shared test set-up: Ultralytics offline, every file a test run writes in one temporary folder that is removed at
the end (settings, datasets, runs, caches, temp files, fresh processes' too), real photographs from tests/data/coco8."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

_SANDBOX = Path(tempfile.mkdtemp(prefix="ultralytics-cbam-tests-"))
os.environ["YOLO_OFFLINE"] = "1"
os.environ["YOLO_CONFIG_DIR"] = str(_SANDBOX / "config")
(_SANDBOX / "config").mkdir()  # Ultralytics 8.2/8.3 fall back to /tmp/Ultralytics when its parent is missing
os.environ.setdefault("ULTRALYTICS_CBAM_AUTOLOAD", "1")
# Temp files (pytest's tmp_path too) and the caches that torch, matplotlib and others keep in the home folder.
for _var, _sub in {
    "TMPDIR": "tmp",
    "XDG_CACHE_HOME": "cache",
    "XDG_CONFIG_HOME": "xdg-config",
    "MPLCONFIGDIR": "matplotlib",
    "TORCH_HOME": "torch",
}.items():
    os.environ[_var] = str(_SANDBOX / _sub)
    (_SANDBOX / _sub).mkdir()
tempfile.tempdir = os.environ["TMPDIR"]

import pytest  # noqa: E402
from ultralytics.utils import SETTINGS  # noqa: E402

SETTINGS.update(
    datasets_dir=str(_SANDBOX / "datasets"),
    runs_dir=str(_SANDBOX / "runs"),
    weights_dir=str(_SANDBOX / "weights"),
    sync=False,
)


def pytest_unconfigure(config) -> None:
    """Remove the temporary folder of the run, after pytest's own clean-up of tmp_path folders."""
    shutil.rmtree(_SANDBOX, ignore_errors=True)


REPO = Path(__file__).resolve().parents[1]
COCO8 = REPO / "tests" / "data" / "coco8"


@pytest.fixture(scope="session")
def coco8(tmp_path_factory) -> Path:
    """A copy of the coco8 dataset (Ultralytics writes label caches beside the labels); returns its data YAML's path."""
    dst = tmp_path_factory.mktemp("data") / "coco8"
    shutil.copytree(COCO8, dst)
    for path in dst.rglob("*"):  # writable even where the checkout is not
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
