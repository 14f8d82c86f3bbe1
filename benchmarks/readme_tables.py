"""The generated blocks of the documentation, between ``<!-- name:start -->`` and ``<!-- name:end -->`` markers, and
the benchmark block of benchmarks/README.md, written from saved results (benchmarks/results/*.json) alone."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks import report
from benchmarks.config import RESULTS_DIR
from benchmarks.study_records import load_json, save_json

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
