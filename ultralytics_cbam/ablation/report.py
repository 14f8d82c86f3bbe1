"""Outputs of an ablation grid: runs.csv, results.csv, results.md and results.png."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from ultralytics_cbam.ablation.stats import LEVEL, METRICS, VERDICT_METRIC, references, table_columns

RUN_COLUMNS = ("variant", "seed", "params", "gflops", "latency_ms", "map50", "map50_95", "train_s", "run_dir")


def write_csv(file: Path, rows: list[dict], columns: Sequence[str]) -> None:
    """Rows as CSV, NaN as an empty cell."""

    def cell(value):
        return "" if isinstance(value, float) and math.isnan(value) else value

    with open(file, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows([cell(row.get(c, "")) for c in columns] for row in rows)


def _mean_std(mean: float, std: float) -> str:
    return f"{mean:.3f}" if math.isnan(std) else f"{mean:.3f} ± {std:.3f}"


def _difference(row: dict, ref: str) -> str:
    key = f"vs_{ref}_{VERDICT_METRIC}"
    if row["variant"] == ref or math.isnan(row[key]):
        return "—"
    if math.isnan(row[f"{key}_lo"]):
        return f"{row[key]:+.3f} (1 seed, no interval)"
    return f"{row[key]:+.3f} [{row[f'{key}_lo']:+.3f}, {row[f'{key}_hi']:+.3f}]"


def markdown_table(rows: list[dict], descriptions: dict[str, str]) -> str:
    """The results table in Markdown: cost, mAP as mean ± std over seeds, paired differences and verdicts."""
    refs = references([r["variant"] for r in rows])
    metric = METRICS[VERDICT_METRIC]
    head = ["variant", "model", "seeds", "params (M)", "GFLOPs", "latency (ms)", "mAP50", "mAP50-95"]
    for ref in refs:
        head += [f"Δ {metric} vs {ref} [{LEVEL:.0%} CI, Student's t]", f"verdict vs {ref}"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * 6 + "---:|---|" * len(refs)]
    for r in rows:
        cells = [r["variant"], descriptions.get(r["variant"], ""), str(r["runs"]), f"{r['params'] / 1e6:.3f}"]
        cells += [f"{r['gflops']:.2f}", f"{r['latency_ms']:.1f}"]
        cells += [_mean_std(r[f"{k}_mean"], r[f"{k}_std"]) for k in METRICS]
        for ref in refs:
            note = r[f"vs_{ref}_decides"]
            cells += [_difference(r, ref), (r[f"vs_{ref}_verdict"] or "—") + (f" ({note})" if note else "")]
        lines.append("| " + " | ".join(cells) + " |")
    if refs:
        lines += [
            "",
            f"Δ: the variant's {metric} minus the reference's, trained with the same seed, averaged over the seeds; in "
            f"brackets its {LEVEL:.0%} confidence interval from Student's t with (seeds - 1) degrees of freedom. "
            "'better' or 'worse' needs the whole interval on one side of 0; where it is not, the seeds that would "
            "decide it if the differences kept their mean and spread, unless Δ is too small to matter. Latency: "
            "median CPU forward pass, batch 1.",
        ]
    else:
        lines += ["", "No 'baseline' in the grid, so no paired differences."]
    lines += [f"\n**Warning:** {r['variant']}: {r['warning']}." for r in rows if r["warning"]]
    return "\n".join(lines) + "\n"


def plot_table(rows: list[dict], file: Path) -> None:
    """Paired differences of mAP50-95 with their intervals (left), and each variant's mAP50-95 with its cost (right)."""
    import numpy as np
    from matplotlib.figure import Figure

    refs = references([r["variant"] for r in rows])
    key, metric = f"{VERDICT_METRIC}", METRICS[VERDICT_METRIC]
    fig = Figure(figsize=(max(9.0, 0.7 * len(rows) + 6), 0.32 * len(rows) + 3.4), dpi=100)
    diffs, means = fig.subplots(1, 2, gridspec_kw={"width_ratios": [max(len(rows), 2), 4]})
    x = np.arange(len(rows))
    colours = {"better": "tab:green", "worse": "tab:red"}
    for j, ref in enumerate(refs):
        offset = (j - (len(refs) - 1) / 2) * 0.25
        for i, r in enumerate(rows):
            mean, lo, hi = (r[f"vs_{ref}_{key}{s}"] for s in ("", "_lo", "_hi"))
            if r["variant"] == ref or math.isnan(mean):
                continue
            err = [[0.0], [0.0]] if math.isnan(lo) else [[mean - lo], [hi - mean]]
            colour = colours.get(r[f"vs_{ref}_verdict"], "tab:gray")
            diffs.errorbar(i + offset, mean, yerr=err, fmt="os^D"[j % 4], color=colour, capsize=4)
        diffs.plot([], [], "os^D"[j % 4], color="black", label=f"vs {ref}")
    diffs.axhline(0, color="black", linewidth=0.8)
    diffs.set_xticks(x, [r["variant"] for r in rows], rotation=30, ha="right", fontsize=10)
    diffs.set_xlim(-0.6, len(rows) - 0.4)
    diffs.set_ylabel(f"Δ {metric} vs reference, same seed", fontsize=10)
    diffs.set_title(f"{LEVEL:.0%} CI (Student's t); green better, red worse, grey undecided", fontsize=10)
    if refs:
        diffs.legend(fontsize=9)
    y = np.arange(len(rows))[::-1]  # the table's order, top to bottom
    for yi, r in zip(y, rows, strict=True):
        std = 0 if math.isnan(r[f"{key}_std"]) else r[f"{key}_std"]
        means.errorbar(r[f"{key}_mean"], yi, xerr=std, fmt="o", color="tab:blue", capsize=3)
    labels = [f"{r['variant']}  {r['params'] / 1e6:.2f} M, {r['latency_ms']:.0f} ms" for r in rows]
    means.set_yticks(y, labels, fontsize=9)
    means.set_ylim(-0.6, len(rows) - 0.4)
    means.set_xlabel(f"{metric} (mean ± std over seeds)", fontsize=10)
    means.set_title("parameters, CPU latency (batch 1)", fontsize=10)
    means.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(file)


def write_outputs(runs: list[dict], table: list[dict], files: dict[str, Path], descriptions: dict[str, str]) -> None:
    """Write runs.csv, results.csv, results.md and results.png."""
    write_csv(files["runs_csv"], runs, RUN_COLUMNS)
    write_csv(files["csv"], table, table_columns(table))
    files["markdown"].write_text(markdown_table(table, descriptions), encoding="utf-8")
    plot_table(table, files["plot"])
