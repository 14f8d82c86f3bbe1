"""Statistics of an ablation grid: mean ± std over seeds, paired differences with Student's t intervals, verdicts.

A variant is compared with a reference (``baseline``, and the stock model one scale up such as ``baseline@s``) run by
run: the difference of their metrics for the same seed, averaged over the seeds both have. The 95% confidence
interval of that mean is Student's t with n - 1 degrees of freedom; a verdict of 'better' or 'worse' needs the whole
interval on one side of 0. Where it has not, the observed mean and spread of the differences give the number of seeds
whose interval would exclude 0, unless the difference is too small to matter (below `NEGLIGIBLE`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from ultralytics_cbam.utils.checks import positive_int

__all__ = ("compare", "identical_seeds", "seeds_needed", "summarize", "t_cdf", "t_quantile", "verdict")

METRICS = {"map50": "mAP50", "map50_95": "mAP50-95"}
VERDICT_METRIC = "map50_95"  # Ultralytics' fitness is mostly mAP50-95
LEVEL = 0.95
BETTER, WORSE, SAME = "better", "worse", "no detectable difference"
NEGLIGIBLE = 0.005  # |Δ mAP50-95| below this is too small to matter, whatever the number of seeds
MAX_SEEDS = 1000  # seeds_needed gives up beyond this


def t_cdf(t: float, df: int) -> float:
    """Student's t distribution function for an integer number of degrees of freedom (exact finite series)."""
    positive_int("df", df)
    theta = math.atan(t / math.sqrt(df))
    c2, s = math.cos(theta) ** 2, math.sin(theta)
    if df % 2:  # odd: 1/2 + (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)) / pi
        term, total = 1.0, 1.0 if df > 1 else 0.0
        for j in range(1, (df - 1) // 2):
            term *= c2 * 2 * j / (2 * j + 1)
            total += term
        return 0.5 + (theta + s * math.cos(theta) * total) / math.pi
    term, total = 1.0, 1.0  # even: 1/2 + sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...) / 2
    for j in range(1, df // 2):
        term *= c2 * (2 * j - 1) / (2 * j)
        total += term
    return 0.5 + s * total / 2


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with df degrees of freedom (bisection on `t_cdf`)."""
    if not 0 < p < 1:
        raise ValueError(f"p must lie strictly between 0 and 1, got {p!r}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
        if hi - lo < 1e-12 * hi:
            break
    return (lo + hi) / 2


def compare(variant: dict[int, float], reference: dict[int, float], level: float = LEVEL) -> dict:
    """Paired difference variant - reference over the seeds both have.

    Args:
        variant: Seed -> metric of the variant.
        reference: Seed -> metric of the reference.
        level: Confidence level of the interval.

    Returns:
        (dict): n (pairs), mean, lo and hi (NaN below 2 pairs), and verdict ('better', 'worse' or
            'no detectable difference').
    """
    diffs = [variant[s] - reference[s] for s in sorted(set(variant) & set(reference))]
    n = len(diffs)
    mean = statistics.fmean(diffs) if diffs else math.nan
    if n < 2:
        return {"n": n, "mean": mean, "sd": math.nan, "lo": math.nan, "hi": math.nan, "verdict": SAME}
    sd = statistics.stdev(diffs)
    half = t_quantile((1 + level) / 2, n - 1) * sd / math.sqrt(n)
    lo, hi = mean - half, mean + half
    return {"n": n, "mean": mean, "sd": sd, "lo": lo, "hi": hi, "verdict": verdict(lo, hi)}


def verdict(lo: float, hi: float) -> str:
    """'better' or 'worse' when the whole interval [lo, hi] lies above or below 0, else 'no detectable difference'."""
    return BETTER if lo > 0 else WORSE if hi < 0 else SAME


def seeds_needed(mean: float, sd: float, level: float = LEVEL) -> int | None:
    """Seeds whose paired-difference interval would exclude 0, if the differences kept this mean and spread.

    The smallest n >= 2 with t_{(1 + level) / 2, n - 1} * sd / sqrt(n) < |mean|; None where no n up to `MAX_SEEDS`
    does (mean 0, or a spread too large for the mean).
    """
    if math.isnan(mean) or math.isnan(sd) or mean == 0:
        return None

    def decides(n: int) -> bool:  # the half-width shrinks as n grows, so a bisection finds the smallest n
        return t_quantile((1 + level) / 2, n - 1) * sd / math.sqrt(n) < abs(mean)

    if not decides(MAX_SEEDS):
        return None
    lo, hi = 1, MAX_SEEDS  # decides(hi) holds; lo is below every n that decides
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if decides(mid) else (mid, hi)
    return hi


def decision_note(result: dict) -> str:
    """What would decide an undecided comparison (`compare`'s result): more seeds, or nothing since it is negligible."""
    if result["verdict"] != SAME or result["n"] == "":
        return ""
    if result["n"] < 2:
        return "one pair: no interval"
    if abs(result["mean"]) < NEGLIGIBLE:
        return f"Δ within ±{NEGLIGIBLE}: too small to matter"
    n = seeds_needed(result["mean"], result["sd"])
    return f"more than {MAX_SEEDS} seeds would decide it" if n is None else f"about {n} seeds would decide it"


def _outcome(run: dict) -> object:
    """What two runs of one variant share when the seed did not take effect: every final loss and metric."""
    return run.get("final") or (run["map50"], run["map50_95"], sorted(run.get("metrics", {}).items()))


def identical_seeds(runs: list[dict]) -> dict[str, list[tuple[int, int]]]:
    """Variant -> pairs of its seeds whose runs ended with identical losses and metrics."""
    found: dict[str, list[tuple[int, int]]] = {}
    by_variant: dict[str, list[dict]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], []).append(run)
    for name, group in by_variant.items():
        group = sorted(group, key=lambda r: r["seed"])
        for i, a in enumerate(group):
            for b in group[i + 1 :]:
                if _outcome(a) == _outcome(b):
                    found.setdefault(name, []).append((a["seed"], b["seed"]))
    return found


def references(order: Sequence[str]) -> list[str]:
    """The variants every other is compared with: 'baseline', then stock models of other scales ('baseline@s')."""
    return [name for name in order if name == "baseline" or name.startswith("baseline@")]


def summarize(runs: list[dict], order: Sequence[str] | None = None) -> list[dict]:
    """One row per variant: runs, params, GFLOPs, latency, mean/std of each metric, and the paired comparisons.

    Columns 'vs_<ref>_<metric>' (mean difference), '..._lo' / '..._hi' (95% interval, Student's t), 'vs_<ref>_pairs'
    and 'vs_<ref>_verdict' (on mAP50-95) compare the variant with each reference of `references`; 'warning' names
    seeds that gave identical runs.
    """
    by_variant: dict[str, list[dict]] = {}
    for run in runs:
        by_variant.setdefault(run["variant"], []).append(run)
    names = [n for n in order if n in by_variant] if order is not None else list(by_variant)
    identical = identical_seeds(runs)
    rows = []
    for name in names:
        group = by_variant[name]
        row = {"variant": name, "runs": len(group), "params": group[0]["params"], "gflops": group[0]["gflops"]}
        row["latency_ms"] = statistics.fmean(r["latency_ms"] for r in group)
        for key in METRICS:
            values = [r[key] for r in group]
            row[f"{key}_mean"] = statistics.fmean(values)
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else math.nan
        for ref in references(names):
            for key in METRICS:
                result = compare(*({r["seed"]: r[key] for r in by_variant[v]} for v in (name, ref)))
                if name == ref:  # the reference itself: nothing to compare
                    result = {"n": "", "mean": math.nan, "sd": math.nan, "lo": math.nan, "hi": math.nan, "verdict": ""}
                row |= {f"vs_{ref}_{key}": result["mean"], f"vs_{ref}_{key}_lo": result["lo"]}
                row[f"vs_{ref}_{key}_hi"] = result["hi"]
                if key == VERDICT_METRIC:
                    row |= {f"vs_{ref}_pairs": result["n"], f"vs_{ref}_verdict": result["verdict"]}
                    row[f"vs_{ref}_decides"] = decision_note(result)
        pairs = ", ".join(f"{a} and {b}" for a, b in identical.get(name, []))
        row["warning"] = f"seeds {pairs} gave identical results: the seed did not take effect" if pairs else ""
        rows.append(row)
    return rows


def table_columns(rows: list[dict]) -> list[str]:
    """Columns of results.csv, in order."""
    base = ["variant", "runs", "params", "gflops", "latency_ms"]
    base += [f"{k}_{s}" for k in METRICS for s in ("mean", "std")]
    extra = [c for c in (rows[0] if rows else {}) if c not in base and c != "warning"]
    return [*base, *extra, "warning"]
