"""Run the CBAM benchmarks and write benchmarks/results/<device>-<mode>.json and .md.

Usage (from the repository root):
    python benchmarks/run.py --short              # every part with few samples
    python benchmarks/run.py mode=full            # everything, more samples
    python benchmarks/run.py parts=module scales=n rounds=9 threads=2
    python benchmarks/run.py parts=variants model_batches=1 name=variants
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

os.environ.setdefault("YOLO_OFFLINE", "1")  # benchmarks must not try to download anything
os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the memory profiler's GPU probe errors are noise on CPU machines


def parse_args(argv: list[str]) -> dict:
    """'--short', '--full' and key=value pairs (Ultralytics-style values) into a dict of overrides."""
    from ultralytics.cfg import smart_value

    overrides: dict = {}
    for arg in argv:
        if arg in {"--short", "--full"}:
            overrides["mode"] = arg[2:]
            continue
        key, sep, value = arg.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SystemExit(f"benchmarks/run.py: argument '{arg}' is neither --short, --full nor key=value")
        overrides[key.strip().lstrip("-")] = smart_value(value.strip())
    return overrides


def run(overrides: dict) -> dict:
    """Run the configured parts on every device; save and return the results."""
    import torch
    from ultralytics.utils import LOGGER

    from benchmarks import model_bench, module_bench, report, variants_bench
    from benchmarks.config import build_config

    cfg = build_config(overrides)
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()

    def progress(text: str) -> None:
        LOGGER.info(f"[{time.perf_counter() - start:6.0f}s] {text}")

    results: dict = {
        "meta": {
            "mode": cfg.mode,
            "threads": cfg.threads,
            "devices": list(cfg.devices),
            "date": report.stamp(),
            "machine": report.machine(),
            "settings": {k: _jsonable(v) for k, v in vars(cfg).items() if k != "save_dir"},
        }
    }
    if "size" in cfg.parts:
        progress("parameters and GFLOPs")
        results["size"] = [model_bench.model_size(scale, cfg.imgsz) for scale in cfg.model_scales]
    for device in cfg.devices:
        if "module" in cfg.parts:
            results.setdefault("module", []).extend(module_bench.run_module_benchmarks(cfg, device, progress))
        for scale in cfg.model_scales:
            if "model" in cfg.parts:
                results.setdefault("model", []).extend(model_bench.eager_inference(cfg, device, scale, progress))
            if "compiled" in cfg.parts:
                results.setdefault("model", []).extend(model_bench.compiled_inference(cfg, device, scale, progress))
            if "onnx" in cfg.parts:
                with _quiet(LOGGER):
                    results.setdefault("model", []).extend(model_bench.onnx_inference(cfg, device, scale, progress))
            if "train" in cfg.parts:
                results.setdefault("model", []).extend(model_bench.train_step(cfg, device, scale, progress))
            if "compiled" in cfg.parts:
                results.setdefault("model", []).extend(model_bench.train_step(cfg, device, scale, progress, True))
            if "memory" in cfg.parts:
                results.setdefault("memory", []).extend(model_bench.peak_memory(cfg, device, scale, progress))
    if "variants" in cfg.parts:
        results["variants"] = variants_bench.run_variant_benchmarks(cfg, progress)
    results["targets"] = report.evaluate_targets(results)
    results["meta"]["seconds"] = round(time.perf_counter() - start)
    json_path, md_path = report.save(results, cfg.save_dir, cfg.name)
    counts = ", ".join(f"{n} {name}" for name, n in report.count_outcomes(results["targets"]).items())
    progress(f"speed targets: {counts}; results in {json_path} and {md_path.name}")
    return results


class _quiet:
    """Raise a logger's level for a block (Ultralytics' exporter is chatty)."""

    def __init__(self, logger, level: int = 30) -> None:
        self.logger, self.level = logger, level

    def __enter__(self):
        self.previous = self.logger.level
        self.logger.setLevel(max(self.level, self.previous))

    def __exit__(self, *exc) -> None:
        self.logger.setLevel(self.previous)


def _jsonable(value):
    return list(value) if isinstance(value, tuple) else value


def main(argv: list[str] | None = None) -> dict:
    return run(parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
