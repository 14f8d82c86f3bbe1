"""The generated blocks of the documentation, between ``<!-- name:start -->`` and ``<!-- name:end -->`` markers, and
the benchmark block of benchmarks/README.md, written from saved results."""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks import report
from benchmarks.config import RESULTS_DIR

PENDING = (
    "No full run is saved yet: `python -m benchmarks.run mode=full` writes `benchmarks/results/cpu-full.json`, then"
    " `python -m benchmarks.summary` puts its summary here."
)


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


def update_readme(readme: Path, results: Path, *elsewhere: Path) -> None:
    """Replace the file's benchmark block with the summary of the results JSON `results`, followed by the speed
    targets of each results JSON in `elsewhere` (the same benchmark on other machines)."""
    runs = []
    for path in (results, *elsewhere):
        try:
            runs.append(json.loads(path.read_text()))
            content = report.summary(*runs)
        except (ValueError, KeyError) as err:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{path} is not a benchmark results file of benchmarks.run: {err!r}") from err
    write_block(readme, "benchmark", content)


def default_results() -> list[Path]:
    """The full CPU runs saved in benchmarks/results: cpu-full.json, then those of other machines, cpu-full-*.json;
    an empty list where there is no cpu-full.json."""
    first = RESULTS_DIR / "cpu-full.json"
    return [first, *sorted(RESULTS_DIR.glob("cpu-full-*.json"))] if first.is_file() else []
