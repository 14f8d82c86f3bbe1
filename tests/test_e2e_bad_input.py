"""Bad CBAM model YAMLs and data files fail with an error that names the row, argument or file, via CLI and Python."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from helpers import yolo_cli
from ultralytics import YOLO

from ultralytics_cbam import ModelYAMLError
from ultralytics_cbam.resources import packaged_yaml

BASE = yaml.safe_load(packaged_yaml("yolov8-cbam.yaml").read_text())
FIRST_CBAM = 3  # backbone row 3 of yolov8-cbam.yaml is its first CBAM


def _set_first_cbam(position: int, value) -> callable:
    return lambda d: d["backbone"][FIRST_CBAM].__setitem__(position, value)


# case -> (change to the stock CBAM YAML, texts the error must contain: the row and what is wrong with it)
CASES = {
    "misspelled-module": (_set_first_cbam(2, "CBM"), ["layer 3", "unknown module 'CBM'", "Did you mean 'CBAM'"]),
    "reduction-zero": (_set_first_cbam(3, [0]), ["layer 3", "CBAM", "reduction must be a positive integer, got 0"]),
    "reduction-text": (_set_first_cbam(3, ["x"]), ["layer 3", "reduction must be a positive integer, got 'x'"]),
    "kernel-even": (_set_first_cbam(3, [16, 4]), ["layer 3", "kernel_size must be a positive odd integer, got 4"]),
    "too-many-args": (_set_first_cbam(3, [16, 7, False, 1]), ["layer 3", "CBAM takes at most 3 args"]),
    "args-not-list": (_set_first_cbam(3, 16), ["layer 3", "args must be a list, got 16"]),
    "from-several-layers": (
        lambda d: d["head"].__setitem__(2, [[-1, 9], 1, "CBAM", []]),
        ["layer 16", "takes one input feature map", "[-1, 9]"],
    ),
}
# The CLI reaches the same checks as the Python API; one case per kind of check keeps the number of processes down.
CLI_CASES = ["misspelled-module", "reduction-text", "kernel-even", "from-several-layers"]
AFTER_DETECT = ["layer 27", "its input is the output of Detect, not a feature map"]


def write_yaml(folder: Path, case: str, change) -> Path:
    """The stock CBAM YAML with one change, as yolov8n-<case>.yaml (scale n)."""
    d = copy.deepcopy(BASE)
    change(d)
    path = folder / f"yolov8n-{case}.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


def cli_train(args: list[str], cwd: Path, coco8: Path | None = None):
    data = [f"data={coco8}"] if coco8 else []
    return yolo_cli(["train", *args, *data, "epochs=1", "imgsz=64", "workers=0", f"project={cwd / 'runs'}"], cwd)


def last_line(done) -> str:
    return (done.stdout + done.stderr).rstrip().splitlines()[-1]


@pytest.mark.parametrize("case", list(CASES))
def test_bad_yaml_python_api(case, tmp_path):
    change, expected = CASES[case]
    path = write_yaml(tmp_path, case, change)
    with pytest.raises(ModelYAMLError) as e:
        YOLO(path)
    assert path.name in str(e.value)
    for text in expected:
        assert text in str(e.value)


@pytest.mark.parametrize("case", CLI_CASES)
def test_bad_yaml_cli_leaves_no_run_dir(case, tmp_path, coco8):
    path = write_yaml(tmp_path, case, CASES[case][0])
    done = cli_train([f"model={path.name}"], tmp_path, coco8)
    assert done.returncode != 0
    message = last_line(done)
    assert message.startswith("ultralytics_cbam.integration.ModelYAMLError: ") and path.name in message
    for text in CASES[case][1]:
        assert text in message
    assert not (tmp_path / "runs").exists()  # nothing written, so a corrected re-run starts clean


def test_cbam_after_detect_with_task(tmp_path, coco8):
    path = write_yaml(tmp_path, "after-detect", lambda d: d["head"].append([-1, 1, "CBAM", []]))
    with pytest.raises(ModelYAMLError, match="its input is the output of Detect") as e:
        YOLO(path, task="detect")
    assert all(text in str(e.value) for text in AFTER_DETECT)
    done = cli_train(["task=detect", f"model={path.name}"], tmp_path, coco8)
    assert done.returncode != 0
    assert all(text in last_line(done) for text in AFTER_DETECT)
    assert not (tmp_path / "runs").exists()


def test_cbam_after_detect_without_task(tmp_path):
    path = write_yaml(tmp_path, "after-detect", lambda d: d["head"].append([-1, 1, "CBAM", []]))
    with pytest.raises(ModelYAMLError) as e:
        YOLO(path)
    assert "layer 27" in str(e.value)
    assert "the last row must be the output layer" in str(e.value)


def test_missing_data_file(tmp_path):
    for attempt in range(2):  # a re-run meets the same clear error, not a leftover of the first run
        done = cli_train(["model=yolov8n-cbam.yaml", "data=no-such-data.yaml"], tmp_path)
        assert done.returncode != 0
        assert "'no-such-data.yaml' does not exist" in last_line(done), attempt
    # Ultralytics creates the run folder before it reads the data; it holds no checkpoint a resume could pick up.
    assert not list((tmp_path / "runs").rglob("*.pt"))
    with pytest.raises(RuntimeError, match=r"'no-such-data\.yaml' does not exist"):
        YOLO("yolov8n-cbam.yaml").train(data="no-such-data.yaml", epochs=1, imgsz=64, project=str(tmp_path / "py"))
