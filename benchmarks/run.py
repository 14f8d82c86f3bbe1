"""Run the CBAM benchmarks and write benchmarks/results/<device>-<mode>.json and .md.

Usage (from the repository root; any field of config.BenchConfig as key=value):
    python -m benchmarks.run                      # every part with few samples (mode=short)
    python -m benchmarks.run mode=full            # everything, more samples
    python -m benchmarks.run parts=module scales=n rounds=9 threads=2
    python -m benchmarks.run parts=variants model_batches=1 name=variants
"""

from __future__ import annotations

import time

import torch
from ultralytics.utils import LOGGER

from benchmarks import model_bench, module_bench, report
from benchmarks.config import FIELDS, BenchConfig, build_config, options

# (part, results key, measurement, keyword arguments), in the order they run for each device and scale
MODEL_PARTS = (
    ("model", "model", model_bench.inference, {}),
    ("compiled", "model", model_bench.inference, {"compiled": True}),
    ("onnx", "model", model_bench.onnx_inference, {}),
    ("train", "model", model_bench.train_step, {}),
    ("compiled", "model", model_bench.train_step, {"compiled": True}),
    ("memory", "memory", model_bench.peak_memory, {}),
)


def run(cfg: BenchConfig) -> dict:
    """Run the configured parts on every device; save and return the results."""
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()

    def progress(text: str) -> None:
        LOGGER.info(f"[{time.perf_counter() - start:6.0f}s] {text}")

    settings = {k: v for k, v in vars(cfg).items() if k != "save_dir"}
    meta = {"mode": cfg.mode, "threads": cfg.threads, "devices": list(cfg.devices), "date": report.stamp()}
    results: dict = {"meta": {**meta, "machine": report.machine(), "settings": settings}}
    if "size" in cfg.parts:
        progress("parameters and GFLOPs")
        results["size"] = [model_bench.model_size(scale, cfg.imgsz) for scale in cfg.model_scales]
    for device in cfg.devices:
        if "module" in cfg.parts:
            results.setdefault("module", []).extend(module_bench.module_level(cfg, device, progress))
        for scale in cfg.model_scales:
            for part, key, measure, kwargs in MODEL_PARTS:
                if part in cfg.parts:
                    results.setdefault(key, []).extend(measure(cfg, device, scale, progress, **kwargs))
    if "variants" in cfg.parts:
        results["variants"] = module_bench.forward_variants_level(cfg, progress)
    results["targets"] = report.evaluate_targets(results)
    results["meta"]["seconds"] = round(time.perf_counter() - start)
    json_path, md_path = report.save(results, cfg.save_dir, cfg.name)
    counts = ", ".join(f"{n} {name}" for name, n in report.count_outcomes(results["targets"]).items())
    progress(f"speed targets: {counts}; results in {json_path} and {md_path.name}")
    return results


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmarks that the key=value arguments configure."""
    try:
        cfg = build_config(options(argv, FIELDS, "benchmarks.run"))
    except ValueError as e:
        raise SystemExit(f"benchmarks.run: {e}") from None
    return run(cfg)


if __name__ == "__main__":
    main()
