"""Shared test code: files, checkpoints and commands in fresh processes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import yaml


def load_yaml(path: str | Path) -> object:
    """A YAML file's contents, on every supported Ultralytics (its YAML helper is missing from older releases)."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a CSV file, column names stripped (older Ultralytics releases pad those of results.csv with spaces)."""
    with open(path, newline="") as f:
        return [{k.strip(): v for k, v in row.items()} for row in csv.DictReader(f)]


def save_checkpoint(model, path: str | Path) -> Path:
    """Save a YOLO model built from a YAML as a checkpoint file, as YOLO.save does (which in older Ultralytics releases
    saves only models loaded from a checkpoint)."""
    import copy

    import torch

    torch.save({"model": copy.deepcopy(model.model).half()}, path)
    return Path(path)


def run_python(code: str, cwd: Path, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter in `cwd` (which never imports the package explicitly)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def yolo_cli(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the stock `yolo` command line of this environment in a fresh process."""
    return console_script("yolo", args, cwd, env, timeout)


def console_script(
    name: str, args: list[str], cwd: Path, env: dict | None = None, timeout: int = 600
) -> subprocess.CompletedProcess:
    """Run a command installed in this environment (`yolo`, `yolo-cbam`) in a fresh process."""
    return subprocess.run(
        [str(Path(sys.executable).with_name(name)), *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
