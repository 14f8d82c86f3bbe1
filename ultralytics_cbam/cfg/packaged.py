"""Where the packaged model and dataset YAMLs live, and name lookup for them."""

from __future__ import annotations

import os
from pathlib import Path

from ultralytics_cbam.cfg.families import cbam_yaml

_PACKAGE = Path(__file__).resolve().parents[1]
# Installed wheels carry the YAMLs inside the package; a source checkout or editable install keeps them beside it.
YAML_DIR = next((d for d in (_PACKAGE / "model_yamls", _PACKAGE.parent / "model_yamls") if d.is_dir()), _PACKAGE)


def packaged_yaml(name: str | os.PathLike) -> Path | None:
    """Return the YAML a bare file name stands for, or None: a packaged YAML such as 'yolov8-cbam.yaml', else the
    CBAM version of an Ultralytics model YAML such as 'yolo11n-cbam.yaml' (see `ultralytics_cbam.cfg.families`)."""
    name = str(name).strip()
    if not name or os.path.basename(name) != name or not name.endswith((".yaml", ".yml")):
        return None
    path = YAML_DIR / name
    if path.is_file():
        return path
    return cbam_yaml(name, YAML_DIR)


def packaged_yamls() -> list[Path]:
    """All packaged YAML files, sorted by name."""
    return sorted(YAML_DIR.glob("*.yaml"))
