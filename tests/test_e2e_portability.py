"""A CBAM checkpoint loads in any process where the package is installed; without it, the error names the package."""

from __future__ import annotations

import json

from helpers import run_python

LOAD_AND_RUN = """
import json, sys
import torch
from ultralytics import YOLO

model = YOLO(sys.argv[1] if len(sys.argv) > 1 else {weights!r})
layers = [m for m in model.model.modules() if type(m).__name__ == "CBAM"]
with torch.no_grad():
    out = model.model.float().eval()(torch.rand(1, 3, 64, 64))[0]
print(json.dumps({{"modules": sorted({{type(m).__module__ for m in layers}}), "count": len(layers),
                  "shape": list(out.shape), "autoloaded": "ultralytics_cbam" in sys.modules}}))
"""

NOT_INSTALLED = """
import sys
sys.modules["ultralytics_cbam"] = None  # as if the package were not installed
from ultralytics import YOLO

YOLO({weights!r})
"""


def last_json_line(text: str) -> dict:
    return json.loads(next(line for line in reversed(text.splitlines()) if line.startswith("{")))


def test_checkpoint_loads_in_fresh_process_without_import(trained_cbam, tmp_path):
    done = run_python(LOAD_AND_RUN.format(weights=str(trained_cbam)), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    info = last_json_line(done.stdout)
    assert info["modules"] == ["ultralytics_cbam.modules"]
    assert info["count"] == 4  # the four CBAM rows of yolov8-cbam.yaml
    assert info["shape"][0] == 1
    assert info["autoloaded"]


def test_checkpoint_loads_with_autoload_off(trained_cbam, tmp_path):
    # Unpickling the layers imports the package, which registers itself with Ultralytics.
    done = run_python(LOAD_AND_RUN.format(weights=str(trained_cbam)), tmp_path, env={"ULTRALYTICS_CBAM_AUTOLOAD": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert last_json_line(done.stdout)["count"] == 4


def test_without_package_the_error_names_it(trained_cbam, tmp_path):
    done = run_python(NOT_INSTALLED.format(weights=str(trained_cbam)), tmp_path, env={"ULTRALYTICS_CBAM_AUTOLOAD": "0"})
    assert done.returncode != 0
    output = done.stdout + done.stderr
    # Ultralytics' warning and the final error both name the module to install, ultralytics_cbam
    assert f"{trained_cbam.name} appears to require 'ultralytics_cbam" in output
    last_line = output.rstrip().splitlines()[-1]
    assert last_line.startswith("ModuleNotFoundError") and "ultralytics_cbam" in last_line
