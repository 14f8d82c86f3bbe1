"""Initialisations of CBAM's weights.

With the paper's (PyTorch default) initialisation both sigmoid gates sit near 0.5, so a CBAM inserted into a trained
network scales its features by about a quarter before any fine-tuning. `gentle_init` instead starts both gates near
1, so the network computes nearly what it computed before. The module and its forward pass stay exactly the same; only
the weights differ.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ultralytics_cbam.modules import CBAM, ChannelAttention, SpatialAttention
from ultralytics_cbam.utils.checks import positive_int
from ultralytics_cbam.utils.model_inputs import in_place_model
from ultralytics_cbam.utils.sources import image_files

__all__ = ("gentle_init", "paper_init")

_NOISE = 0.01  # share of the paper's random weights kept, so that units start different and learn different things
_QUANTILE = 0.05  # the spatial gate reaches `gate` at all but this share of the calibration positions
_MIN_DESCRIPTOR = 1e-2  # floor on calibration descriptors, so a dead feature map cannot ask for a huge weight


def gentle_init(
    model: nn.Module,
    gate: float = 0.99,
    images=None,
    imgsz: int | None = None,
    layers: list[nn.Module] | None = None,
    batch_stats: bool = False,
) -> nn.Module:
    """Start every CBAM, ChannelAttention and SpatialAttention in `model` close to the identity.

    The channel MLP's first layer averages the pooled descriptors and its second layer spreads the (ReLU, so never
    negative) result to every channel with one positive weight; the spatial conv's centre tap computes
    ``max_c(x) - mean_c(x)``, which is never negative, times one positive weight. Both gates are therefore at least
    0.5 for any input, and the two weights are sized on a few calibration images so that the gates reach `gate` on
    them. A channel MLP built with ``bias=True`` gets the constant logit from its bias instead. 1% of the paper's
    random weights is kept on top, so units start different and learn different things.

    Args:
        model: A ``YOLO`` model, an Ultralytics model, or any module containing CBAM layers.
        gate: Gate value to reach, in (0.5, 1); closer to 1 disturbs the network less, but a saturated sigmoid passes
            less gradient, so the attention starts to learn more slowly.
        images: Calibration input: a folder, image paths, or an (N, C, H, W) tensor (for a bare CBAM, feature maps).
            Default: the sample images that ship with Ultralytics.
        imgsz: Size the calibration images are letterboxed to (default: the model's training size, else 640).
        layers: Only these attention layers of `model` (default: all of them).
        batch_stats: Calibrate with the batch's own BatchNorm statistics, as training computes them, instead of the
            running statistics (which are left unchanged). Needed for a freshly built model, whose running statistics
            do not describe its activations yet: they shrink from layer to layer in eval mode.

    Returns:
        (nn.Module): `model`, changed in place.
    """
    if isinstance(gate, bool) or not isinstance(gate, (int, float)) or not 0.5 < gate < 1:
        raise ValueError(f"gate must be a number between 0.5 and 1 (exclusive), got {gate!r}")
    imgsz = None if imgsz is None else positive_int("imgsz", imgsz)
    net = in_place_model(model)
    chosen = None if layers is None else {id(m) for layer in layers for m in layer.modules()}
    attention = [
        m
        for m in net.modules()
        if isinstance(m, (CBAM, ChannelAttention, SpatialAttention)) and (chosen is None or id(m) in chosen)
    ]
    outer = [m for m in attention if not any(m in set(o.children()) for o in attention if isinstance(o, CBAM))]
    if not outer:
        raise ValueError(f"{type(model).__name__} contains no CBAM, ChannelAttention or SpatialAttention layer")
    logit = math.log(gate / (1 - gate))
    noise = {m: _noise(m) for m in attention if isinstance(m, (ChannelAttention, SpatialAttention))}
    for m, n in noise.items():  # unit weights first: downstream layers are then calibrated on near-identity inputs
        _set(m, n, 1.0)
    batch = _calibration_batch(images, net, imgsz)
    for _ in range(2):  # the second pass sees upstream layers already calibrated
        for m, (channel_q, spatial_q) in _descriptors(net, batch, outer, batch_stats).items():
            for part, q in ((_channel(m), channel_q), (_spatial(m), spatial_q)):
                if part is not None and q is not None:
                    _set(part, noise[part], logit / max(q, _MIN_DESCRIPTOR), logit)
    return model


def paper_init(model: nn.Module) -> nn.Module:
    """Reset every CBAM layer in `model` to the paper's initialisation (PyTorch's default for its convolutions)."""
    attention = [m for m in in_place_model(model).modules() if isinstance(m, (ChannelAttention, SpatialAttention))]
    if not attention:
        raise ValueError(f"{type(model).__name__} contains no CBAM, ChannelAttention or SpatialAttention layer")
    for conv in (c for m in attention for c in m.modules() if isinstance(c, nn.Conv2d)):
        conv.reset_parameters()
    return model


# --- weights ---------------------------------------------------------------------------------------------------


def _noise(m: nn.Module) -> dict[str, torch.Tensor]:
    """A small copy of the paper's random initialisation of `m`'s weights."""
    out = {}
    for name, conv in m.named_children():
        if isinstance(conv, nn.Conv2d):
            fresh = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, bias=False)
            out[name] = fresh.weight.detach().to(conv.weight) * _NOISE
    return out


@torch.no_grad()
def _set(m: nn.Module, noise: dict[str, torch.Tensor], scale: float, logit: float = 0.0) -> None:
    """Weights whose gate logit is `scale` times the (never negative) descriptor on top of the noise."""
    if isinstance(m, ChannelAttention):
        m.fc1.weight.copy_(noise["fc1"] + 1.0 / m.fc1.in_channels)
        if m.fc2.bias is not None:  # both pooled descriptors pass the bias once: a constant logit
            m.fc2.weight.copy_(noise["fc2"])
            m.fc2.bias.fill_(logit / 2)
        else:
            m.fc2.weight.copy_(noise["fc2"] + scale / m.fc2.in_channels)
        if m.fc1.bias is not None:
            m.fc1.bias.zero_()
    else:
        w = noise["conv"].clone()
        c = m.conv.kernel_size[0] // 2
        w[0, 0, c, c] -= scale  # input 0 is mean_c(x), input 1 is max_c(x)
        w[0, 1, c, c] += scale
        m.conv.weight.copy_(w)


def _channel(m: nn.Module) -> ChannelAttention | None:
    return m.channel if isinstance(m, CBAM) else m if isinstance(m, ChannelAttention) else None


def _spatial(m: nn.Module) -> SpatialAttention | None:
    return m.spatial if isinstance(m, CBAM) else m if isinstance(m, SpatialAttention) else None


# --- calibration -----------------------------------------------------------------------------------------------


@torch.no_grad()
def _descriptors(net: nn.Module, batch: torch.Tensor, layers: list[nn.Module], batch_stats: bool) -> dict:
    """Per attention layer: (smallest channel descriptor over images, low quantile of the spatial descriptor), with
    BatchNorm on the batch's statistics (train mode, running statistics restored afterwards) or on its running ones."""
    found = {}

    def record(m, inputs, _output):
        x = inputs[0].float()
        channel_q = spatial_q = None
        if _channel(m) is not None:
            s = x.mean((2, 3)).mean(1).clamp(min=0) + x.amax((2, 3)).mean(1).clamp(min=0)
            channel_q = s.min().item()
            x = x * _channel(m).gate(inputs[0]).float()
        if _spatial(m) is not None:
            spread = (x.amax(1) - x.mean(1)).flatten()
            spatial_q = torch.quantile(spread[: 2**24], _QUANTILE).item()
        found[m] = (channel_q, spatial_q)

    hooks = [m.register_forward_hook(record) for m in layers]
    training = net.training
    buffers = {name: b.clone() for name, b in net.named_buffers()}
    try:
        net.train(batch_stats)
        net(batch)
    finally:
        net.train(training)
        with torch.no_grad():
            for name, b in net.named_buffers():
                b.copy_(buffers[name])
        for hook in hooks:
            hook.remove()
    missing = [type(m).__name__ for m in layers if m not in found]
    if missing:
        raise RuntimeError(f"calibration input never reached {len(missing)} attention layers ({', '.join(missing)})")
    return found


def _calibration_batch(images, net: nn.Module, imgsz: int) -> torch.Tensor:
    dtype = next((p.dtype for p in net.parameters()), torch.float32)
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    if isinstance(images, torch.Tensor):
        return images.to(device, dtype)
    if images is None:
        from ultralytics.utils import ASSETS

        images = ASSETS
    paths = image_files(images, arg="images")
    import cv2
    import numpy as np
    from ultralytics.data.augment import LetterBox

    imgsz = imgsz or _train_size(net)
    letterbox = LetterBox((imgsz, imgsz), auto=False)
    arrays = []
    for path in paths:
        image = cv2.imread(str(path))
        if image is None:
            raise ValueError(f"images: cannot read '{path}' as an image")
        arrays.append(letterbox(image=image)[:, :, ::-1].transpose(2, 0, 1))
    batch = torch.from_numpy(np.ascontiguousarray(np.stack(arrays))).float() / 255
    channels = (getattr(net, "yaml", None) or {}).get("channels", 3)
    if channels == 1:
        batch = batch.mean(1, keepdim=True)
    return batch.to(device, dtype)


def _train_size(net: nn.Module) -> int:
    args = getattr(net, "args", None)
    size = args.get("imgsz") if isinstance(args, dict) else getattr(args, "imgsz", None)
    return size if isinstance(size, int) and size > 0 else 640
