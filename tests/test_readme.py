"""The README's examples run as written: every ```python block and every `yolo-cbam add` / `visualize` / `cam` line,
offline, each in its own folder holding the inputs it names, all in one fresh process.

The inputs: `yolov8n.pt` (a stock yolov8n), `runs/detect/train/weights/best.pt` (a CBAM model where the example shows
attention maps, a stock one where it adds CBAM), `my-model.yaml` (a stock YAML), coco8 photographs under `path/to/...`,
and coco8 in Ultralytics' datasets folder, as a first download leaves it. Training is shortened (1 epoch at 64 px on a
quarter of the images, without `compile`); everything else runs as written."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import save_checkpoint
from ultralytics import YOLO

README = Path(__file__).resolve().parents[1] / "README.md"
CLI_COMMANDS = ("add", "visualize", "cam")  # the yolo-cbam commands that run in seconds; ablate trains for long

# One fresh process runs every example, each in its own folder with fresh globals, and writes what each raised.
RUNNER = """
import json, os, runpy, shlex, sys, traceback
from pathlib import Path

from ultralytics.cfg import DEFAULT_CFG_DICT
from ultralytics.engine.model import Model

examples, out = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])
short = {"epochs": 1, "imgsz": 64, "batch": 8, "fraction": 0.25, "mosaic": 0.0, "workers": 0, "plots": False}
short.update({"compile": False} if "compile" in DEFAULT_CFG_DICT else {})
train = Model.train
Model.train = lambda self, trainer=None, **kwargs: train(self, trainer, **{**kwargs, **short})
errors = {}
for example in examples:
    os.chdir(example["cwd"])
    try:
        if example["mode"] == "python":
            runpy.run_path(example["payload"], run_name="__main__")
        else:
            from ultralytics_cbam.cli import entrypoint

            sys.argv = ["yolo-cbam", *shlex.split(example["payload"])]
            entrypoint()
    except BaseException:
        errors[example["id"]] = traceback.format_exc()
out.write_text(json.dumps(errors))
"""


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(line number of the first code line, code) of every ```python block of a Markdown text."""
    found = re.finditer(r"^```python[ \t]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in found]


def cli_lines(text: str) -> list[tuple[int, str]]:
    """(line number, arguments) of every `yolo-cbam` line of CLI_COMMANDS, comments removed."""
    lines = []
    for n, line in enumerate(text.splitlines(), start=1):
        words = shlex.split(line, comments=True) if line.startswith("yolo-cbam ") else []
        if len(words) > 1 and words[1] in CLI_COMMANDS:
            lines.append((n, shlex.join(words[1:])))
    return lines


TEXT = README.read_text(encoding="utf-8")
BLOCKS, LINES = python_blocks(TEXT), cli_lines(TEXT)


@pytest.fixture(scope="module")
def datasets(coco8) -> Path:
    """Ultralytics' datasets folder (the test run's), holding coco8 where its downloader would put it."""
    from ultralytics.utils import SETTINGS

    folder = Path(SETTINGS["datasets_dir"])
    if not (folder / "coco8").is_dir():
        shutil.copytree(coco8.parent, folder / "coco8", ignore=shutil.ignore_patterns("*.cache"))
    return folder


@pytest.fixture(scope="module")
def stock_weights(tmp_path_factory) -> Path:
    """A stock yolov8n checkpoint (80 classes), as the official yolov8n.pt is built."""
    return save_checkpoint(YOLO("yolov8n.yaml"), tmp_path_factory.mktemp("stock") / "yolov8n.pt")


def make_inputs(folder: Path, code: str, stock: Path, cbam: Path, images: list[Path]) -> None:
    """Write into `folder` the files the README's examples name."""
    best = folder / "runs" / "detect" / "train" / "weights" / "best.pt"
    best.parent.mkdir(parents=True)
    shutil.copy(cbam if "visualize" in code or "cam " in code else stock, best)
    shutil.copy(stock, folder / "yolov8n.pt")
    from ultralytics.utils.checks import check_yaml

    shutil.copy(check_yaml("yolov8.yaml"), folder / "my-model.yaml")
    for name in ("images", "your/images"):
        (folder / "path" / "to" / name).mkdir(parents=True)
        for image in images:
            shutil.copy(image, folder / "path" / "to" / name)
    shutil.copy(images[0], folder / "path" / "to" / "image.jpg")


@pytest.fixture(scope="module")
def runs(datasets, stock_weights, trained_cbam, coco8_images, tmp_path_factory) -> dict[str, tuple[Path, str | None]]:
    """Example id -> (its folder, the traceback it raised or None); runs them all in one fresh process."""
    examples = []
    for kind, items in (("python", BLOCKS), ("cli", LINES)):
        for line, payload in items:
            cwd = tmp_path_factory.mktemp(f"readme-{kind}-line{line}")
            make_inputs(cwd, payload, stock_weights, trained_cbam, coco8_images[:2])
            if kind == "python":
                (cwd / "example.py").write_text(payload, encoding="utf-8")
                payload = str(cwd / "example.py")
            examples.append({"id": f"{kind}-{line}", "mode": kind, "payload": payload, "cwd": str(cwd)})
    folder = tmp_path_factory.mktemp("readme")
    spec, out = folder / "examples.json", folder / "errors.json"
    spec.write_text(json.dumps(examples))
    command = [sys.executable, "-c", RUNNER, str(spec), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0 and out.is_file(), done.stderr[-3000:]
    errors = json.loads(out.read_text())
    return {e["id"]: (Path(e["cwd"]), errors.get(e["id"])) for e in examples}


def test_readme_has_examples():
    assert len(BLOCKS) >= 3 and len(LINES) >= 2
    assert all(code.strip() for _, code in BLOCKS)


def skip_if_newer_than_installed(line: int, text: str) -> None:
    """Skip an example that uses a setting, model or function the installed (older) Ultralytics does not have."""
    from ultralytics.cfg import DEFAULT_CFG_DICT
    from ultralytics.utils import plotting

    from ultralytics_cbam.cfg.families import stock_yamls

    if text.startswith("cam ") and not hasattr(plotting, "class_activation_map"):
        pytest.skip(f"README line {line} uses LayerCAM, which this Ultralytics release does not have")
    if "compile=True" in text and "compile" not in DEFAULT_CFG_DICT:
        pytest.skip(f"README line {line} uses compile=, which this Ultralytics release does not have")
    used = re.sub(r"\boutput=\S+", "", text)  # a file the example writes is not one it needs
    for family, suffixes in re.findall(r"\b(yolov?\d+)[nslmx]?((?:-[a-z0-9]+)*)\.(?:yaml|pt)\b", used):
        name = f"{family}{suffixes.removesuffix('-cbam')}.yaml"
        if name not in stock_yamls():
            pytest.skip(f"README line {line} uses {name}, which this Ultralytics release does not ship")


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"line{n}" for n, _ in BLOCKS])
def test_python_block_runs(line, code, runs):
    skip_if_newer_than_installed(line, code)
    _, error = runs[f"python-{line}"]
    assert error is None, f"README line {line}:\n{code}\n{error}"


@pytest.mark.parametrize(("line", "args"), LINES, ids=[f"line{n}" for n, _ in LINES])
def test_yolo_cbam_line_runs(line, args, runs):
    skip_if_newer_than_installed(line, args)
    cwd, error = runs[f"cli-{line}"]
    assert error is None, f"README line {line}: yolo-cbam {args}\n{error}"
    settings = dict(word.split("=", 1) for word in shlex.split(args)[1:])
    if args.startswith("add "):  # the YAML (and beside it the checkpoint of a .pt) that the README says it writes
        model = Path(settings["model"])
        written = cwd / settings.get("output", f"{model.stem}-cbam.yaml")
        assert written.is_file(), f"README line {line}: no {written.name}"
        assert written.with_suffix(".pt").is_file() == (model.suffix == ".pt")
