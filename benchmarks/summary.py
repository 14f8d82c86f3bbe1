"""Write the summary of saved benchmark runs (every table of the first, the speed targets of each further one) into the
``benchmark`` block of benchmarks/README.md; ``rewrite=True`` first evaluates the targets of each run again and
rewrites its JSON and Markdown.

Usage (from the repository root):
    python -m benchmarks.summary                  # benchmarks/results/cpu-full.json, then cpu-full-*.json
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
    """Rewrite the results if asked, then the benchmark block; key=value arguments as DEFAULTS names them."""
    args = DEFAULTS | options(argv, DEFAULTS, "benchmarks.summary")
    results = [Path(p) for p in listed(args["results"])] if args["results"] else default_results()
    if not results:
        raise SystemExit(PENDING)
    for path in results if args["rewrite"] else []:
        print(f"{path}: targets evaluated again; {report.rewrite(path)} rewritten")
    if args["readme"] is not None:
        update_readme(Path(args["readme"]), *results)
        print(f"{args['readme']}: benchmark block updated from {', '.join(map(str, results))}")


if __name__ == "__main__":
    main()
