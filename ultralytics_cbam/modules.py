"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018).

Channel attention, then spatial attention, each a gate in [0, 1] that multiplies the feature map F:

    M_c(F) = sigmoid(MLP(AvgPool_hw(F)) + MLP(MaxPool_hw(F)))        F' = M_c(F) * F
    M_s(F') = sigmoid(conv_kxk([AvgPool_c(F'); MaxPool_c(F')]))     F'' = M_s(F') * F'

SE (Squeeze-and-Excitation, Hu et al., CVPR 2018), the paper's comparator, gates channels from average pooling alone:

    s = sigmoid(W_2 ReLU(W_1 AvgPool_hw(F) + b_1) + b_2)             F' = s * F
"""

from __future__ import annotations

import torch
from torch import nn

from ultralytics_cbam.utils.checks import positive_int

__all__ = (
    "ATTENTION_LAYERS",
    "CBAM",
    "SE",
    "ChannelAttention",
    "SpatialAttention",
    "hidden_channels",
    "is_attention_layer",
)


def hidden_channels(channels: int, reduction: int) -> int:
    """Width of the channel-attention MLP: floor(channels / reduction), and at least 1."""
    return max(channels // reduction, 1)


def _check_input(module: nn.Module, x: torch.Tensor, channels: int | None = None) -> None:
    """Raise a readable error for inputs that are not (N, C, H, W) maps with the expected C."""
    if torch.jit.is_tracing() or torch.jit.is_scripting():
        return
    name = type(module).__name__
    if x.dim() != 4:
        raise ValueError(f"{name} expects a 4-D (N, C, H, W) feature map, got a tensor of shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{name} was built for {channels} channels but got {x.shape[1]} (input shape {tuple(x.shape)})"
        )


class ChannelAttention(nn.Module):
    """Channel attention: sigmoid(MLP(avgpool(x)) + MLP(maxpool(x))) * x, with one shared MLP.

    Args:
        channels: Input channels C.
        reduction: Reduction ratio r; the MLP is C -> max(C // r, 1) -> C, so C < r still builds.
        bias: Give the MLP's 1x1 convs a bias (the official reference code does; the article does not).
    """

    def __init__(self, channels: int, reduction: int = 16, bias: bool = False) -> None:
        super().__init__()
        self.channels = positive_int("channels", channels)
        self.reduction = positive_int("reduction", reduction)
        if not isinstance(bias, bool):
            raise ValueError(f"bias must be a bool, got {bias!r}")
        hidden = hidden_channels(channels, reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1, bias=bias)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1, bias=bias)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights in [0, 1], shape (N, C, 1, 1)."""
        _check_input(self, x, self.channels)
        pooled = torch.cat((x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)), dim=3)  # (N, C, 1, 2)
        return self.fc2(self.act(self.fc1(pooled))).sum(3, keepdim=True).sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel of `x` by its attention weight."""
        return x * self.gate(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"


class SpatialAttention(nn.Module):
    """Spatial attention: sigmoid(conv_kxk([mean_c(x), max_c(x)])) * x.

    Args:
        kernel_size: Odd size k of the 2 -> 1 convolution ('same' padding, no bias).
    """

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.kernel_size = positive_int("kernel_size", kernel_size, odd=True)
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Spatial weights in [0, 1], shape (N, 1, H, W)."""
        _check_input(self, x)
        pooled = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)  # (N, 2, H, W)
        return self.conv(pooled).sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each position of `x` by its attention weight."""
        return x * self.gate(x)

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
        return self.spatial(self.channel(x))


class SE(nn.Module):
    """Squeeze-and-Excitation: sigmoid(fc2(ReLU(fc1(avgpool(x))))) * x, the fully connected layers with bias.

    Args:
        channels: Input channels C.
        reduction: Reduction ratio r; the bottleneck is C -> max(C // r, 1) -> C.
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channels = positive_int("channels", channels)
        self.reduction = positive_int("reduction", reduction)
        hidden = hidden_channels(channels, reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights in [0, 1], shape (N, C, 1, 1)."""
        _check_input(self, x, self.channels)
        return self.fc2(self.act(self.fc1(x.mean((2, 3), keepdim=True)))).sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale each channel of `x` by its excitation weight."""
        return x * self.gate(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}"


ATTENTION_LAYERS = (CBAM, ChannelAttention, SpatialAttention, SE)  # the layers this package adds to a model


def is_attention_layer(module: nn.Module) -> bool:
    """Whether `module` is one of this package's attention layers (not a part inside one)."""
    return isinstance(module, ATTENTION_LAYERS)
