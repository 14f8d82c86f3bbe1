"""add_cbam / `yolo-cbam add`: CBAM inserted into model YAMLs and checkpoints, every `from` rewired."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from helpers import save_checkpoint
from ultralytics import YOLO
from ultralytics.nn import tasks
from ultralytics.utils import ROOT

from ultralytics_cbam import ModelYAMLError, modules
from ultralytics_cbam.cfg.packaged import packaged_yaml
from ultralytics_cbam.insert import add_cbam

TASKS = {"": tasks.DetectionModel, "-seg": tasks.SegmentationModel, "-pose": tasks.PoseModel}
TASKS |= {"-obb": tasks.OBBModel, "-cls": tasks.ClassificationModel}
NEEDS_YOLO11 = pytest.mark.skipif(
    not any((ROOT / "cfg" / "models").rglob("yolo11.yaml")), reason="this Ultralytics has no YOLO11 (8.3.0 and later)"
)


def rows(path: Path) -> list[list]:
    d = yaml.safe_load(Path(path).read_text())
    return d["backbone"] + d["head"]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build(cls, path: Path, scale: str = "n") -> torch.nn.Module:
    d = yaml.safe_load(Path(path).read_text())
    d["scale"] = scale
    return cls(d, verbose=False)


def plain_indices(model: torch.nn.Module) -> list[int]:
    return [j for j, m in enumerate(model.model) if not isinstance(m, modules.CBAM)]


def copy_into(new: torch.nn.Module, old: torch.nn.Module) -> None:
    """Copy every tensor of `old` to the same layer of `new`, found as the i-th non-CBAM layer."""
    places, state = plain_indices(new), new.state_dict()
    for key, tensor in old.state_dict().items():
        head, index, rest = key.split(".", 2)
        state[f"{head}.{places[int(index)]}.{rest}"].copy_(tensor)


def without_attention(model: torch.nn.Module) -> torch.nn.Module:
    """Make every CBAM layer pass its input through, so the model must compute what the CBAM-free one does."""
    for m in model.model:
        if isinstance(m, modules.CBAM):
            m.forward = lambda x: x
    return model


def outputs(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        y = model.eval()(x)
    flat = []

    def collect(v):
        if isinstance(v, torch.Tensor):
            flat.append(v)
        elif isinstance(v, (list, tuple)):
            for item in v:
                collect(item)
        elif isinstance(v, dict):
            for item in v.values():
                collect(item)

    collect(y)
    return flat


@pytest.mark.parametrize("suffix", list(TASKS))
def test_round_trip_gives_the_shipped_cbam_yaml(suffix, tmp_path):
    out = add_cbam(f"yolov8{suffix}.yaml", output=tmp_path / f"yolov8{suffix}-cbam.yaml")
    shipped = packaged_yaml(f"yolov8{suffix}-cbam.yaml")
    assert rows(out.yaml) == rows(shipped)
    for scale in "ns":
        a, b = build(TASKS[suffix], out.yaml, scale), build(TASKS[suffix], shipped, scale)
        assert [type(m) for m in a.model] == [type(m) for m in b.model]
        assert [m.f for m in a.model] == [m.f for m in b.model]
        assert n_params(a) == n_params(b)


@pytest.mark.parametrize(
    ("name", "cls", "where"),
    [
        ("yolov8n-seg.yaml", tasks.SegmentationModel, "default"),
        ("yolov8n-pose.yaml", tasks.PoseModel, "default"),
        ("yolov8n-obb.yaml", tasks.OBBModel, "default"),
        ("yolov8n-cls.yaml", tasks.ClassificationModel, "default"),
        pytest.param("yolo11n.yaml", tasks.DetectionModel, "default", marks=NEEDS_YOLO11),
        pytest.param("yolo11n-seg.yaml", tasks.SegmentationModel, "C3k2,SPPF", marks=NEEDS_YOLO11),
        ("yolov8n.yaml", tasks.DetectionModel, "C2f,Concat,0"),  # head layers too: every reference shifts
    ],
)
def test_every_from_reference_is_rewired(name, cls, where, tmp_path):
    """With CBAM passing its input through, the new model computes exactly what the old one computes."""
    out = add_cbam(name, output=tmp_path / "new.yaml", where=where)
    old = cls(name, verbose=False)
    new = build(cls, out.yaml, scale=re.search(r"\d+([nslmx])", name).group(1))
    assert len(new.model) == len(old.model) + len(out.cbam_layers)
    assert n_params(new) == n_params(old) + sum(n_params(new.model[i]) for i in out.cbam_layers)
    copy_into(new, old)
    torch.manual_seed(0)
    x = torch.rand(2, 3, 128, 128)
    for a, b in zip(outputs(old, x), outputs(without_attention(new), x), strict=True):
        torch.testing.assert_close(a, b)


def test_default_places_follow_the_article(tmp_path):
    """After the last layer of every backbone stage from P2 on; at P5 after the SPPF-type block."""
    assert add_cbam("yolov8n.yaml", output=tmp_path / "a.yaml").after == [2, 4, 6, 9]  # C2f P2-P4, SPPF
    assert add_cbam("yolov8n-cls.yaml", output=tmp_path / "b.yaml").after == [2, 4, 6, 8]  # no SPPF: last C2f
    p6 = add_cbam("yolov8n-p6.yaml", output=tmp_path / "d.yaml")
    assert [rows(tmp_path / "d.yaml")[i - 1][2] for i in p6.cbam_layers] == ["C2f", "C2f", "C2f", "C2f", "SPPF"]


@NEEDS_YOLO11
def test_default_places_in_yolo11(tmp_path):
    """YOLO11 gets CBAM at the same stages, between its SPPF and C2PSA."""
    yolo11 = add_cbam("yolo11n.yaml", output=tmp_path / "c.yaml")
    assert yolo11.after == [2, 4, 6, 9]
    assert [r[2] for r in rows(tmp_path / "c.yaml")[12:15]] == ["SPPF", "CBAM", "C2PSA"]


def test_placement_by_index_type_and_arguments(tmp_path):
    out = add_cbam("yolov8n.yaml", output=tmp_path / "a.yaml", where="2,SPPF", r=8, k=3)
    assert out.after == [2, 9] and out.cbam_layers == [3, 11]
    assert [r for r in rows(out.yaml) if r[2] == "CBAM"] == [[-1, 1, "CBAM", [8, 3]]] * 2
    assert add_cbam("yolov8n.yaml", output=tmp_path / "b.yaml", where=[4], r=4).cbam_layers == [5]
    assert rows(tmp_path / "b.yaml")[5] == [-1, 1, "CBAM", [4]]
    c2f = [i for i, r in enumerate(rows(ROOT / "cfg" / "models" / "v8" / "yolov8.yaml")) if r[2] == "C2f"]
    assert add_cbam("yolov8n.yaml", output=tmp_path / "c.yaml", where="C2f").after == c2f


def test_yaml_is_plain_and_readable(tmp_path):
    out = add_cbam("yolov8n.yaml", output=tmp_path / "yolov8n-cbam.yaml")
    text = out.yaml.read_text()
    row_lines = [line for line in text.splitlines() if line.startswith("  - ")]
    assert len(row_lines) == len(rows(out.yaml))
    assert all(re.fullmatch(r"  - \[.*\]( # .*)?", line) for line in row_lines)
    assert "  - [-1, 1, CBAM, []] # 3" in row_lines
    assert "  - [-1, 1, Conv, [256, 3, 2]] # 4-P3/8" in row_lines  # the row's own comment, renumbered
    assert "  - [[-1, 9], 1, Concat, [1]] # cat backbone P4" in row_lines
    assert text.startswith("# Ultralytics") and "nc: 80 # number of classes" in text


def test_checkpoint_input_carries_every_tensor(tmp_path):
    stock = YOLO("yolov8n-pose.yaml")
    save_checkpoint(stock, tmp_path / "yolov8n-pose.pt")
    source = torch.load(tmp_path / "yolov8n-pose.pt", weights_only=False)["model"].float().state_dict()
    out = add_cbam(tmp_path / "yolov8n-pose.pt", output=tmp_path / "out" / "yolov8n-pose-cbam.yaml")
    assert out.weights == tmp_path / "out" / "yolov8n-pose-cbam.pt" and out.weights.is_file()

    model = YOLO(out.weights)
    assert model.task == "pose"
    places, state = plain_indices(model.model), model.model.state_dict()
    for key, tensor in source.items():
        head, index, rest = key.split(".", 2)
        assert torch.equal(state[f"{head}.{places[int(index)]}.{rest}"], tensor), key
    assert n_params(YOLO(out.yaml).model) == n_params(model.model)
    assert [m.f for m in build(tasks.PoseModel, out.yaml).model] == [m.f for m in model.model.model]


def test_checkpoint_with_gentle_start(tmp_path, coco8_images):
    """gentle=True: the new CBAM layers of the checkpoint start with gates near 1 instead of the paper's 0.5."""
    stock = YOLO("yolov8n.yaml")
    x = torch.stack([photo(p, 320) for p in coco8_images])
    with torch.no_grad():  # batch-norm statistics of real activations, so that features keep their size in eval mode
        for _ in range(8):
            stock.model.train()(x)
    save_checkpoint(stock, tmp_path / "yolov8n.pt")
    plain = YOLO(add_cbam(tmp_path / "yolov8n.pt", output=tmp_path / "p.yaml").weights).model.eval()
    gentle = YOLO(add_cbam(tmp_path / "yolov8n.pt", output=tmp_path / "g.yaml", gentle=True).weights).model.eval()
    assert mean_gates(plain, x) == pytest.approx([0.25] * 4, abs=0.1)  # two gates near 0.5 multiply
    assert min(mean_gates(gentle, x)) > 0.25  # each gate is at least 0.5 (how close to 1: test_gentle_init.py)
    for m in (
        m for m in gentle.model if isinstance(m, modules.CBAM)
    ):  # the gentle form: see ultralytics_cbam.weight_init
        w, c = m.spatial.conv.weight[0].detach(), m.spatial.conv.kernel_size[0] // 2
        assert w[1, c, c] > 1 and abs(w[0, c, c] + w[1, c, c]) < 0.05  # the centre tap takes max_c - mean_c
        assert (m.channel.fc2.weight > 0).all()  # a never-negative hidden layer, spread with positive weights


def photo(path: Path, size: int) -> torch.Tensor:
    """An RGB photograph as a (3, size, size) tensor in [0, 1]."""
    import cv2

    image = cv2.resize(cv2.imread(str(path)), (size, size))[:, :, ::-1].copy()
    return torch.from_numpy(image).permute(2, 0, 1).float() / 255


def mean_gates(model: torch.nn.Module, x: torch.Tensor) -> list[float]:
    """Mean of channel gate times spatial gate at every CBAM layer, for input x."""
    found = []

    def record(m, inputs, _):
        y = inputs[0].float()
        channel = m.channel.gate(y)
        found.append((channel * m.spatial.gate(y * channel)).mean().item())

    hooks = [m.register_forward_hook(record) for m in model.model if isinstance(m, modules.CBAM)]
    with torch.no_grad():
        model(x.to(next(model.parameters()).dtype))
    for hook in hooks:
        hook.remove()
    return found


@pytest.mark.parametrize(
    ("name", "neck"),
    [
        ("yolov8n.yaml", [12, 15, 18, 21]),  # the head's four C2f; Detect reads C2f
        pytest.param("yolo11n.yaml", [13, 16, 19, 22], marks=NEEDS_YOLO11),  # its four C3k2
    ],
)
def test_where_neck_follows_the_neck_blocks(name, neck, tmp_path):
    out = add_cbam(name, output=tmp_path / "a.yaml", where="neck")
    assert out.after == neck
    model = build(tasks.DetectionModel, out.yaml, scale="n")
    assert model.model[-1].f == out.cbam_layers[-3:]  # the head reads the refined P3, P4, P5 features
    both = add_cbam(name, output=tmp_path / "b.yaml", where="default,neck")
    assert both.after == [2, 4, 6, 9, *neck]
    with pytest.raises(ValueError, match=r"CBAM is already there"):  # the neck of a model that has neck CBAM
        add_cbam(both.yaml, output=tmp_path / "c.yaml", where="neck")
    with pytest.raises(ValueError, match=r"where: 'neck': .*yolov8-cls\.yaml.* has no neck blocks"):
        add_cbam("yolov8n-cls.yaml", output=tmp_path / "d.yaml", where="neck")


def test_errors_name_the_bad_input(tmp_path):
    no_backbone = tmp_path / "custom.yaml"
    no_backbone.write_text("nc: 3\nhead:\n  - [-1, 1, Classify, [nc]]\n")
    with pytest.raises(ModelYAMLError, match=r"custom\.yaml.*no 'backbone'"):
        add_cbam(no_backbone, output=tmp_path / "x.yaml")
    with pytest.raises(IndexError, match=r"layer index 99 does not exist.*layers 0-22"):
        add_cbam("yolov8n.yaml", output=tmp_path / "x.yaml", where="2,99")
    with pytest.raises(ValueError, match=r"module type 'C2F' is not in .*Did you mean 'C2f'"):
        add_cbam("yolov8n.yaml", output=tmp_path / "x.yaml", where="C2F")
    with pytest.raises(
        ValueError,
        match=r"yolov8\.yaml', layer 22 \(head row 12: \[\[15, 18, 21\], 1, 'Detect', \['nc'\]\]\) is the model's",
    ):
        add_cbam("yolov8n.yaml", output=tmp_path / "x.yaml", where=22)
    with pytest.raises(ValueError, match=r"r must be a positive integer"):
        add_cbam("yolov8n.yaml", output=tmp_path / "x.yaml", r=0)
    with pytest.raises(ValueError, match=r"k must be a positive odd integer"):
        add_cbam("yolov8n.yaml", output=tmp_path / "x.yaml", k=4)
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        add_cbam(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"gentle=True needs a checkpoint"):
        add_cbam("yolov8n.yaml", output=tmp_path / "x.yaml", gentle=True)
    with pytest.raises(ValueError, match=r"where: 2\.5 is neither a layer index nor a module type name"):
        add_cbam("yolov8n.yaml", output=tmp_path / "x.yaml", where=2.5)
    for name in ("gentle", "force"):  # the command line's 'no' is a string, which is not False
        with pytest.raises(TypeError, match=rf"{name} must be True or False, got 'no'"):
            add_cbam("yolov8n.yaml", output=tmp_path / "x.yaml", **{name: "no"})
    assert not (tmp_path / "x.yaml").exists()


def test_replacing_an_existing_output_is_announced(tmp_path):
    from ultralytics.utils import LOGGER

    stock = save_checkpoint(YOLO("yolov8n.yaml"), tmp_path / "stock.pt")
    (tmp_path / "mine.yaml").write_text("# my notes\n")
    (tmp_path / "mine.pt").write_bytes(stock.read_bytes())
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage()) if record.levelno == logging.WARNING else None
    LOGGER.addHandler(handler)
    try:
        add_cbam("yolov8n.yaml", output=tmp_path / "fresh.yaml")
        add_cbam(stock, output=tmp_path / "mine.yaml")
    finally:
        LOGGER.removeHandler(handler)
    expected = f"replacing {tmp_path / 'mine.yaml'} and {tmp_path / 'mine.pt'}, which already existed"
    assert len(messages) == 1 and messages[0].endswith(expected), messages


def test_existing_cbam_is_refused_unless_forced(tmp_path):
    with pytest.raises(
        ValueError, match=r"CBAM is already there.*layer 3 \(backbone row 3: \[-1, 1, 'CBAM', \[\]\]\).*force=True"
    ):
        add_cbam("yolov8n-cbam.yaml", output=tmp_path / "x.yaml")
    with pytest.raises(
        ValueError,
        match=r"CBAM is already there \(where=3\): model YAML '.*yolov8-cbam\.yaml', layer 3 \(backbone row 3",
    ):
        add_cbam("yolov8n-cbam.yaml", output=tmp_path / "x.yaml", where=3)
    assert add_cbam("yolov8n-cbam.yaml", output=tmp_path / "x.yaml", where=16).cbam_layers == [17]  # a new place
    forced = add_cbam("yolov8n-cbam.yaml", output=tmp_path / "y.yaml", force=True)
    assert sum(r[2] == "CBAM" for r in rows(forced.yaml)) == 8


def test_cli_add_command(tmp_path):
    cli = Path(sys.executable).with_name("yolo-cbam")
    result = subprocess.run(
        [str(cli), "add", "model=yolov8n.yaml", "where=2,4", "r=8"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    written = tmp_path / "yolov8n-cbam.yaml"
    assert [r for r in rows(written) if r[2] == "CBAM"] == [[-1, 1, "CBAM", [8]]] * 2
    assert len(YOLO(written).model.model) == 25


def test_stock_model_summaries_are_not_carried_into_the_new_yaml(tmp_path):
    """Per-scale 'summary: ... parameters' comments describe the stock model, so they go; row comments stay."""
    from ultralytics.utils.checks import check_yaml

    stock = Path(check_yaml("yolov8.yaml")).read_text()
    assert "summary:" in stock and "# 0-P1/2" in stock
    written = add_cbam("yolov8n.yaml", output=tmp_path / "x.yaml").yaml.read_text()
    assert "summary:" not in written and "# 0-P1/2" in written


def test_a_model_that_fails_to_build_replaces_nothing(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "nc: 2\nbackbone:\n  - [-1, 1, Conv, [16, 3, 2]]\n  - [-1, 1, Conv, [16, 3, 2, 1, 1, 1, 1, 1, 1, 1]]\n"
        "head:\n  - [[1], 1, Detect, [nc]]\n"
    )
    (tmp_path / "mine.yaml").write_text("# my notes\n")
    with pytest.raises(TypeError, match=r"Conv"):
        add_cbam(broken, output=tmp_path / "mine.yaml", where=0)
    assert (tmp_path / "mine.yaml").read_text() == "# my notes\n"
