"""Copy the summary of a benchmark run (machine line, speed targets, model-level table) into the README.

The README holds the block between its ``<!-- benchmark:start -->`` and ``<!-- benchmark:end -->`` markers; this
script rewrites that block from a results Markdown file written by ``benchmarks/run.py``.

Usage:
    python benchmarks/readme_tables.py                                   # benchmarks/results/cpu-full.md
    python benchmarks/readme_tables.py --results benchmarks/results/cpu-short.md
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
SECTIONS = ("Speed targets", "Model level")


def summary(results_md: str) -> str:
    """The machine paragraph and the speed-target and model-level sections, their headings one level down."""
    paragraphs = results_md.split("\n## ")
    machine = paragraphs[0].split("\n\n", 1)[1].strip()
    kept = [f"#### {p.strip()}" for p in paragraphs[1:] if p.startswith(SECTIONS)]
    if len(kept) != len(SECTIONS):
        raise ValueError(f"results file lacks one of the sections {SECTIONS}")
    return "\n\n".join([machine, *kept])


def update_readme(readme: Path, results: Path) -> None:
    """Replace the README's benchmark block with the summary of `results`."""
    text = readme.read_text()
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"{readme} has no {START} ... {END} block")
    block = f"{START}\n{summary(results.read_text())}\n{END}"
    readme.write_text(pattern.sub(lambda _: block, text))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "cpu-full.md")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args()
    update_readme(args.readme, args.results)
    print(f"{args.readme}: benchmark block updated from {args.results}")


if __name__ == "__main__":
    main()
