"""ONNX Runtime: the equivalent ways to write CBAM's forward (cbam_variants.CBAMForward), each exported as Ultralytics'
``format=onnx`` exports, timed interleaved at the shapes of yolov8n-cbam's CBAM layers."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks.cbam_variants import REFERENCE_FORWARD, forward_variants
from benchmarks.config import BenchConfig
from benchmarks.model_bench import ORT_SETTLE_S, onnx_session
from benchmarks.module_bench import cbam_input_shapes
from benchmarks.timing import interleaved, paired_ratio, paired_ratio_interval

SCALE = "n"


def export_like_ultralytics(module: torch.nn.Module, example: torch.Tensor, path: Path) -> str:
    """Export `module` as Ultralytics' ``format=onnx`` does by default: torch's TorchScript-based exporter
    (``dynamo=False``) at Ultralytics' opset, static shapes, then simplified by onnxslim."""
    import onnx
    import onnxslim
    from ultralytics.utils.export.engine import best_onnx_opset, torch2onnx

    torch2onnx(module.eval(), example, str(path), opset=best_onnx_opset(onnx))
    onnx.save(onnxslim.slim(onnx.load(str(path))), str(path))
    return str(path)


def run_variant_benchmarks(cfg: BenchConfig, progress: Callable[[str], None]) -> list[dict]:
    """Time every forward variant in ONNX Runtime on CPU at each CBAM shape of yolov8n and each model batch size;
    one record per case, with each variant's ratio to REFERENCE_FORWARD and its largest difference from PyTorch."""
    records = []
    with tempfile.TemporaryDirectory(prefix="cbam-bench-variants-") as tmp:
        for c, h, w in cbam_input_shapes(SCALE, cfg.imgsz):
            variants = forward_variants(c, cfg.seed)
            for batch in cfg.model_batches:
                shape = (batch, c, h, w)
                progress(f"ONNX Runtime CBAM forward variants {'x'.join(map(str, shape))}")
                records.append(_time_case(cfg, variants, shape, Path(tmp)))
    return records


def _time_case(cfg: BenchConfig, variants: dict[str, torch.nn.Module], shape: tuple[int, ...], folder: Path) -> dict:
    import onnxruntime as ort

    x = torch.randn(shape, generator=torch.Generator().manual_seed(cfg.seed))
    feed = {"images": x.numpy()}
    with torch.inference_mode():
        expected = variants[REFERENCE_FORWARD](x).numpy()
    sessions, diffs = {}, {}
    for name, module in variants.items():
        path = export_like_ultralytics(module, x, folder / f"{name.replace('/', '-')}-{'x'.join(map(str, shape))}.onnx")
        sessions[name] = onnx_session(ort, path, ["CPUExecutionProvider"], cfg.threads)
        diffs[name] = float(np.abs(sessions[name].run(None, feed)[0] - expected).max())
    candidates = {name: (lambda s=s: s.run(None, feed)) for name, s in sessions.items()}
    settings = {"min_seconds": cfg.variant_seconds, "settle_s": ORT_SETTLE_S}
    times = interleaved(candidates, cfg.rounds, cfg.warmup, cfg.min_sample_s, **settings)
    reference = times[REFERENCE_FORWARD]
    return {
        "device": "cpu",
        "shape": list(shape),
        "batch": shape[0],
        "times": {name: t.as_dict() for name, t in times.items()},
        "ratios": {name: round(paired_ratio(t, reference), 4) for name, t in times.items()},
        "ratio_intervals": {
            name: [round(v, 4) for v in paired_ratio_interval(t, reference)] for name, t in times.items()
        },
        "max_abs_diff": diffs,
    }


def fastest(records: list[dict]) -> tuple[str, dict[str, float]]:
    """The variant with the lowest geometric mean of its ratios to REFERENCE_FORWARD over all cases, and every
    variant's geometric mean."""
    names = list(records[0]["ratios"])
    means = {name: float(np.exp(np.mean([np.log(r["ratios"][name]) for r in records]))) for name in names}
    return min(means, key=means.get), means
