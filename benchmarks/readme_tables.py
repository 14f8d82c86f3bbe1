"""The generated blocks of the documentation, between ``<!-- name:start -->`` and ``<!-- name:end -->`` markers, and
the Markdown tables in them; and the raw records they are written from, one JSON file each in benchmarks/results,
committed beside the scripts, so that a test rebuilds a block from its file without measuring."""

from __future__ import annotations

import contextlib
import json
import platform
import re
import shutil
import tempfile
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def load_json(file: Path) -> dict:
    """The saved records of `file`."""
    return json.loads(Path(file).read_text(encoding="utf-8"))


def save_json(file: Path, records: dict) -> None:
    """Write the records with sorted keys, one item a line, so that a diff shows what changed."""
    Path(file).parent.mkdir(parents=True, exist_ok=True)
    Path(file).write_text(json.dumps(records, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def versions(*packages: str) -> dict[str, str]:
    """The versions of Python, torch and Ultralytics (as imported, also from an overlay) and of those of the
    distributions `packages` that are installed: the stamp of a measurement."""
    import torch
    import ultralytics

    found = {"python": platform.python_version(), "torch": torch.__version__, "ultralytics": ultralytics.__version__}
    for name in packages:
        with contextlib.suppress(PackageNotFoundError):
            found[name] = version(name)
    return found


def _block(name: str) -> re.Pattern:
    return re.compile(re.escape(f"<!-- {name}:start -->") + ".*?" + re.escape(f"<!-- {name}:end -->"), re.S)


def check_block(readme: Path, name: str) -> None:
    """Raise a ValueError naming the file unless it has the block of markers ``<!-- {name}:start/end -->``."""
    if not _block(name).search(readme.read_text()):
        raise ValueError(f"{readme} has no <!-- {name}:start --> ... <!-- {name}:end --> block")


def checked(path: object, name: str) -> Path | None:
    """`path` as a Path once `check_block` found its block `name` (before a script's work, not after); None stays."""
    if path is None:
        return None
    check_block(Path(path), name)
    return Path(path)


def write_block(readme: Path, name: str, content: str) -> None:
    """Replace what lies between the file's ``<!-- {name}:start -->`` and ``<!-- {name}:end -->`` markers."""
    check_block(readme, name)
    block = f"<!-- {name}:start -->\n{content}\n<!-- {name}:end -->"
    readme.write_text(_block(name).sub(lambda _: block, readme.read_text()))


def block_content(readme: Path, name: str) -> str:
    """What lies between the file's ``<!-- {name}:start -->`` and ``<!-- {name}:end -->`` markers."""
    check_block(readme, name)
    start, end = f"<!-- {name}:start -->\n", f"\n<!-- {name}:end -->"
    return readme.read_text().split(start, 1)[1].split(end, 1)[0]


def write_rendered(readme: Path | None, name: str, render: Callable[[dict], str], results: Path) -> str:
    """`render` of the records saved in `results` (read back from the file, as a test rebuilds the block from the
    committed one), written into the file's block `name` unless `readme` is None; returns the block."""
    content = render(load_json(results))
    if readme is not None:
        write_block(readme, name, content)
        print(f"{readme}: {name} block written from {results}")
    return content


def measure_and_write(
    readme: Path | None, name: str, render: Callable[[dict], str], results: Path, measure: Callable[[Path], dict]
) -> str:
    """Run `measure` in a scratch folder (removed afterwards), save its records to `results` and write the block
    `name` from them (`write_rendered`); returns and prints the block."""
    scratch = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    try:
        save_json(results, measure(scratch))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = write_rendered(readme, name, render, results)
    print(text)
    return text


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], right: int = 0) -> list[str]:
    """The lines of a Markdown table: the header, the rule (the last `right` columns right-aligned) and the rows."""
    rule = "|" + "---|" * (len(header) - right) + "--:|" * right
    return [f"| {' | '.join(header)} |", rule, *(f"| {' | '.join(map(str, row))} |" for row in rows)]
