"""Ablation runner: variant models, YAML rewiring, aggregation, and a tiny resumable grid trained on coco8."""

from __future__ import annotations

import logging
import statistics

import cv2
import numpy as np
import pytest
import torch
from helpers import load_yaml, read_csv
from ultralytics import YOLO
from ultralytics.nn.modules import C2f, Detect
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import LOGGER, remove_colorstr
from ultralytics.utils.checks import check_yaml

from ultralytics_cbam.ablation import Variant, ablate, build_variant, insert_layers, parse_seeds, summarize
from ultralytics_cbam.modules import CBAM, ChannelAttention, SpatialAttention
from ultralytics_cbam.resources import packaged_yaml

ATTENTION = (CBAM, ChannelAttention, SpatialAttention)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(name: str) -> DetectionModel:
    return DetectionModel({**build_variant(Variant.parse(name)), "scale": "n"}, verbose=False).eval()


def attention_layers(model: DetectionModel) -> list[torch.nn.Module]:
    return [m for m in model.model if isinstance(m, ATTENTION)]


# --- YAML rewiring -------------------------------------------------------------------------------------------------


def test_insert_layers_reproduces_the_packaged_cbam_yaml():
    stock = load_yaml(check_yaml("yolov8.yaml"))
    packaged = load_yaml(packaged_yaml("yolov8-cbam.yaml"))
    # the design article: CBAM after the C2f of P2, P3, P4 (stock layers 2, 4, 6) and after SPPF (layer 9)
    new = insert_layers(stock, {j: [-1, 1, "CBAM", []] for j in (2, 4, 6, 9)})
    assert new["backbone"] == packaged["backbone"]
    assert new["head"] == packaged["head"]
    assert stock == load_yaml(check_yaml("yolov8.yaml"))  # the input is not modified


def test_insert_layers_rewires_absolute_and_relative_indices():
    d = {
        "backbone": [[-1, 1, "A", []], [-1, 1, "B", []], [[-1, -2], 1, "Concat", [1]]],
        "head": [[[0, 2], 1, "Concat", [1]], [-3, 1, "C", []]],
    }
    new = insert_layers(d, {0: [-1, 1, "X", []], 3: [-1, 1, "Y", []]})
    # old -> new index: 0->0 (X at 1), 1->2, 2->3, 3->4 (Y at 5), 4->6; readers of 0 read X, readers of 3 read Y
    assert new["backbone"] == [
        [-1, 1, "A", []],
        [-1, 1, "X", []],
        [-1, 1, "B", []],
        [[-1, -2], 1, "Concat", [1]],
    ]
    assert new["head"] == [[[1, 3], 1, "Concat", [1]], [-1, 1, "Y", []], [-4, 1, "C", []]]


@pytest.mark.parametrize("index", [-1, 5, "2", True])
def test_insert_layers_rejects_indices_outside_the_model(index):
    d = {"backbone": [[-1, 1, "A", []]], "head": [[-1, 1, "B", []]]}
    with pytest.raises(ValueError, match="cannot insert after layer"):
        insert_layers(d, {index: [-1, 1, "X", []]})


# --- variants ------------------------------------------------------------------------------------------------------


def test_baseline_and_cbam_match_the_stock_and_packaged_models():
    baseline, cbam = build("baseline"), build("cbam")
    assert n_params(baseline) == n_params(YOLO("yolov8n.yaml").model)
    assert n_params(cbam) == n_params(YOLO("yolov8n-cbam.yaml").model)
    assert not attention_layers(baseline)
    assert [m.i for m in attention_layers(cbam)] == [3, 6, 9, 13]


@pytest.mark.parametrize(
    ("name", "kind", "reduction", "kernel_size"),
    [
        ("channel", ChannelAttention, 16, None),
        ("spatial", SpatialAttention, None, 7),
        ("r8", CBAM, 8, 7),
        ("r32", CBAM, 32, 7),
        ("k3", CBAM, 16, 3),
        ("spatial+k3", SpatialAttention, None, 3),
        ("channel+r8", ChannelAttention, 8, None),
    ],
)
def test_variant_modules_and_parameters(name, kind, reduction, kernel_size):
    model = build(name)
    layers = attention_layers(model)
    assert [m.i for m in layers] == [3, 6, 9, 13]
    assert all(isinstance(m, kind) and type(m).__name__ == kind.__name__ for m in layers)
    for m in layers:
        channel = m.channel if isinstance(m, CBAM) else m
        spatial = m.spatial if isinstance(m, CBAM) else m
        if reduction is not None:
            assert channel.reduction == reduction
        if kernel_size is not None:
            assert spatial.kernel_size == kernel_size and spatial.conv.kernel_size == (kernel_size, kernel_size)
    assert model(torch.zeros(1, 3, 64, 64))[0].shape[1] == 84


@pytest.mark.parametrize(("name", "n_backbone", "n_neck"), [("neck", 4, 4), ("neck-only", 0, 4), ("neck+r8", 4, 4)])
def test_neck_variants_follow_every_neck_c2f_and_feed_detect(name, n_backbone, n_neck):
    model = build(name)
    first_head = len(build_variant(Variant.parse(name))["backbone"])
    layers = attention_layers(model)
    assert sum(m.i < first_head for m in layers) == n_backbone and sum(m.i >= first_head for m in layers) == n_neck
    neck_c2f = [m.i for m in model.model if isinstance(m, C2f) and m.i >= first_head]
    assert [m.i - 1 for m in layers if m.i >= first_head] == neck_c2f  # each directly after a neck C2f
    assert all(m.f == -1 for m in layers)
    detect = model.model[-1]
    assert isinstance(detect, Detect) and detect.f == [m.i for m in layers[-3:]]  # P3, P4, P5 outputs refined
    assert model(torch.zeros(1, 3, 64, 64))[0].shape[1] == 84
    if name == "neck+r8":
        assert all(m.channel.reduction == 8 for m in layers)


def test_user_yaml_variant(tmp_path):
    source = packaged_yaml("yolov8-cbam.yaml").read_text().replace("CBAM, []", "CBAM, [4, 5]")
    file = tmp_path / "my-cbam.yaml"
    file.write_text(source)
    variant = Variant.parse(str(file))
    assert variant.name == "my-cbam" and variant.file == file
    model = DetectionModel({**build_variant(variant), "scale": "n"}, verbose=False)
    assert [(m.channel.reduction, m.spatial.kernel_size) for m in attention_layers(model)] == [(4, 5)] * 4


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("cbma", ValueError, "unknown variant 'cbma'"),
        ("baseline+r8", ValueError, "unknown variant"),
        ("channel+k3", ValueError, "does not apply to channel"),
        ("spatial+r8", ValueError, "does not apply to spatial"),
        ("k4", ValueError, "k must be a positive odd integer"),
        ("r0", ValueError, "r must be a positive integer"),
        ("r8+r16", ValueError, "sets reduction twice"),
        ("neck+neck-only", ValueError, "sets placement twice"),
        ("missing-model.yaml", FileNotFoundError, "missing-model.yaml"),
    ],
)
def test_bad_variant_names_are_named(name, error, match):
    with pytest.raises(error, match=match):
        Variant.parse(name)


def test_parse_seeds():
    assert parse_seeds(3) == [0, 1, 2]
    assert parse_seeds([4, 7]) == [4, 7]
    assert parse_seeds((0, 1)) == [0, 1]  # the CLI's 'seeds=0,1'
    assert parse_seeds("5,6") == [5, 6]
    for bad in (0, -1, [], [1, 1], [-2], "a,b", 2.5, True):
        with pytest.raises(ValueError, match="seed"):
            parse_seeds(bad)


def test_summarize_mean_and_sample_std():
    rng = np.random.default_rng(0)
    runs = [
        {
            "variant": v,
            "params": p,
            "gflops": g,
            "latency_ms": float(rng.uniform(5, 9)),
            "map50": float(rng.uniform()),
            "map50_95": float(rng.uniform()),
        }
        for v, p, g in (("b", 10, 1.0), ("a", 20, 2.0), ("b", 10, 1.0), ("b", 10, 1.0))
    ]
    table = summarize(runs, order=["a", "b", "absent"])
    assert [r["variant"] for r in table] == ["a", "b"]
    a, b = table
    assert a["runs"] == 1 and np.isnan(a["map50_std"]) and a["map50_mean"] == runs[1]["map50"]
    bs = [r for r in runs if r["variant"] == "b"]
    assert b["runs"] == 3 and b["params"] == 10 and b["gflops"] == 1.0
    for key in ("map50", "map50_95"):
        values = np.array([r[key] for r in bs])
        assert b[f"{key}_mean"] == pytest.approx(values.mean())
        assert b[f"{key}_std"] == pytest.approx(np.sqrt(((values - values.mean()) ** 2).sum() / (len(values) - 1)))
    assert b["latency_ms"] == pytest.approx(np.mean([r["latency_ms"] for r in bs]))


def test_bad_grid_arguments_are_named(coco8, tmp_path):
    common = {"data": str(coco8), "project": str(tmp_path)}
    with pytest.raises(ValueError, match="seed"):
        ablate(variants="baseline", seed=1, **common)
    with pytest.raises(ValueError, match="scale"):
        ablate(variants="baseline", scale="q", **common)
    with pytest.raises(ValueError, match="epochs"):
        ablate(variants="baseline", epochs=0, **common)
    with pytest.raises(ValueError, match="listed twice"):
        ablate(variants="cbam,baseline,cbam", **common)
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        ablate(variants="baseline,nope", **common)


# --- a tiny grid, trained --------------------------------------------------------------------------------------


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(remove_colorstr(record.getMessage()))


def _run(coco8, project, **kwargs):
    handler = _Lines()
    LOGGER.addHandler(handler)
    try:
        settings = {"variants": "baseline,cbam", "epochs": 1, "imgsz": 64, "batch": 4, "seeds": 1, **kwargs}
        settings |= {"project": str(project), "name": "grid", "workers": 0, "device": "cpu", "latency_runs": 2}
        results = ablate(data=str(coco8), **settings)
    finally:
        LOGGER.removeHandler(handler)
    return results, [line for line in handler.lines if "ablate:" in line]


@pytest.fixture(scope="module")
def grid(coco8, tmp_path_factory):
    """A grid of baseline and cbam, first with one seed, then resumed with two after 'killing' one run."""
    project = tmp_path_factory.mktemp("ablate")
    first, first_log = _run(coco8, project)
    save_dir = first.save_dir
    stamps = {d: (save_dir / d / "weights" / "best.pt").stat().st_mtime_ns for d in ("baseline-seed0", "cbam-seed0")}
    (save_dir / "cbam-seed0" / "ablate.json").unlink()  # as if killed before it finished
    second, second_log = _run(coco8, project, seeds=2)
    return {"project": project, "first": (first, first_log), "second": (second, second_log), "stamps": stamps}


def test_grid_trains_every_variant_with_the_same_settings(grid):
    first, log = grid["first"]
    steps = [line.split("ablate:")[1].strip() for line in log if "training" in line]
    assert len(steps) == 2
    assert steps[0] == "run 1/2 (baseline, seed 0) training"
    assert steps[1].startswith("run 2/2 (cbam, seed 0) training, about ")  # with the time left
    args = {d: load_yaml(first.save_dir / d / "args.yaml") for d in ("baseline-seed0", "cbam-seed0")}
    differing = {k for k in args["baseline-seed0"] if args["baseline-seed0"][k] != args["cbam-seed0"][k]}
    assert differing == {"model", "name", "save_dir"}
    assert args["cbam-seed0"]["seed"] == 0 and args["cbam-seed0"]["epochs"] == 1 and args["cbam-seed0"]["imgsz"] == 64
    trained = load_yaml(args["cbam-seed0"]["model"])
    packaged = load_yaml(packaged_yaml("yolov8-cbam.yaml"))
    for section in ("backbone", "head"):
        assert [r[:3] for r in trained[section]] == [r[:3] for r in packaged[section]]
    assert [r[3] for r in trained["backbone"] if r[2] == "CBAM"] == [[16, 7]] * 4


def test_grid_table_params_flops_latency(grid):
    first, _ = grid["first"]
    table = {r["variant"]: r for r in first.table}
    assert list(table) == ["baseline", "cbam"]
    # coco8 has the 80 COCO classes, so the trained models match the stock and packaged YAML models
    assert table["baseline"]["params"] == n_params(YOLO("yolov8n.yaml").model)
    assert table["cbam"]["params"] == n_params(YOLO("yolov8n-cbam.yaml").model)
    assert 0 < table["baseline"]["gflops"] < table["cbam"]["gflops"]
    assert all(r["latency_ms"] > 0 for r in table.values())
    for name, row in table.items():  # mAP is the stock validator's on the run's best.pt
        own = read_csv(first.save_dir / f"{name}-seed0" / "results.csv")[-1]
        assert row["map50_95_mean"] == pytest.approx(float(own["metrics/mAP50-95(B)"]), abs=0.02)


def test_grid_resumes_skipping_finished_and_redoing_killed_runs(grid):
    second, log = grid["second"]
    save_dir = second.save_dir
    assert save_dir == grid["first"][0].save_dir
    steps = [line.split("ablate:")[1].strip() for line in log if "run " in line and "/4" in line]
    assert steps[0] == "run 1/4 (baseline, seed 0) finished earlier, skipped"
    assert "run 2/4 (baseline, seed 1) training" in steps[1]
    assert any(s.startswith("run 3/4 (cbam, seed 0) was not finished, starting it again") for s in steps)
    assert any(s.startswith("run 4/4 (cbam, seed 1) training") for s in steps)
    stamps = grid["stamps"]
    assert (save_dir / "baseline-seed0/weights/best.pt").stat().st_mtime_ns == stamps["baseline-seed0"]
    assert (save_dir / "cbam-seed0/weights/best.pt").stat().st_mtime_ns != stamps["cbam-seed0"]
    assert all((save_dir / f"{v}-seed{s}" / "ablate.json").is_file() for v in ("baseline", "cbam") for s in (0, 1))
    assert load_yaml(save_dir / "cbam-seed1" / "args.yaml")["seed"] == 1


def test_grid_outputs_mean_and_std_over_seeds(grid):
    second, _ = grid["second"]
    runs = read_csv(second.files["runs_csv"])
    assert sorted((r["variant"], r["seed"]) for r in runs) == [(v, s) for v in ("baseline", "cbam") for s in "01"]
    rows = {r["variant"]: r for r in read_csv(second.files["csv"])}
    assert list(rows) == ["baseline", "cbam"]
    for name, row in rows.items():
        assert row["runs"] == "2"
        for key in ("map50", "map50_95", "latency_ms"):
            values = [float(r[key]) for r in runs if r["variant"] == name]
            column = key if key == "latency_ms" else f"{key}_mean"
            assert float(row[column]) == pytest.approx(statistics.fmean(values))
            if key != "latency_ms":
                assert float(row[f"{key}_std"]) == pytest.approx(statistics.stdev(values))
    markdown = second.files["markdown"].read_text()
    lines = markdown.strip().splitlines()
    assert lines[0].startswith("| variant |") and "mAP50-95" in lines[0] and len(lines) == 4
    assert lines[2].startswith("| baseline |") and lines[3].startswith("| cbam |") and lines[3].count(" ± ") == 2
    plot = cv2.imread(str(second.files["plot"]))
    assert second.files["plot"].read_bytes()[:4] == b"\x89PNG" and plot is not None and plot.shape[0] > 100


def test_changed_settings_are_refused(grid, coco8):
    with pytest.raises(ValueError, match=r"epochs differ"):
        _run(coco8, grid["project"], seeds=2, epochs=2)


def test_cli_resumes_the_finished_grid(grid, coco8):
    from ultralytics_cbam.cli import main

    second, _ = grid["second"]
    args = ["ablate", f"data={coco8}", "variants=baseline,cbam", "epochs=1", "imgsz=64", "batch=4", "seeds=0,1"]
    args += [f"project={grid['project']}", "name=grid", "workers=0", "device=cpu", "latency_runs=2"]
    results = main(args)
    assert results.save_dir == second.save_dir
    assert [(r["variant"], r["seed"]) for r in results.runs] == [(r["variant"], r["seed"]) for r in second.runs]
    assert [r["map50_95_mean"] for r in results.table] == [r["map50_95_mean"] for r in second.table]


def test_package_level_call(coco8, tmp_path):
    import ultralytics_cbam

    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        ultralytics_cbam.ablate(data=str(coco8), variants="nope", project=str(tmp_path))
