"""Run the CBAM benchmarks; write benchmarks/results/cpu-<mode>.json and .md (or `name=`'s).

Usage (from the repository root; any field of config.BenchConfig as key=value):
    python -m benchmarks.run                      # every part with few samples (mode=short)
    python -m benchmarks.run mode=full            # everything, more samples
    python -m benchmarks.run parts=module scales=n rounds=9 threads=2
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

import torch
from ultralytics.utils import LOGGER

from benchmarks import model_bench, module_bench, report
from benchmarks.config import FIELDS, build_config, options, refusing

MODEL_PARTS = (  # (part, results key, measurement, keyword arguments), in the order they run for each scale
    ("model", "model", model_bench.inference, {}),
    ("compiled", "model", model_bench.inference, {"compiled": True}),
    ("onnx", "model", model_bench.onnx_inference, {}),
    ("train", "model", model_bench.train_step, {}),
    ("compiled", "model", model_bench.train_step, {"compiled": True}),
    ("memory", "memory", model_bench.peak_memory, {}),
)


def main(argv: list[str] | None = None) -> dict:
    """Run the parts that the key=value arguments choose; save and return the results."""
    with refusing("benchmarks.run"):
        cfg = build_config(options(argv, FIELDS, "benchmarks.run"))
    torch.set_num_threads(cfg.threads)
    start = time.perf_counter()

    def progress(text: str) -> None:
        LOGGER.info(f"[{time.perf_counter() - start:6.0f}s] {text}")

    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    settings = {k: v for k, v in vars(cfg).items() if k != "save_dir"}
    results: dict = {"meta": {"mode": cfg.mode, "threads": cfg.threads, "date": date, "machine": report.machine()}}
    results["meta"]["settings"] = settings
    if "module" in cfg.parts:
        results["module"] = module_bench.module_level(cfg, progress)
    for scale in cfg.model_scales:
        for part, key, measure, kwargs in MODEL_PARTS:
            if part in cfg.parts:
                results.setdefault(key, []).extend(measure(cfg, scale, progress, **kwargs))
    if "variants" in cfg.parts:
        results["variants"] = module_bench.forward_variants_level(cfg, progress)
    results["targets"] = report.evaluate_targets(results)
    results["meta"]["seconds"] = round(time.perf_counter() - start)
    path = report.save(results, cfg.save_dir, cfg.name)
    counts = {o: [t["outcome"] for t in results["targets"]].count(o) for o in report.OUTCOMES}
    progress(f"speed targets: {counts}; results in {path} and {path.with_suffix('.md').name}")
    return results


if __name__ == "__main__":
    main()
