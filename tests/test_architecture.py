"""The package's shape: every module in the layers contract that `lint-imports` checks, and no module reaching into
another's private names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ultralytics_cbam"
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def test_every_module_has_its_place_in_the_layers_contract():
    layers = re.search(r"^layers = \[(.*?)^\]", PYPROJECT.read_text(), flags=re.MULTILINE | re.DOTALL)[1]
    listed = set(re.findall(r"ultralytics_cbam\.(\w+)", layers))
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert modules == listed, f"missing from the layers: {sorted(modules - listed)}; gone: {sorted(listed - modules)}"


def test_no_module_imports_another_modules_private_names():
    found = []
    for file in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ultralytics_cbam"):
                found += [f"{file.name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert not found
