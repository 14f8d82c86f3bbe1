"""Ablation statistics: Student's t, paired differences, verdicts, the identical-seed warning, tables and plot."""

from __future__ import annotations

import math
import statistics

import cv2
import numpy as np
import pytest

from ultralytics_cbam.ablation.report import markdown_table, plot_table, write_outputs
from ultralytics_cbam.ablation.stats import (
    compare,
    decision_note,
    identical_seeds,
    seeds_needed,
    summarize,
    t_cdf,
    t_quantile,
    verdict,
)

# Two-sided 95% points of Student's t (the 0.975 quantile), from printed tables
T975 = {1: 12.706205, 2: 4.302653, 3: 3.182446, 4: 2.776445, 9: 2.262157, 29: 2.045230}


@pytest.mark.parametrize(("df", "expected"), T975.items())
def test_t_quantile_matches_printed_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=2e-6)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=2e-6)
    assert t_cdf(expected, df) == pytest.approx(0.975, abs=1e-7)


def test_t_cdf_closed_forms():
    for t in (-3.0, -0.4, 0.0, 1.1, 6.0):
        assert t_cdf(t, 1) == pytest.approx(0.5 + math.atan(t) / math.pi)  # Cauchy
        assert t_cdf(t, 2) == pytest.approx(0.5 + t / (2 * math.sqrt(2 + t * t)))
    assert t_cdf(1.959964, 10**4) == pytest.approx(0.975, abs=1e-4)  # tends to the normal
    with pytest.raises(ValueError, match="df"):
        t_cdf(1.0, 0)


def _interval(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95% interval of paired differences, by the textbook formula with the printed t quantile."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    half = T975[n - 1] * sd / math.sqrt(n)
    return mean, mean - half, mean + half


@pytest.mark.parametrize(
    ("diffs", "verdict"),
    [
        ([0.04, 0.05, 0.045], "better"),  # interval about [+0.033, +0.057]
        ([0.04, 0.02, 0.07], "no detectable difference"),  # about [-0.019, +0.106]
        ([-0.03, -0.02, -0.035, -0.025, -0.03], "worse"),
        ([0.01, -0.01], "no detectable difference"),
    ],
)
def test_paired_difference_interval_and_verdict(diffs, verdict):
    seeds = [3, 1, 4, 0, 2][: len(diffs)]
    reference = {s: 0.4 + 0.01 * s for s in seeds} | {9: 0.1}  # seed 9 has no partner and is left out
    variant = {s: reference[s] + d for s, d in zip(seeds, diffs, strict=True)} | {8: 0.9}
    mean, lo, hi = _interval(diffs)
    result = compare(variant, reference)
    assert result["n"] == len(diffs)
    assert result["mean"] == pytest.approx(mean)
    assert result["lo"] == pytest.approx(lo) and result["hi"] == pytest.approx(hi)
    assert result["verdict"] == verdict


def test_one_pair_gives_no_interval_and_no_verdict_of_difference():
    result = compare({0: 0.9}, {0: 0.1, 1: 0.2})
    assert result["n"] == 1 and result["mean"] == pytest.approx(0.8)
    assert math.isnan(result["lo"]) and math.isnan(result["hi"])
    assert result["verdict"] == "no detectable difference"


def _runs(values: dict[str, list[float]], final: dict | None = None) -> list[dict]:
    """Runs of variants with mAP50-95 `values` by seed 0, 1, ...; mAP50 a fixed step above."""
    runs = []
    for name, maps in values.items():
        for seed, m in enumerate(maps):
            cost = {"params": 1000 + len(name), "gflops": 1.5, "latency_ms": 5.0 + seed}
            outcome = {"final": {"train/box_loss": 1.0 + m + seed, "metrics/mAP50-95(B)": m}}
            runs.append({"variant": name, "seed": seed, "map50": m + 0.1, "map50_95": m, **cost, **outcome})
    return runs


def test_summarize_compares_with_baseline_and_the_scaled_up_baseline():
    values = {
        "baseline": [0.40, 0.44, 0.42],
        "cbam": [0.38, 0.41, 0.40],
        "baseline@s": [0.50, 0.55, 0.52],
    }
    table = {r["variant"]: r for r in summarize(_runs(values), order=["baseline", "cbam", "baseline@s", "absent"])}
    assert list(table) == ["baseline", "cbam", "baseline@s"]
    cbam = table["cbam"]
    assert cbam["map50_95_mean"] == pytest.approx(statistics.fmean(values["cbam"]))
    assert cbam["map50_95_std"] == pytest.approx(statistics.stdev(values["cbam"]))
    for ref in ("baseline", "baseline@s"):
        mean, lo, hi = _interval([a - b for a, b in zip(values["cbam"], values[ref], strict=True)])
        assert cbam[f"vs_{ref}_map50_95"] == pytest.approx(mean)
        assert (cbam[f"vs_{ref}_map50_95_lo"], cbam[f"vs_{ref}_map50_95_hi"]) == (pytest.approx(lo), pytest.approx(hi))
        assert cbam[f"vs_{ref}_map50"] == pytest.approx(mean)  # mAP50 is mAP50-95 + 0.1 in every run
        assert cbam[f"vs_{ref}_pairs"] == 3
    assert cbam["vs_baseline_verdict"] == "worse"  # -0.02, -0.03, -0.02: interval about [-0.037, -0.012]
    assert cbam["vs_baseline@s_verdict"] == "worse"
    assert table["baseline@s"]["vs_baseline_verdict"] == "better"
    assert table["baseline"]["vs_baseline_verdict"] == "" and math.isnan(table["baseline"]["vs_baseline_map50_95"])
    assert all(r["warning"] == "" for r in table.values())


def test_identical_seeds_are_named():
    runs = _runs({"baseline": [0.4, 0.5, 0.6], "cbam": [0.3, 0.3, 0.35]})
    assert identical_seeds(runs) == {}  # equal mAP alone is no sign: the losses differ
    for run in runs:
        if run["variant"] == "cbam" and run["seed"] in (0, 2):
            run["final"] = {"train/box_loss": 1.25, "metrics/mAP50-95(B)": 0.3}
    assert identical_seeds(runs) == {"cbam": [(0, 2)]}
    table = {r["variant"]: r for r in summarize(runs)}
    assert table["baseline"]["warning"] == ""
    assert "seeds 0 and 2" in table["cbam"]["warning"] and "did not take effect" in table["cbam"]["warning"]
    text = markdown_table(list(table.values()), {})
    assert "**Warning:** cbam: seeds 0 and 2 gave identical results" in text


def test_markdown_table_names_the_interval_and_gives_verdicts():
    values = {"baseline": [0.40, 0.44, 0.42], "cbam": [0.45, 0.49, 0.47], "spatial": [0.41, 0.43, 0.44]}
    rows = summarize(_runs(values))
    lines = markdown_table(rows, {"cbam": "CBAM everywhere"}).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[-2:] == ["Δ mAP50-95 vs baseline [95% CI, Student's t]", "verdict vs baseline"]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:5]}
    assert cells["baseline"][-2:] == ["—", "—"]
    assert cells["cbam"][1] == "CBAM everywhere"
    assert cells["cbam"][-2:] == ["+0.050 [+0.050, +0.050]", "better"]  # the same +0.05 on every seed
    mean, lo, hi = _interval([0.01, -0.01, 0.02])
    n = seeds_needed(mean, statistics.stdev([0.01, -0.01, 0.02]))
    expected = f"no detectable difference (about {n} seeds would decide it)"
    assert cells["spatial"][-2:] == [f"{mean:+.3f} [{lo:+.3f}, {hi:+.3f}]", expected]
    assert cells["spatial"][6:8] == ["0.527 ± 0.015", "0.427 ± 0.015"]
    assert any("Student's t with (seeds - 1) degrees of freedom" in line for line in lines)


def test_without_baseline_the_table_says_so():
    rows = summarize(_runs({"cbam": [0.4, 0.5]}))
    assert "No 'baseline' in the grid" in markdown_table(rows, {})
    assert not any(k.startswith("vs_") for k in rows[0])


def test_outputs_and_plot(tmp_path):
    runs = _runs({"baseline": [0.40, 0.44], "cbam": [0.45, 0.47], "baseline@s": [0.5, 0.52], "k3": [0.41, 0.40]})
    runs = [{**r, "train_s": 1.0, "run_dir": str(tmp_path / f"{r['variant']}-seed{r['seed']}")} for r in runs]
    table = summarize(runs)
    files = {k: tmp_path / f for k, f in (("runs_csv", "runs.csv"), ("csv", "results.csv"))}
    files |= {"markdown": tmp_path / "results.md", "plot": tmp_path / "results.png"}
    write_outputs(runs, table, files, {})
    import csv

    with open(files["csv"], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["variant"] for r in rows] == ["baseline", "cbam", "baseline@s", "k3"]
    assert rows[0]["vs_baseline_map50_95_lo"] == ""  # baseline against itself: no interval (NaN as an empty cell)
    assert float(rows[1]["vs_baseline_map50_95"]) == pytest.approx(0.04)
    assert rows[1]["vs_baseline_verdict"] in ("better", "no detectable difference")
    assert {"vs_baseline@s_map50_95_lo", "vs_baseline@s_verdict", "warning"} <= set(rows[0])
    image = cv2.imread(str(files["plot"]))
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 500
    assert np.ptp(image) > 100  # drawn, not blank
    plot_table(table[:1], tmp_path / "one.png")  # the baseline alone: nothing to compare, still a figure
    assert (tmp_path / "one.png").stat().st_size > 1000


# --- verdicts at their edges, other confidence levels, seeds that would decide -----------------------------------


def test_identical_runs_give_no_detectable_difference():
    same = {0: 0.5, 1: 0.6, 2: 0.55}
    result = compare(same, dict(same))
    assert result["mean"] == 0 and result["lo"] == 0 and result["hi"] == 0
    assert result["verdict"] == "no detectable difference"


@pytest.mark.parametrize(
    ("lo", "hi", "expected"),
    [
        (1e-9, 0.1, "better"),
        (-1e-9, 0.1, "no detectable difference"),
        (0.0, 0.1, "no detectable difference"),  # an interval that touches 0 does not exclude it
        (-0.1, -1e-9, "worse"),
        (-0.1, 1e-9, "no detectable difference"),
        (-0.1, 0.0, "no detectable difference"),
    ],
)
def test_verdict_at_the_edges_of_zero(lo, hi, expected):
    assert verdict(lo, hi) == expected


@pytest.mark.parametrize(("offset", "expected"), [(1e-9, "better"), (-1e-9, "no detectable difference")])
def test_compare_puts_an_interval_bound_just_beside_zero(offset, expected):
    """Two pairs d +- e: sd = e * sqrt(2), so the half-width is t(0.975, 1) * e, with t(p, 1) = tan(pi (p - 1/2)) (the
    Cauchy distribution); a mean of that plus `offset` puts the lower bound at `offset`."""
    e = 0.01
    mean = math.tan(math.pi * 0.475) * e + offset
    result = compare({0: mean + e, 1: mean - e}, {0: 0.0, 1: 0.0})
    assert result["lo"] == pytest.approx(offset, abs=1e-12)
    assert result["verdict"] == expected
    mirrored = compare({0: 0.0, 1: 0.0}, {0: mean + e, 1: mean - e})
    assert mirrored["hi"] == pytest.approx(-offset, abs=1e-12)
    assert mirrored["verdict"] == {"better": "worse"}.get(expected, expected)


# One- and two-sided points of Student's t from printed tables: the 0.95 and 0.995 quantiles
T95 = {2: 2.919986, 4: 2.131847}
T995 = {2: 9.924843, 4: 4.604095}


@pytest.mark.parametrize(("level", "table"), [(0.90, T95), (0.99, T995)])
@pytest.mark.parametrize("diffs", [[0.04, 0.02, 0.07], [0.01, 0.03, -0.02, 0.05, 0.02]])
def test_other_confidence_levels_give_their_interval(level, table, diffs):
    n = len(diffs)
    mean = sum(diffs) / n
    half = table[n - 1] * statistics.stdev(diffs) / math.sqrt(n)
    result = compare(dict(enumerate(diffs)), dict.fromkeys(range(n), 0.0), level=level)
    assert result["lo"] == pytest.approx(mean - half, abs=1e-7) and result["hi"] == pytest.approx(mean + half, abs=1e-7)


def test_seeds_needed_by_hand():
    """Differences of mean 0.02 and sd 0.02: n = 6 gives t(0.975, 5) * 0.02 / sqrt(6) = 2.570582 * 0.008165 = 0.0210
    (not below 0.02), n = 7 gives 2.446912 * 0.02 / sqrt(7) = 0.01850 (below): 7 seeds."""
    assert seeds_needed(0.02, 0.02) == 7
    assert seeds_needed(-0.02, 0.02) == 7  # the sign does not matter
    assert seeds_needed(0.02, 0.0) == 2  # no spread: two seeds decide
    assert seeds_needed(0.0, 0.01) is None  # no difference: no number of seeds decides
    assert seeds_needed(1e-6, 1.0) is None  # beyond any plausible grid


def test_decision_notes_for_undecided_rows():
    undecided = compare({0: 0.52, 1: 0.55, 2: 0.50}, {0: 0.50, 1: 0.51, 2: 0.51})  # mean +0.0167
    assert undecided["verdict"] == "no detectable difference"
    n = seeds_needed(undecided["mean"], undecided["sd"])
    assert decision_note(undecided) == f"about {n} seeds would decide it"
    tiny = compare({0: 0.501, 1: 0.503, 2: 0.499}, {0: 0.50, 1: 0.50, 2: 0.50})
    assert decision_note(tiny) == "Δ within ±0.005: too small to matter"
    assert decision_note(compare({0: 0.6}, {0: 0.5})) == "one pair: no interval"
    decided = compare({0: 0.6, 1: 0.61, 2: 0.62}, {0: 0.5, 1: 0.5, 2: 0.5})
    assert decided["verdict"] == "better" and decision_note(decided) == ""


def test_results_table_states_the_seeds_each_undecided_variant_needs():
    runs = _runs({"baseline": [0.50, 0.51, 0.51], "cbam": [0.52, 0.55, 0.50], "se": [0.501, 0.512, 0.509]})
    rows = summarize(runs, ["baseline", "cbam", "se"])
    lines = {line.split(" | ")[0].strip("| "): line for line in markdown_table(rows, {}).splitlines()}
    n = seeds_needed(statistics.fmean([0.02, 0.04, -0.01]), statistics.stdev([0.02, 0.04, -0.01]))
    assert lines["cbam"].endswith(f"| no detectable difference (about {n} seeds would decide it) |")
    assert lines["se"].endswith("| no detectable difference (Δ within ±0.005: too small to matter) |")
    assert lines["baseline"].endswith("| — | — |")
