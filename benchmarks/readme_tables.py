"""Copy the summary of a benchmark run (machine line, speed targets, model-level table) into the README.

The README holds the block between its ``<!-- benchmark:start -->`` and ``<!-- benchmark:end -->`` markers; this
script rewrites that block from a results JSON file written by ``benchmarks/run.py``.

Usage:
    python benchmarks/readme_tables.py                                   # benchmarks/results/cpu-full.json
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
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"


def update_readme(readme: Path, results: Path) -> None:
    """Replace the README's benchmark block with the summary of the results JSON `results`."""
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {START} ... {END} block")
    try:
        block = f"{START}\n{report.summary(json.loads(results.read_text()))}\n{END}"
    except (ValueError, KeyError) as err:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{results} is not a benchmark results file of benchmarks/run.py: {err!r}") from err
    readme.write_text(pattern.sub(lambda _: block, text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "cpu-full.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args()
    update_readme(args.readme, args.results)
    print(f"{args.readme}: benchmark block updated from {args.results}")


if __name__ == "__main__":
    main()
