"""ONNX exports as Ultralytics makes them, and ONNX Runtime sessions to time them."""

from __future__ import annotations

from pathlib import Path

import torch

# Each session's threads keep spinning for a while after a run: without a pause the session timed next shares the CPU
# with them (seen: 51 ms after itself, 80-95 ms right after the other session).
SETTLE_S = 0.1


def session(path: str, threads: int, cuda: bool = False):
    """An ONNX Runtime session with all graph optimisations and `threads` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    return ort.InferenceSession(path, options, providers=providers)


def export_onnx(
    yaml: str, weights: torch.nn.Module, folder: Path, batch: int, imgsz: int, dynamic: bool = False
) -> str:
    """Export `yaml` holding the state of `weights` with Ultralytics' exporter (``format=onnx``) into `folder`, with
    static shapes (batch `batch`, `imgsz`) or dynamic ones."""
    from ultralytics import YOLO
    from ultralytics.utils import LOGGER

    yolo = YOLO(yaml)
    yolo.model.load_state_dict(weights.state_dict())
    yolo.model.pt_path = str(folder / f"{Path(yaml).stem}-b{batch}{'-dynamic' if dynamic else ''}.pt")  # its folder
    level = LOGGER.level
    LOGGER.setLevel(max(level, 30))  # the exporter is chatty
    try:
        return yolo.export(
            format="onnx", imgsz=imgsz, batch=batch, dynamic=dynamic, simplify=True, device="cpu", verbose=False
        )
    finally:
        LOGGER.setLevel(level)


def export_like_ultralytics(module: torch.nn.Module, example: torch.Tensor, path: Path) -> str:
    """Export `module` as Ultralytics' ``format=onnx`` does by default: torch's TorchScript-based exporter at
    Ultralytics' opset, static shapes, then simplified by onnxslim."""
    import onnx
    import onnxslim
    from ultralytics.utils.export.engine import best_onnx_opset, torch2onnx

    torch2onnx(module.eval(), example, str(path), opset=best_onnx_opset(onnx))
    onnx.save(onnxslim.slim(onnx.load(str(path))), str(path))
    return str(path)
