"""Copy the summary of benchmark runs (machine line, speed targets, model-level table) into benchmarks/README.md.

That file holds the block between its ``<!-- benchmark:start -->`` and ``<!-- benchmark:end -->`` markers; this
script rewrites that block from results JSON files written by ``benchmarks/run.py``: every table of the summary from
the first, and the speed targets of each further one (the same benchmark on other machines).

Usage:
    python benchmarks/readme_tables.py          # benchmarks/results/cpu-full.json, then cpu-full-*.json
    python benchmarks/readme_tables.py --results benchmarks/results/cpu-short.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import report

ROOT = Path(__file__).resolve().parents[1]


def _block(name: str) -> re.Pattern:
    return re.compile(re.escape(f"<!-- {name}:start -->") + ".*?" + re.escape(f"<!-- {name}:end -->"), re.S)


def check_block(readme: Path, name: str) -> None:
    """Raise a ValueError naming the file unless it has the block of markers ``<!-- {name}:start/end -->``."""
    if not _block(name).search(readme.read_text()):
        raise ValueError(f"{readme} has no <!-- {name}:start --> ... <!-- {name}:end --> block")


def write_block(readme: Path, name: str, content: str) -> None:
    """Replace what lies between the README's ``<!-- {name}:start -->`` and ``<!-- {name}:end -->`` markers."""
    check_block(readme, name)
    block = f"<!-- {name}:start -->\n{content}\n<!-- {name}:end -->"
    readme.write_text(_block(name).sub(lambda _: block, readme.read_text()))


def update_readme(readme: Path, results: Path, *elsewhere: Path) -> None:
    """Replace the README's benchmark block with the summary of the results JSON `results`, followed by the speed
    targets of each results JSON in `elsewhere`."""
    runs = []
    for path in (results, *elsewhere):
        try:
            runs.append(json.loads(path.read_text()))
            content = report.summary(*runs)
        except (ValueError, KeyError) as err:  # json.JSONDecodeError is a ValueError
            raise ValueError(f"{path} is not a benchmark results file of benchmarks/run.py: {err!r}") from err
    write_block(readme, "benchmark", content)


PENDING = (
    "No full run is saved yet: `python benchmarks/run.py mode=full` writes `benchmarks/results/cpu-full.json`, then"
    " `python benchmarks/readme_tables.py` puts its summary here."
)


def default_results() -> list[Path]:
    """The full CPU runs saved in benchmarks/results: cpu-full.json, then those of other machines, cpu-full-*.json;
    an empty list where there is no cpu-full.json."""
    folder = ROOT / "benchmarks" / "results"
    first = folder / "cpu-full.json"
    return [first, *sorted(folder.glob("cpu-full-*.json"))] if first.is_file() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, nargs="+", default=default_results())
    parser.add_argument("--readme", type=Path, default=ROOT / "benchmarks" / "README.md")
    args = parser.parse_args()
    if not args.results:
        raise SystemExit(PENDING)
    update_readme(args.readme, *args.results)
    print(f"{args.readme}: benchmark block updated from {', '.join(map(str, args.results))}")


if __name__ == "__main__":
    main()
