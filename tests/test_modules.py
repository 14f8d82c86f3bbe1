"""CBAM layers against a plain re-statement of the paper's equations (Woo et al., ECCV 2018, eqs. 2-4)."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn.functional as F

from ultralytics_cbam import CBAM, ChannelAttention, SpatialAttention


def ref_channel(x, w1, w2, b1=None, b2=None):
    """M_c(F) = sigmoid(MLP(AvgPool(F)) + MLP(MaxPool(F))); F' = M_c(F) * F."""

    def mlp(v):
        return F.conv2d(F.relu(F.conv2d(v, w1, b1)), w2, b2)

    return torch.sigmoid(mlp(F.adaptive_avg_pool2d(x, 1)) + mlp(F.adaptive_max_pool2d(x, 1))) * x


def ref_spatial(x, w):
    """M_s(F) = sigmoid(conv_kxk([AvgPool_c(F); MaxPool_c(F)])); F'' = M_s(F) * F."""
    desc = torch.cat([x.mean(dim=1, keepdim=True), x.max(dim=1, keepdim=True).values], dim=1)
    return torch.sigmoid(F.conv2d(desc, w, padding=w.shape[-1] // 2)) * x


def ref_cbam(x, m: CBAM):
    ca = m.channel
    return ref_spatial(ref_channel(x, ca.fc1.weight, ca.fc2.weight, ca.fc1.bias, ca.fc2.bias), m.spatial.conv.weight)


def randomized(module: torch.nn.Module) -> torch.nn.Module:
    """Weights far from init so that a wrong formula cannot hide behind gates near 0.5."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
    return module


def expected_params(c: int, r: int, k: int) -> tuple[int, int]:
    hidden = max(c // r, 1)
    return 2 * c * hidden, 2 * k * k


@pytest.mark.parametrize(("c", "r", "k"), [(256, 16, 7), (64, 16, 3), (32, 8, 5), (24, 16, 1), (8, 16, 7), (3, 16, 7)])
def test_parameter_counts_follow_the_formula(c, r, k):
    channel, spatial = expected_params(c, r, k)
    assert sum(p.numel() for p in ChannelAttention(c, r).parameters()) == channel
    assert sum(p.numel() for p in SpatialAttention(k).parameters()) == spatial
    assert sum(p.numel() for p in CBAM(c, r, k).parameters()) == channel + spatial
    with_bias = ChannelAttention(c, r, bias=True)
    assert sum(p.numel() for p in with_bias.parameters()) == channel + max(c // r, 1) + c


def test_article_table():
    """C=256, r=16, k=7: channel 8,192 (C^2/8), spatial 98 (2k^2), CBAM 8,290."""
    assert sum(p.numel() for p in ChannelAttention(256).parameters()) == 256**2 // 8
    assert sum(p.numel() for p in SpatialAttention().parameters()) == 2 * 7**2
    assert sum(p.numel() for p in CBAM(256).parameters()) == 256**2 // 8 + 2 * 7**2


def test_hidden_width_exact_when_c_ge_r_and_at_least_one_below():
    for c, r in [(16, 16), (31, 16), (32, 16), (100, 7), (15, 16), (1, 16)]:
        ca = ChannelAttention(c, r)
        assert ca.fc1.out_channels == (c // r if c >= r else 1)
        assert ca(torch.randn(2, c, 3, 3)).shape == (2, c, 3, 3)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_channel_attention_matches_paper(bias, train):
    m = randomized(ChannelAttention(32, 4, bias=bias)).train(train)
    x = torch.randn(3, 32, 9, 7)
    expected = ref_channel(x, m.fc1.weight, m.fc2.weight, m.fc1.bias, m.fc2.bias)
    torch.testing.assert_close(m(x), expected)


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_spatial_attention_matches_paper(k):
    m = randomized(SpatialAttention(k))
    x = torch.randn(2, 16, 11, 6)
    torch.testing.assert_close(m(x), ref_spatial(x, m.conv.weight))


@pytest.mark.parametrize("train", [True, False])
def test_cbam_is_channel_then_spatial(train):
    m = randomized(CBAM(48, 8, 5)).train(train)
    x = torch.randn(2, 48, 10, 13)
    torch.testing.assert_close(m(x), ref_cbam(x, m))
    # the other order gives a different result, so the test can tell them apart
    swapped = ref_channel(ref_spatial(x, m.spatial.conv.weight), m.channel.fc1.weight, m.channel.fc2.weight)
    assert not torch.allclose(m(x), swapped, atol=1e-4)


def test_gradients_match_paper():
    m = randomized(CBAM(32, 4, 3))
    ref = randomized(CBAM(32, 4, 3))
    x1 = torch.randn(2, 32, 8, 8, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    w = torch.randn(2, 32, 8, 8)
    (m(x1) * w).sum().backward()
    (ref_cbam(x2, ref) * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


@pytest.mark.parametrize("context", ["no_grad", "inference_mode"])
def test_inference_contexts_match_and_keep_input(context):
    m = randomized(CBAM(16, 4)).eval()
    x = torch.randn(2, 16, 7, 7)
    x_before = x.clone()
    expected = ref_cbam(x, m)
    with torch.no_grad() if context == "no_grad" else torch.inference_mode():
        out = m(x)
    torch.testing.assert_close(out, expected)
    assert torch.equal(x, x_before), "the input must not be modified"


def test_bf16_autocast_on_cpu():
    m = randomized(CBAM(32, 8))
    x = torch.randn(2, 32, 12, 12)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref_cbam(x, m), atol=0.1, rtol=0.05)


def test_channels_last():
    m = randomized(CBAM(32, 8))
    x = torch.randn(2, 32, 12, 10).to(memory_format=torch.channels_last)
    out = m(x)
    torch.testing.assert_close(out, ref_cbam(x.contiguous(), m))
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("shape", [(0, 16, 8, 8), (1, 16, 8, 8), (2, 16, 5, 9), (2, 16, 1, 1), (1, 16, 1, 7)])
def test_edge_shapes(shape):
    m = randomized(CBAM(16, 4, 7))
    x = torch.randn(*shape)
    out = m(x)
    assert out.shape == x.shape
    if x.numel():
        torch.testing.assert_close(out, ref_cbam(x, m))


@pytest.mark.parametrize(
    ("factory", "argument", "value"),
    [
        (lambda v: ChannelAttention(v), "channels", 0),
        (lambda v: ChannelAttention(v), "channels", -4),
        (lambda v: ChannelAttention(v), "channels", 16.0),
        (lambda v: ChannelAttention(v), "channels", True),
        (lambda v: ChannelAttention(v), "channels", "16"),
        (lambda v: ChannelAttention(16, v), "reduction", 0),
        (lambda v: ChannelAttention(16, v), "reduction", False),
        (lambda v: CBAM(16, v), "reduction", 2.5),
        (lambda v: ChannelAttention(16, 4, v), "bias", 1),
        (lambda v: SpatialAttention(v), "kernel_size", 4),
        (lambda v: SpatialAttention(v), "kernel_size", 0),
        (lambda v: SpatialAttention(v), "kernel_size", -3),
        (lambda v: SpatialAttention(v), "kernel_size", 3.0),
        (lambda v: CBAM(16, 16, v), "kernel_size", 2),
        (lambda v: CBAM(v), "channels", None),
    ],
)
def test_bad_arguments_name_the_argument_and_value(factory, argument, value):
    with pytest.raises(ValueError, match=argument) as err:
        factory(value)
    assert repr(value) in str(err.value)


def test_bad_inputs_are_explained():
    m = CBAM(16)
    with pytest.raises(ValueError, match=r"4-D .*shape \(2, 16, 8\)"):
        m(torch.randn(2, 16, 8))
    with pytest.raises(ValueError, match=r"built for 16 channels.*\(2, 8, 4, 4\)"):
        m(torch.randn(2, 8, 4, 4))
    with pytest.raises(ValueError, match="4-D"):
        SpatialAttention()(torch.randn(16, 4, 4))


def test_no_adaptive_pooling_and_deterministic_backward():
    """Adaptive max pooling has a non-deterministic CUDA backward; the layers use plain reductions instead."""
    m = randomized(CBAM(32, 4))
    kinds = {type(mod) for mod in m.modules()}
    assert not kinds & {torch.nn.AdaptiveMaxPool2d, torch.nn.AdaptiveAvgPool2d}
    x = torch.randn(2, 32, 9, 9)
    torch.use_deterministic_algorithms(True)
    try:
        grads = []
        for _ in range(2):
            xi = x.clone().requires_grad_(True)
            m(xi).square().sum().backward()
            grads.append(xi.grad)
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(grads[0], grads[1])


def test_onnx_export_keeps_dynamic_sizes(tmp_path):
    import onnx
    import onnxruntime as ort

    m = randomized(CBAM(16, 4)).eval()
    path = tmp_path / "cbam.onnx"
    axes = {"x": {0: "n", 2: "h", 3: "w"}, "y": {0: "n", 2: "h", 3: "w"}}
    torch.onnx.export(
        m,
        (torch.randn(1, 16, 8, 8),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "MaxPool" not in ops  # a fixed-kernel MaxPool would pin the input size
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(1, 16, 8, 8), (3, 16, 13, 5), (2, 16, 1, 1)]:
        x = torch.randn(*shape)
        (y,) = session.run(None, {"x": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(y), ref_cbam(x, m), atol=1e-5, rtol=1e-4)


def test_gradcheck_in_float64():
    """Analytic gradients of the input and of every parameter against finite differences."""
    m = randomized(CBAM(8, 2, 3, bias=True)).double()
    x = torch.randn(2, 8, 5, 4, dtype=torch.float64, requires_grad=True)
    params = tuple(m.parameters())

    def fn(x, *weights):
        return torch.func.functional_call(m, dict(zip(dict(m.named_parameters()), weights, strict=True)), (x,))

    assert torch.autograd.gradcheck(fn, (x, *params))
    assert torch.autograd.gradgradcheck(fn, (x, *params))


def test_double_backward_matches_paper():
    """Gradients of a gradient (e.g. a gradient penalty) agree with the paper's formula differentiated twice."""
    m = randomized(CBAM(16, 4, 3))
    x1 = torch.randn(2, 16, 6, 7, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_(True)
    (g1,) = torch.autograd.grad(m(x1).square().sum(), x1, create_graph=True)
    (g2,) = torch.autograd.grad(ref_cbam(x2, m).square().sum(), x2, create_graph=True)
    torch.testing.assert_close(g1, g2)
    g1.square().sum().backward()
    g2.square().sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_empty_batch_has_zero_gradients():
    m = randomized(CBAM(16, 4))
    x = torch.randn(0, 16, 8, 8, requires_grad=True)
    m(x).sum().backward()
    assert x.grad.shape == x.shape
    assert all(p.grad is not None and not p.grad.any() for p in m.parameters())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_autocast_on_cpu(dtype):
    """Under autocast the convolutions run in `dtype`; the result stays close to the float32 formula."""
    m = randomized(CBAM(32, 8))
    x = torch.randn(2, 32, 12, 9)
    with torch.autocast("cpu", dtype=dtype):
        out = m(x)
        assert m.spatial.conv(torch.randn(1, 2, 4, 4)).dtype == dtype
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref_cbam(x, m), atol=0.1, rtol=0.05)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_and_input(dtype):
    """A model cast with .half() (as Ultralytics saves checkpoints) runs in that dtype."""
    m = randomized(CBAM(16, 4))
    x = torch.randn(2, 16, 6, 6)
    out = m.to(dtype)(x.to(dtype))
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref_cbam(x, m.float()), atol=0.05, rtol=0.05)


def test_onnx_export_uses_standard_operators_only(tmp_path):
    """What torch records from the forward: standard ONNX operators, no custom domain."""
    import onnx

    m = randomized(CBAM(16, 4)).eval()
    path = tmp_path / "cbam.onnx"
    torch.onnx.export(m, (torch.randn(1, 16, 8, 8),), str(path), opset_version=17, dynamo=False)
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert {node.domain for node in model.graph.node} <= {""}
    ops = {node.op_type for node in model.graph.node}
    assert {"ReduceMean", "ReduceMax", "Conv", "Sigmoid", "Mul"} <= ops


def test_default_onnx_exporter_keeps_dynamic_sizes(tmp_path):
    """torch.onnx.export's default exporter (torch.export with onnxscript) keeps batch and map sizes symbolic."""
    import onnx
    import onnxruntime as ort

    m = randomized(CBAM(16, 4)).eval()
    path = tmp_path / "cbam.onnx"
    dims = {0: "n", 2: "h", 3: "w"}
    torch.onnx.export(m, (torch.randn(2, 16, 8, 8),), str(path), input_names=["x"], dynamic_shapes=(dims,), dynamo=True)
    model = onnx.load(str(path))
    assert {node.domain for node in model.graph.node} <= {""}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for shape in [(2, 16, 8, 8), (3, 16, 13, 5), (1, 16, 2, 3)]:
        x = torch.randn(*shape)
        (y,) = session.run(None, {"x": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(y), ref_cbam(x, m), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("layer", [CBAM(24, 4, 5), ChannelAttention(24, 4, bias=True), SpatialAttention(3)])
def test_compiles_without_graph_breaks(layer):
    """torch.compile (Ultralytics' compile=True) captures each layer as one graph, forward and backward."""
    import torch._dynamo

    layer = randomized(layer)
    x = torch.randn(2, 24, 10, 7)
    explanation = torch._dynamo.explain(layer)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    x1, x2 = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    torch.testing.assert_close(compiled(x1), layer(x2))
    compiled(x1).sum().backward()
    layer(x2).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)


def test_repr_is_readable():
    text = repr(CBAM(64, 8, 3))
    assert "channels=64, reduction=8" in text
    assert "kernel_size=3" in text


def test_ultralytics_own_cbam_untouched(tmp_path):
    """Ultralytics' built-in CBAM (average-pool-only design) stays its own class, and models using it still load."""
    from ultralytics.nn.modules import conv

    import ultralytics_cbam

    assert conv.CBAM is not ultralytics_cbam.CBAM
    assert conv.CBAM.__module__ == "ultralytics.nn.modules.conv"
    theirs = conv.CBAM(16, 7)
    buffer = io.BytesIO()
    torch.save({"model": theirs}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)["model"]
    assert type(loaded) is conv.CBAM
    x = torch.randn(1, 16, 6, 6)
    torch.testing.assert_close(loaded(x), theirs(x))
    assert sum(p.numel() for p in theirs.parameters()) == 16 * 16 + 16 + 2 * 49  # 1x1 conv with bias + 7x7 conv
    assert not math.isclose(sum(p.numel() for p in theirs.parameters()), sum(expected_params(16, 16, 7)))
