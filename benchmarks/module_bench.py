"""Module level, at the input shapes of the CBAM layers of yolov8{scale}-cbam: our CBAM against timm's, Ultralytics'
and the paper's two-pass CBAM in PyTorch, and equivalent ways to write its forward in ONNX Runtime."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from benchmarks.cbam_variants import REFERENCE_FORWARD, build_variants, forward_variants
from benchmarks.config import BenchConfig
from benchmarks.onnx_runtime import SETTLE_S, export_like_ultralytics, session
from benchmarks.timing import interleaved, ratio

VARIANTS = ("ours", "timm", "ultralytics", "paper")
PASSES = ("inference", "train")  # train = forward + backward
FORWARDS_SCALE = "n"  # the forward variants are timed at yolov8n-cbam's shapes


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


def _cases(scales: tuple[str, ...], imgsz: int, batches: tuple[int, ...]) -> Iterator[tuple[str, str, tuple]]:
    """(scale, layer, (N, C, H, W)) of every CBAM layer of yolov8{scale}-cbam, at each batch size."""
    for scale in scales:
        for level, (c, h, w) in enumerate(cbam_input_shapes(scale, imgsz), start=2):
            for batch in batches:
                yield scale, f"P{level}", (batch, c, h, w)


def _time_case(candidates: dict[str, Callable[[], object]], pairs: dict, digits: int, *args, **kwargs) -> dict:
    """Time `candidates` interleaved (further arguments as `interleaved` takes them); their times, and the ratio a / b
    of each name -> (a, b) of `pairs` with its 95 % interval, rounded to `digits` decimals."""
    times = interleaved(candidates, *args, **kwargs)
    found = {name: ratio(times[a], times[b], digits) for name, (a, b) in pairs.items()}
    return {
        "times": {name: t.as_dict() for name, t in times.items()},
        "ratios": {name: value for name, (value, _) in found.items()},
        "ratio_intervals": {name: interval for name, (_, interval) in found.items()},
    }


def module_level(cfg: BenchConfig, device: str, progress: Callable[[str], None]) -> list[dict]:
    """Every CBAM of VARIANTS on every case (scale, layer, batch, pass); one record per case, with ours / each other."""
    records = []
    for scale, layer, shape in _cases(cfg.scales, cfg.imgsz, cfg.module_batches):
        for pass_ in PASSES:
            progress(f"module yolov8{scale} {layer} {'x'.join(map(str, shape[1:]))} batch {shape[0]} {pass_}")
            torch.manual_seed(cfg.seed)
            modules = build_variants(shape[1], VARIANTS)
            x = torch.randn(shape, device=device)
            candidates = {name: _call(m.to(device), x, pass_) for name, m in modules.items()}
            pairs = {name: ("ours", name) for name in candidates if name != "ours"}
            timing = (cfg.rounds, cfg.warmup, cfg.min_sample_s, device)
            case = {"device": device, "scale": scale, "layer": layer, "shape": list(shape), "batch": shape[0]}
            records.append({**case, "pass": pass_, **_time_case(candidates, pairs, 3, *timing)})
    return records


def _call(module: nn.Module, x: torch.Tensor, pass_: str) -> Callable[[], object]:
    """One inference call of `module` on `x`, or one forward and backward pass."""
    if pass_ == "inference":
        module.eval()

        def infer() -> object:
            with torch.inference_mode():
                return module(x)

        return infer
    module.train()
    x = x.clone().requires_grad_(True)
    grad = torch.randn_like(x)
    params = list(module.parameters())

    def forward_backward() -> None:
        x.grad = None
        for p in params:
            p.grad = None
        module(x).backward(grad)

    return forward_backward


def forward_variants_level(cfg: BenchConfig, progress: Callable[[str], None]) -> list[dict]:
    """Every forward variant (cbam_variants.CBAMForward), exported as Ultralytics' ``format=onnx`` exports, in ONNX
    Runtime on CPU at each CBAM shape of yolov8n and each model batch size; one record per case, with each variant's
    ratio to REFERENCE_FORWARD and its largest difference from PyTorch."""
    records = []
    with tempfile.TemporaryDirectory(prefix="cbam-bench-variants-") as tmp:
        for _, _, shape in _cases((FORWARDS_SCALE,), cfg.imgsz, cfg.model_batches):
            size = "x".join(map(str, shape))
            progress(f"ONNX Runtime CBAM forward variants {size}")
            variants = forward_variants(shape[1], cfg.seed)
            x = torch.randn(shape, generator=torch.Generator().manual_seed(cfg.seed))
            feed = {"images": x.numpy()}
            with torch.inference_mode():
                expected = variants[REFERENCE_FORWARD](x).numpy()
            sessions, diffs = {}, {}
            for name, module in variants.items():
                path = export_like_ultralytics(module, x, Path(tmp) / f"{name.replace('/', '-')}-{size}.onnx")
                sessions[name] = session(path, cfg.threads)
                diffs[name] = float(np.abs(sessions[name].run(None, feed)[0] - expected).max())
            candidates = {name: (lambda s=s, feed=feed: s.run(None, feed)) for name, s in sessions.items()}
            pairs = {name: (name, REFERENCE_FORWARD) for name in candidates}
            timing = {"min_seconds": cfg.variant_seconds, "settle_s": SETTLE_S}
            case = _time_case(candidates, pairs, 4, cfg.rounds, cfg.warmup, cfg.min_sample_s, **timing)
            records.append({"device": "cpu", "shape": list(shape), "batch": shape[0], **case, "max_abs_diff": diffs})
    return records
