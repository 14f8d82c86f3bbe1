"""Module level: our CBAM against timm's, Ultralytics' and the paper's two-pass CBAM on YOLOv8 feature maps."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from benchmarks.cbam_variants import build_variants
from benchmarks.config import BenchConfig
from benchmarks.timing import interleaved, paired_ratio, paired_ratio_interval

VARIANTS = ("ours", "timm", "ultralytics", "paper")
PASSES = ("inference", "train")  # train = forward + backward


def cbam_input_shapes(scale: str, imgsz: int) -> list[tuple[int, int, int]]:
    """(C, H, W) of the inputs of every CBAM layer in yolov8{scale}-cbam at `imgsz`, found by running the model."""
    from ultralytics.nn.tasks import DetectionModel

    from ultralytics_cbam.modules import CBAM

    model = DetectionModel(f"yolov8{scale}-cbam.yaml", verbose=False).eval()
    shapes: list[tuple[int, int, int]] = []
    hooks = [
        m.register_forward_pre_hook(lambda _, args: shapes.append(tuple(args[0].shape[1:])))
        for m in model.modules()
        if isinstance(m, CBAM)
    ]
    try:
        with torch.inference_mode():
            model(torch.zeros(1, 3, imgsz, imgsz))
    finally:
        for hook in hooks:
            hook.remove()
    return shapes


def run_module_benchmarks(cfg: BenchConfig, device: str, progress: Callable[[str], None]) -> list[dict]:
    """Time every variant on every (scale, layer, batch, pass) case; one record per case."""
    records = []
    for scale in cfg.scales:
        for level, (c, h, w) in enumerate(cbam_input_shapes(scale, cfg.imgsz), start=2):
            for batch in cfg.module_batches:
                for pass_ in PASSES:
                    progress(f"module yolov8{scale} P{level} {c}x{h}x{w} batch {batch} {pass_}")
                    times = _time_case(cfg, device, c, (batch, c, h, w), pass_)
                    others = {name: t for name, t in times.items() if name != "ours"}
                    records.append(
                        {
                            "device": device,
                            "scale": scale,
                            "layer": f"P{level}",
                            "shape": [batch, c, h, w],
                            "batch": batch,
                            "pass": pass_,
                            "times": {name: t.as_dict() for name, t in times.items()},
                            "ratios": {name: round(paired_ratio(times["ours"], t), 3) for name, t in others.items()},
                            "ratio_intervals": {
                                name: [round(v, 3) for v in paired_ratio_interval(times["ours"], t)]
                                for name, t in others.items()
                            },
                        }
                    )
    return records


def _time_case(cfg: BenchConfig, device: str, channels: int, shape: tuple[int, ...], pass_: str) -> dict:
    torch.manual_seed(cfg.seed)
    modules = {k: m.to(device) for k, m in build_variants(channels, VARIANTS).items()}
    x = torch.randn(shape, device=device)
    candidates = {name: _call(m, x, pass_) for name, m in modules.items()}
    return interleaved(candidates, cfg.rounds, cfg.warmup, cfg.min_sample_s, device)


def _call(module: nn.Module, x: torch.Tensor, pass_: str) -> Callable[[], object]:
    if pass_ == "inference":
        module.eval()

        def infer():
            with torch.inference_mode():
                return module(x)

        return infer
    module.train()
    x = x.clone().requires_grad_(True)
    grad = torch.randn_like(x)
    params = list(module.parameters())

    def forward_backward():
        x.grad = None
        for p in params:
            p.grad = None
        module(x).backward(grad)

    return forward_backward
