"""Every fast path of the CBAM layers against a plain re-statement of the paper's maths: outputs and gradients.

The reference below uses only torch.nn.functional: the MLP as 1x1 convolutions applied to each pooled descriptor,
max pooling as ``amax`` (so tied maxima share the gradient evenly, which is autograd's rule), and a stock 2 -> 1
convolution. CBAM runs on the fused C kernels where they build and on PyTorch kernels otherwise; tests taking the
``kernels`` fixture run on both. The PyTorch kernels are picked by device, dtype, size and context; the shapes here
are chosen to land on each of them, and the tests assert which one they land on, so that none goes unchecked.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F
from helpers import c_kernels_or_skip
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ultralytics_cbam import CBAM, ChannelAttention, SpatialAttention, cpu_kernels, fused
from ultralytics_cbam import modules as cbam_modules

SMALL = (2, 32, 10, 12)  # 240 output pixels: im2col kernel for the spatial convolution, plain means
MEDIUM = (1, 24, 48, 40)  # 1,920 pixels: im2col kernel, means as matrix products (H * W >= 1,600)
LARGE = (2, 16, 64, 56)  # 7,168 pixels: folded depthwise kernels, means as matrix products


def ref_cbam(x, w1, b1, w2, b2, ws, act=F.relu):
    """CBAM (Woo et al., eqs. 2-4) on tensors."""
    y = ref_channel(x, w1, b1, w2, b2, act)
    s = torch.sigmoid(
        F.conv2d(torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1), ws, padding=ws.shape[-1] // 2)
    )
    return y * s


def ref_channel(x, w1, b1, w2, b2, act=F.relu):
    """Channel attention (eq. 2) applied to x."""

    def mlp(v):
        return F.conv2d(act(F.conv2d(v, w1, b1)), w2, b2)

    return x * torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))


def ref_for(m: CBAM):
    ca = m.channel
    return lambda x: ref_cbam(x, ca.fc1.weight, ca.fc1.bias, ca.fc2.weight, ca.fc2.bias, m.spatial.conv.weight)


def randomized(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Weights far from their initialisation, so that gates are not all near 0.5."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0, 0.5)
    return module


def clone_module(m: CBAM) -> CBAM:
    twin = CBAM(m.channel.channels, m.channel.reduction, m.spatial.kernel_size, bias=m.channel.fc1.bias is not None)
    twin.load_state_dict(m.state_dict())
    return twin


def grads_of(m: torch.nn.Module, fn, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """Output of fn(x) and the gradients of <fn(x), g> for x and every parameter of m."""
    m.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(True)
    out = fn(x)
    out.backward(g)
    return out.detach(), x.grad, {n: p.grad for n, p in m.named_parameters()}


def assert_close(actual, expected, rtol=1e-5, atol=1e-5, name=""):
    """Elementwise closeness; the absolute tolerance grows to 2 * rtol times the largest expected value, because a
    gradient summed over many elements carries float32 rounding of the size of its largest terms, whatever the order
    of summation (the reference's own order included)."""
    scale = expected.abs().max().item() if expected.numel() else 0.0
    torch.testing.assert_close(
        actual, expected, rtol=rtol, atol=max(atol, 2 * rtol * scale), msg=lambda m: f"{name}: {m}" if name else m
    )


def assert_same_grads(ours, ref, rtol=1e-5, atol=1e-5):
    out, dx, dp = ours
    out_r, dx_r, dp_r = ref
    assert_close(out, out_r, rtol, atol, "output")
    assert_close(dx, dx_r, rtol, atol, "dL/dx")
    assert dp.keys() == dp_r.keys()
    for name in dp:
        assert_close(dp[name], dp_r[name], rtol, atol, name)


@pytest.fixture(params=["c-kernels", "pytorch-kernels"])
def kernels(request):
    """Run a test on the fused C kernels (where a C compiler is present) and on PyTorch kernels alone."""
    use_c = request.param == "c-kernels"
    if use_c:
        c_kernels_or_skip()
    cpu_kernels.use_cpu_kernels(use_c)
    yield request.param
    cpu_kernels.use_cpu_kernels(True)


@pytest.mark.parametrize(
    ("shape", "route", "matmul_means"),
    [(SMALL, "small", False), (MEDIUM, "small", True), (LARGE, "folded", True)],
)
def test_shapes_reach_the_pytorch_kernels_they_test(shape, route, matmul_means, threads):
    m = CBAM(shape[1], 4, 7)
    x = torch.randn(shape)
    assert cbam_modules._fast_context(x)
    assert cbam_modules._conv_route(m.spatial.conv, x, True) == route
    over_hw, over_c = cbam_modules._matmul_means(x, True)
    assert over_hw is (matmul_means and threads == 1)
    assert over_c is (matmul_means and shape[0] >= threads)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not cbam_modules._fast_context(x)


@pytest.mark.parametrize("shape", [SMALL, MEDIUM, LARGE])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("train", [True, False])
def test_autograd_path_matches_paper(shape, bias, train, threads, kernels):
    """Forward and hand-written backward (x and every parameter), in train and eval mode."""
    m = randomized(CBAM(shape[1], 4, 7, bias=bias)).train(train)
    ref = clone_module(m)
    x, g = torch.randn(shape), torch.randn(shape)
    assert_same_grads(grads_of(m, m, x, g), grads_of(ref, ref_for(ref), x, g))


@pytest.mark.parametrize("shape", [SMALL, MEDIUM, LARGE])
@pytest.mark.parametrize("context", ["no_grad", "inference_mode", "frozen"])
def test_inference_path_matches_paper_and_keeps_input(shape, context, threads, kernels):
    m = randomized(CBAM(shape[1], 4, 7, bias=True)).eval()
    x = torch.randn(shape)
    before = x.clone()
    expected = ref_for(m)(x).detach()
    if context == "frozen":
        m.requires_grad_(False)
        out = m(x)
        assert out.grad_fn is None
    else:
        with torch.no_grad() if context == "no_grad" else torch.inference_mode():
            out = m(x)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(x, before)
    assert out.data_ptr() != x.data_ptr()


def _short_path_blockers(m: CBAM, x: torch.Tensor) -> dict:
    """Ways a call can differ from plain CPU float32 inference, each as (context manager, layer, input)."""
    hooked, relu6, grouped = clone_module(m), clone_module(m), clone_module(m)
    hooked.channel.fc1.register_forward_hook(lambda *_: None)
    relu6.channel.act = torch.nn.ReLU6()
    grouped.channel.fc2 = torch.nn.Conv2d(4, 16, 1, groups=2)
    inference = torch.inference_mode
    return {
        "grad mode": (contextlib.nullcontext, m, x.clone().requires_grad_(True)),
        "autocast": (lambda: torch.autocast("cpu", dtype=torch.bfloat16), m, x),
        "float64 input": (inference, clone_module(m).double(), x.double()),
        "float64 weights": (inference, clone_module(m).double(), x),
        "channels-last input": (inference, m, x.contiguous(memory_format=torch.channels_last)),
        "hook on fc1": (inference, hooked, x),
        "other activation": (inference, relu6, x),
        "grouped fc2": (inference, grouped, x),
        "global hook": (lambda: _global_forward_hook(), m, x),
        "compiled path": (lambda: _switched(cbam_modules.use_compiled_cbam, True), m, x),
        "no C kernels": (lambda: _switched(cpu_kernels.use_cpu_kernels, False), m, x),
    }


@contextlib.contextmanager
def _global_forward_hook():
    handle = torch.nn.modules.module.register_module_forward_hook(lambda *_: None)
    try:
        with torch.inference_mode():
            yield
    finally:
        handle.remove()


@contextlib.contextmanager
def _switched(switch, value: bool):
    """Inference with a package-wide switch set to `value`, then back to the other setting."""
    switch(value)
    try:
        with torch.inference_mode():
            yield
    finally:
        switch(not value)


def test_short_kernel_path_takes_plain_inference_only():
    """Plain CPU float32 inference runs on the C kernels straight from the layer's registries; every other call goes
    the general way (whose results the other tests pin to the paper)."""
    c_kernels_or_skip()
    m = randomized(CBAM(LARGE[1], 4, 7, bias=True)).eval()
    x = torch.randn(LARGE)
    with torch.inference_mode():
        out = cbam_modules._kernel_inference(m, x)
    assert_close(out, ref_for(m)(x).detach(), name="short path")
    traced = []
    with torch.no_grad():
        torch.jit.trace(lambda v: traced.append(cbam_modules._kernel_inference(m, v)) or v * 1, x, check_trace=False)
    assert traced == [None], "tracing"
    for name, (context, layer, inp) in _short_path_blockers(m, x.clone()).items():
        with context():
            assert cbam_modules._kernel_inference(layer, inp) is None, name


def test_one_full_size_allocation_at_inference(kernels):
    """No full-size temporaries: one output buffer, gated in place."""
    m = randomized(CBAM(LARGE[1], 4, 7)).eval()
    x = torch.randn(LARGE)
    with torch.inference_mode(), _FullSizeOutputs(x.numel()) as seen:
        m(x)
    assert seen.allocations == 1, seen.ops


def test_autograd_path_saves_only_the_input_at_full_size(kernels):
    m = randomized(CBAM(LARGE[1], 4, 7))
    x = torch.randn(LARGE, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = m(x)
    full = [t for t in saved if t.numel() == x.numel()]
    assert [t.data_ptr() for t in full] == [x.data_ptr()]
    out.sum().backward()
    assert x.grad is not None


class _FullSizeOutputs(TorchDispatchMode):
    """Counts ops that return a fresh tensor as large as the input (not a view of, or written into, an input)."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.allocations, self.ops = numel, 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = tree_flatten((args, kwargs))[0]
        known = {t.untyped_storage().data_ptr() for t in inputs if isinstance(t, torch.Tensor)}
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.numel() == self.numel and t.untyped_storage().data_ptr() not in known:
                self.allocations += 1
                self.ops.append(str(func))
        return out


@pytest.mark.parametrize("shape", [SMALL, LARGE])
def test_channels_last(shape, kernels):
    m = randomized(CBAM(shape[1], 4, 7))
    ref = clone_module(m)
    x = torch.randn(shape).to(memory_format=torch.channels_last)
    g = torch.randn(shape)
    ours = grads_of(m, m, x, g)
    assert ours[0].is_contiguous(memory_format=torch.channels_last)
    assert_same_grads(ours, grads_of(ref, ref_for(ref), x.contiguous(), g))
    with torch.inference_mode():
        out = m(x)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ours[0], rtol=1e-5, atol=1e-6)


def test_tied_maxima_share_the_gradient_evenly(kernels):
    """Constant channels, constant positions and repeated peaks: every max-pooling gradient is split, as amax does."""
    for shape in (SMALL, LARGE):
        m = randomized(CBAM(shape[1], 4, 3, bias=True))
        ref = clone_module(m)
        x = torch.randn(shape)
        x[:, 1] = 0.25  # a constant channel: H * W tied maxima
        x[:, :, 3, 4] = 2.0  # one position with the same value in every channel: C tied maxima
        x[0, 5, 0, :3] = x[0, 5].max() + 1  # three tied peaks in one channel
        g = torch.randn(shape)
        assert_same_grads(grads_of(m, m, x, g), grads_of(ref, ref_for(ref), x, g))


@pytest.mark.parametrize("which", ["x", "params"])
def test_partial_requires_grad(which, kernels):
    """Only x, or only the weights, need gradients: the autograd path computes just those."""
    m = randomized(CBAM(LARGE[1], 4, 7, bias=True))
    ref = clone_module(m)
    x, g = torch.randn(LARGE), torch.randn(LARGE)
    for module in (m, ref):
        module.requires_grad_(which == "params")
    xs = [x.clone().requires_grad_(which == "x") for _ in range(2)]
    m(xs[0]).backward(g)
    ref_for(ref)(xs[1]).backward(g)
    if which == "x":
        assert_close(xs[0].grad, xs[1].grad, name="dL/dx")
        assert all(p.grad is None for p in m.parameters())
    else:
        assert xs[0].grad is None
        for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
            assert_close(p.grad, q.grad, name=name)


def standalone_layers(channels: int, bias: bool = True):
    """A ChannelAttention and a SpatialAttention with random weights, each with its paper formula on tensors."""
    ca, sa = randomized(ChannelAttention(channels, 4, bias=bias)), randomized(SpatialAttention(7), seed=1)

    def channel(v):
        return ref_channel(v, ca.fc1.weight, ca.fc1.bias, ca.fc2.weight, ca.fc2.bias)

    def spatial(v):
        d = torch.cat([v.mean(1, keepdim=True), v.amax(1, keepdim=True)], 1)
        return v * torch.sigmoid(F.conv2d(d, sa.conv.weight, padding=3))

    return ((ca, channel), (sa, spatial))


def with_tied_maxima(x: torch.Tensor) -> torch.Tensor:
    """x with a constant channel (H * W tied maxima), a position equal in every channel (C tied maxima over C) and
    three tied peaks in one channel."""
    x = x.clone()
    x[:, 1] = 0.25
    x[:, :, 3, 4] = 2.0
    x[0, 5, 0, :3] = x[0, 5].max() + 1
    return x


@pytest.mark.parametrize("shape", [SMALL, LARGE])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("tied", [False, True])
def test_standalone_layers_with_autograd(shape, bias, tied, threads, kernels, monkeypatch):
    """ChannelAttention and SpatialAttention alone (as YAML rows use them), with gradients for x and every parameter:
    on the C kernels where they are built, on PyTorch kernels otherwise, the paper's maths either way."""
    calls = []
    for name in ("FusedChannelAttention", "FusedSpatialAttention"):
        function = getattr(fused, name)
        monkeypatch.setattr(function, "apply", lambda *args, f=function.apply, n=name: calls.append(n) or f(*args))
    x, g = torch.randn(shape), torch.randn(shape)
    x = with_tied_maxima(x) if tied else x
    for layer, formula in standalone_layers(shape[1], bias):
        assert_same_grads(grads_of(layer, layer, x, g), grads_of(layer, formula, x, g))
    fused_calls = ["FusedChannelAttention", "FusedSpatialAttention"]
    assert calls == (fused_calls if kernels == "c-kernels" else [])


@pytest.mark.parametrize("which", ["x", "params"])
def test_standalone_layers_partial_requires_grad(which, kernels):
    """Only x, or only the weights, need gradients: each layer computes just those."""
    for layer, formula in standalone_layers(LARGE[1]):
        x, g = torch.randn(LARGE), torch.randn(LARGE)
        layer.requires_grad_(which == "params")
        xs = [x.clone().requires_grad_(which == "x") for _ in range(2)]
        layer(xs[0]).backward(g)
        ours = xs[0].grad if which == "x" else [p.grad.clone() for p in layer.parameters()]
        layer.zero_grad(set_to_none=True)
        formula(xs[1]).backward(g)
        if which == "x":
            assert_close(ours, xs[1].grad, name="dL/dx")
            assert all(p.grad is None for p in layer.parameters())
        else:
            assert xs[0].grad is None
            for mine, expected in zip(ours, [p.grad for p in layer.parameters()], strict=True):
                assert_close(mine, expected, name=type(layer).__name__)


def test_double_backward_in_float32(kernels):
    """Gradients of gradients (create_graph=True) of CBAM and of the standalone layers agree with the formulas'."""
    cbam = randomized(CBAM(LARGE[1], 4, 7, bias=True))
    layers = [*standalone_layers(LARGE[1]), (cbam, ref_for(clone_module(cbam)))]
    g = torch.randn(LARGE)
    for layer, formula in layers:
        results = []
        for fn in (layer, formula):
            x = torch.randn(LARGE, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
            (dx,) = torch.autograd.grad((fn(x) * g).sum(), x, create_graph=True)
            (ddx,) = torch.autograd.grad(dx.pow(2).sum(), x)
            results.append((dx.detach(), ddx))
        assert_close(results[0][0], results[1][0], name=f"{type(layer).__name__} dL/dx")
        assert_close(results[0][1], results[1][1], rtol=1e-4, atol=1e-4, name=f"{type(layer).__name__} d2")


@pytest.mark.parametrize("shape", [SMALL, LARGE])
@pytest.mark.parametrize("context", ["no_grad", "inference_mode", "frozen"])
def test_standalone_layers_at_inference(shape, context, kernels, monkeypatch):
    """ChannelAttention and SpatialAttention alone without autograd: on the C kernels where they are built (one pass
    over x for both descriptors), on PyTorch kernels otherwise, the paper's maths either way."""
    ca, sa = randomized(ChannelAttention(shape[1], 4, bias=True)), randomized(SpatialAttention(7), seed=1)
    x = torch.randn(shape)
    before = x.clone()
    expected_ca = ref_channel(x, ca.fc1.weight, ca.fc1.bias, ca.fc2.weight, ca.fc2.bias).detach()
    descriptors = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
    expected_sa = (x * torch.sigmoid(F.conv2d(descriptors, sa.conv.weight, padding=3))).detach()
    pools = []
    for name in ("channel_pool", "spatial_pool"):
        kernel = getattr(cpu_kernels, name)
        monkeypatch.setattr(cpu_kernels, name, lambda *args, k=kernel, n=name: pools.append(n) or k(*args))
    if context == "frozen":
        ca.requires_grad_(False), sa.requires_grad_(False)
        outputs = ca(x), sa(x)
        assert all(out.grad_fn is None for out in outputs)
    else:
        with torch.no_grad() if context == "no_grad" else torch.inference_mode():
            outputs = ca(x), sa(x)
    assert_close(outputs[0], expected_ca, name="ChannelAttention")
    assert_close(outputs[1], expected_sa, name="SpatialAttention")
    assert torch.equal(x, before)
    assert pools == (["channel_pool", "spatial_pool"] if kernels == "c-kernels" else [])


REPLACEMENTS = {  # sub-modules a user may swap in; the fast paths compute only the stock ones
    "SiLU activation": ("channel.act", lambda c: torch.nn.SiLU()),
    "grouped fc1": ("channel.fc1", lambda c: torch.nn.Conv2d(c, c // 4, 1, groups=2)),
    "biased spatial conv": ("spatial.conv", lambda c: torch.nn.Conv2d(2, 1, 7, padding=3)),
    "dilated spatial conv": ("spatial.conv", lambda c: torch.nn.Conv2d(2, 1, 3, padding=2, dilation=2, bias=False)),
}


def ref_with_modules(m: CBAM, x: torch.Tensor) -> torch.Tensor:
    """The paper's formula calling the layer's own sub-modules for the MLP and the convolution."""
    ca, conv = m.channel, m.spatial.conv

    def mlp(v):
        return ca.fc2(ca.act(ca.fc1(v)))

    y = x * torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    return y * torch.sigmoid(conv(torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1)))


@pytest.mark.parametrize("shape", [SMALL, LARGE])
@pytest.mark.parametrize("replaced", list(REPLACEMENTS))
def test_replaced_sub_modules_are_computed_as_they_are(shape, replaced, kernels):
    """A swapped activation or a convolution with other settings takes the plain formula, with and without autograd,
    in CBAM and in the standalone layers."""
    path, make = REPLACEMENTS[replaced]
    m = CBAM(shape[1], 4, 7, bias=True)
    parent, name = path.split(".")
    setattr(getattr(m, parent), name, make(shape[1]))
    randomized(m)
    x, g = torch.randn(shape), torch.randn(shape)
    assert_same_grads(grads_of(m, m, x, g), grads_of(m, lambda v: ref_with_modules(m, v), x, g))
    with torch.no_grad():
        expected = ref_with_modules(m, x)
        assert_close(m.eval()(x), expected, name="CBAM")
        assert_close(m.spatial(m.channel(x)), expected, name="standalone layers")


def test_hooks_on_sub_modules_still_fire_and_agree():
    m = randomized(CBAM(LARGE[1], 4, 7))
    x, g = torch.randn(LARGE), torch.randn(LARGE)
    fast = grads_of(m, m, x, g)
    calls, outputs = [], []
    handle = m.spatial.register_forward_hook(lambda _m, _a, out: calls.append("spatial") or outputs.append(out))
    handle2 = m.channel.register_forward_hook(lambda *_: calls.append("channel"))
    try:
        hooked = grads_of(m, m, x, g)
        with torch.no_grad():
            out = m(x)
    finally:
        handle.remove()
        handle2.remove()
    assert calls == ["channel", "spatial"] * 2
    torch.testing.assert_close(outputs[-1], out, rtol=0, atol=0)  # the spatial module's output is the layer's
    assert_same_grads(hooked, fast)


def test_flop_counter_hooks_see_the_convolutions():
    """Hooks on the inner convolutions (as thop's FLOP counter uses) make the layers call those modules."""
    m = randomized(CBAM(LARGE[1], 4, 7)).eval()
    seen = []
    handles = [c.register_forward_hook(lambda mod, *_: seen.append(mod)) for c in (m.channel.fc1, m.spatial.conv)]
    try:
        with torch.no_grad():
            out = m(torch.randn(LARGE))
    finally:
        for h in handles:
            h.remove()
    assert seen == [m.channel.fc1, m.spatial.conv]
    assert out.shape == LARGE


def test_bf16_autocast_gradients():
    m = randomized(CBAM(SMALL[1], 4, 7))
    ref = clone_module(m)
    x, g = torch.randn(SMALL), torch.randn(SMALL)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = grads_of(m, m, x, g)
        expected = grads_of(ref, ref_for(ref), x, g)
    assert ours[1].dtype == torch.float32
    assert_same_grads(ours, expected, rtol=0.05, atol=0.05)


def test_double_precision_gradcheck_and_double_backward():
    m = randomized(CBAM(8, 2, 3, bias=True)).double()
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (x,))
    assert torch.autograd.gradgradcheck(m, (x,))


def test_backward_twice_with_retained_graph(kernels):
    m = randomized(CBAM(LARGE[1], 4, 7))
    x = torch.randn(LARGE, requires_grad=True)
    g = torch.randn(LARGE)
    out = m(x)
    out.backward(g, retain_graph=True)
    first = x.grad.clone()
    out.backward(g)
    torch.testing.assert_close(x.grad, 2 * first)


def test_empty_batch_backward(kernels):
    m = CBAM(16, 4)
    x = torch.randn(0, 16, 8, 8, requires_grad=True)
    m(x).sum().backward()
    assert x.grad.shape == x.shape
    assert all(p.grad is not None and not p.grad.any() for p in m.parameters())


def test_deterministic_backward_on_folded_kernels(kernels):
    m = randomized(CBAM(LARGE[1], 4, 7))
    x = torch.randn(LARGE)
    torch.use_deterministic_algorithms(True)
    try:
        runs = [grads_of(m, m, x, torch.ones(LARGE)) for _ in range(2)]
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(runs[0][1], runs[1][1])
    assert all(torch.equal(runs[0][2][k], runs[1][2][k]) for k in runs[0][2])


def test_compiled_path_matches_paper():
    """The opt-in torch.compile path (one small shape: compiling on CPU takes a while)."""
    pytest.importorskip("torch._inductor")
    m = randomized(CBAM(16, 4, 3))
    ref = clone_module(m)
    x, g = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)
    cbam_modules.use_compiled_cbam(True)
    try:
        ours = grads_of(m, m, x, g)
    finally:
        cbam_modules.use_compiled_cbam(False)
    assert_same_grads(ours, grads_of(ref, ref_for(ref), x, g))
    with pytest.raises(ValueError, match="enabled"):
        cbam_modules.use_compiled_cbam("yes")
