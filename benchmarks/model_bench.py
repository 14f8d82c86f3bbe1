"""Model level: yolov8{scale}-cbam against yolov8{scale} in eager and compiled PyTorch, ONNX Runtime and a training
step, and peak memory. Also the ONNX exports and Runtime sessions of both levels."""

from __future__ import annotations

import functools
import itertools
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks.config import BenchConfig
from benchmarks.timing import interleaved, paired_ratio, peak_memory_mib

PAIR = ("yolov8", "yolov8-cbam")  # (reference, ours): a ratio is ours / reference
SETTLE_S = 0.1  # pause before an ONNX Runtime sample: the threads of the session run last spin on for a while
Progress = Callable[[str], None]


def model_pair(scale: str, imgsz: int | None = None) -> dict[str, torch.nn.Module]:
    """Random DetectionModels of PAIR, yolov8-cbam with yolov8's weights in every layer the two share (some CPU kernels
    take value-dependent time: SiLU twice as long above about 80); in training mode or, given `imgsz`, in eval mode
    with BatchNorm statistics from random images of that size (with a fresh model's, activations shrink layer by layer
    toward subnormal floats, which CPUs process far slower)."""
    from ultralytics.nn.tasks import DetectionModel

    from ultralytics_cbam.transfer import transfer_weights

    models = {}
    for role in PAIR:
        torch.manual_seed(0)
        models[role] = DetectionModel(role.replace("yolov8", f"yolov8{scale}") + ".yaml", nc=80, verbose=False).train()
    transfer_weights(models["yolov8-cbam"], models["yolov8"], verbose=False)
    for model in models.values() if imgsz else ():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # a cumulative average
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for _ in range(2):
                model(torch.rand(2, 3, imgsz, imgsz, generator=generator))
        model.eval()
    return models


def _compare(cfg: BenchConfig, scale: str, kind: str, batch: int, candidates: dict, warmup: int, **kwargs) -> dict:
    """A model-level record: the candidates of PAIR timed interleaved, ours / reference with its interval."""
    times = interleaved(candidates, cfg.model_rounds, warmup, min_seconds=cfg.model_seconds, **kwargs)
    ours, base = times["yolov8-cbam"]["samples_ms"], times["yolov8"]["samples_ms"]
    ratio, interval = paired_ratio(ours, base)
    record = {"scale": scale, "kind": kind, "batch": batch, "imgsz": cfg.imgsz, "times": times, "ratio": ratio}
    return record | {"ratio_interval": interval, "ratio_of_minima": round(min(ours) / min(base), 4)}


def inference(cfg: BenchConfig, scale: str, progress: Progress, compiled: bool = False) -> list[dict]:
    """Fused inference, eager or compiled as Ultralytics' ``compile=True`` compiles (torch.compile's defaults:
    Inductor, default mode), once per batch size; the first calls compile and are warm-up."""
    kind = "compiled" if compiled else "eager"
    models = {role: m.fuse(verbose=False) for role, m in model_pair(scale, cfg.imgsz).items()}
    records = []
    for batch in cfg.model_batches:
        progress(f"yolov8{scale} {kind} inference, batch {batch}")
        x = torch.rand(batch, 3, cfg.imgsz, cfg.imgsz)
        torch.compiler.reset()  # compile for this batch size alone, as a predictor at a fixed batch size does
        runs = {role: torch.compile(m) if compiled else m for role, m in models.items()}
        candidates = {role: functools.partial(infer, run, x) for role, run in runs.items()}
        warmup = max(cfg.warmup, 2) if compiled else cfg.warmup
        records.append(_compare(cfg, scale, kind, batch, candidates, warmup))
    return records


def infer(model: torch.nn.Module, x: torch.Tensor) -> object:
    with torch.inference_mode():
        return model(x)


def train_step(cfg: BenchConfig, scale: str, progress: Progress, compiled: bool = False) -> list[dict]:
    """One training step (forward, loss, backward, SGD step), eager or with the forward compiled and the loss eager,
    as Ultralytics' trainer runs it with ``compile=True`` (kind 'train-compiled')."""
    kind = "train-compiled" if compiled else "train"
    progress(f"yolov8{scale} {kind} step, batch {cfg.train_batch}")
    torch.compiler.reset()
    steps = {role: _train_step(m, cfg.train_batch, cfg.imgsz, compiled) for role, m in model_pair(scale).items()}
    return [_compare(cfg, scale, kind, cfg.train_batch, steps, max(cfg.warmup, 2) if compiled else cfg.warmup)]


def _train_step(model: torch.nn.Module, size: int, imgsz: int, compiled: bool = False) -> Callable[[], None]:
    """One training step of `model` on a fixed batch of random images, each with 4 random boxes."""
    from ultralytics.cfg import get_cfg

    model.args = get_cfg()  # the loss gains of Ultralytics' defaults
    g, n = torch.Generator().manual_seed(0), 4 * size
    xywh = torch.cat((torch.rand(n, 2, generator=g) * 0.6 + 0.2, torch.rand(n, 2, generator=g) * 0.3 + 0.05), 1)
    img, cls = torch.rand(size, 3, imgsz, imgsz, generator=g), torch.randint(80, (n, 1), generator=g).float()
    batch = {"img": img, "bboxes": xywh, "cls": cls, "batch_idx": torch.arange(size).repeat_interleave(4).float()}
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.937, nesterov=True, weight_decay=5e-4)
    forward = torch.compile(model) if compiled else model

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        model.loss(batch, forward(batch["img"]))[0].sum().backward()
        optimizer.step()

    return step


def onnx_inference(cfg: BenchConfig, scale: str, progress: Progress) -> list[dict]:
    """ONNX Runtime on Ultralytics' ``format=onnx`` export, static (kind 'onnxruntime', the default) and dynamic
    ('onnxruntime-dynamic'), per batch size."""
    models = model_pair(scale, cfg.imgsz)
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for batch, dynamic in itertools.product(cfg.model_batches, (False, True)):
            kind = "onnxruntime-dynamic" if dynamic else "onnxruntime"
            progress(f"yolov8{scale} {kind}, batch {batch}")
            paths = {role: export_onnx(m, Path(tmp), batch, cfg.imgsz, dynamic) for role, m in models.items()}
            feed = {"images": torch.rand(batch, 3, cfg.imgsz, cfg.imgsz).numpy()}
            runs = {role: functools.partial(session(path, cfg.threads).run, None, feed) for role, path in paths.items()}
            records.append(_compare(cfg, scale, kind, batch, runs, cfg.warmup, settle_s=SETTLE_S))
    return records


def peak_memory(cfg: BenchConfig, scale: str, progress: Progress) -> list[dict]:
    """Peak memory of fused inference at the largest model batch size, and of one training step."""
    progress(f"yolov8{scale} peak memory")
    batch, mib = max(cfg.model_batches), {"inference": {}, "train": {}}
    x = torch.rand(batch, 3, cfg.imgsz, cfg.imgsz)
    for role, model in model_pair(scale, cfg.imgsz).items():
        model = model.fuse(verbose=False)
        with torch.inference_mode():
            model(x)  # first-call allocations (e.g. Detect's anchors) out of the way
            mib["inference"][role] = peak_memory_mib(lambda m=model: m(x))
    for role, model in model_pair(scale).items():
        step = _train_step(model, cfg.train_batch, cfg.imgsz)
        step()  # gradients and optimizer state exist from here on, as in training
        mib["train"][role] = peak_memory_mib(step)
    return [
        {"scale": scale, "kind": kind, "batch": b, "imgsz": cfg.imgsz, "mib": m}
        | {"ratio": round(m["yolov8-cbam"] / m["yolov8"], 4)}
        for (kind, m), b in zip(mib.items(), (batch, cfg.train_batch), strict=True)
    ]


def session(path: str, threads: int):
    """An ONNX Runtime session on CPU with `threads` intra-op threads (and all graph optimisations, the default)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def export_onnx(model: torch.nn.Module, folder: Path, batch: int, imgsz: int, dynamic: bool) -> str:
    """Ultralytics' ``format=onnx`` export (onnxslim-simplified) of a DetectionModel into `folder`, with static
    shapes (`batch`, `imgsz`) or dynamic ones."""
    from ultralytics import YOLO

    yolo = YOLO(model.yaml["yaml_file"])
    yolo.model.load_state_dict(model.state_dict())
    name = f"{Path(model.yaml['yaml_file']).stem}-b{batch}{'-dynamic' * dynamic}"
    yolo.model.pt_path = str(folder / f"{name}.pt")  # the export goes beside it
    return yolo.export(
        format="onnx", imgsz=imgsz, batch=batch, dynamic=dynamic, simplify=True, device="cpu", verbose=False
    )
