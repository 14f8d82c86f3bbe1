"""Ablation runner: variants of any base model built by add_cbam's inserter, and a tiny resumable grid on coco8."""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path

import cv2
import pytest
import torch
from ablate_helpers import ablate_logged, logged
from helpers import load_yaml, read_csv, run_python
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import ROOT

from ultralytics_cbam.ablation.arguments import check_arguments
from ultralytics_cbam.ablation.runner import ablate, parse_seeds
from ultralytics_cbam.ablation.stats import compare
from ultralytics_cbam.ablation.variants import Variant, build_variant, model_file_name
from ultralytics_cbam.cfg.packaged import packaged_yaml
from ultralytics_cbam.insert import add_cbam, neck_places
from ultralytics_cbam.modules import CBAM, ChannelAttention, SpatialAttention

ATTENTION = (CBAM, ChannelAttention, SpatialAttention)
HAS = {name: any((ROOT / "cfg" / "models").rglob(name)) for name in ("yolo11.yaml", "yolo26.yaml")}
BASES = [
    "yolov8n.yaml",
    pytest.param("yolo11n.yaml", marks=pytest.mark.skipif(not HAS["yolo11.yaml"], reason="no YOLO11 before 8.3")),
    pytest.param(
        "yolo26n.yaml", marks=pytest.mark.skipif(not HAS["yolo26.yaml"], reason="this Ultralytics has no YOLO26")
    ),
]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(name: str, base: str = "yolov8n.yaml") -> DetectionModel:
    d, _, scale = build_variant(Variant.parse(name), base)
    return DetectionModel({**d, "scale": scale}, verbose=False).eval()


def attention_layers(model: DetectionModel) -> list[torch.nn.Module]:
    return [m for m in model.model if isinstance(m, ATTENTION)]


# --- variants ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("base", BASES)
def test_cbam_variant_is_what_add_cbam_writes(base, tmp_path):
    written = load_yaml(add_cbam(base, output=tmp_path / "added.yaml").yaml)
    d, text, scale = build_variant(Variant.parse("cbam"), base)
    assert scale == "n"
    for section in ("backbone", "head"):
        assert d[section] == written[section] == load_yaml_text(text)[section]
    assert d["scales"] == {"n": written["scales"]["n"]}  # only the variant's scale


def load_yaml_text(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)


def test_yolov8_cbam_variant_is_the_packaged_model():
    packaged = load_yaml(packaged_yaml("yolov8-cbam.yaml"))
    d, _, _ = build_variant(Variant.parse("cbam"), "yolov8n.yaml")
    assert d["backbone"] == packaged["backbone"] and d["head"] == packaged["head"]
    baseline, cbam = build("baseline"), build("cbam")
    assert n_params(baseline) == n_params(YOLO("yolov8n.yaml").model)
    assert n_params(cbam) == n_params(YOLO("yolov8n-cbam.yaml").model)
    assert not attention_layers(baseline)


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(
    ("name", "kind", "reduction", "kernel_size"),
    [
        ("cbam", CBAM, 16, 7),
        ("channel", ChannelAttention, 16, None),
        ("spatial", SpatialAttention, None, 7),
        ("r8", CBAM, 8, 7),
        ("k3", CBAM, 16, 3),
        ("spatial+k3", SpatialAttention, None, 3),
        ("channel+r8", ChannelAttention, 8, None),
    ],
)
def test_variant_modules_and_parameters_on_every_base(base, name, kind, reduction, kernel_size, tmp_path):
    model = build(name, base)
    layers = attention_layers(model)
    places = add_cbam(base, output=tmp_path / "c.yaml").cbam_layers  # the inserter's default places
    assert [m.i for m in layers] == places
    assert all(type(m) is kind for m in layers)
    for m in layers:
        channel = m.channel if isinstance(m, CBAM) else m
        spatial = m.spatial if isinstance(m, CBAM) else m
        if reduction is not None:
            assert channel.reduction == reduction
        if kernel_size is not None:
            assert spatial.kernel_size == kernel_size and spatial.conv.kernel_size == (kernel_size, kernel_size)
    assert model(torch.zeros(1, 3, 64, 64))[0].shape[1] == 84


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(("name", "in_backbone"), [("neck", True), ("neck-only", False), ("neck+r8", True)])
def test_neck_variants_follow_the_blocks_that_feed_the_head(base, name, in_backbone, tmp_path):
    stock = build("baseline", base)
    feeding = {type(stock.model[i]) for i in stock.model[-1].f}  # C2f in YOLOv8, C3k2 in YOLO11 and YOLO26
    first_head = len(build_variant(Variant.parse(name), base)[0]["backbone"])
    model = build(name, base)
    layers = attention_layers(model)
    neck = [m for m in layers if m.i >= first_head]
    assert len(neck) == 4 and all(type(model.model[m.i - 1]) in feeding for m in neck)
    assert [type(m) for m in model.model if m.i >= first_head and type(m) in feeding] == [type(stock.model[-2])] * 4
    backbone = [m.i for m in layers if m.i < first_head]
    assert backbone == (add_cbam(base, output=tmp_path / "c.yaml").cbam_layers if in_backbone else [])
    assert all(m.f == -1 for m in layers)
    assert model.model[-1].f == [m.i for m in neck[-3:]]  # the head reads the refined P3, P4, P5 features
    assert model(torch.zeros(1, 3, 64, 64))[0].shape[1] == 84
    if name == "neck+r8":
        assert all(m.channel.reduction == 8 for m in layers)


def test_neck_places_of_a_small_model():
    d = {
        "backbone": [[-1, 1, "Conv", [8, 3, 2]], [-1, 1, "C2f", [8]]],
        "head": [[-1, 1, "C2f", [8]], [-1, 1, "Conv", [8, 3, 2]], [-1, 1, "C3", [8]], [[-3, 4], 1, "Detect", ["nc"]]],
    }
    assert neck_places(d) == [2, 4]  # the head's C2f and C3 (the types Detect reads), not the backbone's C2f


@pytest.mark.parametrize("base", ["yolov8n.yaml", "yolov8.yaml"])
def test_scaled_up_baseline_is_the_stock_model_one_scale_up(base):
    variant = Variant.parse("baseline@s")
    assert variant.scale == "s" and variant.placement == "none"
    d, _, scale = build_variant(variant, base)
    assert scale == "s" and list(d["scales"]) == ["s"]
    assert model_file_name(variant, base, scale) == "yolov8s-baseline@s.yaml"
    assert n_params(build("baseline@s", base)) == n_params(YOLO("yolov8s.yaml").model)
    assert n_params(build("cbam@s", base)) == n_params(YOLO("yolov8s-cbam.yaml").model)
    assert build_variant(Variant.parse("baseline"), base)[2] == "n"  # no letter in the name: the YAML's first


def test_user_base_yaml(tmp_path):
    import yaml

    stock = load_yaml(ROOT / "cfg" / "models" / "v8" / "yolov8.yaml")
    file = tmp_path / "my-model.yaml"
    file.write_text(yaml.safe_dump(stock, sort_keys=False))
    variant = Variant.parse("cbam@m")
    _, text, scale = build_variant(variant, str(file))
    assert scale == "m" and model_file_name(variant, str(file), scale) == "my-model-cbam@m.yaml"
    written = tmp_path / "models" / "my-model-cbam@m.yaml"
    written.parent.mkdir()
    written.write_text(text)  # no scale in the name: Ultralytics takes the only one left in the YAML
    assert n_params(YOLO(str(written)).model) == n_params(YOLO("yolov8m-cbam.yaml").model)
    fixed = tmp_path / "fixed.yaml"
    del stock["scales"]
    fixed.write_text(yaml.safe_dump({**stock, "depth_multiple": 0.33, "width_multiple": 0.25}, sort_keys=False))
    assert build_variant(Variant.parse("cbam"), str(fixed))[2] == ""
    with pytest.raises(ValueError, match=r"variant 'baseline@s': base '.*fixed.yaml' has no scale 's' \(it has no"):
        build_variant(Variant.parse("baseline@s"), str(fixed))


def test_user_yaml_variant(tmp_path):
    source = packaged_yaml("yolov8-cbam.yaml").read_text().replace("CBAM, []", "CBAM, [4, 5]")
    file = tmp_path / "my-cbam.yaml"
    file.write_text(source)
    variant = Variant.parse(str(file))
    assert variant.name == "my-cbam" and variant.file == file
    d, text, _ = build_variant(variant)
    assert text == source
    model = DetectionModel({**d, "scale": "n"}, verbose=False)
    assert [(m.channel.reduction, m.spatial.kernel_size) for m in attention_layers(model)] == [(4, 5)] * 4


def _passing(model: DetectionModel, image: torch.Tensor) -> list[float]:
    """How much of its input each attention layer passes (the product of its gates), on one image."""
    seen = []

    def hook(module, inputs, output):
        mask = inputs[0].abs() > 1e-3
        seen.append(float((output[mask] / inputs[0][mask]).mean()))

    hooks = [m.register_forward_hook(hook) for m in attention_layers(model)]
    with torch.no_grad():
        model(image)
    for h in hooks:
        h.remove()
    return seen


def test_gentle_variant_starts_attention_near_identity(coco8, tmp_path):
    from ultralytics.models.yolo.detect import DetectionTrainer

    from ultralytics_cbam.ablation.run import gentle_trainer

    assert Variant.parse("cbam+gentle").gentle and not Variant.parse("cbam").gentle
    file = tmp_path / "yolov8n-cbam.yaml"
    file.write_text(build_variant(Variant.parse("cbam+gentle"))[1])
    args = {"model": str(file), "data": str(coco8), "imgsz": 64, "device": "cpu", "project": str(tmp_path)}
    image = torch.from_numpy(cv2.imread(str(next((coco8.parent / "images" / "val").glob("*.jpg"))))).float() / 255
    image = torch.nn.functional.interpolate(image.permute(2, 0, 1)[None].flip(1), size=(128, 128))
    ratios = {}
    for gentle in (False, True):
        trainer = (gentle_trainer(DetectionTrainer) if gentle else DetectionTrainer)(overrides=args)
        model = trainer.get_model(cfg=str(file), weights=None, verbose=False)
        ratios[gentle] = _passing(model.train(), image)  # BatchNorm on batch statistics, as in the first steps
    assert max(ratios[False]) < 0.5  # the paper's start: both gates near 0.5, about a quarter passes
    assert min(ratios[True]) > 0.9
    outputs = []  # not saturated: every attention weight still gets a gradient
    hooks = [m.register_forward_hook(lambda m, i, o: outputs.append(o)) for m in attention_layers(model)]
    model(image)
    for h in hooks:
        h.remove()
    torch.stack([o.mean() for o in outputs]).sum().backward()
    for layer in attention_layers(model):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in layer.parameters())


@pytest.mark.parametrize(
    ("name", "error", "match"),
    [
        ("cbma", ValueError, "unknown variant 'cbma'"),
        ("baseline+r8", ValueError, "unknown variant"),
        ("channel+k3", ValueError, "does not apply to ChannelAttention"),
        ("spatial+r8", ValueError, "does not apply to spatial"),
        ("k4", ValueError, "k must be a positive odd integer"),
        ("r0", ValueError, "r must be a positive integer"),
        ("r8+r16", ValueError, "sets reduction twice"),
        ("neck+neck-only", ValueError, "sets placement twice"),
        ("baseline@q", ValueError, r"'@q' is not a model scale"),
        ("gentle+gentle", ValueError, "sets gentle twice"),
        ("missing-model.yaml", FileNotFoundError, "missing-model.yaml"),
    ],
)
def test_bad_variant_names_are_named(name, error, match):
    with pytest.raises(error, match=match):
        Variant.parse(name)


def test_ray_backend_without_ray_says_how_to_install_it(monkeypatch):
    from ultralytics_cbam.ablation.ray_backend import run_on_ray

    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ImportError, match=r'pip install "ultralytics-cbam\[ray\]"'):
        run_on_ray([], 0, lambda run, record: None)
    for key, bad in (("cpus_per_run", -1), ("gpus_per_run", "one")):  # before any work, as every setting
        with pytest.raises(ValueError, match=f"{key} must be a number of at least 0"):
            check_arguments({}, backend="ray", **{key: bad})


def test_parse_seeds():
    assert parse_seeds(3) == [0, 1, 2]
    assert parse_seeds([4, 7]) == [4, 7]
    assert parse_seeds((0, 1)) == [0, 1]  # the CLI's 'seeds=0,1'
    assert parse_seeds("5,6") == [5, 6]
    for bad in (0, -1, [], [1, 1], [-2], "a,b", 2.5, True):
        with pytest.raises(ValueError, match="seed"):
            parse_seeds(bad)


def test_bad_grid_arguments_are_named(coco8, tmp_path):
    common = {"data": str(coco8), "project": str(tmp_path)}
    with pytest.raises(ValueError, match="seed"):
        ablate(variants="baseline", seed=1, **common)
    with pytest.raises(ValueError, match="epochs"):
        ablate(variants="baseline", epochs=0, **common)
    with pytest.raises(ValueError, match="backend must be one of local, ray"):
        ablate(variants="baseline", backend="dask", **common)
    with pytest.raises(ValueError, match="listed twice"):
        ablate(variants="cbam,baseline,cbam", **common)
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        ablate(variants="baseline,nope", **common)
    with pytest.raises(FileNotFoundError, match=r"no-such-base\.yaml"):
        ablate(variants="baseline", base="no-such-base.yaml", **common)
    assert not list(tmp_path.iterdir())  # nothing written for a grid that cannot run


@pytest.fixture
def no_training(monkeypatch):
    """Make any run that starts training fail the test: the checks must come first."""
    from ultralytics_cbam.ablation import local_backend

    def train_run(run):
        raise AssertionError(f"{run.variant} seed {run.seed} started training")

    monkeypatch.setattr(local_backend, "train_run", train_run)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"resume": "no"}, TypeError, r"^resume must be True or False, got 'no'$"),
        ({"resume": 1}, TypeError, r"^resume must be True or False, got 1$"),
        ({"lr": 0.1}, ValueError, r"^lr is not an Ultralytics training argument; similar: .*lr0"),
        ({"batch": "abc"}, TypeError, r"^'batch=abc' is of invalid type str\. [^\n]*$"),
        ({"device": "abc"}, ValueError, r"^Invalid CUDA 'device=abc' requested\. [^\n]*$"),
        ({"lr0": 2}, ValueError, r"^'lr0=2' is an invalid value\."),
        ({"plots": "yes"}, TypeError, r"^'plots=yes' is of invalid type str\."),
        ({"backend": "ray", "cpus_per_run": -1}, ValueError, r"^cpus_per_run must be a number of at least 0, got -1$"),
        (
            {"base": "imgs"},
            ValueError,
            r"^base must be a model YAML \(\.yaml\) or a checkpoint \(\.pt\), got '.*imgs'$",
        ),
    ],
)
def test_bad_training_arguments_fail_before_any_work(kwargs, error, match, coco8, tmp_path, no_training):
    """The settings passed on to Ultralytics' trainer are checked as it would, in one line, before any work."""
    (tmp_path / "imgs").mkdir()
    if kwargs.get("base") == "imgs":
        kwargs = {"base": str(tmp_path / "imgs")}  # a folder given as base
    common = {"data": str(coco8), "variants": "baseline", "epochs": 1, "imgsz": 64, "batch": 4, "workers": 0}
    common |= {"device": "cpu", "latency_runs": 1, "cam_images": 0, "project": str(tmp_path / "runs")}
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    with pytest.raises(error, match=match):
        ablate(**{**common, **kwargs})
    assert not (tmp_path / "runs").exists()
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == visible  # Ultralytics 8.1's select_device sets it


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("resume=no", "resume must be True or False, got 'no'"),
        ("lr=0.1", "lr is not an Ultralytics training argument; similar: "),
        ("batch=abc", "'batch=abc' is of invalid type str."),
        ("base=imgs", "base must be a model YAML (.yaml) or a checkpoint (.pt), got 'imgs'"),
    ],
)
def test_cli_bad_arguments_are_one_line_without_ultralytics_help(pair, message, coco8, tmp_path, no_training, capsys):
    from ultralytics_cbam.cli import main

    args = ["ablate", f"data={coco8}", "variants=baseline", "epochs=1", "imgsz=64", "workers=0", "device=cpu"]
    text, lines = logged(_exit_message, main, [*args, f"project={tmp_path / 'runs'}", pair])
    assert text.startswith(f"yolo-cbam ablate: {message}") and "\n" not in text
    assert not any("Arguments received" in line or "yolo TASK MODE ARGS" in line for line in lines)
    assert "yolo TASK MODE ARGS" not in capsys.readouterr().out
    assert not (tmp_path / "runs").exists()


def _exit_message(func, *args) -> str:
    with pytest.raises(SystemExit) as exit_info:
        func(*args)
    return str(exit_info.value.code)


# --- a tiny grid, trained --------------------------------------------------------------------------------------


def _run(coco8, project, **kwargs):
    settings = {"variants": "baseline,cbam", "epochs": 1, "imgsz": 64, "batch": 4, "seeds": 1, **kwargs}
    settings |= {"project": str(project), "name": "grid", "workers": 0, "device": "cpu", "latency_runs": 2}
    results, lines = ablate_logged(data=str(coco8), **settings)
    return results, [line for line in lines if "ablate:" in line]


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
    assert Path(args["cbam-seed0"]["model"]).name == "yolov8n-cbam.yaml"
    packaged = load_yaml(packaged_yaml("yolov8-cbam.yaml"))
    for section in ("backbone", "head"):
        assert trained[section] == packaged[section]


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
    assert sorted(p.name for p in save_dir.iterdir() if p.is_dir() and p.name != "cam") == [
        "baseline-seed0", "baseline-seed1", "cbam-seed0", "cbam-seed1", "models"
    ]  # fmt: skip


def test_grid_outputs_statistics_over_seeds(grid):
    second, _ = grid["second"]
    runs = read_csv(second.files["runs_csv"])
    assert [(r["variant"], r["seed"]) for r in runs] == [(v, s) for v in ("baseline", "cbam") for s in "01"]
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
    # the paired difference from baseline on the same seed, with a t interval of 1 degree of freedom
    by = {(r["variant"], int(r["seed"])): float(r["map50_95"]) for r in runs}
    diffs = [by["cbam", s] - by["baseline", s] for s in (0, 1)]
    mean, half = sum(diffs) / 2, 12.706205 * abs(diffs[0] - diffs[1]) / 2  # sd of two values: |a - b| / sqrt(2)
    cbam = rows["cbam"]
    assert float(cbam["vs_baseline_map50_95"]) == pytest.approx(mean, abs=1e-9)
    assert float(cbam["vs_baseline_map50_95_lo"]) == pytest.approx(mean - half, abs=1e-9)
    assert float(cbam["vs_baseline_map50_95_hi"]) == pytest.approx(mean + half, abs=1e-9)
    expected = compare({0: by["cbam", 0], 1: by["cbam", 1]}, {0: by["baseline", 0], 1: by["baseline", 1]})
    assert cbam["vs_baseline_verdict"] == expected["verdict"] and cbam["vs_baseline_pairs"] == "2"
    assert rows["baseline"]["vs_baseline_verdict"] == ""
    markdown = second.files["markdown"].read_text()
    lines = markdown.splitlines()
    assert lines[0].startswith("| variant |") and "Student's t" in lines[0] and "verdict vs baseline" in lines[0]
    assert lines[2].startswith("| baseline |") and lines[3].startswith("| cbam |") and lines[3].count(" ± ") == 2
    note = f" ({cbam['vs_baseline_decides']})" if cbam["vs_baseline_decides"] else ""
    assert lines[3].rstrip(" |").endswith(cbam["vs_baseline_verdict"] + note)
    plot = cv2.imread(str(second.files["plot"]))
    assert second.files["plot"].read_bytes()[:4] == b"\x89PNG" and plot is not None and plot.shape[0] > 100


def test_seeds_that_gave_identical_runs_are_flagged(grid, coco8, tmp_path):
    import json
    import shutil

    source = grid["second"][0].save_dir
    shutil.copytree(source / "models", tmp_path / "grid" / "models")
    for run in source.glob("*-seed*"):
        (tmp_path / "grid" / run.name).mkdir()
        shutil.copy(run / "ablate.json", tmp_path / "grid" / run.name)
    seed0, seed1 = (json.loads((tmp_path / "grid" / f"cbam-seed{s}" / "ablate.json").read_text()) for s in (0, 1))
    seed1["record"] = {**seed0["record"], "seed": 1}  # as if seed 1 had trained exactly like seed 0
    (tmp_path / "grid" / "cbam-seed1" / "ablate.json").write_text(json.dumps(seed1))
    results, lines = _run(coco8, tmp_path, seeds=2)  # every run finished: only the tables are written again
    assert sum("finished earlier, skipped" in line for line in lines) == 4
    message = "cbam: seeds 0 and 1 gave identical results: the seed did not take effect"
    assert any(message in line for line in lines)
    rows = {r["variant"]: r for r in read_csv(results.files["csv"])}
    assert rows["baseline"]["warning"] == "" and message.split(": ", 1)[1] == rows["cbam"]["warning"]
    assert f"**Warning:** {message}." in results.markdown.read_text()


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


def test_raising_seeds_on_a_finished_grid_trains_only_the_new_seeds(grid):
    _, log = grid["second"]
    trained = [line.split("ablate:")[1].strip().split(")")[0] + ")" for line in log if ") training" in line]
    # cbam seed 0 lost its marker (killed), so it trains again; baseline seed 0 finished and stays as it was
    assert trained == ["run 2/4 (baseline, seed 1)", "run 3/4 (cbam, seed 0)", "run 4/4 (cbam, seed 1)"]
    stamp = (grid["second"][0].save_dir / "baseline-seed0/weights/best.pt").stat().st_mtime_ns
    assert stamp == grid["stamps"]["baseline-seed0"]


def test_metrics_reach_the_table_under_their_own_names(coco8, tmp_path, monkeypatch):
    """A validator whose metrics are fixed and differ between mAP50 and mAP50-95 (and between seeds): each number must
    land in its own column, and the paired difference must be taken on mAP50-95."""
    import torch
    from ultralytics.utils.metrics import DetMetrics

    def fixed(self):
        seed = torch.initial_seed()  # the run's seed: the trainer seeds torch with it
        return {
            "metrics/precision(B)": 0.9,
            "metrics/recall(B)": 0.8,
            "metrics/mAP50(B)": 0.7 + 0.01 * seed,
            "metrics/mAP50-95(B)": 0.4 + 0.02 * seed,
            "fitness": 0.5,
        }

    monkeypatch.setattr(DetMetrics, "results_dict", property(fixed))
    results, _ = _run(coco8, tmp_path, variants="baseline,cbam", seeds=2)
    for run in results.runs:
        assert run["map50"] == pytest.approx(0.7 + 0.01 * run["seed"])
        assert run["map50_95"] == pytest.approx(0.4 + 0.02 * run["seed"])
    rows = {r["variant"]: r for r in read_csv(results.files["csv"])}
    assert float(rows["cbam"]["map50_mean"]) == pytest.approx(0.705)
    assert float(rows["cbam"]["map50_95_mean"]) == pytest.approx(0.41)
    assert float(rows["cbam"]["map50_95_std"]) == pytest.approx(statistics.stdev([0.40, 0.42]))
    assert float(rows["cbam"]["vs_baseline_map50_95"]) == pytest.approx(0.0, abs=1e-12)
    assert "| 0.705 ± 0.007 | 0.410 ± 0.014 |" in results.markdown.read_text()


def test_study_script_resumes_from_its_records_and_writes_the_readme_block(grid, coco8, tmp_path, monkeypatch):
    from benchmarks import ablation_study

    monkeypatch.setattr(ablation_study, "FIRST", "baseline,cbam")
    monkeypatch.setattr(ablation_study, "REST", "")
    monkeypatch.setattr(ablation_study, "ORDER", "baseline,cbam")
    monkeypatch.setattr(ablation_study, "DECIDE", "cbam")
    monkeypatch.setattr(ablation_study, "CAM_VARIANTS", ("baseline", "cbam"))
    second, _ = grid["second"]
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- ablation:start -->\nold\n<!-- ablation:end -->\n\nAfter.\n")
    figure, records, cam = tmp_path / "figures" / "ablation.png", tmp_path / "records.json", tmp_path / "cam.png"
    argv = [f"data={coco8}", "seeds=2", "epochs=1", "imgsz=64", "name=grid", f"readme={readme}", f"figure={figure}"]
    argv += [f"cam={cam}"]
    argv += [f"records={records}", "batch=4", "workers=0", "device=cpu", "latency_runs=2"]
    recorded = ablation_study.main([*argv, f"project={grid['project']}"])  # a finished grid: nothing trains
    assert sorted((r["variant"], r["seed"]) for r in recorded["runs"]) == [
        (v, s) for v in ("baseline", "cbam") for s in (0, 1)
    ]
    for run in second.runs:
        kept = next(r for r in recorded["runs"] if (r["variant"], r["seed"]) == (run["variant"], run["seed"]))
        assert kept["record"]["map50_95"] == run["map50_95"] and kept["profile"]["params"] == run["params"]
    text = readme.read_text()
    block = text.split("<!-- ablation:start -->\n")[1].split("\n<!-- ablation:end -->")[0]
    assert text.startswith("# Title\n\n") and text.endswith("\n\nAfter.\n") and "old" not in text
    command = f"yolo-cbam ablate data={coco8} base=yolov8n.yaml variants=<variant> seeds=<its seeds> epochs=1 imgsz=64"
    assert block.startswith(f"Each row: `{command}`.")
    assert "| baseline |" in block and "| cbam |" in block and "Not trained yet" not in block
    assert block == ablation_study.block(
        json.loads(records.read_text()),
        {**ablation_study.DEFAULTS, "data": str(coco8), "epochs": 1, "imgsz": 64},
        figure,
        readme,
        cam,
    )
    assert "**cbam vs baseline** over 2 seeds" in block
    assert "](figures/ablation.png)" in block and cv2.imread(str(figure)) is not None
    from ultralytics.utils import plotting

    if hasattr(plotting, "class_activation_map"):  # LayerCAM of the two variants, side by side
        assert block.endswith("](cam.png)") and cv2.imread(str(cam)).shape[1] == 900
    else:
        assert block.endswith("](figures/ablation.png)") and not cam.exists()

    # another checkout: no grid directory, only the records; every run is restored, none trained again
    _, log = logged(ablation_study.main, [*argv, f"project={tmp_path / 'elsewhere'}"])
    assert [line for line in log if ") training" in line] == []
    assert sum("finished earlier, skipped" in line for line in log) == 4
    readme.write_text("no block\n")
    with pytest.raises(SystemExit, match=r"^benchmarks\.ablation_study: .*no <!-- ablation:start -->"):
        ablation_study.main(argv)  # refused before any training


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("epoch=1", "epoch is not an Ultralytics training argument; similar: epochs"),
        ("seeds=0", "seeds must be a positive integer, got 0"),
        ("max_seeds=abc", "max_seeds must be a positive integer, got 'abc'"),
        ("cam_image=-1", "cam_image must be a non-negative integer, got -1"),
        ("train=no", "train must be True or False, got 'no'"),
        ("resume=no", "resume must be True or False, got 'no'"),
        ("batch=abc", "'batch=abc' is of invalid type str."),
        ("variants=cbam", "variants: the study sets it itself"),
    ],
)
def test_study_script_names_a_bad_argument_before_any_work(pair, message, coco8, tmp_path, no_training):
    from benchmarks import ablation_study

    argv = [f"data={coco8}", "epochs=1", "imgsz=64", "workers=0", "device=cpu", "latency_runs=1"]
    argv += [f"project={tmp_path / 'runs'}", f"records={tmp_path / 'records.json'}", pair]
    text = _exit_message(ablation_study.main, argv)
    assert text.startswith(f"benchmarks.ablation_study: {message}") and "\n" not in text
    assert not list(tmp_path.iterdir())  # neither the grid nor the records


def test_study_decision_text_uses_the_runners_wording():
    from benchmarks.ablation_study import decision_text

    def records(deltas: list[float]) -> dict:
        runs = [{"variant": "baseline", "seed": s, "record": {"map50_95": 0.5}} for s in range(len(deltas))]
        runs += [{"variant": "neck-only", "seed": s, "record": {"map50_95": 0.5 + d}} for s, d in enumerate(deltas)]
        return {"runs": runs}

    decided = decision_text(records([0.050, 0.052, 0.048]), max_seeds=10)
    assert decided.startswith("**neck-only vs baseline** over 3 seeds: Δ mAP50-95 +0.050 [")
    assert decided.endswith(", better: decided.")
    # mean 0.02, sd 0.02: the half-width t(0.975, n-1) * 0.02 / sqrt(n) is 0.0210 at n=6 and 0.0185 at n=7
    more = decision_text(records([0.0, 0.02, 0.04]), max_seeds=10)
    assert more.endswith(": undecided so far (about 7 seeds would decide it).")
    stopped = decision_text(records([0.0, 0.02, 0.04]), max_seeds=5)
    assert stopped.endswith(": undecided (about 7 seeds would decide it); the study's limit is 5 seeds, so it stopped.")
    tiny = decision_text(records([0.001, -0.002, 0.003, 0.0]), max_seeds=10)
    assert tiny.endswith(
        ": undecided (Δ within ±0.005: too small to matter); the study's limit is 10 seeds, so it stopped."
    )


def test_package_level_call(coco8, tmp_path):
    import ultralytics_cbam

    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        ultralytics_cbam.ablate(data=str(coco8), variants="nope", project=str(tmp_path))


_NO_RAY = """
import importlib.abc, inspect, sys

importers = []


class NoRay(importlib.abc.MetaPathFinder):  # as if Ray were not installed; note who asks for it
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            caller = next(f for f in inspect.stack()[1:] if "importlib" not in f.filename)
            importers.append(caller.frame.f_globals.get("__name__"))
            raise ImportError(name)


sys.meta_path.insert(0, NoRay())
from ultralytics_cbam import ablate

results = ablate(data=sys.argv[1], variants="baseline", seeds=1, epochs=1, imgsz=32, batch=2, workers=0,
                 device="cpu", latency_runs=1, project=sys.argv[2], name="local")
assert [r["variant"] for r in results.runs] == ["baseline"], results.runs
print("importers:", sorted(set(importers)))
print("modules:", sorted(m for m in sys.modules if m.startswith("ultralytics_cbam.ablation")))
"""


def test_default_backend_never_imports_ray(coco8, tmp_path):
    script = tmp_path / "no_ray.py"
    script.write_text(_NO_RAY)
    result = run_python(
        f"import runpy, sys; sys.argv = ['x', {str(coco8)!r}, {str(tmp_path)!r}]; "
        f"runpy.run_path({str(script)!r}, run_name='__main__')",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(
        line.split(": ", 1) for line in result.stdout.splitlines() if line.startswith(("importers", "modules"))
    )
    assert set(eval(lines["importers"])) <= {"ultralytics.utils.callbacks.raytune"}  # only Ultralytics' own probe
    assert "ultralytics_cbam.ablation.ray_backend" in lines["modules"]  # the backend module loads, Ray itself does not
    assert (tmp_path / "local" / "results.md").is_file()


def test_checkpoint_base_fine_tunes_every_variant_from_its_weights(coco8, tmp_path):
    """base=best.pt: each variant is the checkpoint's model with its attention, and starts from the checkpoint's weights
    in every layer it shares with it. With a learning rate of 0 the runs end where they started, so their weights show
    it."""
    stock = YOLO("yolov8n.yaml")
    stock.train(data=str(coco8), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", project=str(tmp_path))
    ckpt = tmp_path / "train" / "weights" / "best.pt"
    source = torch.load(ckpt, weights_only=False)["model"].float().state_dict()
    frozen = {"optimizer": "SGD", "lr0": 0.0, "warmup_epochs": 0, "weight_decay": 0.0}  # SGD steps of size 0
    results, _ = _run(coco8, tmp_path / "grid", variants="baseline,cbam,se,cbam+gentle", base=str(ckpt), **frozen)
    assert {r["variant"] for r in results.runs} == {"baseline", "cbam", "se", "cbam+gentle"}
    index = add_cbam(str(ckpt), output=tmp_path / "mapped.yaml").index_map  # stock layer -> layer in the variant
    for name in ("baseline", "cbam", "se", "cbam+gentle"):
        trained = torch.load(results.save_dir / f"{name}-seed0" / "weights" / "last.pt", weights_only=False)["model"]
        params = dict(trained.float().named_parameters())
        for key, value in source.items():
            if "running_" in key or "num_batches" in key or key.split(".")[-1] not in ("weight", "bias"):
                continue
            layer = int(key.split(".")[1])
            moved = key if name == "baseline" else key.replace(f"model.{layer}.", f"model.{index[layer]}.", 1)
            assert torch.equal(params[moved], value), f"{name}: {moved} is not the checkpoint's {key}"
    yaml_rows = load_yaml(results.save_dir / "models" / "best-se.yaml")
    assert sum(row[2] == "SE" for row in yaml_rows["backbone"] + yaml_rows["head"]) == 4
    with pytest.raises(ValueError, match="base= is a checkpoint"):
        ablate(data=str(coco8), base=str(ckpt), variants="baseline", pretrained=str(ckpt), project=str(tmp_path))
    with pytest.raises(ValueError, match="weights fit no other scale"):
        build_variant(Variant.parse("baseline@s"), str(ckpt))


def test_grid_writes_its_layercam_figure_beside_the_results(grid, coco8):
    from ultralytics.utils import plotting

    from ultralytics_cbam.ablation.runner import validation_images

    second, log = grid["second"]
    val = sorted((coco8.parent / "images" / "val").glob("*.jpg"))
    assert validation_images(str(coco8), 3) == val[:3]
    if not hasattr(plotting, "class_activation_map"):
        assert any("no CAM figure: class activation maps need Ultralytics >= 8.4.113" in line for line in log)
        assert not second.files["cam"].exists()
        return
    figures = sorted(second.files["cam"].glob("*_cam.jpg"))
    assert [f.name for f in figures] == [f"{p.stem}_cam.jpg" for p in val[:3]]
    assert sorted(p.name for p in (second.files["cam"] / "overlays").iterdir()) == ["baseline", "cbam"]
    assert all(cv2.imread(str(f)).shape[1] == 900 for f in figures)


def test_readme_study_block_is_rebuilt_from_the_committed_records():
    from benchmarks import ablation_study
    from benchmarks.study_records import load_records

    readme = Path(ablation_study.ROOT) / "README.md"
    text = readme.read_text(encoding="utf-8")
    committed = text.split("<!-- ablation:start -->\n")[1].split("\n<!-- ablation:end -->")[0]
    records = load_records(ablation_study.DEFAULTS["records"])
    settings = ablation_study.DEFAULTS
    assert committed == ablation_study.block(records, settings, settings["figure"], readme, settings["cam"])
    assert "| se |" in committed and "neck-only vs baseline" in committed
