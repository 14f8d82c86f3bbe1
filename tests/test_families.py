"""'<stock>-cbam.yaml' names for every Ultralytics family: builds, parameter counts, weight transfer, training."""

from __future__ import annotations

import inspect
import os
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from helpers import run_python, save_checkpoint, yolo_cli
from ultralytics import YOLO
from ultralytics.nn import tasks
from ultralytics.utils import LOGGER
from ultralytics.utils.checks import check_yaml

from ultralytics_cbam import CBAM, add_cbam
from ultralytics_cbam.cfg.families import families, generated_yaml, scaled_name
from ultralytics_cbam.cfg.packaged import YAML_DIR, packaged_yaml
from ultralytics_cbam.insert import default_cbam_yaml

FAMILIES = families()
FAMILY_TASKS = [(family, task) for family, tasks in FAMILIES.items() for task in tasks]
NEWEST = list(FAMILIES)[-1]


def cbam_params(c: int, r: int = 16, k: int = 7) -> int:
    """Parameters of one CBAM on c channels: two 1x1 convs c -> max(c//r, 1) -> c, one k x k conv 2 -> 1, no bias."""
    return 2 * c * max(c // r, 1) + 2 * k * k


def n_params(model) -> int:
    return sum(p.numel() for p in model.model.parameters())


def output_channels(model) -> list[int | None]:
    """Channels of every layer's output in a forward pass of the (stock) model at 64 px."""
    channels, hooks = [], []
    for i, layer in enumerate(model.model.model):
        channels.append(None)

        def hook(_, __, out, i=i):
            channels[i] = out.shape[1] if isinstance(out, torch.Tensor) and out.dim() == 4 else None

        hooks.append(layer.register_forward_hook(hook))
    try:
        with torch.inference_mode():
            model.model.eval()(torch.zeros(1, 3, 64, 64))
    finally:
        for h in hooks:
            h.remove()
    return channels


def check_against_stock(ours, stock) -> None:
    """`ours` is `stock` with CBAM rows added in its backbone, and exactly the CBAM parameters more."""
    layers = list(ours.model.model)
    cbam = [i for i, m in enumerate(layers) if isinstance(m, CBAM)]
    assert cbam, "no CBAM layer"
    assert [type(m).__name__ for m in layers if not isinstance(m, CBAM)] == [
        type(m).__name__ for m in stock.model.model
    ]
    assert max(cbam) < len(ours.model.yaml["backbone"]), "CBAM outside the backbone"
    assert all(not isinstance(layers[i - 1], CBAM) for i in cbam)
    # the stock layer each CBAM follows, and that layer's output channels in the stock model
    follows = [i - 1 - n for n, i in enumerate(cbam)]
    channels = output_channels(stock)
    assert n_params(ours) == n_params(stock) + sum(cbam_params(channels[j]) for j in follows)
    assert ours.task == stock.task


@pytest.mark.parametrize(("family", "task"), FAMILY_TASKS, ids=[f"{f}-{t}" for f, t in FAMILY_TASKS])
def test_every_family_and_task_builds_at_scale_n(family, task):
    stock_yaml = FAMILIES[family][task]
    ours = YOLO(scaled_name(stock_yaml, "n", cbam=True))
    stock = YOLO(scaled_name(stock_yaml, "n"))
    assert ours.model.yaml["scale"] == "n"
    assert ours.task == task
    check_against_stock(ours, stock)


@pytest.mark.parametrize("family", FAMILIES)
def test_scale_letter_picks_the_scale(family):
    stock_yaml = FAMILIES[family]["detect"]
    ours = YOLO(scaled_name(stock_yaml, "s", cbam=True))
    stock = YOLO(scaled_name(stock_yaml, "s"))
    assert ours.model.yaml["scale"] == "s"
    check_against_stock(ours, stock)
    assert n_params(stock) > n_params(YOLO(scaled_name(stock_yaml, "n")))  # s is another model than n


@pytest.mark.parametrize("family", FAMILIES)
def test_stock_checkpoint_moves_to_the_new_indices(family, tmp_path):
    stock_yaml = FAMILIES[family]["detect"]
    stock = YOLO(scaled_name(stock_yaml, "n"))
    with torch.no_grad():  # weights unlike any initialisation, so only a real transfer matches them
        for tensor in stock.model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    path = save_checkpoint(stock, tmp_path / scaled_name(stock_yaml, "n").replace(".yaml", ".pt"))
    source = torch.load(path, map_location="cpu", weights_only=False)["model"].float().state_dict()

    model = YOLO(scaled_name(stock_yaml, "n", cbam=True)).load(path)
    places = [j for j, m in enumerate(model.model.model) if not isinstance(m, CBAM)]
    target = model.model.state_dict()
    for key, tensor in source.items():
        head, index, rest = key.split(".", 2)
        assert torch.equal(target[f"{head}.{places[int(index)]}.{rest}"], tensor), key


@pytest.mark.skipif("yolov8" not in FAMILIES, reason="this Ultralytics ships no YOLOv8 family")
@pytest.mark.parametrize("task", FAMILIES.get("yolov8", {}))
def test_generated_yolov8_is_the_packaged_yaml(task):
    stock_yaml = FAMILIES["yolov8"][task]
    name = stock_yaml.replace(".yaml", "-cbam.yaml")
    packaged = YAML_DIR / name
    generated = yaml.safe_load(default_cbam_yaml(check_yaml(stock_yaml)))
    assert generated == yaml.safe_load(packaged.read_text(encoding="utf-8"))
    assert packaged_yaml(name) == packaged  # the packaged file keeps its name, for every scale
    assert packaged_yaml(scaled_name(stock_yaml, "m", cbam=True)) == packaged


def test_names_resolve_deterministically_outside_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name = scaled_name(FAMILIES[NEWEST]["detect"], "n", cbam=True)
    path = Path(check_yaml(name))
    stamp, text = path.stat().st_mtime_ns, path.read_text(encoding="utf-8")
    assert tmp_path not in path.parents
    YOLO(name)
    assert Path(check_yaml(name)) == path
    assert path.stat().st_mtime_ns == stamp and path.read_text(encoding="utf-8") == text  # not rewritten
    assert os.listdir(tmp_path) == []


def test_file_in_the_working_directory_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    stock_yaml = FAMILIES[NEWEST]["detect"]
    d = yaml.safe_load(generated_yaml(stock_yaml).read_text(encoding="utf-8"))
    name = scaled_name(stock_yaml, "n", cbam=True)
    (tmp_path / stock_yaml.replace(".yaml", "-cbam.yaml")).write_text(yaml.safe_dump({**d, "nc": 5}))
    assert YOLO(name).model.yaml["nc"] == 5  # the scale-free name, as Ultralytics reads 'yolo11.yaml' for 'yolo11n'
    (tmp_path / name).write_text(yaml.safe_dump({**d, "nc": 3}))
    assert check_yaml(name) == name
    if "check_yaml(path, hard=False) or" in inspect.getsource(tasks.yaml_model_load):  # 8.4 reads the name first
        assert YOLO(name).model.yaml["nc"] == 3


def test_unknown_family_names_the_available_ones():
    with pytest.raises(FileNotFoundError, match=r"no model YAML 'yolo99\.yaml'") as error:
        YOLO("yolo99n-cbam.yaml")
    assert all(family in str(error.value) for family in FAMILIES)
    assert packaged_yaml("my-own-cbam.yaml") is None  # other names stay Ultralytics' to report


def test_add_cbam_reads_and_matches_the_names(tmp_path):
    stock_yaml = FAMILIES[NEWEST]["detect"]
    name = scaled_name(stock_yaml, "n", cbam=True)
    made = add_cbam(scaled_name(stock_yaml, "n"), output=tmp_path / "made.yaml")
    assert yaml.safe_load(made.yaml.read_text()) == yaml.safe_load(Path(check_yaml(name)).read_text())

    head = YOLO(name).model.yaml["head"]
    last_block = len(YOLO(name).model.model) - 2  # the layer before the output head, in the neck
    more = add_cbam(name, where=last_block, output=tmp_path / "more.yaml")
    rows = yaml.safe_load(more.yaml.read_text())
    assert sum(row[2] == "CBAM" for row in rows["backbone"] + rows["head"]) == len(made.cbam_layers) + 1
    assert len(rows["head"]) == len(head) + 1


def test_ablation_runner_takes_the_names():
    from ultralytics_cbam.ablation.variants import Variant, build_variant

    stock_yaml = FAMILIES[NEWEST]["detect"]
    base, name = scaled_name(stock_yaml, "n"), scaled_name(stock_yaml, "n", cbam=True)
    by_name, _, scale = build_variant(Variant.parse(name), base)  # a variant given as a model YAML name
    cbam, _, _ = build_variant(Variant.parse("cbam"), base)  # the runner's own CBAM variant of the base
    assert scale == "n" and (by_name["backbone"], by_name["head"]) == (cbam["backbone"], cbam["head"])
    on_cbam, _, _ = build_variant(Variant.parse("baseline"), name)  # the name as the base model
    assert on_cbam["backbone"] == cbam["backbone"]


def first_tensor(out) -> torch.Tensor:
    """The first tensor of a model's output: a tensor, or tuples, lists and dicts of them."""
    while isinstance(out, (tuple, list, dict)):
        out = next(iter(out.values())) if isinstance(out, dict) else out[0]
    return out.detach()


@pytest.mark.skipif("yolov8" not in FAMILIES, reason="this Ultralytics ships no YOLOv8 family")
def test_families_table_row():
    from benchmarks import families_table

    row = families_table.measure("yolov8", "detect", "n", imgsz=64)
    assert row.after == "2 C2f, 4 C2f, 6 C2f, 9 SPPF"  # the article's places
    assert row.params[1] - row.params[0] == sum(cbam_params(c) for c in (32, 64, 128, 256))
    assert row.gflops[1] > row.gflops[0] > 0


def captured(records: list[str]):
    import logging

    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    return handler


@pytest.mark.parametrize(("family", "how"), [("yolo11", "python"), ("yolo26", "cli")])
def test_pretrained_one_epoch_train_and_reload_in_a_fresh_process(family, how, coco8, tmp_path):
    if family not in FAMILIES:
        pytest.skip(f"Ultralytics {__import__('ultralytics').__version__} ships no {family} family")
    stock_path = save_checkpoint(YOLO(f"{family}n.yaml"), tmp_path / f"{family}n.pt")
    n_source = len(torch.load(stock_path, map_location="cpu", weights_only=False)["model"].state_dict())
    name = f"{family}n-cbam.yaml"
    args = dict(data=str(coco8), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False)
    args |= dict(project=str(tmp_path / "runs"), name="train", pretrained=str(stock_path), amp=False)
    if how == "python":
        log: list[str] = []
        handler = captured(log)
        LOGGER.addHandler(handler)
        try:
            YOLO(name).train(**args)
        finally:
            LOGGER.removeHandler(handler)
        out = "\n".join(log)
    else:  # the stock command line, in a process that never imports the package
        result = yolo_cli(["train", f"model={name}", *(f"{k}={v}" for k, v in args.items())], tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        out = result.stdout + result.stderr
    assert f"{n_source}/{n_source} of its tensors arrived" in out, out[-3000:]

    weights = tmp_path / "runs" / "train" / "weights" / "last.pt"
    code = (
        "import torch\n\n"
        + inspect.getsource(first_tensor)
        + textwrap.dedent(f"""
        from ultralytics import YOLO
        model = YOLO({str(weights)!r}).model.eval()
        print("CBAM", sum(type(m).__name__ == "CBAM" for m in model.model))
        torch.save(first_tensor(model(torch.linspace(0, 1, 3 * 64 * 64).reshape(1, 3, 64, 64))), "out.pt")
    """)
    )
    fresh = run_python(code, tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    model = YOLO(weights).model.eval()
    assert f"CBAM {sum(isinstance(m, CBAM) for m in model.model)}" in fresh.stdout
    with torch.inference_mode():
        here = first_tensor(model(torch.linspace(0, 1, 3 * 64 * 64).reshape(1, 3, 64, 64)))
    there = torch.load(tmp_path / "out.pt")
    assert here.shape == there.shape and here.abs().sum() > 0
    assert torch.allclose(here, there, atol=1e-4)
