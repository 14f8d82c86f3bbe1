"""CBAM implementations for the comparisons: other libraries' CBAMs at module level, and equivalent ways to write our
CBAM's forward for the ONNX Runtime comparison."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ultralytics_cbam.modules import CBAM, hidden_channels

REDUCTION = 16
KERNEL_SIZE = 7

# Ways to run the shared MLP on both pooled descriptors, and to pool them; see CBAMForward.
MLP_FORMS = {
    "conv-concat": "1x1 convs on both descriptors side by side, (N, C, 1, 2)",
    "linear": "F.linear on both descriptors stacked, (N, 2, C)",
    "conv-batched": "1x1 convs on both descriptors batched along N, (2N, C, 1, 1)",
}
POOLS = {
    "reduce": "x.mean / x.amax over H, W (ReduceMean / ReduceMax)",
    "adaptive": "F.adaptive_avg_pool2d / adaptive_max_pool2d (GlobalAveragePool / MaxPool over the whole map)",
}
REFERENCE_FORWARD = "conv-concat/reduce"  # how ultralytics_cbam.modules.CBAM writes it


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


class CBAMForward(nn.Module):
    """Our CBAM (no MLP bias) with its forward written one of several equivalent ways: the MLP as one of MLP_FORMS, the
    pooling as one of POOLS; the spatial descriptors are always ``mean`` and ``amax`` over dim 1.

    It has the parameters of ``ultralytics_cbam.modules.CBAM`` under the same names, so it loads that module's state
    dict and then computes the same function.
    """

    def __init__(
        self, channels: int, mlp: str, pool: str, reduction: int = REDUCTION, kernel_size: int = KERNEL_SIZE
    ) -> None:
        super().__init__()
        if mlp not in MLP_FORMS or pool not in POOLS:
            raise ValueError(f"unknown forward {mlp}/{pool}; mlp: {list(MLP_FORMS)}, pool: {list(POOLS)}")
        self.mlp, self.pool = mlp, pool
        hidden = hidden_channels(channels, reduction)
        self.channel = nn.Module()
        self.channel.fc1 = nn.Conv2d(channels, hidden, 1, bias=False)
        self.channel.fc2 = nn.Conv2d(hidden, channels, 1, bias=False)
        self.spatial = nn.Module()
        self.spatial.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def _pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pool == "adaptive":
            return F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)
        return x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)

    def channel_gate(self, x: torch.Tensor) -> torch.Tensor:
        """Channel weights in [0, 1], shape (N, C, 1, 1)."""
        avg, peak = self._pooled(x)
        fc1, fc2 = self.channel.fc1, self.channel.fc2
        if self.mlp == "conv-concat":
            return fc2(F.relu(fc1(torch.cat((avg, peak), dim=3)))).sum(3, keepdim=True).sigmoid()
        if self.mlp == "conv-batched":
            out = fc2(F.relu(fc1(torch.cat((avg, peak), dim=0))))  # (2N, C, 1, 1)
            return out.unflatten(0, (2, -1)).sum(0).sigmoid()
        both = torch.stack((avg.flatten(1), peak.flatten(1)), dim=1)  # (N, 2, C)
        out = F.linear(F.relu(F.linear(both, fc1.weight.flatten(1))), fc2.weight.flatten(1))
        return out.sum(1).sigmoid()[:, :, None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.channel_gate(x)
        pooled = torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)
        return x * self.spatial.conv(pooled).sigmoid()


def forward_variants(channels: int, seed: int = 0) -> dict[str, CBAMForward]:
    """Every CBAMForward by name ('mlp/pool'), all with the weights of one CBAM(channels) drawn with `seed`."""
    torch.manual_seed(seed)
    state = CBAM(channels, REDUCTION, KERNEL_SIZE).state_dict()
    variants = {}
    for mlp in MLP_FORMS:
        for pool in POOLS:
            module = CBAMForward(channels, mlp, pool)
            module.load_state_dict(state)
            variants[f"{mlp}/{pool}"] = module.eval()
    return variants


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
    return {name: builders[name]() for name in names}
