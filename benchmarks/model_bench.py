"""Model level: yolov8{scale}-cbam against yolov8{scale} in eager and compiled PyTorch, ONNX Runtime and a training
step, peak memory, parameters and GFLOPs."""

from __future__ import annotations

import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.config import BenchConfig
from benchmarks.onnx_runtime import SETTLE_S, export_onnx, session
from benchmarks.timing import Timing, interleaved, peak_memory_mib, ratio

PAIR = ("yolov8", "yolov8-cbam")  # (reference, ours): a ratio is ours / reference
Progress = Callable[[str], None]


def model_yaml(role: str, scale: str) -> str:
    """The model YAML of a role of PAIR, e.g. 'yolov8n-cbam.yaml'."""
    return role.replace("yolov8", f"yolov8{scale}") + ".yaml"


def model_pair(scale: str, seed: int, device: str, imgsz: int | None = None) -> dict[str, torch.nn.Module]:
    """Randomly initialised DetectionModels (80 classes) of both roles in training mode or, given `imgsz`, with their
    BatchNorm statistics calibrated at that size and in eval mode. yolov8-cbam holds yolov8's weights in every layer
    the two share: some CPU kernels take time that depends on the values (SiLU twice as long above about 80)."""
    from ultralytics.nn.tasks import DetectionModel

    from ultralytics_cbam.transfer import transfer_weights

    models = {}
    for role in PAIR:
        torch.manual_seed(seed)
        models[role] = DetectionModel(model_yaml(role, scale), nc=80, verbose=False).to(device).train()
    transfer_weights(models[PAIR[1]], models[PAIR[0]], verbose=False)
    if imgsz is not None:
        for model in models.values():
            calibrate_batchnorm(model, imgsz, seed)
    return models


def calibrate_batchnorm(model: torch.nn.Module, imgsz: int, seed: int, batches: int = 2) -> None:
    """Set the BatchNorm running statistics from random images, as training would, and put `model` in eval mode: with
    a fresh model's, activations shrink layer by layer toward subnormal floats, which CPUs process far slower."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(2, 3, imgsz, imgsz, generator=generator).to(device))
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


def compile_like_ultralytics(model: torch.nn.Module) -> torch.nn.Module:
    """`model` through torch.compile with Inductor in its default mode, as ``compile=True`` makes Ultralytics'
    trainer and predictor do; compiles at the first call."""
    return torch.compile(model, mode="default", backend="inductor")


def _record(device: str, scale: str, kind: str, batch: int, imgsz: int, times: dict[str, Timing]) -> dict:
    base, ours = (times[name] for name in PAIR)
    value, interval = ratio(ours, base, 4)
    return {
        **{"device": device, "scale": scale, "kind": kind, "batch": batch, "imgsz": imgsz},
        "times": {name: t.as_dict() for name, t in times.items()},
        "ratio": value,
        "ratio_interval": interval,
        "ratio_of_minima": round(ours.min_ms / base.min_ms, 4),
    }


def inference(cfg: BenchConfig, device: str, scale: str, progress: Progress, compiled: bool = False) -> list[dict]:
    """Fused inference, eager or compiled as Ultralytics' ``compile=True`` compiles; one record per batch size."""
    models = {role: m.fuse(verbose=False).eval() for role, m in model_pair(scale, cfg.seed, device, cfg.imgsz).items()}
    kind = "compiled" if compiled else "eager"
    records = []
    for batch in cfg.model_batches:
        progress(f"model yolov8{scale} {kind} inference batch {batch}{' (compiling first)' if compiled else ''}")
        x = torch.rand(batch, 3, cfg.imgsz, cfg.imgsz, device=device)
        if compiled:
            torch.compiler.reset()  # compile for this batch size alone, as a predictor at a fixed batch size does

        def run(model: torch.nn.Module, x: torch.Tensor = x) -> object:
            with torch.inference_mode():
                return model(x)

        runners = {role: compile_like_ultralytics(m) if compiled else m for role, m in models.items()}
        candidates = {role: (lambda m=m: run(m)) for role, m in runners.items()}
        warmup = max(cfg.warmup, 2) if compiled else cfg.warmup  # the first call compiles
        times = interleaved(candidates, cfg.model_rounds, warmup, device=device, min_seconds=cfg.model_seconds)
        records.append(_record(device, scale, kind, batch, cfg.imgsz, times))
    return records


def onnx_inference(cfg: BenchConfig, device: str, scale: str, progress: Progress) -> list[dict]:
    """ONNX Runtime on Ultralytics' ONNX export, one record per batch size for static exports (kind 'onnxruntime',
    the exporter's default) and one for dynamic ones ('onnxruntime-dynamic')."""
    import onnxruntime as ort

    if device == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return []
    records = []
    models = model_pair(scale, cfg.seed, "cpu", cfg.imgsz)
    with tempfile.TemporaryDirectory(prefix="cbam-bench-onnx-") as tmp:
        for batch, dynamic in itertools.product(cfg.model_batches, (False, True)):
            what = f"model yolov8{scale} ONNX Runtime{' (dynamic)' if dynamic else ''} batch {batch}"
            progress(f"{what} (export)")
            sessions = {
                role: session(export_onnx(model_yaml(role, scale), m, Path(tmp), batch, cfg.imgsz, dynamic),
                              cfg.threads, device == "cuda")
                for role, m in models.items()
            }  # fmt: skip
            progress(what)
            feed = torch.rand(batch, 3, cfg.imgsz, cfg.imgsz).numpy()
            candidates = {
                role: (lambda s=s, feed=feed: s.run(None, {s.get_inputs()[0].name: feed}))
                for role, s in sessions.items()
            }
            times = interleaved(
                candidates, cfg.model_rounds, cfg.warmup, min_seconds=cfg.model_seconds, settle_s=SETTLE_S
            )
            kind = "onnxruntime-dynamic" if dynamic else "onnxruntime"
            records.append(_record(device, scale, kind, batch, cfg.imgsz, times))
    return records


def train_step(cfg: BenchConfig, device: str, scale: str, progress: Progress, compiled: bool = False) -> list[dict]:
    """One optimisation step (forward, loss, backward, SGD step) on a synthetic labelled batch, eager or with the
    forward compiled as Ultralytics' trainer compiles it with ``compile=True`` (kind 'train-compiled')."""
    kind = "train-compiled" if compiled else "train"
    progress(f"model yolov8{scale} {kind} step batch {cfg.train_batch} at {cfg.train_imgsz}")
    if compiled:
        torch.compiler.reset()
    steps = {role: make_train_step(m, cfg, device, compiled) for role, m in model_pair(scale, cfg.seed, device).items()}
    warmup = max(cfg.warmup, 2) if compiled else cfg.warmup  # the first step compiles
    times = interleaved(steps, cfg.model_rounds, warmup, device=device, min_seconds=cfg.model_seconds)
    return [_record(device, scale, kind, cfg.train_batch, cfg.train_imgsz, times)]


def make_train_step(
    model: torch.nn.Module, cfg: BenchConfig, device: str, compiled: bool = False
) -> Callable[[], object]:
    """A closure running one training step of `model` on a fixed synthetic batch; `compiled` compiles the forward and
    leaves the loss eager, as Ultralytics' trainer does with ``compile=True``."""
    from ultralytics.cfg import get_cfg

    model.args = get_cfg()  # loss gains (box, cls, dfl) from Ultralytics' defaults
    batch = synthetic_batch(cfg.train_batch, cfg.train_imgsz, cfg.seed, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.937, nesterov=True, weight_decay=5e-4)
    forward = compile_like_ultralytics(model) if compiled else model

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss, _ = model.loss(batch, forward(batch["img"]))
        loss.sum().backward()
        optimizer.step()

    return step


def synthetic_batch(size: int, imgsz: int, seed: int, device: str, boxes_per_image: int = 4) -> dict:
    """Random images with random boxes in Ultralytics' batch format (normalised xywh, class, image index)."""
    g = torch.Generator().manual_seed(seed)
    n = size * boxes_per_image
    xy = torch.rand(n, 2, generator=g) * 0.6 + 0.2
    wh = torch.rand(n, 2, generator=g) * 0.3 + 0.05
    return {
        "img": torch.rand(size, 3, imgsz, imgsz, generator=g).to(device),
        "batch_idx": torch.arange(size).repeat_interleave(boxes_per_image).float().to(device),
        "cls": torch.randint(0, 80, (n, 1), generator=g).float().to(device),
        "bboxes": torch.cat((xy, wh), 1).to(device),
    }


def peak_memory(cfg: BenchConfig, device: str, scale: str, progress: Progress) -> list[dict]:
    """Peak memory of fused eager inference at the largest model batch and of one training step."""
    progress(f"model yolov8{scale} peak memory")
    batch = max(cfg.model_batches)
    x = torch.rand(batch, 3, cfg.imgsz, cfg.imgsz, device=device)
    inference_mib, train_mib = {}, {}
    for role, model in model_pair(scale, cfg.seed, device, cfg.imgsz).items():
        model = model.fuse(verbose=False).eval()
        with torch.inference_mode():
            model(x)  # first-call allocations (e.g. Detect anchors) out of the way
            inference_mib[role] = peak_memory_mib(lambda m=model: m(x), device)
    for role, model in model_pair(scale, cfg.seed, device).items():
        step = make_train_step(model, cfg, device)
        step()  # optimizer state and gradients exist from here on, as in training
        train_mib[role] = peak_memory_mib(step, device)
    return [
        _memory_record(device, scale, "inference", batch, cfg.imgsz, inference_mib),
        _memory_record(device, scale, "train", cfg.train_batch, cfg.train_imgsz, train_mib),
    ]


def _memory_record(device: str, scale: str, kind: str, batch: int, imgsz: int, mib: dict) -> dict:
    base, ours = (mib[name] for name in PAIR)
    value = round(ours / base, 4) if base and ours is not None else None
    return {"device": device, "scale": scale, "kind": kind, "batch": batch, "imgsz": imgsz, "mib": mib, "ratio": value}


def model_size(scale: str, imgsz: int) -> dict:
    """Parameters and GFLOPs at `imgsz` of both models, as Ultralytics counts them."""
    from ultralytics.utils.torch_utils import get_flops, get_num_params

    out = {"scale": scale, "imgsz": imgsz}
    for role, model in model_pair(scale, 0, "cpu").items():
        out[role] = {"params": get_num_params(model), "gflops": round(get_flops(model, imgsz), 3)}
    return out
