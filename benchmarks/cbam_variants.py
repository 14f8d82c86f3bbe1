"""The CBAM implementations compared at module level, built for one channel count."""

from __future__ import annotations

import torch
from torch import nn

from ultralytics_cbam.modules import CBAM, hidden_channels

REDUCTION = 16
KERNEL_SIZE = 7


class PaperCBAM(nn.Module):
    """The paper in two plain passes: adaptive avg and max pooling, the MLP applied twice, separate products."""

    def __init__(self, channels: int, reduction: int = REDUCTION, kernel_size: int = KERNEL_SIZE) -> None:
        super().__init__()
        hidden = hidden_channels(channels, reduction)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.max_pool = nn.AdaptiveMaxPool2d(1)
        self.mlp = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.ReLU(), nn.Conv2d(hidden, channels, 1, bias=False)
        )
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel_weights = torch.sigmoid(self.mlp(self.avg_pool(x)) + self.mlp(self.max_pool(x)))
        x = x * channel_weights
        pooled = torch.cat((torch.mean(x, dim=1, keepdim=True), torch.max(x, dim=1, keepdim=True)[0]), dim=1)
        return x * torch.sigmoid(self.conv(pooled))

    @torch.no_grad()
    def copy_from(self, cbam: CBAM) -> PaperCBAM:
        """Take the weights of one of our CBAM modules (built without bias), so both compute the same function."""
        self.mlp[0].weight.copy_(cbam.channel.fc1.weight)
        self.mlp[2].weight.copy_(cbam.channel.fc2.weight)
        self.conv.weight.copy_(cbam.spatial.conv.weight)
        return self


def timm_cbam(channels: int) -> nn.Module:
    """timm's CbamModule with the same MLP width (its spatial conv adds a BatchNorm of one channel)."""
    from timm.layers.cbam import CbamModule

    return CbamModule(channels, rd_channels=hidden_channels(channels, REDUCTION), spatial_kernel_size=KERNEL_SIZE)


def ultralytics_cbam(channels: int) -> nn.Module:
    """Ultralytics' built-in CBAM: channel attention from average pooling only, through one C -> C 1x1 conv."""
    from ultralytics.nn.modules.conv import CBAM as UltralyticsCBAM

    return UltralyticsCBAM(channels, KERNEL_SIZE)


def build_variants(channels: int, names: tuple[str, ...]) -> dict[str, nn.Module]:
    """Modules by name: 'ours', 'timm', 'ultralytics', 'paper' (the two-pass reference, with the weights of 'ours')."""
    ours = CBAM(channels, REDUCTION, KERNEL_SIZE)
    builders = {
        "ours": lambda: ours,
        "timm": lambda: timm_cbam(channels),
        "ultralytics": lambda: ultralytics_cbam(channels),
        "paper": lambda: PaperCBAM(channels).copy_from(ours),
    }
    unknown = [n for n in names if n not in builders]
    if unknown:
        raise ValueError(f"unknown CBAM variant(s) {unknown}; choose from {list(builders)}")
    return {name: builders[name]() for name in names}
