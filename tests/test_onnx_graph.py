"""ONNX exports: the blocked-layout graphs of CBAM, ChannelAttention and SpatialAttention compute the paper's formulas
and keep ONNX Runtime's blocked (NCHWc) layout through the layer, recorded by either of torch's exporters (the
TorchScript tracer and the torch.export-based one); hooked layers keep the plain graph; no export has a ReduceMax."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
import torch
from test_fast_paths import ref_with_modules
from test_modules import randomized, ref_cbam, ref_channel, ref_spatial
from torch import nn

from ultralytics_cbam import CBAM, ChannelAttention, SpatialAttention
from ultralytics_cbam.onnx_graph import symbolic_ops_available

NCHWC = "com.microsoft.nchwc"
# torch's two ONNX exporters: the TorchScript tracer (dynamo=False) and the torch.export-based one (dynamo=True), which
# records the blocked-layout graph through torch.onnx.ops.symbolic
TORCH_EXPORT = pytest.param(
    "torch.export",
    marks=pytest.mark.skipif(not symbolic_ops_available(), reason="torch has no torch.onnx.ops.symbolic"),
)
EXPORTERS = ["torchscript", TORCH_EXPORT]


class ConvCBAMConv(nn.Module):
    """An attention layer (CBAM unless given) between two convolutions, where a YOLO backbone has it."""

    def __init__(self, channels: int = 32, bias: bool = False, layer: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.cbam = CBAM(channels, 4, bias=bias) if layer is None else layer
        self.head = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.cbam(self.stem(x)))


def export(
    model: nn.Module, x: torch.Tensor, path, dynamic: bool = False, opset: int | None = None, exporter="torchscript"
) -> onnx.GraphProto:
    """Export `model` by `exporter`, at opset 17 (TorchScript) or 18 (torch.export, its lowest) unless given."""
    axes = {"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h", 3: "w"}} if dynamic else None
    dynamo = exporter == "torch.export"
    opset = opset or (18 if dynamo else 17)
    torch.onnx.export(
        model, (x,), str(path), input_names=["x"], output_names=["y"], dynamic_axes=axes, opset_version=opset,
        dynamo=dynamo,
    )  # fmt: skip
    return onnx.load(str(path)).graph


def run(path, x: torch.Tensor, optimized=None) -> torch.Tensor:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])


def expected(model: ConvCBAMConv, x: torch.Tensor) -> torch.Tensor:
    """The model with its attention layer computed by the paper's formulas (test_modules' references)."""
    layer = model.cbam
    with torch.no_grad():
        features = model.stem(x)
        if isinstance(layer, ChannelAttention):
            attended = ref_channel(features, layer.fc1.weight, layer.fc2.weight, layer.fc1.bias, layer.fc2.bias)
        elif isinstance(layer, SpatialAttention):
            attended = ref_spatial(features, layer.conv.weight)
        else:
            attended = ref_cbam(features, layer)
        return model.head(attended)


def cbam_model(bias: bool = False, kind: str = "cbam") -> ConvCBAMConv:
    layers = {"cbam": lambda: CBAM(32, 4, bias=bias), "channel": lambda: ChannelAttention(32, 4, bias=bias)}
    layers["spatial"] = lambda: SpatialAttention(5)
    model = ConvCBAMConv(layer=layers[kind]()).eval()
    randomized(model.cbam)
    return model


KINDS_AND_BIAS = [("cbam", False), ("cbam", True), ("channel", False), ("channel", True), ("spatial", False)]
# Ops of each blocked-layout graph: pooled channel descriptors and a Resize-repeated channel gate, NHWC spatial
# descriptors, a spatial gate computed in 4 x 4 tiles
TILED = {"DepthToSpace"}
BLOCKED_OPS = {
    "cbam": {"GlobalAveragePool", "GlobalMaxPool", "Resize", "Transpose", *TILED},
    "channel": {"GlobalAveragePool", "GlobalMaxPool", "Resize"},
    "spatial": {"GlobalMaxPool", "Transpose", *TILED},
}


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize(("kind", "bias"), KINDS_AND_BIAS)
def test_export_computes_the_paper_formula(tmp_path, kind, bias, batch, exporter):
    model = cbam_model(bias, kind)
    x = torch.randn(batch, 3, 24, 40)
    ops = {n.op_type for n in export(model, x, tmp_path / "m.onnx", exporter=exporter).node}
    assert BLOCKED_OPS[kind] <= ops and not ops & {"MaxPool", "MatMul"}
    assert ("Resize" in ops) == (kind != "spatial") and ("Transpose" in ops) == (kind != "channel")
    torch.testing.assert_close(run(tmp_path / "m.onnx", x), expected(model, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize(("kind", "bias"), KINDS_AND_BIAS)
def test_dynamic_export_runs_at_other_batches_and_sizes(tmp_path, kind, bias, exporter):
    """A graph traced at one size runs at any other."""
    model = cbam_model(bias, kind)
    export(model, torch.randn(1, 3, 32, 32), tmp_path / "m.onnx", dynamic=True, exporter=exporter)
    for shape in [(1, 3, 32, 32), (3, 3, 17, 9), (2, 3, 1, 1), (1, 3, 48, 20)]:
        x = torch.randn(*shape)
        torch.testing.assert_close(run(tmp_path / "m.onnx", x), expected(model, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("k", "exporter"),
    [(k, "torchscript") for k in (1, 3, 5, 7, 9, 11)]
    + [pytest.param(k, "torch.export", marks=TORCH_EXPORT.marks) for k in (1, 7, 11)],
)
def test_spatial_gate_is_computed_in_tiles_at_every_size(tmp_path, k, exporter):
    """The spatial gate is computed 4 x 4 pixels at a time (a convolution with stride 4 and one output channel per
    pixel of the tile, then DepthToSpace), cropped by a Slice where the size is not a fixed multiple of 4 (static
    sizes from opset 1 on, dynamic ones from opset 10 on); dynamic exports before opset 10 get a depthwise
    convolution and a sum. Each computes the paper's formula. torch.export's exporter (opset 18 on) records the same."""
    layer = randomized(SpatialAttention(k)).eval()
    model = ConvCBAMConv(layer=layer).eval()
    for name, shape, dynamic, opset, route in [
        ("whole tiles", (2, 3, 24, 40), False, None, {"DepthToSpace"}),
        ("cropped", (1, 3, 18, 22), False, None, {"DepthToSpace", "Slice"}),
        ("cropped, opset 9", (1, 3, 21, 5), False, 9, {"DepthToSpace", "Slice"}),
        ("dynamic", (1, 3, 24, 40), True, None, {"DepthToSpace", "Slice"}),
        ("dynamic, opset 9", (1, 3, 24, 40), True, 9, {"ReduceSum"}),
    ]:
        if exporter == "torch.export" and opset is not None:
            continue
        x = torch.randn(*shape)
        path = tmp_path / f"{name}.onnx"
        ops = {n.op_type for n in export(model, x, path, dynamic=dynamic, opset=opset, exporter=exporter).node}
        assert ops & {"DepthToSpace", "Slice", "ReduceSum"} == route, name
        if not dynamic:  # ONNX Runtime's symbolic shape inference (quantisation tools, QNN export) follows the tiles
            tiles = [shape[0], 1, *(-(-size // 4) * 4 for size in shape[2:])]
            assert _inferred_shape(path, "DepthToSpace") == tiles, name
            if "Slice" in route:
                assert _inferred_shape(path, "Slice") == [shape[0], 1, *shape[2:]], name
        sizes = [shape, (3, 3, 12, 28), (1, 3, 5, 3), (2, 3, 1, 9)] if dynamic else [shape]
        for size in sizes:
            x = torch.randn(*size)
            torch.testing.assert_close(run(path, x), expected(model, x), atol=1e-4, rtol=1e-4)


def _inferred_shape(path, op_type: str) -> list[int]:
    """The output shape of the graph's `op_type` node by ONNX Runtime's symbolic shape inference."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    graph = SymbolicShapeInference.infer_shapes(onnx.load(str(path)), auto_merge=True).graph
    output = next(n.output[0] for n in graph.node if n.op_type == op_type)
    value = next(v for v in graph.value_info if v.name == output)
    return [d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.mark.parametrize("kind", ["cbam", "channel"])
def test_before_opset_11_the_channel_gate_is_expanded(tmp_path, kind):
    """Resize takes its scales as an input only from opset 11 on; older opsets get an Expand."""
    model = cbam_model(kind=kind)
    x = torch.randn(1, 3, 16, 16)
    ops = [n.op_type for n in export(model, x, tmp_path / "m.onnx", opset=10).node]
    assert "Expand" in ops and "Resize" not in ops
    torch.testing.assert_close(run(tmp_path / "m.onnx", x), expected(model, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("kind", "hooked", "blocked_channel", "plain_spatial"),
    [
        ("cbam", "channel.fc1", False, False),
        ("cbam", "spatial", True, False),
        ("channel", "act", False, False),
        ("spatial", "conv", False, True),
    ],
)
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_hooked_layers_keep_the_plain_graph(tmp_path, kind, hooked, blocked_channel, plain_spatial, exporter):
    """Hooks on modules the plain formula calls still run in export. Each attention part takes the plain graph only
    where a module inside it is hooked (hooks on the part itself see the same input and output either way): a blocked
    channel gate is a Resize, the plain mean over C a MatMul."""
    model = cbam_model(kind=kind)
    x = torch.randn(1, 3, 16, 16)
    calls = []
    handle = model.cbam.get_submodule(hooked).register_forward_hook(lambda *args: calls.append(1))
    try:
        ops = [n.op_type for n in export(model, x, tmp_path / "hooked.onnx", exporter=exporter).node]
    finally:
        handle.remove()
    assert calls and ("Resize" in ops) == blocked_channel and ("MatMul" in ops) == plain_spatial
    torch.testing.assert_close(run(tmp_path / "hooked.onnx", x), expected(model, x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("replaced", ["act", "spatial conv"])
def test_replaced_sub_modules_export_as_they_are(tmp_path, replaced, exporter):
    """A swapped activation or a biased, dilated spatial convolution gets the plain graph, which calls them."""
    model = cbam_model()
    if replaced == "act":
        model.cbam.channel.act = nn.SiLU()
    else:
        model.cbam.spatial.conv = randomized(nn.Conv2d(2, 1, 3, padding=2, dilation=2))
    x = torch.randn(2, 3, 16, 20)
    ops = {n.op_type for n in export(model, x, tmp_path / "m.onnx", exporter=exporter).node}
    assert ("Resize" in ops) == (replaced != "act") and ("DepthToSpace" in ops) == (replaced == "act")
    with torch.no_grad():
        expected = model.head(ref_with_modules(model.cbam, model.stem(x)))
    torch.testing.assert_close(run(tmp_path / "m.onnx", x), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_hooks_on_the_layer_itself_keep_the_blocked_graph(tmp_path, exporter):
    """A hook on the CBAM module sees its input and output, which the blocked graph computes just the same."""
    model = cbam_model()
    outputs = []
    handle = model.cbam.register_forward_hook(lambda module, args, out: outputs.append(out))
    try:
        ops = [n.op_type for n in export(model, torch.randn(1, 3, 16, 16), tmp_path / "m.onnx", exporter=exporter).node]
    finally:
        handle.remove()
    assert outputs and BLOCKED_OPS["cbam"] <= set(ops)


@pytest.mark.parametrize("kind", ["cbam", "channel", "spatial"])
@pytest.mark.parametrize("exporter", [TORCH_EXPORT])
def test_torch_export_sees_through_its_module_proxies(tmp_path, kind, exporter):
    """In a model that holds a module under two names (Ultralytics' do), torch.export's tracing hands out its
    sub-modules as proxies, instances of a class made for each. The layers are still recognised as stock ones and
    record the blocked graph."""

    class Aliased(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(cbam_model(kind=kind))
            self.alias = self.body[0].cbam

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    model = Aliased().eval()
    bases = []
    model.alias.register_forward_pre_hook(lambda module, args: bases.append(type(module).__bases__))
    x = torch.randn(2, 3, 16, 20)
    ops = {n.op_type for n in export(model, x, tmp_path / "m.onnx", exporter=exporter).node}
    assert any(cls.__name__ == "AttrProxy" for cls in bases[0])  # the layer was called as a proxy
    assert BLOCKED_OPS[kind] <= ops and "MatMul" not in ops
    torch.testing.assert_close(run(tmp_path / "m.onnx", x), expected(model.body[0], x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("kind", ["cbam", "channel", "spatial"])
def test_onnx_runtime_keeps_the_layer_in_its_blocked_layout(tmp_path, kind, exporter):
    """ONNX Runtime feeds the layer's output to the next convolution without converting it back from NCHW (the plain
    graph needs a ReorderInput there), repeats the channel gate in the blocked layout, takes the NHWC map for the
    spatial descriptors straight from the blocked one, and runs every convolution (the shared MLP, the tiled spatial
    one, the spatial gate's repeat) on blocked kernels."""
    model = cbam_model(kind=kind)
    x = torch.randn(1, 3, 32, 48)
    export(model, x, tmp_path / "m.onnx", exporter=exporter)
    torch.testing.assert_close(
        run(tmp_path / "m.onnx", x, tmp_path / "opt.onnx"), expected(model, x), atol=1e-4, rtol=1e-4
    )
    nodes = _blocked_graph(tmp_path / "opt.onnx")
    producer = {out: n for n in nodes for out in n.output}
    head = [n for n in nodes if n.op_type == "Conv" and n.domain == NCHWC][-1]
    assert producer[head.input[0]].op_type == "Mul"  # the layer's output, in the blocked layout
    assert ("Upsample" in [n.op_type for n in nodes if n.domain == NCHWC]) == (kind != "spatial")
    assert all(n.domain == NCHWC for n in nodes if n.op_type == "Conv")
    to_nhwc = [n for n in nodes if n.op_type == "ReorderOutput" and _attribute(n, "channels_last") == 1]
    assert len(to_nhwc) == (kind != "channel") and "Transpose" not in [n.op_type for n in nodes]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize(("kind", "convolutions"), [("cbam", 5), ("channel", 4)])
def test_dynamic_exports_broadcast_the_channel_gate(tmp_path, kind, convolutions, exporter):
    """Where the export leaves the map's size free, ONNX Runtime's blocked Resize (fixed scales only) cannot repeat
    the channel gate, so it is broadcast, and so is CBAM's spatial gate after it: no Resize or Expand, and no 1 -> C
    convolution (the stem, the head, the shared MLP's two and CBAM's tiled one remain), each run blocked."""
    model = cbam_model(kind=kind)
    path = tmp_path / "m.onnx"
    ops = [n.op_type for n in export(model, torch.randn(1, 3, 32, 48), path, dynamic=True, exporter=exporter).node]
    assert not {"Resize", "Expand"} & set(ops) and ops.count("Conv") == convolutions
    for shape in [(1, 3, 32, 48), (2, 3, 13, 7)]:
        x = torch.randn(*shape)
        got = run(path, x, tmp_path / "opt.onnx")
        torch.testing.assert_close(got, expected(model, x), atol=1e-4, rtol=1e-4)
    nodes = _blocked_graph(tmp_path / "opt.onnx")
    assert all(n.domain == NCHWC for n in nodes if n.op_type == "Conv")


def _blocked_graph(path) -> list[onnx.NodeProto]:
    """The nodes of the model ONNX Runtime optimised into `path`; skips where this CPU gets no blocked layout."""
    nodes = list(onnx.load(str(path)).graph.node)
    if not any(n.domain == NCHWC for n in nodes):
        pytest.skip("ONNX Runtime uses no blocked layout on this CPU")
    return nodes


def _attribute(node: onnx.NodeProto, name: str):
    return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), None)


def _standalone(kind: str) -> tuple[nn.Module, object]:
    if kind == "channel":
        m = randomized(ChannelAttention(16, 4)).eval()
        return m, lambda x: ref_channel(x, m.fc1.weight, m.fc2.weight)
    m = randomized(SpatialAttention(5)).eval()
    return m, lambda x: ref_spatial(x, m.conv.weight)


@pytest.mark.parametrize(
    ("opset", "exporter"),
    [*((opset, "torchscript") for opset in (17, 18, 19)), pytest.param(18, "torch.export", marks=TORCH_EXPORT.marks)],
)
@pytest.mark.parametrize(("kind", "batch"), [("cbam", 1), ("channel", 1), ("spatial", 1), ("spatial", 2)])
def test_exports_have_no_reduce_max_and_pass_onnx_runtime_shape_inference(tmp_path, opset, kind, batch, exporter):
    """Maxima are GlobalMaxPools. From opset 18 a ReduceMax takes its axes as an input, and ONNX Runtime's symbolic
    shape inference (run by its quantisation tools and by Ultralytics' QNN export) then fails on the ops after it."""
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    if kind == "cbam":
        model = cbam_model()
        reference, channels = (lambda x: expected(model, x)), 3
    else:
        model, reference = _standalone(kind)
        channels = 16
    path = tmp_path / "m.onnx"
    graph = export(model, torch.randn(batch, channels, 20, 24), path, dynamic=True, opset=opset, exporter=exporter)
    assert "ReduceMax" not in [n.op_type for n in graph.node]
    inferred = SymbolicShapeInference.infer_shapes(onnx.load(str(path)), auto_merge=True).graph
    ranks = {v.name: len(v.type.tensor_type.shape.dim) for v in [*inferred.value_info, *inferred.input]}
    # 4-D inputs only: onnx2tf infers layouts from shapes and reduces the wrong axis of a 3-D (N, P, C) one if P == C
    assert {ranks[n.input[0]] for n in inferred.node if n.op_type == "GlobalMaxPool"} == {4}
    for shape in [(batch, channels, 20, 24), (3, channels, 9, 70), (1, channels, 1, 1)]:
        x = torch.randn(*shape)
        torch.testing.assert_close(run(path, x), reference(x), atol=1e-4, rtol=1e-4)
