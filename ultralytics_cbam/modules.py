"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018).

The maths is the paper's; the code skips work the maths does not need. Both channel descriptors go through the shared
MLP in one pass (as a matrix product), and the 2 -> 1 spatial convolution runs on CPU kernels that suit two channels.
``CBAM`` then takes the first of these paths that applies:

* on CPU, for contiguous float32 maps, the fused C kernels (``fused``, ``cpu_kernels``), with autograd or without: a
  forward reads the input three times and writes the output once, a backward reads the input and the output gradient
  three times and writes dL/dx once;
* without autograd (``no_grad``, ``inference_mode``, frozen weights): ``mean``/``amax`` reductions and one full-size
  buffer, gated in place;
* with autograd: one hand-written backward instead of a dozen generic ones. It routes the max-pooling gradient as
  autograd does for ``amax`` (tied maxima share it evenly) and touches each full-size tensor only a few times;
* the plain formula, op by op, for tracing, ONNX export, ``torch.compile``, functorch transforms, autocast, hooks on
  the ``channel``/``spatial`` sub-modules, mixed dtypes and double backward. In ONNX export the mean over C is a
  MatMul and the spatial convolution a depthwise one plus a sum, which ONNX Runtime runs faster, and maxima are
  GlobalMaxPools. A CBAM, ChannelAttention or SpatialAttention layer records ``onnx_graph``'s graph instead, which
  keeps ONNX Runtime's blocked layout through the layer.

``ChannelAttention`` and ``SpatialAttention`` used as layers of their own take CBAM's C kernels too (with a unit gate
for the other half), with autograd or without, and PyTorch kernels (matrix-product means, the folded convolution)
where those cannot run.

``use_compiled_cbam()`` opts in to a ``torch.compile``-fused CBAM; ``use_cpu_kernels(False)`` keeps CBAM off the C
kernels.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as nn_module

from ultralytics_cbam import cpu_kernels, fused, onnx_graph
from ultralytics_cbam.cpu_kernels import use_cpu_kernels
from ultralytics_cbam.ops import (
    conv_backward,
    descriptor_conv,
    linear,
    mlp_backward,
    plain_backward,
    plain_cbam,
)

__all__ = ("CBAM", "ChannelAttention", "SpatialAttention", "hidden_channels", "use_compiled_cbam", "use_cpu_kernels")


def _positive_int(name: str, value: object, *, odd: bool = False) -> int:
    """Return `value` if it is a positive (and, if asked, odd) int, else raise a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (odd and value % 2 == 0):
        kind = "a positive odd integer" if odd else "a positive integer"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value


def hidden_channels(channels: int, reduction: int) -> int:
    """Width of the channel-attention MLP: floor(channels / reduction), and at least 1."""
    return max(channels // reduction, 1)


def _check_input(module: nn.Module, x: torch.Tensor, channels: int | None = None) -> None:
    """Raise a readable error for inputs that are not (N, C, H, W) maps with the expected C."""
    if _is_graph_capture():
        return
    name = type(module).__name__
    if x.dim() != 4:
        raise ValueError(f"{name} expects a 4-D (N, C, H, W) feature map, got a tensor of shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} was built for {channels} channels but got {x.shape[1]} (input shape {tuple(x.shape)})"
        )


def _is_graph_capture() -> bool:
    """True while tracing, scripting or compiling: the code then runs to record a graph, not only to compute."""
    return torch.jit.is_tracing() or torch.jit.is_scripting() or _compiling()


class ChannelAttention(nn.Module):
    """Channel attention: sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))) * x, with one shared MLP.

    Args:
        channels: Input channels C.
        reduction: Reduction ratio r; the MLP is C -> max(C // r, 1) -> C, so C < r still builds.
        bias: Give the MLP's 1x1 convs a bias (the official reference code does; the article does not).
    """

    def __init__(self, channels: int, reduction: int = 16, bias: bool = False) -> None:
        super().__init__()
        self.channels = _positive_int("channels", channels)
        self.reduction = _positive_int("reduction", reduction)
        if not isinstance(bias, bool):
            raise ValueError(f"bias must be a bool, got {bias!r}")
        hidden = hidden_channels(channels, reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights in [0, 1], shape (N, C, 1, 1)."""
        _check_input(self, x, self.channels)
        over_hw, _ = _matmul_means(x, _fast_context(x))
        return self._weights(_channel_descriptors(x, over_hw))[:, :, None, None]

    def _weights(self, descriptors: torch.Tensor) -> torch.Tensor:
        """(N, 2, C) descriptors -> (N, C) weights."""
        return _mlp(self, descriptors).sum(1).sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel of `x` by its attention weight."""
        if _blocked_layout_export(self, x):
            return onnx_graph.blocked_channel_attention(self, x)
        _check_input(self, x, self.channels)
        params = tuple(self.parameters())
        lib = _layer_kernels(params, x, _stock_mlp(self), self.fc1, self.act, self.fc2)
        if lib is None:
            return x * self.gate(x)
        if _needs_grad(x, params):
            return fused.FusedChannelAttention.apply(x, self, lib, *params)
        return fused.channel_attention(lib, self, x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"


class SpatialAttention(nn.Module):
    """Spatial attention: sigmoid(conv_kxk([mean_c(x), max_c(x)])) * x.

    Args:
        kernel_size: Odd size k of the 2 -> 1 convolution ('same' padding, no bias).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.kernel_size = _positive_int("kernel_size", kernel_size, odd=True)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial weights in [0, 1], shape (N, 1, H, W)."""
        _check_input(self, x)
        fast = _fast_context(x)
        route = _conv_route(self.conv, x, fast)
        return self._weights(_spatial_descriptors(x, _matmul_means(x, fast)[1]), route)

    def _weights(self, descriptors: torch.Tensor, route: str) -> torch.Tensor:
        """(N, 2, H, W) descriptors -> (N, 1, H, W) weights, the convolution on kernels chosen by `route`."""
        return descriptor_conv(self.conv, descriptors, route).sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each position of `x` by its attention weight."""
        if _blocked_layout_export(self, x):
            return onnx_graph.blocked_spatial_attention(self, x)
        _check_input(self, x)
        params = (self.conv.weight,)
        lib = _layer_kernels(params, x, _stock_conv(self.conv), self.conv)
        if lib is None:
            return x * self.gate(x)
        route = _size_route(x)  # the kernels' conditions include _conv_route's others
        if _needs_grad(x, params):
            return fused.FusedSpatialAttention.apply(x, self, route, lib, self.conv.weight)
        return fused.spatial_attention(lib, self, x, route)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}"


class CBAM(nn.Module):
    """Channel attention followed by spatial attention.

    Args:
        channels: Input channels C.
        reduction: Channel-attention reduction ratio r.
        kernel_size: Spatial-attention kernel size k (odd).
        bias: Bias in the channel-attention MLP.
    """

    def __init__(self, channels: int, reduction: int = 16, kernel_size: int = 7, bias: bool = False) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction, bias)
        self.spatial = SpatialAttention(kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Refine `x` with channel, then spatial attention."""
        out = _kernel_inference(self, x)
        if out is not None:
            return out
        _check_input(self, x, self.channel.channels)
        if _COMPILED.enabled and not _is_graph_capture():
            return _compiled_cbam(self, x)
        params = _parameters(self)
        if params is None or not _fast_context(x) or _needs_plain_path(self, x, params):
            if _blocked_layout_export(self, x):
                return onnx_graph.blocked_layout_cbam(self, x)
            return plain_cbam(self, x)
        route = _conv_route(self.spatial.conv, x, True)
        needs_grad = _needs_grad(x, params)
        mlp = self.channel.fc1, self.channel.act, self.channel.fc2
        lib = None if _has_hooks(*mlp) else fused.library_for(x)  # hooks on the MLP need calls of its modules
        if lib is not None and needs_grad:
            return fused.FusedCBAM.apply(x, self, route, lib, *params)
        if lib is not None:
            return fused.inference(lib, self, x, route)
        plan = _Plan(*_matmul_means(x, True), route)
        return _CBAMFunction.apply(x, self, plan, *params) if needs_grad else _inference_cbam(self, x, plan)


def _kernel_inference(cbam: CBAM, x: torch.Tensor) -> torch.Tensor | None:
    """CBAM(x) in one call of the C kernels wherever forward would end in that call: no autograd, a non-empty
    contiguous float32 CPU map with the layer's channels, stock float32 sub-modules without hooks, and no graph
    capture, autocast, functorch transform or compiled path. None elsewhere, and forward decides as usual.

    Inside a model, the preceding convolutions have pushed the interpreter's state out of the CPU caches, so each
    Python call and module attribute lookup made before the kernels costs several times what it does in a loop over
    the layer. This path makes few: the sub-modules come straight from their registries, each condition is read once.
    """
    if x.dtype is not torch.float32 or not x.is_cpu or x.dim() != 4 or not x.is_contiguous() or _COMPILED.enabled:
        return None
    if _GLOBAL_HOOKS[0] or _GLOBAL_HOOKS[1]:
        return None
    for active in _KERNEL_BLOCKERS:
        if active():
            return None
    channel, spatial = cbam._modules["channel"], cbam._modules["spatial"]
    fc1, act, fc2 = channel._modules.get("fc1"), channel._modules.get("act"), channel._modules.get("fc2")
    conv = spatial._modules.get("conv")
    if not (_stock_mlp_parts(fc1, act, fc2) and _stock_conv(conv)):
        return None
    for module in (channel, spatial, fc1, act, fc2, conv):
        if module._forward_hooks or module._forward_pre_hooks:
            return None
    if x.shape[1] != channel.channels or not x.numel() or conv.kernel_size[0] > cpu_kernels.MAX_KERNEL_SIZE:
        return None
    w1, b1 = fc1._parameters["weight"], fc1._parameters["bias"]
    w2, b2, weight = fc2._parameters["weight"], fc2._parameters["bias"], conv._parameters["weight"]
    if w1.dtype is not torch.float32 or w2.dtype is not torch.float32 or weight.dtype is not torch.float32:
        return None
    if (b1 is not None and b1.dtype is not torch.float32) or (b2 is not None and b2.dtype is not torch.float32):
        return None
    lib = cpu_kernels.library()
    return None if lib is None else cpu_kernels.forward(lib, x, w1, b1, w2, b2, weight)


_IS_COMPILING = getattr(getattr(torch, "compiler", None), "is_compiling", None)  # None in older torch


def _compiling() -> bool:
    return _IS_COMPILING is not None and _IS_COMPILING()


_AUTOCAST_BY_DEVICE = hasattr(torch, "get_autocast_dtype")  # torch >= 2.4: is_autocast_enabled(device_type)


def _autocast_on_cpu() -> Callable[[], bool]:
    if _AUTOCAST_BY_DEVICE:
        return functools.partial(torch.is_autocast_enabled, "cpu")
    return torch.is_autocast_cpu_enabled


# What keeps _kernel_inference off the kernels, as calls that are cheap where they are C functions: grad mode,
# tracing (TorchScript, ONNX export), CPU autocast, functorch transforms, torch.compile.
_KERNEL_BLOCKERS = tuple(
    f
    for f in (
        torch.is_grad_enabled,
        torch._C._is_tracing,
        _autocast_on_cpu(),
        getattr(torch._C, "_are_functorch_transforms_active", None),
        _IS_COMPILING,
    )
    if f is not None
)


# --- when the fast kernels apply --------------------------------------------------------------------------------

# From this many pixels per map (H * W) on, means as matrix products read the input faster than mean reductions.
_MATMUL_MEAN_MIN_PIXELS = 1600
# From this many output pixels (N * H * W) on, the folded depthwise kernels beat the stock ones on CPU.
_FOLDED_CONV_MIN_PIXELS = 6400


class _Plan(NamedTuple):
    """Kernel choices for one CBAM call, made once from the input."""

    hw_matmul: bool  # means over H, W as matrix products (see _matmul_means)
    c_matmul: bool  # means and sums over C as matrix products
    conv_route: str  # kernels of the spatial convolution (see _conv_route)


def _fast_context(x: torch.Tensor) -> bool:
    """No graph being recorded, no autocast, no functorch transform: where the hand-picked kernels run."""
    if _is_graph_capture() or _autocast_enabled(x.device.type):
        return False
    transforms = getattr(torch._C, "_are_functorch_transforms_active", None)
    return transforms is None or not transforms()


def _matmul_means(x: torch.Tensor, fast: bool) -> tuple[bool, bool]:
    """Whether means over (H, W) and over C may run as matrix products, which read large maps faster on CPU.

    Only for float32 NCHW maps of at least _MATMUL_MEAN_MIN_PIXELS pixels in a fast context. The matrix-vector
    product over (H, W) runs on one thread, so it is used only when torch does; the product over C splits the batch
    between threads, so it needs a sample per thread. In ONNX export the mean over C is a MatMul too: ONNX Runtime
    runs it much faster than a ReduceMean over C.
    """
    if not fast:
        return False, _exporting_onnx()
    if not (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and x.shape[2] * x.shape[3] >= _MATMUL_MEAN_MIN_PIXELS
        and x.numel() > 0
        and x.is_contiguous()
    ):
        return False, False
    threads = torch.get_num_threads()
    return threads == 1, x.shape[0] >= threads


def _conv_route(conv: nn.Module, x: torch.Tensor, fast: bool) -> str:
    """Kernels for the spatial convolution over maps the size of `x`.

    'folded' or 'small' on CPU in a fast context, 'grouped' in ONNX export, else 'module' (a call of the module).
    """
    if not _stock_conv(conv) or _has_hooks(conv):
        return "module"
    if not fast:
        return "grouped" if _exporting_onnx() else "module"
    if x.device.type != "cpu" or x.dtype != torch.float32 or conv.weight.dtype != torch.float32:
        return "module"
    return _size_route(x)


def _size_route(x: torch.Tensor) -> str:
    """'folded' or 'small' by the number of output pixels: the route of a stock hook-free convolution on CPU float32."""
    return "folded" if x.shape[0] * x.shape[2] * x.shape[3] >= _FOLDED_CONV_MIN_PIXELS else "small"


def _exporting_onnx() -> bool:
    """True while torch.onnx.export records the model (never before torch.onnx is imported, which this avoids)."""
    onnx = sys.modules.get("torch.onnx")
    return onnx is not None and onnx.is_in_onnx_export()


def _has_hooks(*modules: nn.Module) -> bool:
    """Hooks that only a call through the module would run (FLOP counters, profilers, user hooks)."""
    return bool(_GLOBAL_HOOKS[0] or _GLOBAL_HOOKS[1]) or any(m._forward_hooks or m._forward_pre_hooks for m in modules)


_GLOBAL_HOOKS = tuple(getattr(nn_module, name, {}) for name in ("_global_forward_hooks", "_global_forward_pre_hooks"))


def _autocast_enabled(device_type: str) -> bool:
    if _AUTOCAST_BY_DEVICE:
        try:
            return torch.is_autocast_enabled(device_type)
        except RuntimeError:  # a device type without autocast
            return False
    if device_type == "cpu":
        return torch.is_autocast_cpu_enabled()
    return device_type == "cuda" and torch.is_autocast_enabled()


# --- descriptors and gates -----------------------------------------------------------------------------------------


def _channel_descriptors(x: torch.Tensor, matmul: bool) -> torch.Tensor:
    """Average- and max-pooled (over H, W) descriptors: shape (N, 2, C)."""
    if matmul:  # a matrix-vector product reads x faster than the mean reduction
        n, c, h, w = x.shape
        mean = torch.matmul(x.view(n, c, h * w), x.new_full((h * w,), 1 / (h * w)))
    else:
        mean = x.mean((2, 3))
    maximum = onnx_graph.global_max(x).flatten(1) if _exporting_onnx() else x.amax((2, 3))
    return torch.stack((mean, maximum), dim=1)


def _spatial_descriptors(x: torch.Tensor, matmul: bool) -> torch.Tensor:
    """Average- and max-pooled (over C) descriptors stacked along C: shape (N, 2, H, W)."""
    if matmul:
        n, c, h, w = x.shape
        mean = torch.matmul(x.new_full((1, c), 1 / c), x.flatten(2)).view(n, 1, h, w)
    else:
        mean = x.mean(1, keepdim=True)
    return torch.cat((mean, onnx_graph.channel_max(x) if _exporting_onnx() else x.amax(1, keepdim=True)), dim=1)


def _blocked_layout_export(module: nn.Module, x: torch.Tensor) -> bool:
    """Whether to record the blocked-layout graph (onnx_graph) for a CBAM, ChannelAttention or SpatialAttention:
    ONNX exports by an exporter that can record it, for stock sub-modules of the input's dtype and no hooks."""
    if not (_exporting_onnx() and onnx_graph.records_blocked_graph()):
        return False
    is_cbam = type(module) is CBAM or _proxy_of(module, CBAM)
    parts = (module.channel, module.spatial) if is_cbam else (module,)
    subs: list[nn.Module] = []
    for part in parts:
        if (type(part) is ChannelAttention or _proxy_of(part, ChannelAttention)) and _stock_mlp(part):
            subs += [part.fc1, part.act, part.fc2]
        elif (type(part) is SpatialAttention or _proxy_of(part, SpatialAttention)) and _stock_conv(part.conv):
            subs.append(part.conv)
        else:
            return False
    called = subs + (list(parts) if is_cbam else [])  # the modules the plain formula calls
    return not _has_hooks(*called) and all(p.dtype == x.dtype for sub in subs for p in sub.parameters())


def _channel_sum(t: torch.Tensor, matmul: bool) -> torch.Tensor:
    """t.sum(1, keepdim=True), as a matrix product if `matmul`."""
    if not matmul:
        return t.sum(1, keepdim=True)
    n, c, h, w = t.shape
    return torch.matmul(t.new_ones((1, c)), t.view(n, c, h * w)).view(n, 1, h, w)


def _mlp(channel: ChannelAttention, descriptors: torch.Tensor) -> torch.Tensor:
    """The shared MLP on both (N, 2, C) descriptors at once; its 1x1 convs act as matrix products on C."""
    fc1, fc2 = channel.fc1, channel.fc2
    if not _stock_mlp(channel) or _has_hooks(fc1, fc2, channel.act):
        pooled = descriptors.transpose(1, 2)[:, :, None, :]  # (N, C, 1, 2), for hooks and replaced modules
        return fc2(channel.act(fc1(pooled)))[:, :, 0, :].transpose(1, 2)
    return linear(linear(descriptors, fc1.weight, fc1.bias).relu_(), fc2.weight, fc2.bias)


# --- the three paths -----------------------------------------------------------------------------------------------


def _parameters(cbam: CBAM) -> tuple[torch.Tensor, ...] | None:
    """The layer's parameters in a fixed order, or None if its sub-modules were replaced by other kinds or settings."""
    fc1, fc2, conv = cbam.channel.fc1, cbam.channel.fc2, cbam.spatial.conv
    if not (_stock_mlp(cbam.channel) and _stock_conv(conv)):
        return None
    return tuple(p for p in (fc1.weight, fc1.bias, fc2.weight, fc2.bias, conv.weight) if p is not None)


def _layer_kernels(
    params: tuple[torch.Tensor, ...], x: torch.Tensor, stock: bool, *subs: nn.Module
) -> ctypes.CDLL | None:
    """The C kernels for a ChannelAttention or SpatialAttention forward, where its sub-modules `subs` are `stock` ones
    (computed without calls) without hooks, its parameters `params` float32 like x and the context a fast one, else
    None."""
    if not stock or not _fast_context(x) or _has_hooks(*subs) or any(p.dtype != torch.float32 for p in params):
        return None
    return fused.library_for(x)


def _needs_grad(x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> bool:
    """Whether autograd records this call: grad mode on and x or one of the layer's `params` requiring a gradient."""
    return torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params))


def _stock_mlp(channel: ChannelAttention) -> bool:
    """Whether the MLP is still two 1x1 convolutions around a ReLU, which the fast paths compute without calls."""
    return _stock_mlp_parts(channel.fc1, channel.act, channel.fc2)


def _stock_mlp_parts(fc1: nn.Module | None, act: nn.Module | None, fc2: nn.Module | None) -> bool:
    return (type(act) is nn.ReLU or _proxy_of(act, nn.ReLU)) and _plain_conv(fc1, 1) and _plain_conv(fc2, 1)


def _stock_conv(conv: nn.Module) -> bool:
    """Whether the spatial convolution is still the bias-free 2 -> 1, odd k x k, 'same' one the fast paths compute."""
    if type(conv) is not nn.Conv2d and not _proxy_of(conv, nn.Conv2d):
        return False
    k = conv.kernel_size[0]
    return k % 2 == 1 and conv.bias is None and (conv.in_channels, conv.out_channels) == (2, 1) and _plain_conv(conv, k)


def _proxy_of(module: object, cls: type) -> bool:
    """Whether `module` is an instance of exactly `cls` seen through a proxy of torch.export's non-strict tracing, which
    may hand out sub-modules as instances of a class made for each, with bases (torch.fx's AttrProxy, their class)."""
    bases = type(module).__bases__
    return len(bases) == 2 and bases[1] is cls and bases[0].__name__ == "AttrProxy"


def _plain_conv(conv: nn.Module, k: int) -> bool:
    """An nn.Conv2d with a k x k kernel, 'same' zero padding, no stride, dilation or groups."""
    if type(conv) is not nn.Conv2d and not _proxy_of(conv, nn.Conv2d):
        return False
    settings = (conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups, conv.padding_mode)
    return settings == ((k, k), (1, 1), (k // 2, k // 2), (1, 1), 1, "zeros")


def _needs_plain_path(cbam: CBAM, x: torch.Tensor, params: tuple[torch.Tensor, ...]) -> bool:
    """Mixed dtypes and hooks on the sub-modules get the plain formula."""
    return any(p.dtype != x.dtype for p in params) or _has_hooks(cbam.channel, cbam.spatial)


def _inference_cbam(cbam: CBAM, x: torch.Tensor, plan: _Plan) -> torch.Tensor:
    """Forward without autograd: one full-size allocation, the spatial gate applied in place."""
    y = x * cbam.channel._weights(_channel_descriptors(x, plan.hw_matmul))[:, :, None, None]
    return y.mul_(cbam.spatial._weights(_spatial_descriptors(y, plan.c_matmul), plan.conv_route))


class _CBAMFunction(torch.autograd.Function):
    """CBAM with a hand-written backward. Inputs: x, the CBAM module, then its parameters (so autograd tracks them).

    Only x and small tensors are saved: the backward recomputes y = x * c in a buffer it needs anyway, so the
    forward can gate y in place and a training step holds one full-size tensor less.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, cbam: CBAM, plan: _Plan, *params: torch.Tensor) -> torch.Tensor:
        channel, spatial = cbam.channel, cbam.spatial
        channel_desc = _channel_descriptors(x, plan.hw_matmul)
        hidden = linear(channel_desc, channel.fc1.weight, channel.fc1.bias).relu_()
        channel_gate = linear(hidden, channel.fc2.weight, channel.fc2.bias).sum(1).sigmoid()
        y = x * channel_gate[:, :, None, None]
        spatial_desc = _spatial_descriptors(y, plan.c_matmul)
        spatial_gate = descriptor_conv(spatial.conv, spatial_desc, plan.conv_route).sigmoid()
        ctx.cbam, ctx.plan, ctx.params = cbam, plan, params
        ctx.save_for_backward(x, channel_desc, hidden, channel_gate, spatial_desc, spatial_gate)
        return y.mul_(spatial_gate)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if torch.is_grad_enabled():  # create_graph=True: differentiate the plain formula, which autograd can redo
            return plain_backward(ctx, grad, lambda x: plain_cbam(ctx.cbam, x), settings=2)
        x, channel_desc, hidden, channel_gate, spatial_desc, spatial_gate = ctx.saved_tensors
        fc1, fc2, conv = ctx.cbam.channel.fc1, ctx.cbam.channel.fc2, ctx.cbam.spatial.conv
        matmul = ctx.plan.c_matmul
        channel_gate_4d = channel_gate[:, :, None, None]
        grads: dict[int, torch.Tensor | None] = {}

        # Two full-size buffers: `scratch` for y, products and masks; `d_y`, which becomes dL/dx in place.
        scratch = torch.mul(x, channel_gate_4d)  # y, bit for bit as in the forward
        d_y = torch.mul(grad, scratch)
        # out = y * s, s = sigmoid(conv([mean_c y, max_c y])): dL/ds = sum_c g * y
        d_spatial_logit = torch.ops.aten.sigmoid_backward(_channel_sum(d_y, matmul), spatial_gate)
        d_spatial_desc, grads[id(conv.weight)] = conv_backward(
            conv.weight, ctx.plan.conv_route, spatial_desc, d_spatial_logit, conv.weight.requires_grad
        )
        # dL/dy = g * s + d_mean / C + the max gradient routed to the maxima over C
        torch.addcmul(d_spatial_desc[:, :1] / x.shape[1], grad, spatial_gate, out=d_y)
        maxima_c = torch.eq(scratch, spatial_desc[:, 1:], out=scratch)  # y is not needed any more
        _add_max_grad(d_y, maxima_c, d_spatial_desc[:, 1:], _channel_sum(maxima_c, matmul))

        # y = x * c, c = sigmoid(sum over both descriptors of W2 relu(W1 d + b1) + b2): dL/dc = sum_hw dL/dy * x
        d_channel_gate = torch.mul(d_y, x, out=scratch).sum((2, 3))
        d_channel_desc = mlp_backward(fc1, fc2, channel_desc, hidden, channel_gate, d_channel_gate, grads)
        d_x = None
        if ctx.needs_input_grad[0]:
            d_channel_desc = d_channel_desc[..., None, None]  # (N, 2, C, 1, 1)
            hw = x.shape[2] * x.shape[3]
            d_x = torch.addcmul(d_channel_desc[:, 0] / hw, d_y, channel_gate_4d, out=d_y)
            maxima_hw = torch.eq(x, channel_desc[:, 1, :, None, None], out=scratch)
            _add_max_grad(d_x, maxima_hw, d_channel_desc[:, 1], maxima_hw.sum((2, 3), keepdim=True))
        return (d_x, None, None, *(grads.get(id(p)) for p in ctx.params))


def _add_max_grad(acc: torch.Tensor, hits: torch.Tensor, grad: torch.Tensor, count: torch.Tensor) -> None:
    """acc += the gradient of an amax, by autograd's rule: tied maxima share it evenly.

    Args:
        acc: Gradient being accumulated, shaped like the pooled tensor.
        hits: 1.0 where the pooled tensor equals its maximum, else 0.0.
        grad: Gradient of the maxima, with size 1 along the pooled dimensions.
        count: Number of maxima per pooled slice (hits summed over the pooled dimensions).
    """
    acc.addcmul_(hits, grad / count)


# --- optional torch.compile path -----------------------------------------------------------------------------------


class _CompiledSwitch:
    enabled = False
    kwargs: dict = {}  # noqa: RUF012
    fn = None


_COMPILED = _CompiledSwitch()


def use_compiled_cbam(enabled: bool = True, **compile_kwargs) -> None:
    """Run every CBAM forward (and its backward) through one ``torch.compile``-fused function, or stop doing so.

    The first call per input shape compiles (seconds to minutes on a CPU); later calls reuse the kernels. Worth it
    for long runs at fixed shapes. Keyword arguments go to ``torch.compile`` (default ``dynamic=True``).
    """
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be a bool, got {enabled!r}")
    kwargs = {"dynamic": True, **compile_kwargs}
    if kwargs != _COMPILED.kwargs:
        _COMPILED.fn = None  # compiled again, with the new settings, on the next call
    _COMPILED.enabled, _COMPILED.kwargs = enabled, kwargs


def _compiled_cbam(cbam: CBAM, x: torch.Tensor) -> torch.Tensor:
    if _COMPILED.fn is None:
        _COMPILED.fn = torch.compile(_cbam_formula, **_COMPILED.kwargs)
    fc1, fc2, conv = cbam.channel.fc1, cbam.channel.fc2, cbam.spatial.conv
    return _COMPILED.fn(x, fc1.weight, fc1.bias, fc2.weight, fc2.bias, conv.weight)


def _cbam_formula(x, w1, b1, w2, b2, w_spatial) -> torch.Tensor:
    """CBAM as one function of tensors, so that one compiled graph serves every CBAM layer."""
    hidden = linear(_channel_descriptors(x, False), w1, b1).relu()
    y = x * linear(hidden, w2, b2).sum(1).sigmoid()[:, :, None, None]
    return y * F.conv2d(_spatial_descriptors(y, False), w_spatial, padding=w_spatial.shape[-1] // 2).sigmoid()
