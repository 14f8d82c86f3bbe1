"""SE (Squeeze-and-Excitation, Hu et al., CVPR 2018), the CBAM paper's comparator: the layer against a restatement of
its formula, its YAML name at every scale, the inserter's layer=SE, the ablation variant 'se', and ONNX export."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import yaml
from helpers import load_yaml

from ultralytics_cbam import SE, add_cbam
from ultralytics_cbam.ablation.variants import Variant, build_variant
from ultralytics_cbam.cli import main as cli


def ref_se(x, w1, b1, w2, b2):
    """s = sigmoid(W2 ReLU(W1 z + b1) + b2) with z the global average of each channel; output s * x."""
    z = x.mean(dim=(2, 3))  # (N, C): squeeze
    s = torch.sigmoid(F.linear(F.relu(F.linear(z, w1, b1)), w2, b2))  # (N, C): excitation
    return x * s[:, :, None, None]


def se_params(c: int, r: int) -> int:
    """Two fully connected layers with bias: C -> max(C // r, 1) -> C."""
    h = max(c // r, 1)
    return c * h + h + h * c + c


@pytest.mark.parametrize(("c", "r"), [(256, 16), (64, 16), (32, 8), (24, 16), (8, 16), (3, 16)])
def test_parameter_count_follows_the_formula(c, r):
    assert sum(p.numel() for p in SE(c, r).parameters()) == se_params(c, r)


@pytest.mark.parametrize("train", [True, False])
def test_output_matches_the_paper(train):
    torch.manual_seed(0)
    m = SE(24, 4).train(train)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.5)  # far from init, so a wrong formula cannot hide behind gates near 0.5
    x = torch.randn(2, 24, 9, 7)
    w1, w2 = m.fc1.weight.flatten(1), m.fc2.weight.flatten(1)
    torch.testing.assert_close(m(x), ref_se(x, w1, m.fc1.bias, w2, m.fc2.bias))
    assert m.fc1.bias is not None and m.fc2.bias is not None  # the paper's layers have biases
    assert m.fc1.out_channels == 6 and m.reduction == 4  # C / r


def test_default_reduction_is_16_and_bad_arguments_are_named():
    assert SE(64).fc1.out_channels == 4
    with pytest.raises(ValueError, match="reduction must be a positive integer, got 0"):
        SE(64, 0)
    with pytest.raises(ValueError, match="SE was built for 64 channels but got 32"):
        SE(64)(torch.zeros(1, 32, 4, 4))


def _with_se(tmp_path, r: int | None = None):
    """yolov8.yaml with an SE row after each backbone stage's last layer (rows 2, 4, 6 and SPPF 9)."""
    from ultralytics.utils.checks import check_yaml

    d = load_yaml(check_yaml("yolov8.yaml"))
    rows = d["backbone"] + d["head"]
    after = {2, 4, 6, 9}
    new, index = [], {}
    for i, row in enumerate(rows):
        index[i] = len(new) + (1 if i in after else 0)  # readers of a layer read the SE after it
        new.append(row)
        if i in after:
            new.append([-1, 1, "SE", [] if r is None else [r]])
    for row in new:  # absolute 'from' indices of the head shift with the inserted rows
        if isinstance(row[0], list):
            row[0] = [f if f < 0 else index[f] for f in row[0]]
    d["backbone"], d["head"] = new[: len(d["backbone"]) + 4], new[len(d["backbone"]) + 4 :]
    file = tmp_path / "yolov8-se.yaml"
    file.write_text(yaml.safe_dump(d, sort_keys=False))
    return file, d


@pytest.mark.parametrize("scale", ["n", "s", "m", "l", "x"])
def test_yaml_rows_infer_channels_at_every_scale(scale, tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    file, d = _with_se(tmp_path)
    stock = DetectionModel({**load_yaml(_stock_yaml()), "scale": scale}, verbose=False)
    model = DetectionModel({**d, "scale": scale, "yaml_file": str(file)}, verbose=False)
    se = [m for m in model.model if isinstance(m, SE)]
    stock_out = {i: stock.model[i] for i in (2, 4, 6, 9)}  # the layers each SE follows
    expected = [_out_channels(m) for m in stock_out.values()]
    assert [m.channels for m in se] == expected
    n_stock, n_model = (sum(p.numel() for p in net.parameters()) for net in (stock, model))
    assert n_model - n_stock == sum(se_params(c, 16) for c in expected)


def _stock_yaml():
    from ultralytics.utils.checks import check_yaml

    return check_yaml("yolov8.yaml")


def _out_channels(m) -> int:
    return m.cv2.conv.out_channels  # C2f and SPPF end in their cv2


def test_add_cbam_layer_se_writes_se_rows_at_cbams_places(tmp_path):
    cbam = add_cbam("yolov8n.yaml", output=tmp_path / "cbam.yaml")
    se = add_cbam("yolov8n.yaml", output=tmp_path / "se.yaml", layer="SE", r=8)
    assert se.after == cbam.after and se.cbam_layers == cbam.cbam_layers
    rows = [(r[2], r[3]) for r in (lambda d: d["backbone"] + d["head"])(load_yaml(se.yaml))]
    assert [rows[i] for i in se.cbam_layers] == [("SE", [8])] * len(se.cbam_layers)
    assert not any(name == "CBAM" for name, _ in rows)


def test_cli_add_layer_se_and_its_errors(tmp_path):
    out = tmp_path / "cli-se.yaml"
    cli(["add", "model=yolov8n.yaml", "layer=SE", f"output={out}"])
    rows = (lambda d: d["backbone"] + d["head"])(load_yaml(out))
    assert sum(r[2] == "SE" for r in rows) == 4
    with pytest.raises(SystemExit, match=r"layer must be one of CBAM, SE, ChannelAttention, SpatialAttention, got 'X'"):
        cli(["add", "model=yolov8n.yaml", "layer=X", f"output={tmp_path / 'x.yaml'}"])
    with pytest.raises(SystemExit, match=r"k=3 applies to layer=CBAM, SpatialAttention, not to layer=SE"):
        cli(["add", "model=yolov8n.yaml", "layer=SE", "k=3", f"output={tmp_path / 'y.yaml'}"])
    assert not (tmp_path / "x.yaml").exists() and not (tmp_path / "y.yaml").exists()


def test_gentle_does_not_apply_to_se(tmp_path):
    with pytest.raises(ValueError, match="does not apply to layer=SE"):
        add_cbam("yolov8n.yaml", output=tmp_path / "g.yaml", layer="SE", gentle=True)


@pytest.mark.parametrize(("name", "cbam_like"), [("se", "cbam"), ("se+neck", "neck"), ("se+r8", "r8")])
def test_se_variants_sit_where_their_cbam_variants_do(name, cbam_like):
    se, _, _ = build_variant(Variant.parse(name), "yolov8n.yaml")
    cbam, _, _ = build_variant(Variant.parse(cbam_like), "yolov8n.yaml")
    se_rows, cbam_rows = (d["backbone"] + d["head"] for d in (se, cbam))
    assert [r[2] == "SE" for r in se_rows] == [r[2] == "CBAM" for r in cbam_rows]
    assert [r[0] for r in se_rows] == [r[0] for r in cbam_rows]  # the same wiring
    assert {tuple(r[3]) for r in se_rows if r[2] == "SE"} == ({(8,)} if "r8" in name else {()})
    assert Variant.parse(name).describe().startswith(f"SE(r={8 if 'r8' in name else 16})")


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("se+k3", "k .kernel size. does not apply to SE"),
        ("se+gentle", "does not apply to SE"),
        ("se+spatial", "sets module twice"),
    ],
)
def test_bad_se_variants_are_named(name, match):
    with pytest.raises(ValueError, match=match):
        Variant.parse(name)


def test_onnx_export_matches_pytorch(tmp_path, monkeypatch):
    onnxruntime = pytest.importorskip("onnxruntime")
    from ultralytics import YOLO

    monkeypatch.chdir(tmp_path)  # a model built from a YAML exports into the working directory
    out = tmp_path / "yolov8n-se.yaml"
    add_cbam("yolov8n.yaml", output=out, layer="SE")
    model = YOLO(str(out))
    file = model.export(format="onnx", imgsz=64, simplify=False)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = model.model.eval()(x)[0].numpy()
    session = onnxruntime.InferenceSession(file, providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    assert got.shape == expected.shape
    assert abs(got - expected).max() < 1e-3
