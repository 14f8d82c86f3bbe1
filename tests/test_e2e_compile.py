"""Ultralytics' own compile=True (torch.compile with Inductor) trains a CBAM model on CPU."""

from __future__ import annotations

import pytest
from helpers import read_csv, yolo_cli

# A small detector with CBAM after each stage: Inductor compiles it in well under a minute on 2 CPU cores.
TINY_CBAM_YAML = """
nc: 80
backbone:
  - [-1, 1, Conv, [16, 3, 2]] # 0-P1/2
  - [-1, 1, Conv, [32, 3, 2]] # 1-P2/4
  - [-1, 1, CBAM, []] # 2
  - [-1, 1, Conv, [64, 3, 2]] # 3-P3/8
  - [-1, 1, CBAM, [8, 3]] # 4
head:
  - [[4], 1, Detect, [nc]] # Detect(P3)
"""


def test_yolo_train_with_compile_true(coco8, tmp_path):
    from ultralytics import __version__
    from ultralytics.utils.checks import check_version

    if not check_version(__version__, ">=8.4.0"):
        # 8.3.196-8.3.x have the setting, but their trainer calls len() on the compiled model, for stock models too
        pytest.skip(f"training with compile=True needs Ultralytics 8.4 or newer, this is {__version__}")
    (tmp_path / "tiny-cbam.yaml").write_text(TINY_CBAM_YAML)
    args = ["train", "model=tiny-cbam.yaml", f"data={coco8}", "epochs=1", "imgsz=64", "batch=4", "workers=0"]
    args += ["device=cpu", "compile=True", "plots=False", f"project={tmp_path}", "name=compiled"]
    result = yolo_cli(args, cwd=tmp_path, env={"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert "compile complete" in log, log[-3000:]
    assert "continuing uncompiled" not in log, log[-3000:]
    rows = read_csv(tmp_path / "compiled" / "results.csv")
    assert len(rows) == 1 and float(rows[0]["train/box_loss"]) > 0
    assert (tmp_path / "compiled" / "weights" / "best.pt").is_file()
