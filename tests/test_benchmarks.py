"""The benchmark harness: settings, the interleaved schedule, paired ratios and the README summary."""

from __future__ import annotations

import time

import pytest

from benchmarks import readme_tables
from benchmarks.config import build_config
from benchmarks.timing import Timing, interleaved, paired_ratio


def test_settings_name_the_bad_key_and_value():
    with pytest.raises(ValueError, match="roundz"):
        build_config({"roundz": 3})
    with pytest.raises(ValueError, match="mode must be one of"):
        build_config({"mode": "fast"})
    with pytest.raises(ValueError, match="rounds must be a positive integer"):
        build_config({"rounds": 0})
    cfg = build_config({"scales": "n", "threads": 1})
    assert cfg.mode == "short" and cfg.scales == ("n",) and cfg.threads == 1


def test_interleaved_rotates_the_order_every_round():
    calls: list[str] = []
    candidates = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    times = interleaved(candidates, rounds=3, warmup=1)
    assert calls[:3] == ["a", "b", "c"]  # warm-up
    assert calls[3:6] == ["a", "b", "c"]  # one untimed call each, to size the samples
    assert calls[6:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert all(t.samples == 3 and t.calls_per_sample == 1 for t in times.values())


def test_fast_comparisons_get_more_rounds_to_fill_min_seconds():
    times = interleaved({"a": lambda: time.sleep(0.001), "b": lambda: None}, rounds=2, warmup=0, min_seconds=0.1)
    assert all(t.samples > 2 for t in times.values())  # about 0.1 s / 0.001 s
    assert times["a"].samples == times["b"].samples
    assert interleaved({"a": lambda: None}, rounds=3, warmup=0)["a"].samples == 3


def test_settle_pause_is_not_timed():
    times = interleaved({"a": lambda: None}, rounds=3, warmup=0, settle_s=0.02)
    assert times["a"].samples == 3 and max(times["a"].samples_ms) < 15


def test_paired_ratio_is_the_median_of_round_ratios():
    def timing(samples):
        return Timing(0, 0, 0, len(samples), 1, tuple(samples))

    ours, theirs = timing([1.0, 9.0, 2.0]), timing([2.0, 10.0, 2.0])
    assert paired_ratio(ours, theirs) == pytest.approx(sorted([0.5, 0.9, 1.0])[1])


RESULTS = """# CBAM benchmark (full mode)

Machine line.

## Speed targets (CPU): 1 of 1 met

| target | ratio |
|---|---|
| x | 0.9 |

## Module level

| layer |
|---|

## Model level

| model |
|---|
| yolov8n |
"""


def test_readme_block_is_rewritten_from_the_results(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{readme_tables.START}\nold\n{readme_tables.END}\noutro\n")
    results = tmp_path / "cpu-full.md"
    results.write_text(RESULTS)
    readme_tables.update_readme(readme, results)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert "Machine line." in text and "#### Speed targets (CPU): 1 of 1 met" in text
    assert "#### Model level" in text and "| yolov8n |" in text and "Module level" not in text


def test_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no block here\n")
    results = tmp_path / "cpu-full.md"
    results.write_text(RESULTS)
    with pytest.raises(ValueError, match=r"README\.md has no"):
        readme_tables.update_readme(readme, results)
    assert readme.read_text() == "no block here\n"
