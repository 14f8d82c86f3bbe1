"""Where the packaged model and dataset YAMLs live, and name lookup for them."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
# Installed wheels carry the YAMLs inside the package; a source checkout or editable install keeps them beside it.
YAML_DIR = next((d for d in (_PACKAGE / "model_yamls", _PACKAGE.parent / "model_yamls") if d.is_dir()), _PACKAGE)


def packaged_yaml(name: str | os.PathLike) -> Path | None:
    """Return the packaged YAML for a bare file name such as 'yolov8-cbam.yaml', or None."""
    name = str(name).strip()
    if not name or os.path.basename(name) != name or not name.endswith((".yaml", ".yml")):
        return None
    path = YAML_DIR / name
    return path if path.is_file() else None


def packaged_yamls() -> list[Path]:
    """All packaged YAML files, sorted by name."""
    return sorted(YAML_DIR.glob("*.yaml"))
