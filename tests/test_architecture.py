"""The package's shape: every module in the layers contract that `lint-imports` checks, and no module reaching into
another's private names."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ultralytics_cbam"
PYPROJECT = PACKAGE.parent / "pyproject.toml"


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name, a subpackage under its own name (its __init__)."""
    found = {}
    for file in sorted(PACKAGE.rglob("*.py")):
        parts = file.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return found


def _imports(file: Path) -> list[ast.ImportFrom]:
    tree = ast.parse(file.read_text(encoding="utf-8"))
    return [
        n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("ultralytics_cbam")
    ]


def test_every_module_has_its_place_in_the_layers_contract():
    contract = re.search(r"^layers = \[(.*?)^\]", PYPROJECT.read_text(), flags=re.MULTILINE | re.DOTALL)[1]
    listed = set(re.findall(r"ultralytics_cbam(?:\.\w+)+", contract))
    modules = _modules()
    placed = {m for m in modules if any(m == x or m.startswith(f"{x}.") for x in listed)}
    # the package itself, and a subpackage's __init__ that imports nothing of the package, need no place
    exempt = {m for m, f in modules.items() if f.name == "__init__.py" and (m == "ultralytics_cbam" or not _imports(f))}
    unplaced = set(modules) - placed - exempt
    assert not unplaced, f"missing from the layers: {sorted(unplaced)}"
    assert listed <= set(modules), f"gone: {sorted(listed - set(modules))}"


def test_no_module_imports_another_modules_private_names():
    found = []
    for name, file in _modules().items():
        found += [f"{name}: {n.module}.{a.name}" for n in _imports(file) for a in n.names if a.name.startswith("_")]
    assert not found


def _tree_paths(markdown: str) -> set[str]:
    """The paths that the indented file tree of the ```text block lists (two spaces a level; folders end in '/')."""
    tree = markdown.split("```text\n", 1)[1].split("```", 1)[0]
    stack, paths = [], set()
    for line in tree.splitlines():
        indent, name = len(line) - len(line.lstrip()), line.split(maxsplit=1)[0] if line.strip() else ""
        if name.endswith((".py", "/")):
            stack = [*stack[: indent // 2], name]
            paths.add("".join(stack))
    return paths


def test_the_architecture_section_lists_every_module():
    """docs/development.md's tree names every module with code (a docstring-only __init__ is its folder's line)."""
    listed = _tree_paths((PACKAGE.parent / "docs" / "development.md").read_text(encoding="utf-8"))
    files = {f.relative_to(PACKAGE.parent).as_posix() for f in PACKAGE.rglob("*.py")}
    folders = {
        f"{d.relative_to(PACKAGE.parent).as_posix()}/" for d in PACKAGE.rglob("*") if (d / "__init__.py").is_file()
    }
    docstring_only = {
        f for f in files if f.endswith("/__init__.py") and len(ast.parse((PACKAGE.parent / f).read_text()).body) == 1
    }
    assert files - docstring_only - listed == set(), "modules missing from the tree"
    assert listed - files - folders - {"ultralytics_cbam/", "benchmarks/"} == set(), "listed, but gone"
