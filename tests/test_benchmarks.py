"""The benchmark harness: settings, the interleaved schedule, paired ratios, the README summary and the scripts'
command line."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import itertools
import json
import math
import random
import time
from pathlib import Path

import pytest
import torch
from helpers import save_checkpoint

from benchmarks import readme_tables
from benchmarks.config import RESULTS_DIR, build_config
from benchmarks.report import evaluate_targets, markdown, to_json
from benchmarks.timing import Timing, interleaved, paired_ratio, paired_ratio_interval


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


def _samples(values) -> Timing:
    return Timing(0, 0, 0, len(values), 1, tuple(values))


@pytest.mark.parametrize(("rounds", "ranks"), [(10, (2, 9)), (20, (6, 15)), (100, (40, 61))])
def test_ratio_interval_is_the_sign_test_interval_of_the_median(rounds, ranks):
    ratios = list(range(1, rounds + 1))  # the k-th smallest ratio is k; ranks from tables of the 95 % interval
    random.Random(rounds).shuffle(ratios)
    assert paired_ratio_interval(_samples(ratios), _samples([1.0] * rounds)) == ranks


def test_ratio_interval_of_thousands_of_rounds_follows_the_normal_approximation():
    rounds = 3000  # 2**3000 is beyond a float; model_seconds=150 takes about 2500 rounds at ONNX Runtime batch 1
    ratios = list(range(1, rounds + 1))
    random.Random(rounds).shuffle(ratios)
    low, high = paired_ratio_interval(_samples(ratios), _samples([1.0] * rounds))
    assert abs(low - (rounds / 2 - 1.959964 * math.sqrt(rounds) / 2)) <= 2  # the sign test's rank, approximately
    assert high == rounds + 1 - low


def test_ratio_interval_covers_the_true_median_95_percent_of_the_time():
    rng = random.Random(0)
    trials, covered = 2000, 0
    for _ in range(trials):
        ours = [rng.lognormvariate(0.0, 0.1) for _ in range(20)]  # ratios with median exp(0) = 1
        low, high = paired_ratio_interval(_samples(ours), _samples([1.0] * 20))
        covered += low <= 1.0 <= high
    assert 0.94 <= covered / trials <= 0.975  # 1 - 2 P(Binomial(20, 1/2) <= 5) = 0.9586


def test_ratio_interval_with_too_few_rounds_is_the_whole_range():
    assert paired_ratio_interval(_samples([3.0, 1.0, 2.0]), _samples([1.0] * 3)) == (1.0, 3.0)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        paired_ratio_interval(_samples([1.0]), _samples([1.0]), confidence=95)


def _model_record(kind: str, batch: int, ratio: float, interval: list[float]) -> dict:
    return {"device": "cpu", "scale": "n", "kind": kind, "batch": batch, "imgsz": 640, "ratio": ratio,
            "ratio_interval": interval, "ratio_of_minima": 1.0, "times": RESULTS["model"][0]["times"]}  # fmt: skip


def test_targets_are_met_within_noise_or_missed():
    """Met: the ratio at most the limit. Within noise: above it, the limit inside the interval. Missed: the whole
    interval above the limit."""
    results = {
        "meta": RESULTS["meta"],
        "model": [
            _model_record("onnxruntime", 1, 1.08, [1.07, 1.10]),
            _model_record("onnxruntime", 8, 1.09, [1.085, 1.1]),
            _model_record("train", 8, 1.083, [1.062, 1.109]),
        ],
    }
    targets = evaluate_targets(results)
    assert [t["outcome"] for t in targets] == ["met", "missed", "within noise"]
    results["targets"] = targets
    text = markdown(results)
    assert "## Speed targets (CPU): 1 met, 1 within noise, 1 missed (of 3)\n" in text
    assert "| yolov8n-cbam / yolov8n onnxruntime batch 1 | 1.080 | 1.070 – 1.100 | ≤ 1.08 | met |" in text
    assert "| yolov8n-cbam / yolov8n onnxruntime batch 8 | 1.090 | 1.085 – 1.100 | ≤ 1.08 | **missed** |" in text
    assert "| yolov8n-cbam / yolov8n train batch 8 | 1.083 | 1.062 – 1.109 | ≤ 1.07 | within noise |" in text
    assert "| ONNX Runtime | cpu | 1x640 | 50 | 50.5 | 1.080 | 1.070 – 1.100 | 1.000 |" in text


def test_each_measurement_has_its_limit():
    """Eager: 1.05 at batch 1, 1.03 at batch 8; training step 1.07; ONNX Runtime (default, static export) 1.08 and
    compiled 1.03 at every batch, in inference and training; module level: timm's CbamModule at every shape. Other
    rows have no target."""
    kinds = [("eager", 1), ("eager", 8), ("eager", 4), ("train", 8), ("onnxruntime", 1), ("onnxruntime", 8),
             ("onnxruntime-dynamic", 1), ("compiled", 1), ("compiled", 8), ("train-compiled", 8)]  # fmt: skip
    module = {**RESULTS["module"][0], "ratios": {"timm": 0.9, "paper": 2.0, "ultralytics": 2.0}}
    results = {"model": [_model_record(k, b, 1.0, [0.99, 1.01]) for k, b in kinds], "module": [module]}
    limits = {t["target"]: t["limit"] for t in evaluate_targets(results)}
    assert limits == {
        "module P2 yolov8n 1x32x160x160 inference: ours / timm": 1.0,
        "yolov8n-cbam / yolov8n eager batch 1": 1.05,
        "yolov8n-cbam / yolov8n eager batch 8": 1.03,
        "yolov8n-cbam / yolov8n train batch 8": 1.07,
        "yolov8n-cbam / yolov8n onnxruntime batch 1": 1.08,
        "yolov8n-cbam / yolov8n onnxruntime batch 8": 1.08,
        "yolov8n-cbam / yolov8n compiled batch 1": 1.03,
        "yolov8n-cbam / yolov8n compiled batch 8": 1.03,
        "yolov8n-cbam / yolov8n train-compiled batch 8": 1.03,
    }


def test_dynamic_onnx_rows_are_reported_without_a_target():
    """ONNX Runtime on dynamic exports gets its own rows in the model table; the targets stay on static exports."""
    times = RESULTS["model"][0]["times"]
    record = {"device": "cpu", "scale": "n", "kind": "onnxruntime-dynamic", "batch": 1, "imgsz": 640}
    results = {
        "meta": RESULTS["meta"],
        "model": [{**record, "ratio": 1.2, "ratio_interval": [1.1, 1.3], "ratio_of_minima": 1.2, "times": times}],
    }
    assert evaluate_targets(results) == []
    results["targets"] = []
    assert "| yolov8n | ONNX Runtime, dynamic export | cpu | 1x640 | 50 | 50.5 | 1.200 | 1.100 – 1.300 |" in markdown(
        results
    )


@pytest.mark.parametrize("dynamic", [False, True])
def test_onnx_exports_are_static_or_dynamic(tmp_path, dynamic):
    """The ONNX Runtime comparison times Ultralytics' export with fixed input shapes, and with free ones."""
    import onnx

    from benchmarks.model_bench import model_pair
    from benchmarks.onnx_runtime import export_onnx

    model = model_pair("n", 0, "cpu")["yolov8-cbam"]
    path = export_onnx("yolov8n-cbam.yaml", model, tmp_path, 2, 64, dynamic=dynamic)
    [image] = onnx.load(path).graph.input
    dims = [d.dim_value or d.dim_param for d in image.type.tensor_type.shape.dim]
    assert Path(path).parent == tmp_path and dims[1] == 3
    if dynamic:
        assert all(isinstance(d, str) for d in (dims[0], *dims[2:]))
    else:
        assert dims == [2, 3, 64, 64]


def test_model_pair_differs_only_by_the_cbam_layers():
    """yolov8n-cbam built for a comparison holds yolov8n's weights: with its CBAM layers bypassed it computes
    yolov8n's outputs exactly; its own draw of weights (the models built apart) does not."""
    from ultralytics.nn.tasks import DetectionModel

    from benchmarks.model_bench import model_pair
    from ultralytics_cbam.modules import CBAM

    stock, cbam = model_pair("n", seed=0, device="cpu").values()
    torch.manual_seed(0)
    apart = DetectionModel("yolov8n-cbam.yaml", nc=80, verbose=False)
    for model in (cbam, apart):
        for layer in model.model:
            if isinstance(layer, CBAM):
                layer.forward = lambda x: x
    x = torch.rand(2, 3, 64, 64)
    expected = _head_inputs(stock, x)
    assert all(torch.equal(a, b) for a, b in zip(_head_inputs(cbam, x), expected, strict=True))
    assert not any(torch.allclose(a, b) for a, b in zip(_head_inputs(apart, x), expected, strict=True))


def _head_inputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The feature maps a model's Detect head receives for `x` (training mode: BatchNorm on batch statistics)."""
    maps = []
    hook = model.model[-1].register_forward_pre_hook(lambda module, args: maps.extend(t.clone() for t in args[0]))
    with torch.no_grad():
        model.train()(x)
    hook.remove()
    return maps


MACHINE = {
    "cpu": "Test CPU",
    "logical_cpus": 2,
    "torch": "2.x",
    "ultralytics": "8.x",
    "onnxruntime": "1.x",
    "timm": "1.x",
}
RESULTS = {
    "meta": {"mode": "full", "threads": 2, "date": "2026-01-01 00:00 UTC", "machine": MACHINE},
    "targets": [
        {"target": "yolov8n eager b1", "ratio": 1.01, "limit": 1.03},
        {"target": "module cbam x", "ratio": 1.2, "limit": 1.0},
    ],
    "model": [
        {
            "scale": "n", "kind": "eager", "device": "cpu", "batch": 1, "imgsz": 640, "ratio": 1.01,
            "ratio_of_minima": 1.0, "times": {"yolov8": {"median_ms": 50.0}, "yolov8-cbam": {"median_ms": 50.5}},
        }
    ],
    "module": [
        {
            "device": "cpu", "scale": "n", "layer": "P2", "shape": [1, 32, 160, 160], "batch": b, "pass": "inference",
            "times": {"ours": {"median_ms": 1.0}, "paper": {"median_ms": 4.0}}, "ratios": {"paper": ratio},
        }
        for b, ratio in ((1, 0.5), (16, 0.25), (16, 0.125))
    ],
}  # fmt: skip


def test_readme_block_is_rewritten_from_the_results(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- benchmark:start -->\nold\n<!-- benchmark:end -->\noutro\n")
    results = tmp_path / "cpu-full.json"
    results.write_text(json.dumps(RESULTS))
    readme_tables.update_readme(readme, results)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert "Test CPU, 2 logical CPUs, torch threads: 2" in text and "2026-01-01 00:00 UTC" in text
    assert "#### Speed targets (CPU): 1 met, 0 within noise, 1 missed (of 2)" in text
    assert "| module cbam x | 1.200 | – | ≤ 1.0 | **missed** |" in text
    assert (
        "#### Model level" in text and "| yolov8n | eager PyTorch (fused) | cpu | 1x640 | 50 | 50.5 | 1.010 |" in text
    )
    assert "| ours / paper | 0.12 – 0.50 | 0.12 – 0.25 |" in text  # the range of each module-level ratio
    assert "#### Module level\n" not in text and "ours ms" not in text  # but not the per-layer table


def test_runs_on_other_machines_add_their_speed_targets(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- benchmark:start -->\nold\n<!-- benchmark:end -->\n")
    other = {
        **RESULTS,
        "meta": {**RESULTS["meta"], "date": "2026-02-02 00:00 UTC", "machine": {**MACHINE, "cpu": "Other CPU"}},
        "targets": [{"target": "yolov8n eager b1", "ratio": 1.05, "limit": 1.03}],
    }
    paths = [tmp_path / "cpu-full.json", tmp_path / "cpu-full-other.json"]
    for path, run in zip(paths, (RESULTS, other), strict=True):
        path.write_text(json.dumps(run))
    readme_tables.update_readme(readme, *paths)
    first, second = readme.read_text().split("#### Speed targets (CPU: Other CPU): 0 met, 0 within noise, 1 missed")
    assert "#### Speed targets (CPU: Test CPU): 1 met, 0 within noise, 1 missed" in first and "Model level" in first
    assert "| yolov8n eager b1 | 1.050 | – | ≤ 1.03 | **missed** |" in second and "Model level" not in second
    assert "Measured on Other CPU, 2 logical CPUs" in second and "2026-02-02 00:00 UTC." in second
    assert "2026-02-02" not in first and "Other CPU" not in first


def test_a_bad_results_file_among_several_is_named_and_the_readme_kept(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- benchmark:start -->\nold\n<!-- benchmark:end -->\n")
    good, bad = tmp_path / "cpu-full.json", tmp_path / "cpu-full-other.json"
    good.write_text(json.dumps(RESULTS))
    bad.write_text(json.dumps({**RESULTS, "targets": []}))
    with pytest.raises(ValueError, match=r"cpu-full-other\.json is not a benchmark results file"):
        readme_tables.update_readme(readme, good, bad)
    assert "old" in readme.read_text()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _sign_test_interval(ratios: list[float]) -> tuple[float, float]:
    """The 95 % interval of the median as benchmarks/README.md states it: the k-th smallest and k-th largest ratio for
    the largest k (up to the median's rank) with P(Binomial(n, 1/2) < k) <= 2.5 %; the whole range where none is."""
    ordered, n = sorted(ratios), len(ratios)
    at_most = list(itertools.accumulate(math.comb(n, i) for i in range(n + 1)))  # 2**n P(count <= i)
    k = max((k for k in range(1, (n + 1) // 2 + 1) if 40 * at_most[k - 1] <= 2**n), default=1)
    return ordered[k - 1], ordered[n - k]


def _comparisons(results: dict) -> list[tuple[float, list[float], list[float], list[float], int]]:
    """(ratio, interval, samples of ours, samples of the reference, decimals stored) of every comparison."""
    from benchmarks.cbam_variants import REFERENCE_FORWARD

    found = []
    for r in results.get("module", []):
        for other, ratio in r["ratios"].items():
            samples = (r["times"]["ours"]["samples_ms"], r["times"][other]["samples_ms"])
            found.append((ratio, r["ratio_intervals"][other], *samples, 3))
    for r in results.get("model", []):
        samples = (r["times"]["yolov8-cbam"]["samples_ms"], r["times"]["yolov8"]["samples_ms"])
        found.append((r["ratio"], r["ratio_interval"], *samples, 4))
        assert r["ratio_of_minima"] == pytest.approx(min(samples[0]) / min(samples[1]), abs=5e-5)
    for r in results.get("variants", []):
        for name, ratio in r["ratios"].items():
            samples = (r["times"][name]["samples_ms"], r["times"][REFERENCE_FORWARD]["samples_ms"])
            found.append((ratio, r["ratio_intervals"][name], *samples, 4))
    return found


def _timings(results: dict) -> list[dict]:
    return [t for part in ("module", "model", "variants") for r in results.get(part, []) for t in r["times"].values()]


def _check_against_samples(results: dict) -> int:
    """Assert that each ratio, interval, median and target outcome of `results` is what its raw samples give;
    return how many comparisons were checked."""
    for t in _timings(results):
        assert t["samples"] == len(t["samples_ms"])
        assert t["median_ms"] == pytest.approx(_median(t["samples_ms"]), abs=5e-5)  # stored rounded
    comparisons = _comparisons(results)
    for ratio, interval, ours, theirs, decimals in comparisons:
        rounds = [a / b for a, b in zip(ours, theirs, strict=True)]
        tolerance = 0.5 * 10**-decimals + 1e-12  # the harness stores them rounded
        assert ratio == pytest.approx(_median(rounds), abs=tolerance)
        assert interval == pytest.approx(list(_sign_test_interval(rounds)), abs=tolerance)
    measured = [(ratio, interval) for ratio, interval, *_ in comparisons]
    for t in results["targets"]:
        low, high = t["interval"]
        assert (t["ratio"], t["interval"]) in measured
        expected = "met" if t["ratio"] <= t["limit"] else "within noise" if low <= t["limit"] <= high else "missed"
        assert t["outcome"] == expected, t
    return len(comparisons)


# Saved before the results held raw samples: their ratios cannot be computed again. Every other one must hold them.
WITHOUT_SAMPLES = {"cpu-full.json", "cpu-full-2threads.json", "cpu-variants.json"}


def test_saved_ratios_and_intervals_follow_from_their_raw_samples():
    """Every saved results JSON that holds raw samples gives its ratios, intervals and outcomes again from them."""
    for path in sorted(RESULTS_DIR.glob("*.json")):
        results = json.loads(path.read_text())
        if "targets" not in results:  # the studies' run records, beside the benchmark results
            continue
        if any("samples_ms" in t for t in _timings(results)):
            assert _check_against_samples(results) > 0, path
        else:
            assert path.name in WITHOUT_SAMPLES, f"{path} holds no raw samples"


def test_a_run_saves_its_raw_samples_and_they_give_its_ratios(tmp_path, monkeypatch):
    """A small module-level run of the harness, in this process: the JSON it writes holds every sample of both sides
    of each comparison, and a restatement of the method computes its ratios, intervals and outcomes from them."""
    from benchmarks import module_bench, run

    timm = importlib.util.find_spec("timm") is not None  # the bench extra; without it, no target is measured
    variants = ("ours", "timm", "paper") if timm else ("ours", "ultralytics", "paper")
    monkeypatch.setattr(module_bench, "VARIANTS", variants)
    settings = {"parts": "module", "scales": "n", "imgsz": 64, "module_batches": 2, "rounds": 10, "warmup": 1}
    settings |= {"min_sample_s": 0.0, "threads": torch.get_num_threads(), "save_dir": str(tmp_path), "name": "tiny"}
    returned = run.main([f"{key}={value}" for key, value in settings.items()])
    text = (tmp_path / "tiny.json").read_text()
    saved = json.loads(text)
    assert saved == json.loads(json.dumps(returned)) and text == to_json(saved)
    assert all(line.endswith(("],", "]")) for line in text.splitlines() if '"samples_ms": [' in line)  # one line each
    cases = 2 * len(module_bench.cbam_input_shapes("n", 64))  # every CBAM layer, inference and training
    assert len(saved["module"]) == cases and all(len(t["samples_ms"]) == 10 for t in _timings(saved))
    assert _check_against_samples(saved) == cases * 2
    assert len(saved["targets"]) == (cases if timm else 0)
    assert (tmp_path / "tiny.md").read_text() == markdown(saved)


def test_readme_block_is_the_one_written_from_the_saved_results(tmp_path):
    """benchmarks/README.md shows the summary of the saved full runs, or says that none is saved."""
    readme = Path(readme_tables.__file__).parent / "README.md"
    runs = readme_tables.default_results()
    if not runs:
        expected = f"<!-- benchmark:start -->\n{readme_tables.PENDING}\n<!-- benchmark:end -->"
        assert expected in readme.read_text()
        return
    copy = tmp_path / "README.md"
    copy.write_text(readme.read_text())
    assert runs[0].name == "cpu-full.json"
    readme_tables.update_readme(copy, *runs)
    assert copy.read_text() == readme.read_text()


@pytest.mark.parametrize("content", ["not json", json.dumps({**RESULTS, "model": []}), json.dumps({"targets": [1]})])
def test_bad_inputs_are_refused_and_the_readme_kept(tmp_path, content):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- benchmark:start -->\nold\n<!-- benchmark:end -->\n")
    before = readme.read_text()
    results = tmp_path / "cpu-full.json"
    results.write_text(content)
    with pytest.raises(ValueError, match=r"cpu-full\.json is not a benchmark results file"):
        readme_tables.update_readme(readme, results)
    assert readme.read_text() == before


def test_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no block here\n")
    results = tmp_path / "cpu-full.json"
    results.write_text(json.dumps(RESULTS))
    with pytest.raises(ValueError, match=r"README\.md has no"):
        readme_tables.update_readme(readme, results)
    assert readme.read_text() == "no block here\n"


def test_quickstart_table_goes_into_its_own_block(tmp_path):
    """The quick-start script's table replaces only the README's quickstart block; a README without one is refused
    before any training starts."""
    from benchmarks import quickstart

    run = {"command": "yolo train x=1", "cpus": 2, "wall_s": 76.6, "cpu_s": 75.2, "load_before": 0.5,
           "load_after": 0.94, "map50": 0.3704}  # fmt: skip
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- quickstart:start -->\nold\n<!-- quickstart:end -->\nb\n<!-- benchmark:start -->\nkept\n")
    readme_tables.write_block(readme, "quickstart", quickstart.table(run))
    text = readme.read_text()
    assert "old" not in text and text.endswith("b\n<!-- benchmark:start -->\nkept\n")
    assert "| `yolo train x=1` |" in text and "2 cores | 77 s | 75 s | 0.5 / 0.9 | 0.370 |" in text
    with pytest.raises(ValueError, match=r"README\.md has no <!-- benchmark:start --> \.\.\. <!-- benchmark:end -->"):
        readme_tables.check_block(readme, "benchmark")


def test_families_table_writes_the_params_block(tmp_path, monkeypatch):
    """families_table params=... puts YOLOv8's rows, task by task, into the file's params block, and refuses a file
    without one before building any model."""
    from benchmarks import families_table

    def row(family: str, task: str) -> families_table.Row:
        return families_table.Row(family, task, "n", f"{family}n.yaml", "2 C2f", (1000, 1010), (8.9, 8.92))

    rows = [row("yolov8", "classify"), row("yolo11", "detect"), row("yolov8", "detect")]
    built = []
    monkeypatch.setattr(families_table, "build_rows", lambda imgsz, scales: built.append(imgsz) or rows)
    page = tmp_path / "parameters.md"
    page.write_text("intro\n<!-- params:start -->\nold\n<!-- params:end -->\n")
    families_table.main(["docs=None", f"params={page}", "imgsz=320"])
    table = families_table.params_table(rows, 320)
    assert page.read_text() == f"intro\n<!-- params:start -->\n{table}\n<!-- params:end -->\n"
    lines = table.splitlines()
    assert "YOLOv8 GFLOPs@320" in lines[0] and len(lines) == 4  # yolo11's row left out
    assert lines[2] == "| detect | n | 1,000 | 1,010 | +10 (1.00 %) | 8.9 | 8.9 | +0.02 |" and "classify" in lines[3]
    page.write_text("no block\n")
    with pytest.raises(ValueError, match=r"parameters\.md has no <!-- params:start -->"):
        families_table.main(["docs=None", f"params={page}"])
    assert built == [320]


def test_export_matrix_tries_a_format_on_both_checkpoints(tmp_path, monkeypatch):
    """One format end to end: export in a worker process, AutoBackend run, difference from PyTorch, table and logs."""
    from ultralytics import YOLO

    from benchmarks import export_matrix

    save_checkpoint(YOLO("yolov8n.yaml"), tmp_path / "stock.pt")
    (tmp_path / "README.md").write_text("a\n<!-- exports:start -->\nold\n<!-- exports:end -->\nb\n")
    monkeypatch.chdir(tmp_path)
    table = export_matrix.main(
        ["formats=torchscript", "imgsz=64", "stock_weights=stock.pt", "readme=README.md", "logs=logs"]
    )
    block = f"<!-- exports:start -->\n{table.rstrip()}\n<!-- exports:end -->"
    assert (tmp_path / "README.md").read_text() == f"a\n{block}\nb\n"
    assert "yolov8n-cbam untrained, stock yolov8n `stock.pt`" in table
    [row] = [line for line in table.splitlines() if line.startswith("| TorchScript |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:2] == ["TorchScript", "`torchscript`"] and len(cells) == 4
    for cell in cells[2:]:
        assert cell.startswith("✅ exports and runs; max abs diff vs PyTorch ")
        assert float(cell.rsplit(" ", 1)[1]) < 1e-3
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "torchscript-stock-yolov8n.log",
        "torchscript-yolov8n-cbam.log",
    ]


@pytest.mark.parametrize("channels", [32, 8])  # 8 < reduction 16: one hidden unit
def test_forward_variants_compute_what_cbam_computes(channels):
    """Every way of writing the forward, loaded with the state dict of our CBAM, gives its output."""
    from benchmarks.cbam_variants import MLP_FORMS, POOLS, forward_variants
    from ultralytics_cbam.modules import CBAM

    torch.manual_seed(1)
    cbam = CBAM(channels).eval()
    x = torch.randn(3, channels, 9, 7)
    variants = forward_variants(channels)
    assert sorted(variants) == sorted(f"{m}/{p}" for m in MLP_FORMS for p in POOLS)
    with torch.no_grad():
        expected = cbam(x)
        for name, module in variants.items():
            module.load_state_dict(cbam.state_dict())
            torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-6, msg=name)


def test_forward_variants_refuse_unknown_forms():
    from benchmarks.cbam_variants import CBAMForward

    with pytest.raises(ValueError, match="unknown forward conv/reduce"):
        CBAMForward(16, "conv", "reduce")


def test_forward_variant_exports_like_ultralytics_and_runs_in_onnx_runtime(tmp_path):
    """The export the variant comparison times: static shapes, one graph input, the pooling ops of its form."""
    import onnx
    import onnxruntime as ort

    from benchmarks.cbam_variants import forward_variants
    from benchmarks.onnx_runtime import export_like_ultralytics

    engine = pytest.importorskip("ultralytics.utils.export.engine", reason="Ultralytics 8.4 has these export helpers")
    if not hasattr(engine, "best_onnx_opset"):
        pytest.skip("this Ultralytics release has no torch2onnx/best_onnx_opset export helpers (Ultralytics 8.4 has)")

    x = torch.randn(2, 16, 6, 5)
    for name, module in forward_variants(16).items():
        path = export_like_ultralytics(module, x, tmp_path / f"{name.replace('/', '-')}.onnx")
        ops = {node.op_type for node in onnx.load(path).graph.node}
        assert ("GlobalAveragePool" in ops) == name.endswith("/adaptive"), (name, ops)
        out = ort.InferenceSession(path).run(None, {"images": x.numpy()})[0]
        with torch.no_grad():
            assert abs(out - module(x).numpy()).max() < 1e-5, name


def test_variants_table_names_the_fastest_variant():
    """The geometric mean of each variant's ratios to the reference decides; the table shows it under the times."""
    from benchmarks.report import fastest

    def record(shape, ratios):
        times = {name: {"median_ms": 2.0 * r} for name, r in ratios.items()}
        return {"shape": shape, "batch": shape[0], "times": times, "ratios": ratios, "max_abs_diff": {"x": 1e-7}}

    records = [
        record([1, 32, 8, 8], {"conv-concat/reduce": 1.0, "linear/reduce": 0.5, "conv-batched/reduce": 0.9}),
        record([8, 32, 8, 8], {"conv-concat/reduce": 1.0, "linear/reduce": 2.0, "conv-batched/reduce": 0.9}),
    ]
    best, means = fastest(records)
    assert best == "conv-batched/reduce" and means["linear/reduce"] == pytest.approx(1.0)
    text = markdown({**RESULTS, "targets": [], "model": [], "module": [], "variants": records})
    assert "| 8x32x8x8 | 2 | 4 | 1.8 |" in text
    assert "| geometric mean of ratios to conv-concat/reduce | 1.000 | 1.000 | 0.900 |" in text
    assert "Fastest overall: `conv-batched/reduce`" in text and "1.0e-07" in text


def test_compiled_models_are_compiled_as_ultralytics_compiles_them():
    """torch.compile with Inductor in its default mode, lazily: nothing compiles until the first call."""
    from benchmarks.model_bench import compile_like_ultralytics

    model = torch.nn.Conv2d(3, 4, 3)
    compiled = compile_like_ultralytics(model)
    assert compiled._orig_mod is model


def test_machine_line_describes_the_machine_and_versions():
    from benchmarks.report import machine_line

    line = machine_line(RESULTS, explain=False)
    assert (
        line == "Test CPU, 2 logical CPUs, torch threads: 2; torch 2.x, ultralytics 8.x, onnxruntime 1.x, timm 1.x; "
        "2026-01-01 00:00 UTC."
    )


def test_summary_command_writes_the_benchmark_block(tmp_path):
    from benchmarks import summary

    readme, results = tmp_path / "README.md", tmp_path / "cpu-full.json"
    readme.write_text("<!-- benchmark:start -->\nold\n<!-- benchmark:end -->\n")
    results.write_text(json.dumps(RESULTS))
    summary.main([f"results={results}", f"readme={readme}"])
    assert "#### Model level" in readme.read_text() and "old" not in readme.read_text()


BENCHMARKS = Path(readme_tables.__file__).parent
MODULES = sorted(p.stem for p in BENCHMARKS.glob("*.py") if p.stem != "__init__")
SCRIPTS = [m for m in MODULES if '\nif __name__ == "__main__":\n    main()' in (BENCHMARKS / f"{m}.py").read_text()]
FORWARDING = {"ablation_study", "transfer_study"}  # they pass further keys on to `yolo-cbam ablate`


@pytest.mark.parametrize("name", [m for m in SCRIPTS if m not in FORWARDING])
def test_scripts_refuse_an_unknown_key_in_one_line(name):
    """Every script takes key=value arguments; a key it does not know, or an argument of another form, stops it
    with one line naming the argument (and the valid keys) before any work."""
    main = importlib.import_module(f"benchmarks.{name}").main
    with pytest.raises(SystemExit) as refused:
        main(["no_such_key=1"])
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"benchmarks.{name}: unknown argument(s) no_such_key; valid: ")
    with pytest.raises(SystemExit, match=r"argument '--flag' is not of the form key=value"):
        main(["--flag"])


def test_the_package_is_imported_normally_and_no_script_imports_another():
    """No file of benchmarks/ changes sys.path or parses arguments with argparse, and no module of it imports a
    script (a module run with ``python -m benchmarks.<name>``)."""
    assert len(SCRIPTS) >= 7 and "run" in SCRIPTS and "readme_tables" not in SCRIPTS
    for path in BENCHMARKS.glob("*.py"):
        text = path.read_text()
        assert "sys.path" not in text and "argparse" not in text, path.name
        imported = set()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module == "benchmarks":
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("benchmarks."):
                imported.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                imported |= {a.name.split(".")[1] for a in node.names if a.name.startswith("benchmarks.")}
        assert not imported & set(SCRIPTS), (path.name, imported & set(SCRIPTS))
