"""Write the summary of the saved full runs into the ``benchmark`` block of benchmarks/README.md: the tables of
cpu-full.json but the per-layer and forward-variant ones, then the speed targets of each cpu-full-*.json (the same run
on another machine or setting); ``rewrite=True`` first evaluates each run's targets again and rewrites its JSON and
Markdown.

Usage (from the repository root):
    python -m benchmarks.summary
    python -m benchmarks.summary rewrite=True
    python -m benchmarks.summary results=benchmarks/results/cpu-variants.json rewrite=True readme=None
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks import report
from benchmarks.config import RESULTS_DIR, listed, options, refusing
from benchmarks.readme_tables import checked, write_block

PENDING = (
    "No full run is saved yet: `python -m benchmarks.run mode=full` writes `benchmarks/results/cpu-full.json`, then"
    " `python -m benchmarks.summary` puts its summary here."
)

DEFAULTS = {"results": None, "readme": Path(__file__).resolve().parent / "README.md", "rewrite": False}


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


def main(argv: list[str] | None = None) -> None:
    """Rewrite the runs if asked, then the block; key=value arguments as DEFAULTS names them."""
    with refusing("benchmarks.summary"):
        args = DEFAULTS | options(argv, DEFAULTS, "benchmarks.summary", files=("results", "readme"))
        readme = checked(args["readme"], "benchmark")
    results = [Path(p) for p in listed(args["results"])] if args["results"] else default_results()
    if not results:
        raise SystemExit(PENDING)
    for path in results if args["rewrite"] else []:
        report.rewrite(path)
        print(f"{path}: targets evaluated again, JSON and Markdown rewritten")
    if readme is not None:
        update_readme(readme, *results)
        print(f"{readme}: benchmark block written from {', '.join(map(str, results))}")


if __name__ == "__main__":
    main()
