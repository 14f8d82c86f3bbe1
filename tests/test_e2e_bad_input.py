"""Bad CBAM model YAMLs, data files, checkpoints and arguments fail with an error that names the row, argument or file,
via the CLIs and Python; `yolo-cbam` prints it as one line without a traceback."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from helpers import console_script, save_checkpoint, yolo_cli
from ultralytics import YOLO

from ultralytics_cbam import ModelYAMLError, add_cbam
from ultralytics_cbam.cfg.packaged import packaged_yaml

BASE = yaml.safe_load(packaged_yaml("yolov8-cbam.yaml").read_text())
FIRST_CBAM = 3  # backbone row 3 of yolov8-cbam.yaml is its first CBAM


def _set_first_cbam(position: int, value) -> callable:
    return lambda d: d["backbone"][FIRST_CBAM].__setitem__(position, value)


# case -> (change to the stock CBAM YAML, index of the layer named, texts the error must contain about what is wrong)
CASES = {
    "misspelled-module": (_set_first_cbam(2, "CBM"), 3, ["unknown module 'CBM'", "Did you mean 'CBAM'"]),
    "short-row": (lambda d: d["backbone"].__setitem__(FIRST_CBAM, [-1, 1, "CBAM"]), 3, ["a row must be"]),
    "reduction-zero": (_set_first_cbam(3, [0]), 3, ["reduction must be a positive integer, got 0"]),
    "reduction-text": (_set_first_cbam(3, ["x"]), 3, ["reduction must be a positive integer, got 'x'"]),
    "kernel-even": (_set_first_cbam(3, [16, 4]), 3, ["kernel_size must be a positive odd integer, got 4"]),
    "too-many-args": (_set_first_cbam(3, [16, 7, False, 1]), 3, ["CBAM takes at most 3 args"]),
    "args-not-list": (_set_first_cbam(3, 16), 3, ["args must be a list, got 16"]),
    "from-several-layers": (
        lambda d: d["head"].__setitem__(2, [[-1, 9], 1, "CBAM", []]),
        16,
        ["takes one input feature map", "[-1, 9]"],
    ),
}
# The CLI reaches the same checks as the Python API; one case per kind of check keeps the number of processes down.
CLI_CASES = ["misspelled-module", "reduction-text", "kernel-even", "from-several-layers"]
AFTER_DETECT = (27, ["its input is the output of Detect, not a feature map"])


def row_name(path: Path, i: int, given: str | Path | None = None) -> str:
    """How every error names layer i of a model YAML file (`given` as the path given for it): the file, the layer
    index, its section row and the row."""
    d = yaml.safe_load(path.read_text())
    section, j = ("backbone", i) if i < len(d["backbone"]) else ("head", i - len(d["backbone"]))
    return f"model YAML '{given or path}', layer {i} ({section} row {j}: {d[section][j]})"


def assert_names_row(message: str, path: Path, i: int, texts: list[str], given: str | None = None) -> None:
    assert message.startswith(f"{row_name(path, i, given)}: "), message
    for text in texts:
        assert text in message


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
    change, layer, expected = CASES[case]
    path = write_yaml(tmp_path, case, change)
    with pytest.raises(ModelYAMLError) as e:
        YOLO(path)
    assert_names_row(str(e.value), path, layer, expected)
    with pytest.raises(ModelYAMLError) as e:  # inserting CBAM into it names the row alike
        add_cbam(path, output=tmp_path / "out.yaml")
    assert_names_row(str(e.value), path, layer, expected)


@pytest.mark.parametrize("case", CLI_CASES)
def test_bad_yaml_cli_leaves_no_run_dir(case, tmp_path, coco8):
    change, layer, expected = CASES[case]
    path = write_yaml(tmp_path, case, change)
    done = cli_train([f"model={path.name}"], tmp_path, coco8)
    assert done.returncode != 0
    prefix = "ultralytics_cbam.ModelYAMLError: "
    message = last_line(done)
    assert message.startswith(prefix)
    assert_names_row(message.removeprefix(prefix), path, layer, expected, given=path.name)
    assert not (tmp_path / "runs").exists()  # nothing written, so a corrected re-run starts clean


def test_cbam_after_detect_with_task(tmp_path, coco8):
    path = write_yaml(tmp_path, "after-detect", lambda d: d["head"].append([-1, 1, "CBAM", []]))
    with pytest.raises(ModelYAMLError) as e:
        YOLO(path, task="detect")
    assert_names_row(str(e.value), path, *AFTER_DETECT)
    done = cli_train(["task=detect", f"model={path.name}"], tmp_path, coco8)
    assert done.returncode != 0
    assert_names_row(last_line(done).split(": ", 1)[1], path, *AFTER_DETECT, given=path.name)
    assert not (tmp_path / "runs").exists()


def test_cbam_after_detect_without_task(tmp_path):
    path = write_yaml(tmp_path, "after-detect", lambda d: d["head"].append([-1, 1, "CBAM", []]))
    with pytest.raises(ModelYAMLError) as e:
        YOLO(path)
    assert_names_row(str(e.value), path, 27, ["the last row must be the output layer"])


def test_missing_data_file(tmp_path):
    for attempt in range(2):  # a re-run meets the same clear error, not a leftover of the first run
        done = cli_train(["model=yolov8n-cbam.yaml", "data=no-such-data.yaml"], tmp_path)
        assert done.returncode != 0
        assert "'no-such-data.yaml' does not exist" in last_line(done), attempt
    # Ultralytics creates the run folder before it reads the data; it holds no checkpoint a resume could pick up.
    assert not list((tmp_path / "runs").rglob("*.pt"))
    with pytest.raises(RuntimeError, match=r"'no-such-data\.yaml' does not exist"):
        YOLO("yolov8n-cbam.yaml").train(data="no-such-data.yaml", epochs=1, imgsz=64, project=str(tmp_path / "py"))


def yolo_cbam_mistakes(folder: Path, image: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Mistake -> (`yolo-cbam` arguments, start of the one-line error after 'yolo-cbam ', other texts it contains),
    with the files they need written to `folder`."""
    stock = save_checkpoint(YOLO("yolov8n.yaml"), folder / "stock.pt")
    bad_row = write_yaml(folder, "misspelled-module", CASES["misspelled-module"][0])
    (folder / "bad.yaml").write_text("x: [1\n")
    (folder / "garbage.pt").write_text("garbage\n")
    (folder / "weights").mkdir()
    return {
        "official-weights-offline": (
            ["add", "model=yolov8n.pt"],
            ["add: checkpoint 'yolov8n.pt' is not in the working folder", "connect to the internet"],
        ),
        "missing-checkpoint": (["add", "model=nothing-here.pt"], ["add: checkpoint 'nothing-here.pt' not found"]),
        "bad-yaml-row": (["add", f"model={bad_row}"], [f"add: {row_name(bad_row, 3)}: unknown module 'CBM'"]),
        "bad-where": (["add", "model=yolov8n.yaml", "where=99"], ["add: where: layer index 99 does not exist"]),
        "no-cbam": (
            ["visualize", f"model={stock}", f"source={image}"],
            [f"visualize: model '{stock}' has no CBAM", f"'yolo-cbam add model={stock}'"],
        ),
        "missing-data": (
            ["ablate", "data=no-such-data.yaml", "variants=baseline", "epochs=1", f"project={folder / 'runs'}"],
            ["ablate: data 'no-such-data.yaml'", "does not exist"],
        ),
        "unknown-argument": (["visualize", "src=x.jpg"], ["visualize: unknown argument(s) src"]),
        "yaml-syntax": (["add", "model=bad.yaml"], ["add: model YAML 'bad.yaml' is not valid YAML (line 2: expected"]),
        "garbage-checkpoint": (
            ["add", "model=garbage.pt"],
            ["add: checkpoint 'garbage.pt' cannot be read as a PyTorch checkpoint ("],
        ),
        "folder-as-model": (
            ["visualize", "model=weights", f"source={image}"],
            ["visualize: model 'weights' is a folder; visualize needs a checkpoint (.pt) or a model YAML"],
        ),
        "flag-as-text": (
            ["visualize", "model=yolov8n-cbam.yaml", f"source={image}", "save=no"],
            ["visualize: save must be True or False, got 'no'"],
        ),
    }


MISTAKES = ["official-weights-offline", "missing-checkpoint", "bad-yaml-row", "bad-where", "no-cbam"]
MISTAKES += ["missing-data", "unknown-argument", "yaml-syntax", "garbage-checkpoint", "folder-as-model", "flag-as-text"]


@pytest.mark.parametrize("mistake", MISTAKES)
def test_yolo_cbam_prints_one_line_without_traceback(mistake, tmp_path, coco8_images):
    args, (first, *rest) = yolo_cbam_mistakes(tmp_path, coco8_images[0])[mistake]
    done = console_script("yolo-cbam", args, tmp_path)
    assert done.returncode == 1
    assert "Traceback" not in done.stdout + done.stderr
    message = last_line(done)
    assert message.startswith(f"yolo-cbam {first}"), message
    assert all(text in message for text in rest), message
