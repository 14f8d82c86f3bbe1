"""Module level, at the input shapes of the CBAM layers of yolov8{scale}-cbam: our CBAM against timm's, Ultralytics'
and the paper's two-pass CBAM in PyTorch, and equivalent ways to write its forward in ONNX Runtime."""

from __future__ import annotations

import copy
import functools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.config import BenchConfig
from benchmarks.model_bench import SETTLE_S, infer, session
from benchmarks.timing import interleaved, paired_ratio
from ultralytics_cbam.modules import CBAM, hidden_channels

VARIANTS = ("ours", "timm", "ultralytics", "paper")  # 'ours' first: the others are compared with it
MLP_FORMS = {  # ways to apply the shared MLP to both pooled descriptors, and to pool them; see CBAMForward
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
    """The paper in two plain passes, with the weights of `ours`: adaptive pooling, the MLP applied once per
    descriptor, separate products."""

    def __init__(self, ours: CBAM) -> None:
        super().__init__()
        self.avg_pool, self.max_pool = nn.AdaptiveAvgPool2d(1), nn.AdaptiveMaxPool2d(1)
        self.mlp = copy.deepcopy(nn.Sequential(ours.channel.fc1, nn.ReLU(), ours.channel.fc2))
        self.conv = copy.deepcopy(ours.spatial.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.sigmoid(self.mlp(self.avg_pool(x)) + self.mlp(self.max_pool(x)))
        pooled = torch.cat((torch.mean(x, dim=1, keepdim=True), torch.max(x, dim=1, keepdim=True)[0]), dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class CBAMForward(CBAM):
    """Our CBAM with its forward written another equivalent way: the MLP as one of MLP_FORMS, pooling as one of POOLS
    (the spatial descriptors are always mean and amax over channels)."""

    def __init__(self, channels: int, mlp: str, pool: str) -> None:
        super().__init__(channels)
        self.mlp, self.pool = mlp, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool == "adaptive":
            avg, peak = F.adaptive_avg_pool2d(x, 1), F.adaptive_max_pool2d(x, 1)
        else:
            avg, peak = x.mean((2, 3), keepdim=True), x.amax((2, 3), keepdim=True)
        fc1, fc2 = self.channel.fc1, self.channel.fc2
        if self.mlp == "conv-concat":
            gate = fc2(F.relu(fc1(torch.cat((avg, peak), dim=3)))).sum(3, keepdim=True).sigmoid()
        elif self.mlp == "conv-batched":  # (2N, C, 1, 1)
            gate = fc2(F.relu(fc1(torch.cat((avg, peak), dim=0)))).unflatten(0, (2, -1)).sum(0).sigmoid()
        else:  # linear, on (N, 2, C)
            both = torch.stack((avg.flatten(1), peak.flatten(1)), dim=1)
            gate = F.linear(F.relu(F.linear(both, fc1.weight.flatten(1))), fc2.weight.flatten(1))
            gate = gate.sum(1).sigmoid()[:, :, None, None]
        x = x * gate
        return x * self.spatial.conv(torch.cat((x.mean(1, keepdim=True), x.amax(1, keepdim=True)), dim=1)).sigmoid()


def forward_variants(channels: int) -> dict[str, CBAMForward]:
    """Every CBAMForward by name ('mlp/pool'), all with the weights of one CBAM(channels) drawn with seed 0."""
    torch.manual_seed(0)
    state = CBAM(channels).state_dict()
    variants = {f"{mlp}/{pool}": CBAMForward(channels, mlp, pool) for mlp in MLP_FORMS for pool in POOLS}
    for module in variants.values():
        module.load_state_dict(state)
    return {name: module.eval() for name, module in variants.items()}


def _cbam(name: str, ours: CBAM) -> nn.Module:
    """The CBAM of VARIANTS named `name`: timm's CbamModule has our MLP width (its spatial conv adds a BatchNorm of one
    channel); Ultralytics' gates channels from average pooling alone, through one C -> C 1x1 conv."""
    channels = ours.channel.channels
    if name == "timm":
        from timm.layers.cbam import CbamModule

        return CbamModule(channels, rd_channels=hidden_channels(channels, 16), spatial_kernel_size=7)
    if name == "ultralytics":
        from ultralytics.nn.modules.conv import CBAM as UltralyticsCBAM

        return UltralyticsCBAM(channels, 7)
    return PaperCBAM(ours) if name == "paper" else ours


def cases(scales: tuple[str, ...], imgsz: int, batches: tuple[int, ...]) -> Iterator[tuple[str, str, tuple]]:
    """(scale, layer, (N, C, H, W)) of every CBAM layer's input in yolov8{scale}-cbam at `imgsz`, per batch size."""
    from ultralytics.nn.tasks import DetectionModel

    for scale in scales:
        model, shapes = DetectionModel(f"yolov8{scale}-cbam.yaml", verbose=False).eval(), []
        for m in model.modules():
            if isinstance(m, CBAM):
                m.register_forward_pre_hook(lambda _, args, shapes=shapes: shapes.append(tuple(args[0].shape[1:])))
        with torch.inference_mode():
            model(torch.zeros(1, 3, imgsz, imgsz))
        for level, (c, h, w) in enumerate(shapes, start=2):
            for batch in batches:
                yield scale, f"P{level}", (batch, c, h, w)


def _compared(candidates: dict[str, Callable[[], object]], pairs: dict, digits: int, *args, **kwargs) -> dict:
    """Times of `candidates` (timed as `interleaved` takes further arguments), and the ratio a / b of each name ->
    (a, b) of `pairs` with its 95 % interval."""
    times = interleaved(candidates, *args, **kwargs)
    found = {name: paired_ratio(*(times[c]["samples_ms"] for c in pair), digits) for name, pair in pairs.items()}
    return {
        "times": times,
        "ratios": {name: value for name, (value, _) in found.items()},
        "ratio_intervals": {name: interval for name, (_, interval) in found.items()},
    }


def module_level(cfg: BenchConfig, progress: Callable[[str], None]) -> list[dict]:
    """Ours against every other CBAM of VARIANTS, in inference and forward + backward, at every case."""
    records = []
    for scale, layer, shape in cases(cfg.scales, cfg.imgsz, cfg.module_batches):
        for pass_ in ("inference", "train"):
            progress(f"module yolov8{scale} {layer} {'x'.join(map(str, shape))} {pass_}")
            torch.manual_seed(0)
            ours = CBAM(shape[1])
            modules = {name: _cbam(name, ours) for name in VARIANTS}
            x = torch.randn(shape)
            candidates = {name: _call(module, x, pass_) for name, module in modules.items()}
            pairs = {name: ("ours", name) for name in VARIANTS[1:]}
            timed = _compared(candidates, pairs, 3, cfg.rounds, cfg.warmup, cfg.min_sample_s)
            case = {"scale": scale, "layer": layer, "shape": list(shape), "batch": shape[0], "pass": pass_}
            records.append(case | timed)
    return records


def _call(module: nn.Module, x: torch.Tensor, pass_: str) -> Callable[[], object]:
    """One inference call of `module` on `x`, or one forward and backward pass."""
    if pass_ == "inference":
        module.eval()
        return functools.partial(infer, module, x)
    x = x.clone().requires_grad_(True)
    grad, params = torch.randn_like(x), list(module.train().parameters())

    def forward_backward() -> None:
        for t in (x, *params):
            t.grad = None
        module(x).backward(grad)

    return forward_backward


def forward_variants_level(cfg: BenchConfig, progress: Callable[[str], None]) -> list[dict]:
    """Every forward variant, exported as Ultralytics' ``format=onnx`` exports, in ONNX Runtime at each CBAM shape of
    yolov8n and each model batch size: its times, its ratio to REFERENCE_FORWARD and its largest difference from
    PyTorch's output."""
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for _, _, shape in cases(("n",), cfg.imgsz, cfg.model_batches):
            size = "x".join(map(str, shape))
            progress(f"CBAM forward variants in ONNX Runtime, {size}")
            variants = forward_variants(shape[1])
            x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
            feed = {"images": x.numpy()}
            with torch.inference_mode():
                expected = variants[REFERENCE_FORWARD](x).numpy()
            runs = {}
            for name, module in variants.items():
                path = export_like_ultralytics(module, x, Path(tmp) / f"{name.replace('/', '-')}-{size}.onnx")
                runs[name] = session(path, cfg.threads).run
            diffs = {name: float(np.abs(run(None, feed)[0] - expected).max()) for name, run in runs.items()}
            candidates = {name: functools.partial(run, None, feed) for name, run in runs.items()}
            pairs = {name: (name, REFERENCE_FORWARD) for name in variants}
            timing = (cfg.rounds, cfg.warmup, cfg.min_sample_s, cfg.variant_seconds, SETTLE_S)
            records.append({"shape": list(shape), "batch": shape[0], **_compared(candidates, pairs, 4, *timing)})
            records[-1]["max_abs_diff"] = diffs
    return records


def export_like_ultralytics(module: nn.Module, example: torch.Tensor, path: Path) -> str:
    """`module` exported as Ultralytics' ``format=onnx`` exports by default: torch's TorchScript-based exporter at
    Ultralytics' opset, static shapes, onnxslim."""
    import onnx
    import onnxslim
    from ultralytics.utils.export.engine import best_onnx_opset, torch2onnx

    torch2onnx(module.eval(), example, str(path), opset=best_onnx_opset(onnx))
    onnx.save(onnxslim.slim(onnx.load(str(path))), str(path))
    return str(path)
