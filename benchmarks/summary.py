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

from pathlib import Path

from benchmarks import report
from benchmarks.config import listed, options
from benchmarks.readme_tables import PENDING, default_results, update_readme

DEFAULTS = {"results": None, "readme": Path(__file__).resolve().parent / "README.md", "rewrite": False}


def main(argv: list[str] | None = None) -> None:
    """Rewrite the runs if asked, then the block; key=value arguments as DEFAULTS names them."""
    args = DEFAULTS | options(argv, DEFAULTS, "benchmarks.summary")
    results = [Path(p) for p in listed(args["results"])] if args["results"] else default_results()
    if not results:
        raise SystemExit(PENDING)
    for path in results if args["rewrite"] else []:
        report.rewrite(path)
        print(f"{path}: targets evaluated again, JSON and Markdown rewritten")
    if args["readme"] is not None:
        update_readme(Path(args["readme"]), *results)
        print(f"{args['readme']}: benchmark block written from {', '.join(map(str, results))}")


if __name__ == "__main__":
    main()
