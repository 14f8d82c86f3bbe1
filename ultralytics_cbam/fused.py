"""CBAM on the fused CPU kernels: inference, and a forward and backward for autograd.

The kernels (``cpu_kernels``) make every pass over full-size tensors and, in the forward, run the shared MLP and the
spatial convolution too. PyTorch computes the spatial sigmoid and, in the backward, the gradients of the MLP and of
the convolution, all on small (N, 2, C) and (N, 2, H, W) tensors.
"""

from __future__ import annotations

import ctypes

import torch
from torch import nn

from ultralytics_cbam import cpu_kernels as kernels
from ultralytics_cbam.ops import conv_backward, descriptor_conv, mlp_backward, plain_backward, plain_cbam


def library_for(x: torch.Tensor) -> ctypes.CDLL | None:
    """The kernels if they can run CBAM on `x` (a non-empty contiguous float32 NCHW map on CPU), else None."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.numel() == 0 or not x.is_contiguous():
        return None
    return kernels.library()


def inference(lib: ctypes.CDLL, cbam: nn.Module, x: torch.Tensor, route: str) -> torch.Tensor:
    """CBAM without autograd: three reads of x, one write of the output; one call of the kernels unless the spatial
    convolution has to run in PyTorch."""
    fc1, fc2, conv = cbam.channel.fc1, cbam.channel.fc2, cbam.spatial.conv
    if _conv_in_c(conv, route):
        return kernels.forward(lib, x, fc1.weight, fc1.bias, fc2.weight, fc2.bias, conv.weight)
    channel_desc = kernels.channel_pool(lib, x)
    gate = _channel_gate(lib, cbam.channel, channel_desc)[1]
    spatial = _spatial_gate(lib, conv, kernels.spatial_pool(lib, x, gate), route)
    return kernels.apply(lib, x, gate, spatial)


def channel_attention(lib: ctypes.CDLL, channel: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ChannelAttention without autograd: one read of x for both descriptors, the MLP in C, one multiply."""
    gate = _channel_gate(lib, channel, kernels.channel_pool(lib, x))[1]
    return x * gate[:, :, None, None]


def spatial_attention(lib: ctypes.CDLL, spatial: nn.Module, x: torch.Tensor, route: str) -> torch.Tensor:
    """SpatialAttention without autograd: one read of x for both descriptors (a unit channel gate), one multiply."""
    desc = kernels.spatial_pool(lib, x, x.new_ones(x.shape[:2]))
    return x * _spatial_gate(lib, spatial.conv, desc, route)


def _spatial_gate(lib: ctypes.CDLL, conv: nn.Conv2d, desc: torch.Tensor, route: str) -> torch.Tensor:
    """sigmoid(conv(desc)), the convolution on the C kernel where it can run there."""
    if not _conv_in_c(conv, route):
        return descriptor_conv(conv, desc, route).sigmoid()
    return kernels.spatial_conv(lib, desc, conv.weight).sigmoid_()


def _conv_in_c(conv: nn.Conv2d, route: str) -> bool:
    """Whether the C kernel can run the spatial convolution: no hooks that need a call of the module (route 'module')
    and a kernel no larger than it takes."""
    return route != "module" and conv.kernel_size[0] <= kernels.MAX_KERNEL_SIZE


def _channel_gate(
    lib: ctypes.CDLL, channel: nn.Module, channel_desc: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The MLP's hidden activations (N, 2, C / r) and the channel gate (N, C)."""
    fc1, fc2 = channel.fc1, channel.fc2
    return kernels.channel_gate(lib, channel_desc, fc1.weight, fc1.bias, fc2.weight, fc2.bias)


def _spatial_backward(
    lib: ctypes.CDLL,
    grad: torch.Tensor,
    x: torch.Tensor,
    gate: torch.Tensor,
    desc: torch.Tensor,
    spatial: torch.Tensor,
    weight: torch.Tensor,
    route: str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Backward through out = y * s, y = x * gate, s = sigmoid(conv([mean_c y, max_c y])).

    Returns the spatial descriptors' gradients as the kernels take them (`share`, (N, 2, H, W): d_mean / C and d_max /
    the number of tied maxima over C) and the convolution weight's gradient (None unless it requires one).
    """
    d_spatial, ties = kernels.spatial_grad(lib, grad, x, gate, desc)  # dL/ds = sum_c grad * y
    d_desc, d_weight = conv_backward(
        weight, route, desc, torch.ops.aten.sigmoid_backward(d_spatial, spatial), weight.requires_grad
    )
    return torch.cat((d_desc[:, :1] / x.shape[1], d_desc[:, 1:] / ties), 1), d_weight


class FusedCBAM(torch.autograd.Function):
    """CBAM for autograd on the fused kernels. Inputs: x, the CBAM module, the convolution route, its parameters.

    Saves x and small tensors only; the backward recomputes y = x * gate inside the kernels.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, cbam: nn.Module, route: str, lib: ctypes.CDLL, *params: torch.Tensor):
        channel_desc = kernels.channel_pool(lib, x)
        hidden, gate = _channel_gate(lib, cbam.channel, channel_desc)
        spatial_desc = kernels.spatial_pool(lib, x, gate)
        spatial = _spatial_gate(lib, cbam.spatial.conv, spatial_desc, route)
        ctx.cbam, ctx.route, ctx.lib, ctx.params = cbam, route, lib, params
        ctx.save_for_backward(x, channel_desc, hidden, gate, spatial_desc, spatial)
        return kernels.apply(lib, x, gate, spatial)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if torch.is_grad_enabled():  # create_graph=True: differentiate the plain formula, which autograd can redo
            return plain_backward(ctx, grad, lambda x: plain_cbam(ctx.cbam, x), settings=3)
        x, channel_desc, hidden, gate, spatial_desc, spatial = ctx.saved_tensors
        lib, grad = ctx.lib, grad.contiguous()
        fc1, fc2, conv = ctx.cbam.channel.fc1, ctx.cbam.channel.fc2, ctx.cbam.spatial.conv
        grads: dict[int, torch.Tensor | None] = {}

        route = ctx.route
        share, grads[id(conv.weight)] = _spatial_backward(lib, grad, x, gate, spatial_desc, spatial, conv.weight, route)
        d_gate = kernels.gate_grad(lib, grad, x, gate, spatial, spatial_desc, share)

        d_channel_desc = mlp_backward(fc1, fc2, channel_desc, hidden, gate, d_gate, grads)
        d_x = None
        if ctx.needs_input_grad[0]:
            d_x = kernels.input_grad(lib, grad, x, gate, spatial, spatial_desc, share, channel_desc, d_channel_desc)
        return (d_x, None, None, None, *(grads.get(id(p)) for p in ctx.params))


class FusedChannelAttention(torch.autograd.Function):
    """ChannelAttention for autograd on the fused kernels: CBAM's, with a unit spatial gate. Inputs: x, the module,
    the kernels, its parameters. Saves x and small tensors only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, channel: nn.Module, lib: ctypes.CDLL, *params: torch.Tensor):
        channel_desc = kernels.channel_pool(lib, x)
        hidden, gate = _channel_gate(lib, channel, channel_desc)
        ctx.module, ctx.lib, ctx.params = channel, lib, params
        ctx.save_for_backward(x, channel_desc, hidden, gate)
        return x * gate[:, :, None, None]

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if torch.is_grad_enabled():  # create_graph=True
            return plain_backward(ctx, grad, lambda x: x * ctx.module.gate(x), settings=2)
        x, channel_desc, hidden, gate = ctx.saved_tensors
        lib, grad = ctx.lib, grad.contiguous()
        n, _, h, w = x.shape
        unit, no_share = x.new_ones(n, 1, h, w), x.new_zeros(n, 2, h, w)  # no spatial gate, no spatial descriptors
        grads: dict[int, torch.Tensor | None] = {}
        d_gate = kernels.gate_grad(lib, grad, x, gate, unit, no_share, no_share)  # sum over pixels of grad * x
        d_channel_desc = mlp_backward(ctx.module.fc1, ctx.module.fc2, channel_desc, hidden, gate, d_gate, grads)
        d_x = None
        if ctx.needs_input_grad[0]:
            d_x = kernels.input_grad(lib, grad, x, gate, unit, no_share, no_share, channel_desc, d_channel_desc)
        return (d_x, None, None, *(grads.get(id(p)) for p in ctx.params))


class FusedSpatialAttention(torch.autograd.Function):
    """SpatialAttention for autograd on the fused kernels: CBAM's, with a unit channel gate. Inputs: x, the module,
    the convolution route, the kernels, its convolution weight. Saves x and small tensors only."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, spatial: nn.Module, route: str, lib: ctypes.CDLL, weight: torch.Tensor):
        desc = kernels.spatial_pool(lib, x, x.new_ones(x.shape[:2]))
        gate = _spatial_gate(lib, spatial.conv, desc, route)
        ctx.module, ctx.route, ctx.lib, ctx.params = spatial, route, lib, (weight,)
        ctx.save_for_backward(x, desc, gate)
        return x * gate

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        if torch.is_grad_enabled():  # create_graph=True
            return plain_backward(ctx, grad, lambda x: x * ctx.module.gate(x), settings=3)
        x, desc, gate = ctx.saved_tensors
        lib, grad, (weight,) = ctx.lib, grad.contiguous(), ctx.params
        unit = x.new_ones(x.shape[:2])
        share, d_weight = _spatial_backward(lib, grad, x, unit, desc, gate, weight, ctx.route)
        d_x = None
        if ctx.needs_input_grad[0]:
            no_channel = x.new_zeros(x.shape[0], 2, x.shape[1])  # no channel descriptors to route gradients to
            d_x = kernels.input_grad(lib, grad, x, unit, gate, desc, share, no_channel, no_channel)
        return d_x, None, None, None, d_weight
