"""The benchmark harness: settings, interleaved timing, paired ratios and their intervals, speed targets, the saved
results and the README block they give, the scripts' command line, and the export matrix end to end (the other
scripts' blocks: tests/test_doc_blocks.py)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import itertools
import json
import math
import random
import re
import statistics
import time
from pathlib import Path

import pytest
import torch
from helpers import save_checkpoint

from benchmarks import readme_tables, report, summary
from benchmarks.config import RESULTS_DIR, build_config
from benchmarks.timing import interleaved, paired_ratio

BENCHMARKS = RESULTS_DIR.parent
MACHINE = dict(cpu="Test CPU", logical_cpus=2, torch="2.x", ultralytics="8.x", onnxruntime="1.x", timm="1.x")
META = {"mode": "full", "threads": 2, "date": "2026-01-01 00:00 UTC", "machine": MACHINE}


def _model(kind: str, batch: int, ratio: float, interval: list[float], scale: str = "n") -> dict:
    times = {"yolov8": {"median_ms": 50.0}, "yolov8-cbam": {"median_ms": 50.5}}
    return {"scale": scale, "kind": kind, "batch": batch, "imgsz": 640, "times": times, "ratio": ratio,
            "ratio_interval": interval, "ratio_of_minima": 1.0}  # fmt: skip


def _module(batch: int, ratios: dict) -> dict:
    return {"scale": "n", "layer": "P2", "shape": [batch, 32, 160, 160], "batch": batch, "pass": "inference",
            "times": {"ours": {"median_ms": 1.0}} | {k: {"median_ms": 4.0} for k in ratios}, "ratios": ratios,
            "ratio_intervals": {k: [v - 0.1, v + 0.1] for k, v in ratios.items()}}  # fmt: skip


RESULTS = {
    "meta": META,
    "targets": [
        {"target": "yolov8n eager b1", "ratio": 1.01, "interval": [1.0, 1.02], "limit": 1.03},
        {"target": "module cbam x", "ratio": 1.2, "interval": None, "limit": 1.0},
    ],
    "model": [_model("eager", 1, 1.01, [1.0, 1.02])],
    "module": [_module(1, {"paper": 0.5}), _module(16, {"paper": 0.25}), _module(16, {"paper": 0.125})],
}


def test_settings_take_the_fields_types_and_refuse_bad_values():
    cfg = build_config({"scales": "n", "model_batches": 4, "threads": 1, "model_seconds": 3})
    assert (cfg.mode, cfg.scales, cfg.model_batches, cfg.threads, cfg.model_seconds) == ("short", ("n",), (4,), 1, 3.0)
    assert (cfg.rounds, cfg.name, build_config({"mode": "full"}).rounds) == (5, "cpu-short", 15)
    bad = {"mode": "fast", "rounds": 0, "model_batches": "1,x", "parts": "gpu"}
    for (key, value), message in zip(
        bad.items(), ("mode must", "positive", "model_batches must", "parts"), strict=True
    ):
        with pytest.raises(ValueError, match=message):
            build_config({key: value})


def test_interleaved_rotates_the_order_and_fills_min_seconds():
    calls: list[str] = []
    times = interleaved({name: (lambda name=name: calls.append(name)) for name in "abc"}, rounds=3, warmup=1)
    assert "".join(calls) == "abc" + "abc" + "abcbcacab"  # warm-up, one call each to size the samples, 3 rounds
    assert all(t["samples"] == len(t["samples_ms"]) == 3 and t["calls_per_sample"] == 1 for t in times.values())
    times = interleaved({"a": lambda: time.sleep(0.001), "b": lambda: None}, rounds=2, warmup=0, min_seconds=0.1)
    assert times["a"]["samples"] == times["b"]["samples"] > 2  # about 0.1 s / 0.001 s
    assert max(interleaved({"a": lambda: None}, rounds=3, warmup=0, settle_s=0.02)["a"]["samples_ms"]) < 15


@pytest.mark.parametrize(("rounds", "ranks"), [(3, (1, 3)), (10, (2, 9)), (20, (6, 15)), (100, (40, 61))])
def test_ratio_interval_is_the_sign_test_interval_of_the_median(rounds, ranks):
    """Ranks from tables of the 95 % interval of a median; with too few rounds, the whole range."""
    ratios = list(range(1, rounds + 1))  # the k-th smallest ratio is k
    random.Random(rounds).shuffle(ratios)
    assert paired_ratio(ratios, [1.0] * rounds) == (statistics.median(ratios), list(ranks))
    assert paired_ratio([1.0, 9.0, 2.0], [2.0, 10.0, 2.0])[0] == 0.9  # the median of round ratios, not of times


def test_ratio_interval_of_thousands_of_rounds_follows_the_normal_approximation():
    rounds = 3000  # 2**3000 is beyond a float; model_seconds=150 takes about 2500 rounds at ONNX Runtime batch 1
    ratios = list(range(1, rounds + 1))
    random.Random(rounds).shuffle(ratios)
    _, (low, high) = paired_ratio(ratios, [1.0] * rounds)
    assert abs(low - (rounds / 2 - 1.959964 * math.sqrt(rounds) / 2)) <= 2 and high == rounds + 1 - low


def test_ratio_interval_covers_the_true_median_95_percent_of_the_time():
    rng = random.Random(0)
    covered = [paired_ratio([rng.lognormvariate(0.0, 0.1) for _ in range(20)], [1.0] * 20, 9)[1] for _ in range(2000)]
    assert 0.94 <= sum(low <= 1.0 <= high for low, high in covered) / 2000 <= 0.975  # 0.9586 for 20 rounds


def test_each_target_has_its_limit_and_outcome_and_the_tables_show_them():
    """Limits: eager 1.05 at batch 1 and 1.03 at batch 8, training step 1.07, ONNX Runtime on the static export 1.08,
    compiled inference and training step 1.03, yolov8n only; timm's CbamModule at module level. Outcomes: met (ratio at
    most the limit), within noise (above, the limit inside the interval), missed (the whole interval above)."""
    wide, high = [1.0, 1.1], [1.085, 1.1]
    rows = [("eager", 1, 1.05, wide), ("eager", 8, 1.08, wide), ("eager", 4, 2.0, wide), ("train", 8, 1.09, high),
            ("onnxruntime", 1, 1.08, wide), ("onnxruntime", 8, 1.09, high), ("onnxruntime-dynamic", 1, 2.0, high),
            ("compiled", 1, 1.03, wide), ("compiled", 8, 1.04, wide), ("train-compiled", 8, 1.0, wide)]  # fmt: skip
    results = {"meta": META, "model": [_model(*row) for row in rows] + [_model("eager", 1, 2.0, high, scale="s")]}
    results["module"] = [_module(1, {"timm": 1.05, "paper": 2.0}), _module(16, {"timm": 0.9, "paper": 2.0})]
    results["targets"] = report.evaluate_targets(results)
    found = {
        t["target"].removeprefix("yolov8n-cbam / yolov8n "): (t["limit"], t["outcome"]) for t in results["targets"]
    }
    assert found == {
        "module P2 yolov8n 1x32x160x160 inference: ours / timm": (1.0, "within noise"),
        "module P2 yolov8n 16x32x160x160 inference: ours / timm": (1.0, "met"),
        "eager batch 1": (1.05, "met"),
        "eager batch 8": (1.03, "within noise"),
        "train batch 8": (1.07, "missed"),
        "onnxruntime batch 1": (1.08, "met"),
        "onnxruntime batch 8": (1.08, "missed"),
        "compiled batch 1": (1.03, "met"),
        "compiled batch 8": (1.03, "within noise"),
        "train-compiled batch 8": (1.03, "met"),
    }
    text = report.markdown(results)
    assert "## Speed targets (CPU): 5 met, 3 within noise, 2 missed (of 10)\n" in text
    assert "| yolov8n-cbam / yolov8n onnxruntime batch 8 | 1.090 | 1.085 – 1.100 | ≤ 1.08 | **missed** |\n" in text
    assert "train-compiled batch 8 | 1.000 | 1.000 – 1.100 | ≤ 1.03 | met |\n| module P2 yolov8n 1x32" in text
    assert "16x32x160x160 inference: ours / timm" not in text.split("## Model level")[0]  # met at module level
    assert "| yolov8n | ONNX Runtime, dynamic export | 1x640 | 50 | 50.5 | 2.000 | 1.085 – 1.100 | 1.000 |" in text
    assert "| yolov8n P2 | 1x32x160x160 | inference | 1 | 4 | 4 | 1.05 | 2.00 |" in text


def test_readme_block_summarises_the_runs_of_each_machine(tmp_path):
    """The first run's machine, targets, model-level table and module-level ranges (not its per-layer table); each
    further run's targets and machine."""
    other = {**RESULTS, "meta": {**META, "date": "2026-02-02 00:00 UTC", "machine": {**MACHINE, "cpu": "Other CPU"}}}
    other["targets"] = [{"target": "yolov8n eager b1", "ratio": 1.05, "interval": [1.04, 1.06], "limit": 1.03}]
    paths = [tmp_path / "cpu-full.json", tmp_path / "cpu-full-other.json"]
    for path, run in zip(paths, (RESULTS, other), strict=True):
        path.write_text(json.dumps(run))
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- benchmark:start -->\nold\n<!-- benchmark:end -->\noutro\n")
    summary.update_readme(readme, *paths)
    text = readme.read_text()
    assert text.startswith("intro\n<!-- benchmark:start -->\nTest CPU, 2 logical CPUs, torch threads: 2; torch 2.x,")
    assert text.endswith("<!-- benchmark:end -->\noutro\n") and "old" not in text
    first, second = text.split("#### Speed targets (CPU: Other CPU): 0 met, 0 within noise, 1 missed (of 1)")
    assert "#### Speed targets (CPU: Test CPU): 1 met, 0 within noise, 1 missed (of 2)" in first
    assert "| module cbam x | 1.200 | – | ≤ 1.0 | **missed** |" in first and "#### Model level" in first
    assert "| ours / paper | 0.12 – 0.50 | 0.12 – 0.25 |" in first and "ours ms" not in first
    assert "| yolov8n eager b1 | 1.050 | 1.040 – 1.060 | ≤ 1.03 | **missed** |" in second
    assert "Model level" not in second and "2026-02-02" not in first
    line = "Other CPU, 2 logical CPUs, torch threads: 2; torch 2.x, ultralytics 8.x, onnxruntime 1.x, timm 1.x"
    assert f"Measured on {line}; 2026-02-02 00:00 UTC.\n<!-- benchmark:end -->" in text


@pytest.mark.parametrize("content", ["not json", json.dumps({**RESULTS, "model": []}), json.dumps({"targets": [1]})])
def test_bad_results_or_a_readme_without_the_block_are_refused_and_the_readme_kept(tmp_path, content):
    readme, good, bad = tmp_path / "README.md", tmp_path / "cpu-full.json", tmp_path / "cpu-full-other.json"
    good.write_text(json.dumps(RESULTS))
    bad.write_text(content)
    readme.write_text("intro\n<!-- benchmark:start -->\nold\n<!-- benchmark:end -->\n")
    with pytest.raises(ValueError, match=r"cpu-full-other\.json is not a benchmark results file"):
        summary.update_readme(readme, good, bad)
    readme.write_text("no block here\n")
    with pytest.raises(ValueError, match=r"README\.md has no"):
        summary.update_readme(readme, good)
    assert readme.read_text() == "no block here\n"


def _sign_test_interval(ratios: list[float]) -> tuple[float, float]:
    """The 95 % interval of the median as benchmarks/README.md states it: the k-th smallest and k-th largest ratio for
    the largest k (up to the median's rank) with P(Binomial(n, 1/2) < k) <= 2.5 %; the whole range where none is."""
    ordered, n = sorted(ratios), len(ratios)
    at_most = list(itertools.accumulate(math.comb(n, i) for i in range(n + 1)))  # 2**n P(count <= i)
    k = max((k for k in range(1, (n + 1) // 2 + 1) if 40 * at_most[k - 1] <= 2**n), default=1)
    return ordered[k - 1], ordered[n - k]


def _timings(results: dict) -> list[dict]:
    return [t for part in ("module", "model", "variants") for r in results.get(part, []) for t in r["times"].values()]


def _check_against_samples(results: dict) -> int:
    """Assert that each median, ratio, interval and target outcome of `results` is what its raw samples give; return
    how many comparisons were checked."""
    from benchmarks.module_bench import REFERENCE_FORWARD

    for t in _timings(results):
        assert t["samples"] == len(t["samples_ms"])
        assert t["median_ms"] == pytest.approx(statistics.median(t["samples_ms"]), abs=5e-5)  # stored rounded
    found = []  # (ratio, interval, samples of ours, of the reference, decimals stored)
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
    for ratio, interval, ours, theirs, decimals in found:
        rounds = [a / b for a, b in zip(ours, theirs, strict=True)]
        tolerance = 0.5 * 10**-decimals + 1e-12  # the harness stores them rounded
        assert ratio == pytest.approx(statistics.median(rounds), abs=tolerance)
        assert interval == pytest.approx(list(_sign_test_interval(rounds)), abs=tolerance)
    for t in results["targets"]:
        low, high = t["interval"]
        assert (t["ratio"], t["interval"]) in [(ratio, interval) for ratio, interval, *_ in found]
        assert t["outcome"] == ("met" if t["ratio"] <= t["limit"] else "within noise" if low <= t["limit"] <= high
                                else "missed"), t  # fmt: skip
    return len(found)


SAVED_RUNS = [p for p in sorted(RESULTS_DIR.glob("*.json")) if "targets" in json.loads(p.read_text())]  # no studies


def test_saved_runs_follow_from_their_raw_samples_and_give_their_markdown():
    """Every saved run gives its ratios, intervals and outcomes again from its raw samples; its Markdown and JSON are
    what the harness writes from its data."""
    assert SAVED_RUNS
    for path in SAVED_RUNS:
        results = json.loads(path.read_text())
        assert _check_against_samples(results) > 0, path
        assert path.read_text() == report.to_json(results), path
        assert path.with_suffix(".md").read_text() == report.markdown(results), path


def test_readme_block_is_the_one_summary_writes_from_the_saved_results(tmp_path):
    """benchmarks/README.md's benchmark block is rebuilt exactly by `python -m benchmarks.summary` from the saved full
    runs, benchmarks/results/cpu-full.json and cpu-full-*.json."""
    from benchmarks import summary

    readme, copy = BENCHMARKS / "README.md", tmp_path / "README.md"
    copy.write_text(readme.read_text())
    readme_tables.write_block(copy, "benchmark", "old")
    assert [p.name for p in summary.default_results()][:1] == ["cpu-full.json"]
    summary.main([f"readme={copy}"])
    assert copy.read_text() == readme.read_text()


def test_a_run_saves_its_raw_samples_and_they_give_its_ratios(tmp_path, monkeypatch):
    """A small module-level run of the harness, in this process: the JSON it writes holds every sample of both sides
    of each comparison, and a restatement of the method computes its ratios, intervals and outcomes from them."""
    from benchmarks import module_bench, run

    timm = importlib.util.find_spec("timm") is not None  # the bench extra; without it, no target is measured
    monkeypatch.setattr(module_bench, "VARIANTS", ("ours", "timm" if timm else "ultralytics", "paper"))
    settings = {"parts": "module", "scales": "n", "imgsz": 64, "module_batches": 2, "rounds": 10, "warmup": 1}
    settings |= {"min_sample_s": 0.0, "threads": torch.get_num_threads(), "save_dir": str(tmp_path), "name": "tiny"}
    returned = run.main([f"{key}={value}" for key, value in settings.items()])
    text = (tmp_path / "tiny.json").read_text()
    saved = json.loads(text)
    assert saved == json.loads(json.dumps(returned)) and text == report.to_json(saved)
    assert all(line.endswith(("],", "]")) for line in text.splitlines() if '"samples_ms": [' in line)  # one line each
    cases = 2 * len(list(module_bench.cases(("n",), 64, (2,))))  # every CBAM layer, inference and training
    assert len(saved["module"]) == cases and all(len(t["samples_ms"]) == 10 for t in _timings(saved))
    assert _check_against_samples(saved) == cases * 2
    assert len(saved["targets"]) == (cases if timm else 0)
    assert (tmp_path / "tiny.md").read_text() == report.markdown(saved)


@pytest.mark.parametrize("dynamic", [False, True])
def test_onnx_exports_are_static_or_dynamic(tmp_path, dynamic):
    """The ONNX Runtime comparison times Ultralytics' export with fixed input shapes, and with free ones."""
    import onnx

    from benchmarks.model_bench import export_onnx, model_pair

    path = export_onnx(model_pair("n")["yolov8-cbam"], tmp_path, 2, 64, dynamic)
    [image] = onnx.load(path).graph.input
    dims = [d.dim_value or d.dim_param for d in image.type.tensor_type.shape.dim]
    assert Path(path).parent == tmp_path and Path(path).stem.startswith("yolov8n-cbam") and dims[1] == 3
    assert all(isinstance(d, str) for d in (dims[0], *dims[2:])) if dynamic else dims == [2, 3, 64, 64]


def test_model_pair_differs_only_by_the_cbam_layers():
    """yolov8n-cbam built for a comparison holds yolov8n's weights: with its CBAM layers bypassed it computes
    yolov8n's outputs exactly; its own draw of weights (the models built apart) does not."""
    from ultralytics.nn.tasks import DetectionModel

    from benchmarks.model_bench import model_pair
    from ultralytics_cbam.modules import CBAM

    stock, cbam = model_pair("n").values()
    torch.manual_seed(0)
    apart = DetectionModel("yolov8n-cbam.yaml", nc=80, verbose=False)
    for layer in [*cbam.model, *apart.model]:
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


@pytest.mark.parametrize("channels", [32, 8])  # 8 < reduction 16: one hidden unit
def test_forward_variants_compute_what_cbam_computes(channels):
    """Every way of writing the forward, and the paper's two-pass CBAM, with the weights of our CBAM give its output."""
    from benchmarks.module_bench import MLP_FORMS, POOLS, PaperCBAM, forward_variants
    from ultralytics_cbam.modules import CBAM

    torch.manual_seed(1)
    cbam = CBAM(channels).eval()
    x = torch.randn(3, channels, 9, 7)
    variants = forward_variants(channels)
    assert sorted(variants) == sorted(f"{m}/{p}" for m in MLP_FORMS for p in POOLS)
    for module in variants.values():
        module.load_state_dict(cbam.state_dict())
    with torch.no_grad():
        for name, module in {**variants, "paper": PaperCBAM(cbam)}.items():
            torch.testing.assert_close(module(x), cbam(x), rtol=1e-5, atol=1e-6, msg=name)


def test_forward_variant_exports_like_ultralytics_and_runs_in_onnx_runtime(tmp_path):
    """The export the variant comparison times: static shapes, one graph input, the pooling ops of its form."""
    import onnx
    import onnxruntime as ort

    from benchmarks.module_bench import export_like_ultralytics, forward_variants

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

    def record(shape, ratios):
        times = {name: {"median_ms": 2.0 * r} for name, r in ratios.items()}
        return {"shape": shape, "batch": shape[0], "times": times, "ratios": ratios, "max_abs_diff": {"x": 1e-7}}

    records = [
        record([1, 32, 8, 8], {"conv-concat/reduce": 1.0, "linear/reduce": 0.5, "conv-batched/reduce": 0.9}),
        record([8, 32, 8, 8], {"conv-concat/reduce": 1.0, "linear/reduce": 2.0, "conv-batched/reduce": 0.9}),
    ]
    best, means = report.fastest(records)
    assert best == "conv-batched/reduce" and means["linear/reduce"] == pytest.approx(1.0)
    text = report.markdown({"meta": META, "targets": [], "variants": records})
    assert "| 8x32x8x8 | 2 | 4 | 1.8 |" in text and "1.0e-07" in text
    assert "| geometric mean of ratios to conv-concat/reduce | 1.000 | 1.000 | 0.900 |" in text
    assert "Fastest overall: `conv-batched/reduce`" in text


def test_export_matrix_tries_a_format_on_both_checkpoints(tmp_path, monkeypatch):
    """One format end to end: export in a worker process, AutoBackend run, difference from PyTorch, table and logs."""
    from ultralytics import YOLO

    from benchmarks import export_matrix

    save_checkpoint(YOLO("yolov8n.yaml"), tmp_path / "stock.pt")
    (tmp_path / "README.md").write_text("a\n<!-- exports:start -->\nold\n<!-- exports:end -->\nb\n")
    monkeypatch.chdir(tmp_path)
    args = ["formats=torchscript", "imgsz=64", "stock_weights=stock.pt", "readme=README.md", "logs=logs"]
    table = export_matrix.main([*args, "results=exports.json"])  # not benchmarks/results/exports.json
    block = f"<!-- exports:start -->\n{table.rstrip()}\n<!-- exports:end -->"
    assert (tmp_path / "README.md").read_text() == f"a\n{block}\nb\n"
    assert "yolov8n-cbam untrained, stock yolov8n `stock.pt`" in table
    [row] = [line for line in table.splitlines() if line.startswith("| TorchScript |")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[:2] == ["TorchScript", "`torchscript`"] and len(cells) == 4
    for cell in cells[2:]:
        assert cell.startswith("✅ exports and runs; max abs diff vs PyTorch ")
        assert float(cell.rsplit(" ", 1)[1]) < 1e-3
    assert (tmp_path / "exports.json").is_file()
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [
        "torchscript-stock-yolov8n.log",
        "torchscript-yolov8n-cbam.log",
    ]


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


BAD_ARGUMENTS = [  # script, a bad argument ({tmp}: the test's folder), what its one line says after the script's name
    ("families_table", "scales=q", "scales must be letters among nslmx, got 'q'"),
    ("families_table", "imgsz=abc", "imgsz must be a positive integer, got 'abc'"),
    ("families_table", "imgsz=0", "imgsz must be a positive integer, got 0"),
    ("families_table", "docs={tmp}/nothere.md", "docs: .*nothere.md is not a file"),
    ("export_matrix", "formats=foo,onnx", "formats: unknown foo; valid: torchscript, onnx, .*"),
    ("export_matrix", "weights={tmp}/nothere.pt", "weights: .*nothere.pt is not a file"),
    ("gentle_init", "gates=2", r"gates must be numbers between 0.5 and 1 \(exclusive\), got \(2.0,\)"),
    ("gentle_init", "finetune=-1", "finetune must be a non-negative integer, got -1"),
    ("gentle_init", "gates=abc", "gates must be a non-negative number, got 'abc'"),
    ("gentle_init", "epochs=abc", "epochs must be a positive integer, got 'abc'"),
    ("gentle_init", "source={tmp}/nothere.pt", "source: .*nothere.pt is not a file"),
    ("run", "scales=q", "scales and model_scales must be among n, s, l, m, x; got q"),
    ("run", "threads=-1", "threads must be a non-negative integer, got -1"),
    ("summary", "results={tmp}/nothere.json", "results: .*nothere.json is not a file"),
    ("summary", "results={tmp}", "results: .* is not a file"),
    ("summary", "rewrite=yes", "rewrite must be True or False, got 'yes'"),
    ("quickstart", "readme={tmp}/nothere.md", "readme: .*nothere.md is not a file"),
    ("quickstart", "epochs=abc", "epochs must be a positive integer, got 'abc'"),
    ("attention_figure", "model={tmp}/nothere.pt", "model: .*nothere.pt is not a file"),
    ("attention_figure", "epochs=abc", "epochs must be a positive integer, got 'abc'"),
]
WORK = {"families_table": "build_rows", "export_matrix": "measure", "gentle_init": "measure", "quickstart": "run",
        "attention_figure": "train_example_model", "summary": "update_readme", "run": "torch"}  # fmt: skip


@pytest.mark.parametrize(("script", "bad", "message"), BAD_ARGUMENTS)
def test_scripts_refuse_a_bad_value_in_one_line_before_any_work(script, bad, message, tmp_path, monkeypatch):
    """A value of the wrong type or range, or a path that names no file, stops a script with one line naming the
    script and the argument, before its work starts (stubbed here) and before any file is written."""
    module = importlib.import_module(f"benchmarks.{script}")
    monkeypatch.setattr(module, WORK[script], None)  # any use of it fails, and not with SystemExit
    doc = tmp_path / "doc.md"
    names = ("families", "params", "exports", "gentle", "quickstart", "benchmark")
    doc.write_text("".join(f"<!-- {name}:start -->\n<!-- {name}:end -->\n" for name in names))
    paths = {"docs": doc, "params": doc, "readme": doc, "results": tmp_path / "out.json", "out": tmp_path / "a.png"}
    given = {key: paths[key] for key in paths if key in getattr(module, "DEFAULTS", {})}
    given |= {"save_dir": tmp_path} if script == "run" else {}
    argv = [f"{key}={value}" for key, value in given.items()]
    with pytest.raises(SystemExit) as refused:
        module.main([*argv, bad.format(tmp=tmp_path)])
    text = str(refused.value)
    assert "\n" not in text and text.startswith(f"benchmarks.{script}: ")
    assert re.fullmatch(message, text.partition(": ")[2]), text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["doc.md"]


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
