"""Tensor-level pieces shared by CBAM's execution paths.

The shared MLP's 1x1 convolutions as matrix products, the spatial gate's 2 -> 1 convolution on kernels that suit two
channels (with its backward), and the paper's formula op by op, which every path falls back on for what it cannot do.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """The 1x1 conv with weight (out, in, 1, 1) on the last dimension of `x`."""
    if bias is None:  # a plain matrix product: exporters such as x2paddle turn a bias-free linear into x W^T + None
        return x @ matrix(weight).t()
    return F.linear(x, matrix(weight), bias)


def matrix(weight: torch.Tensor) -> torch.Tensor:
    """A 1x1 conv weight (out, in, 1, 1) as an (out, in) matrix."""
    return weight.view(weight.shape[0], weight.shape[1])


def mlp_backward(
    fc1: nn.Conv2d,
    fc2: nn.Conv2d,
    channel_desc: torch.Tensor,
    hidden: torch.Tensor,
    gate: torch.Tensor,
    d_gate: torch.Tensor,
    grads: dict[int, torch.Tensor | None],
) -> torch.Tensor:
    """Backward through gate = sigmoid(sum over both descriptors d of W2 relu(W1 d + b1) + b2).

    Args:
        fc1, fc2: The MLP's 1x1 convolutions.
        channel_desc: The (N, 2, C) descriptors; hidden: relu(W1 d + b1), (N, 2, C / r); gate: (N, C).
        d_gate: dL/dgate, (N, C).
        grads: Receives the gradient of each MLP parameter that requires one, keyed by the parameter's id.

    Returns:
        dL/d(descriptors), (N, 2, C), contiguous.
    """
    d_logit = torch.ops.aten.sigmoid_backward(d_gate, gate)  # (N, C), the same for both descriptors
    if fc2.weight.requires_grad:
        grads[id(fc2.weight)] = (d_logit.t() @ hidden.sum(1)).view_as(fc2.weight)
    if fc2.bias is not None and fc2.bias.requires_grad:
        grads[id(fc2.bias)] = 2 * d_logit.sum(0)
    d_relu = (d_logit @ matrix(fc2.weight)).unsqueeze(1).expand_as(hidden)
    d_hidden = torch.ops.aten.threshold_backward(d_relu, hidden, 0)
    if fc1.weight.requires_grad:
        grads[id(fc1.weight)] = (d_hidden.flatten(0, 1).t() @ channel_desc.flatten(0, 1)).view_as(fc1.weight)
    if fc1.bias is not None and fc1.bias.requires_grad:
        grads[id(fc1.bias)] = d_hidden.sum((0, 1))
    return (d_hidden @ matrix(fc1.weight)).contiguous()


def descriptor_conv(conv: nn.Conv2d, descriptors: torch.Tensor, route: str) -> torch.Tensor:
    """`conv(descriptors)` for the 2 -> 1 spatial convolution.

    Stock CPU kernels vectorise over channels, which a 2 -> 1 convolution does not have. For large maps each input
    channel runs as one channel of a depthwise convolution over the whole batch; for small ones the im2col kernel
    has the least overhead. ONNX Runtime, too, runs a depthwise convolution and a sum faster than the 2 -> 1 one.
    """
    if route == "module":
        return conv(descriptors)
    if route == "grouped":
        k = conv.kernel_size[0]
        per_channel = F.conv2d(descriptors, conv.weight.view(2, 1, k, k), padding=k // 2, groups=2)
        return per_channel.sum(1, keepdim=True)  # a ReduceSum: onnx2tf misreads the slices of unsimplified graphs
    if route == "small":
        k = conv.kernel_size[0]
        return torch.ops.aten.thnn_conv2d(descriptors, conv.weight, [k, k], None, [1, 1], [k // 2, k // 2])
    if torch.is_grad_enabled() and (descriptors.requires_grad or conv.weight.requires_grad):
        return FoldedConv.apply(descriptors, conv.weight)
    return _folded_conv(descriptors, conv.weight)


def _depthwise(maps: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Each channel c of `maps` (N, C, H, W) cross-correlated with `kernels[0, c]` ('same' padding), no sum over C."""
    n, c, h, w = maps.shape
    k = kernels.shape[-1]
    per_channel = kernels.reshape(c, 1, k, k).repeat(n, 1, 1, 1)
    out = F.conv2d(maps.reshape(1, n * c, h, w), per_channel, padding=k // 2, groups=n * c)
    return out.view(n, c, h, w)


def _folded_conv(descriptors: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    per_channel = _depthwise(descriptors, weight)
    return per_channel[:, :1] + per_channel[:, 1:]


def conv_backward(
    weight: torch.Tensor, route: str, descriptors: torch.Tensor, grad: torch.Tensor, need_weight: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gradients of the convolution for the descriptors and (if asked) the weight, on the forward's route."""
    k = weight.shape[-1]
    padding = [k // 2, k // 2]
    if route == "folded":
        d_descriptors = _depthwise(grad.expand(-1, 2, -1, -1), weight.flip(2, 3))  # correlation with flipped kernel
        d_weight = None
        if need_weight:  # the stock kernel is fast for this part in channels-last layout
            cl = torch.channels_last
            grad, descriptors = grad.contiguous(memory_format=cl), descriptors.contiguous(memory_format=cl)
            d_weight = torch.ops.aten.convolution_backward(
                grad, descriptors, weight.contiguous(memory_format=cl), None, [1, 1], padding, [1, 1], False, [0, 0],
                1, [False, True, False],
            )[1].contiguous()  # fmt: skip
        return d_descriptors, d_weight
    mask = [True, need_weight, False]
    if route == "small":
        d_descriptors, d_weight, _ = torch.ops.aten._slow_conv2d_backward(
            grad, descriptors, weight, [k, k], [1, 1], padding, mask
        )
    else:
        d_descriptors, d_weight, _ = torch.ops.aten.convolution_backward(
            grad, descriptors, weight, None, [1, 1], padding, [1, 1], False, [0, 0], 1, mask
        )
    return d_descriptors, d_weight


class FoldedConv(torch.autograd.Function):
    """The folded 2 -> 1 convolution, with a backward that also keeps clear of the stock two-channel kernels."""

    @staticmethod
    def forward(ctx, descriptors: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(descriptors, weight)
        return _folded_conv(descriptors, weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        descriptors, weight = ctx.saved_tensors
        return conv_backward(weight, "folded", descriptors, grad, ctx.needs_input_grad[1])


def plain_cbam(cbam: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The paper's formula, op by op, with calls of the two attention modules (their hooks run)."""
    return cbam.spatial(cbam.channel(x))


def plain_backward(ctx, grad: torch.Tensor, formula: Callable[[torch.Tensor], torch.Tensor], settings: int) -> tuple:
    """Backward through `formula` (the layer's plain maths of x), keeping the graph for higher-order derivatives.

    For an autograd Function whose inputs are x, `settings` non-tensor inputs, then the parameters in ``ctx.params``.
    """
    x = ctx.saved_tensors[0]
    with torch.enable_grad():
        x_in = x if x.requires_grad else x.detach()
        out = formula(x_in)
    wanted = [t for t in (x_in, *ctx.params) if t.requires_grad]
    grads = dict(zip(map(id, wanted), torch.autograd.grad(out, wanted, grad, create_graph=True), strict=True))
    d_x = grads.get(id(x_in)) if ctx.needs_input_grad[0] else None
    return (d_x, *(None,) * settings, *(grads.get(id(p)) for p in ctx.params))
