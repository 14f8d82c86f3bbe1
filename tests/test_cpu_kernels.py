"""The fused C kernels: each against its formula in PyTorch, their build and cache, and the fallback without them."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import c_kernels_or_skip, run_python
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from ultralytics_cbam import CBAM, cpu_kernels

# (N, C, H, W): one pixel, odd sizes, tiles with a remainder (1,320 pixels), one channel, a 1-D map
SHAPES = [(1, 1, 1, 1), (2, 3, 5, 7), (3, 5, 33, 40), (2, 1, 9, 9), (1, 4, 1, 1000)]


@pytest.fixture(scope="module")
def lib():
    return c_kernels_or_skip()


def inputs(shape, seed=0):
    """x, a channel gate (N, C) and a spatial gate (N, 1, H, W) as CBAM makes them, and an output gradient."""
    torch.manual_seed(seed)
    n, c, h, w = shape
    return torch.randn(shape), torch.rand(n, c), torch.rand(n, 1, h, w), torch.randn(shape)


def close(actual, expected):
    """float32 kernels against a float64 restatement."""
    torch.testing.assert_close(actual.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_pooling_kernels(lib, shape, threads):
    x, gate, _, _ = inputs(shape)
    xd, y = x.double(), (x * gate[:, :, None, None]).double()  # y in float32, as CBAM computes it
    channel = cpu_kernels.channel_pool(lib, x)
    close(channel, torch.stack((xd.mean((2, 3)), xd.amax((2, 3))), 1))
    spatial = cpu_kernels.spatial_pool(lib, x, gate)
    close(spatial, torch.cat((y.mean(1, keepdim=True), y.amax(1, keepdim=True)), 1))


@pytest.mark.parametrize("shape", SHAPES)
def test_apply_is_bit_exact(lib, shape, threads):
    x, gate, spatial, _ = inputs(shape)
    assert torch.equal(cpu_kernels.apply(lib, x, gate, spatial), x * gate[:, :, None, None] * spatial)


@pytest.mark.parametrize("shape", SHAPES)
def test_gradient_kernels(lib, shape, threads):
    """The three backward kernels against the chain rule written out for the same inputs."""
    x, gate, spatial, grad = inputs(shape)
    n, c, h, w = shape
    x[:, :, 0, 0] = 1.0  # ties over C where the gate ties too
    gate[:, : c // 2 + 1] = 0.5
    x[:, 0, :, : w // 2 + 1] = 3.0  # ties over H, W
    y = x * gate[:, :, None, None]
    desc = cpu_kernels.spatial_pool(lib, x, gate)
    is_top_c = (y == y.amax(1, keepdim=True)).double()

    d_spatial, ties = cpu_kernels.spatial_grad(lib, grad, x, gate, desc)
    close(d_spatial, (grad.double() * y.double()).sum(1, keepdim=True))
    assert torch.equal(ties.double(), is_top_c.sum(1, keepdim=True))

    share = torch.randn(n, 2, h, w)  # the spatial descriptors' gradients, divided by C and the ties
    dy = grad.double() * spatial.double() + share[:, :1].double() + is_top_c * share[:, 1:].double()
    close(cpu_kernels.gate_grad(lib, grad, x, gate, spatial, desc, share), (dy * x.double()).sum((2, 3)))

    channel_desc = cpu_kernels.channel_pool(lib, x)
    d_channel = torch.randn(n, 2, c)
    is_top_hw = (x == x.amax((2, 3), keepdim=True)).double()
    expected = (
        dy * gate[:, :, None, None].double()
        + d_channel[:, 0, :, None, None].double() / (h * w)
        + is_top_hw * d_channel[:, 1, :, None, None].double() / is_top_hw.sum((2, 3), keepdim=True)
    )
    close(cpu_kernels.input_grad(lib, grad, x, gate, spatial, desc, share, channel_desc, d_channel), expected)


@pytest.mark.parametrize(("shape", "k"), [((2, 9, 11), 7), ((1, 3, 300), 5), ((1, 2, 3), 7), ((3, 6, 6), 1)])
def test_spatial_conv(lib, shape, k, threads):
    """The 2 -> 1 convolution: odd sizes, rows longer than one span (256), a kernel larger than the map, 1x1."""
    n, h, w = shape
    torch.manual_seed(0)
    desc, weight = torch.randn(n, 2, h, w), torch.randn(1, 2, k, k)
    expected = F.conv2d(desc.double(), weight.double(), padding=k // 2)
    close(cpu_kernels.spatial_conv(lib, desc, weight), expected)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize(("n", "c", "hidden"), [(1, 1, 1), (3, 40, 5), (2, 256, 16)])
def test_channel_gate(lib, n, c, hidden, bias, threads):
    """The shared MLP on both descriptors and the sigmoid of their sum (eq. 2), biases added once per descriptor."""
    torch.manual_seed(0)
    desc = torch.randn(n, 2, c)
    w1, w2 = torch.randn(hidden, c, 1, 1), torch.randn(c, hidden, 1, 1)
    b1, b2 = (torch.randn(hidden), torch.randn(c)) if bias else (None, None)
    hidden_out, gate = cpu_kernels.channel_gate(lib, desc, w1, b1, w2, b2)

    def f64(t):
        return None if t is None else t.double()

    def layer1(v):  # v: (N, C) -> (N, hidden)
        return F.relu(F.conv2d(v[:, :, None, None], f64(w1), f64(b1)))[:, :, 0, 0]

    def mlp(v):
        return F.conv2d(layer1(v)[:, :, None, None], f64(w2), f64(b2))[:, :, 0, 0]

    avg, top = desc.double().unbind(1)
    close(hidden_out, torch.stack((layer1(avg), layer1(top)), 1))
    close(gate, torch.sigmoid(mlp(avg) + mlp(top)))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bias", [False, True])
def test_forward_in_one_call_is_the_kernels_in_sequence(lib, shape, bias, threads):
    """cbam_forward runs pooling, MLP, pooling over C, convolution, sigmoid and product as the separate kernels do."""
    x, _, _, _ = inputs(shape)
    c = shape[1]
    hidden = max(c // 2, 1)
    w1, w2, conv = torch.randn(hidden, c, 1, 1), torch.randn(c, hidden, 1, 1), torch.randn(1, 2, 5, 5)
    b1, b2 = (torch.randn(hidden), torch.randn(c)) if bias else (None, None)
    gate = cpu_kernels.channel_gate(lib, cpu_kernels.channel_pool(lib, x), w1, b1, w2, b2)[1]
    spatial = cpu_kernels.spatial_conv(lib, cpu_kernels.spatial_pool(lib, x, gate), conv).sigmoid()
    expected = cpu_kernels.apply(lib, x, gate, spatial)
    torch.testing.assert_close(cpu_kernels.forward(lib, x, w1, b1, w2, b2, conv), expected, rtol=1e-6, atol=1e-7)


def test_kernel_sizes_beyond_the_c_convolution_still_match(lib):
    """A spatial kernel larger than cbam_spatial_conv takes runs that convolution in PyTorch, the rest in C."""
    k = cpu_kernels.MAX_KERNEL_SIZE + 2
    m = CBAM(8, 2, k, bias=True)
    x = torch.randn(2, 8, 12, 10)
    ca, conv = m.channel, m.spatial.conv

    def mlp(v):
        return F.conv2d(F.relu(F.conv2d(v, ca.fc1.weight, ca.fc1.bias)), ca.fc2.weight, ca.fc2.bias)

    y = x * torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
    expected = y * torch.sigmoid(
        F.conv2d(torch.cat([y.mean(1, True), y.amax(1, True)], 1), conv.weight, padding=k // 2)
    )
    with torch.no_grad():
        torch.testing.assert_close(m(x), expected, rtol=1e-5, atol=1e-6)


def test_nan_wins_the_max_as_in_torch(lib):
    x, gate, _, _ = inputs((2, 4, 6, 5))
    x[0, 1, 2, 3] = float("nan")
    x[1, 2, 4, 0] = float("inf")
    x[1, 3, 4, 0] = float("-inf")  # inf - inf: a NaN sum without a NaN element
    channel, spatial = cpu_kernels.channel_pool(lib, x), cpu_kernels.spatial_pool(lib, x, gate)
    y = x * gate[:, :, None, None]
    assert torch.equal(channel[:, 1].isnan(), x.amax((2, 3)).isnan())
    assert channel[0, 1, 1].isnan() and channel[1, 1, 2] == float("inf")
    assert torch.equal(spatial[:, 1].isnan(), y.amax(1).isnan())
    assert spatial[1, 1, 4, 0] == float("inf")


def test_results_do_not_depend_on_the_thread_count(lib):
    """Every sum is made by one thread, so 1 and 2 threads give the same bits."""
    x, gate, _, grad = inputs((2, 8, 40, 30))
    weights = torch.randn(2, 8, 1, 1), torch.randn(2), torch.randn(8, 2, 1, 1), torch.randn(8), torch.randn(1, 2, 7, 7)
    runs = []
    for count in (1, 2):
        torch.set_num_threads(count)
        desc = cpu_kernels.spatial_pool(lib, x, gate)
        runs.append([cpu_kernels.channel_pool(lib, x), desc, *cpu_kernels.spatial_grad(lib, grad, x, gate, desc)])
        runs[-1].append(cpu_kernels.forward(lib, x, *weights))
    torch.set_num_threads(2)
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))


_NO_READ = ("empty", "detach", "view", "alias")


class _FullSizeReads(TorchDispatchMode):
    """PyTorch ops that read a tensor as large as `numel`, other than allocating one like it or viewing it."""

    def __init__(self, numel: int) -> None:
        super().__init__()
        self.numel, self.ops = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if not any(word in str(func) for word in _NO_READ) and any(t.numel() == self.numel for t in tensors):
            self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def test_cbam_leaves_every_full_size_pass_to_the_kernels(lib):
    """Forward, backward and inference: no PyTorch op touches a full-size tensor (on PyTorch kernels, many do)."""
    m = CBAM(16, 4, 7)
    x = torch.randn(2, 16, 64, 56, requires_grad=True)
    grad = torch.randn_like(x)
    with _FullSizeReads(x.numel()) as fused:
        m(x).backward(grad)
        with torch.inference_mode():
            m(x)
    assert fused.ops == [], fused.ops
    cpu_kernels.use_cpu_kernels(False)
    try:
        with _FullSizeReads(x.numel()) as plain:
            m(x).backward(grad)
    finally:
        cpu_kernels.use_cpu_kernels(True)
    assert len(plain.ops) > 5


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_shares_torchs_openmp_runtime(lib):
    gomp = {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "libgomp" in line}
    assert len(gomp) <= 1, gomp


def test_build_is_cached_per_source_compiler_and_cpu(tmp_path, lib):
    first = cpu_kernels.build(tmp_path)
    built_at = first.stat().st_mtime_ns
    assert cpu_kernels.build(tmp_path) == first
    assert first.stat().st_mtime_ns == built_at  # not compiled again
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no leftovers of the build
    assert stat.S_IMODE(tmp_path.stat().st_mode) & 0o022 == 0


def test_build_errors_name_the_cause(tmp_path, monkeypatch):
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\necho 'fatal: no such flag' >&2\nexit 1\n")
    broken.chmod(0o755)
    with pytest.raises(cpu_kernels.KernelBuildError, match=r"(?s)broken-cc.*fatal: no such flag"):
        cpu_kernels.build(tmp_path / "cache", compiler=str(broken))
    monkeypatch.setenv("CC", str(tmp_path / "missing-cc"))
    with pytest.raises(cpu_kernels.KernelBuildError, match="missing-cc"):
        cpu_kernels.build(tmp_path / "cache")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(cpu_kernels.KernelBuildError, match="writable by others"):
        cpu_kernels.build(shared, compiler=str(broken))


def test_use_cpu_kernels_rejects_non_bools():
    with pytest.raises(ValueError, match="enabled"):
        cpu_kernels.use_cpu_kernels("off")


_FALLBACK = """
import torch, torch.nn.functional as F
from ultralytics_cbam import CBAM, cpu_kernels
torch.manual_seed(0)
m, x = CBAM(16, 4, 7), torch.randn(2, 16, 40, 40, requires_grad=True)
out = m(x)
out.sum().backward()
m(x)
c, s = m.channel, m.spatial.conv
def mlp(v):
    return F.conv2d(F.relu(F.conv2d(v, c.fc1.weight)), c.fc2.weight)
y = x * torch.sigmoid(mlp(x.mean((2, 3), keepdim=True)) + mlp(x.amax((2, 3), keepdim=True)))
ref = y * torch.sigmoid(s(torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1)))
torch.testing.assert_close(out, ref)
print("kernels:", cpu_kernels.library() is not None)
"""


@pytest.mark.parametrize("setting", ["broken-compiler", "turned-off"])
def test_without_the_kernels_cbam_runs_on_pytorch_and_says_why_once(tmp_path, setting):
    broken = tmp_path / "broken-cc"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    cache = tmp_path / "cache"
    env = {"ULTRALYTICS_CBAM_CACHE_DIR": str(cache)}
    env.update({"CC": str(broken)} if setting == "broken-compiler" else {"ULTRALYTICS_CBAM_CPU_KERNELS": "0"})
    done = run_python(_FALLBACK, tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert "kernels: False" in done.stdout
    said = (done.stdout + done.stderr).count("CBAM runs on PyTorch kernels only")
    assert said == (1 if setting == "broken-compiler" else 0)
    assert not any(cache.glob("*.so"))


def test_hooks_on_the_spatial_convolution_fire_and_the_rest_stays_on_the_kernels(lib):
    m = CBAM(16, 4, 7)
    x = torch.randn(2, 16, 40, 40)
    with torch.no_grad():
        expected = m(x)
    seen = []
    handle = m.spatial.conv.register_forward_hook(lambda mod, args, out: seen.append(out.shape))
    try:
        with torch.no_grad(), _FullSizeReads(x.numel()) as reads:
            out = m(x)
    finally:
        handle.remove()
    assert seen == [(2, 1, 40, 40)] and reads.ops == []
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
