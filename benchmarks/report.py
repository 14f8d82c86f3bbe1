"""Speed targets, machine description, and the JSON and Markdown outputs of a benchmark run."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import torch

from benchmarks.cbam_variants import MLP_FORMS, POOLS, REFERENCE_FORWARD

# Targets on CPU: limits of ratios ours / theirs (lower is better). Module level: against timm's CbamModule at every
# shape. Model level, yolov8n-cbam / yolov8n: eager by batch size, the other kinds at every batch size.
MODULE_LIMITS = {"timm": 1.0}
EAGER_LIMITS = {1: 1.05, 8: 1.03}
KIND_LIMITS = {"train": 1.07, "onnxruntime": 1.08, "compiled": 1.03, "train-compiled": 1.03}
TARGET_SCALE = "n"
# A target's outcome: the ratio at most the limit; above it, with the limit inside the ratio's 95 % interval (another
# run may well come out on the other side); or the whole interval above the limit.
MET, WITHIN_NOISE, MISSED = "met", "within noise", "missed"
OUTCOMES = (MET, WITHIN_NOISE, MISSED)


def evaluate_targets(results: dict) -> list[dict]:
    """Every speed target that this run measured, with the measured ratio, its interval and the outcome."""
    targets = []
    for r in results.get("module", []):
        if r["device"] != "cpu":
            continue
        case = f"module {r['layer']} yolov8{r['scale']} {'x'.join(map(str, r['shape']))} {r['pass']}"
        intervals = r.get("ratio_intervals", {})
        for other, limit in MODULE_LIMITS.items():
            if other in r["ratios"]:
                targets.append(_target(f"{case}: ours / {other}", r["ratios"][other], limit, intervals.get(other)))
    for r in results.get("model", []):
        if r["device"] != "cpu" or r["scale"] != TARGET_SCALE:
            continue
        limit = EAGER_LIMITS.get(r["batch"]) if r["kind"] == "eager" else KIND_LIMITS.get(r["kind"])
        if limit is not None:
            name = f"yolov8{r['scale']}-cbam / yolov8{r['scale']} {r['kind']} batch {r['batch']}"
            targets.append(_target(name, r["ratio"], limit, r.get("ratio_interval")))
    return targets


def outcome(ratio: float, limit: float, interval: list[float] | None = None) -> str:
    """MET where the ratio is at most the limit, WITHIN_NOISE where it is above the limit but the limit lies inside
    the ratio's 95 % interval, MISSED where the whole interval (without one, the ratio) lies above the limit."""
    if ratio <= limit:
        return MET
    if interval is not None and interval[0] <= limit <= interval[1]:
        return WITHIN_NOISE
    return MISSED


def count_outcomes(targets: list[dict]) -> dict[str, int]:
    """How many targets have each outcome, in the order of OUTCOMES."""
    found = [_outcome(t) for t in targets]
    return {name: found.count(name) for name in OUTCOMES}


def _target(name: str, ratio: float, limit: float, interval: list[float] | None = None) -> dict:
    """A target's record: the measured ratio, its 95 % interval, the limit and the outcome."""
    return dict(target=name, ratio=ratio, interval=interval, limit=limit, outcome=outcome(ratio, limit, interval))


def machine() -> dict:
    """What the numbers were measured on."""
    info = {
        "cpu": cpu_name(),
        "cpu_caches": _cpu_caches(),
        "logical_cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        **{name: _version(name) for name in ("ultralytics", "onnxruntime", "timm")},
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _version(package: str) -> str:
    """The installed version of `package`, or 'not installed'; of Ultralytics, the release imported (which may be an
    older one laid over the environment)."""
    import ultralytics

    try:
        return ultralytics.__version__ if package == "ultralytics" else version(package)
    except PackageNotFoundError:
        return "not installed"


def _cpu_caches() -> str:
    """Sizes of the first CPU's L2 and L3 caches, e.g. 'L2 1024K, L3 32768K' (empty where not readable)."""
    found = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        with contextlib.suppress(OSError):
            level, size = ((index / name).read_text().strip() for name in ("level", "size"))
            found += [f"L{level} {size}"] if level in {"2", "3"} else []
    return ", ".join(found)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def save(results: dict, folder: Path, name: str) -> tuple[Path, Path]:
    """Write `<name>.json` and `<name>.md` into `folder`; return both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
    json_path.write_text(to_json(results))
    md_path.write_text(markdown(results))
    return json_path, md_path


def to_json(results: dict) -> str:
    """`results` as indented JSON, each list of raw samples on one line."""
    text = json.dumps(results, indent=1)
    return re.sub(r'("samples_ms": )\[([^\]]*)\]', lambda m: m[1] + json.dumps(json.loads(f"[{m[2]}]")), text) + "\n"


def rewrite(json_path: Path) -> Path:
    """Evaluate the speed targets of a saved results JSON again and rewrite it and its Markdown beside it (after a
    change to the targets or the tables); return the Markdown's path."""
    results = json.loads(json_path.read_text())
    results["targets"] = evaluate_targets(results)
    return save(results, json_path.parent, json_path.stem)[1]


def stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- Markdown --------------------------------------------------------------------------------------------------------


def markdown(results: dict) -> str:
    """All result tables as Markdown."""
    lines = [f"# CBAM benchmark ({results['meta']['mode']} mode)", "", machine_line(results), ""]
    lines += _targets_table(results.get("targets", []))
    lines += _model_table(results.get("model", []))
    lines += _memory_table(results.get("memory", []))
    lines += _size_table(results.get("size", []))
    lines += _module_table(results.get("module", []))
    lines += _module_summary(results.get("module", []))
    lines += _variants_table(results.get("variants", []))
    return "\n".join(lines) + "\n"


def summary(results: dict, *elsewhere: dict) -> str:
    """The machine line, the speed targets, the model-level table, the range of each module-level ratio and the
    forward variants of `results`, then the speed targets of each run in `elsewhere` (the same benchmark on other
    machines) with its machine line; headings at level 4 (for benchmarks/README.md)."""
    for run in (results, *elsewhere):
        if not run.get("targets") or not run.get("model"):
            raise ValueError("results have no speed targets or no model-level records")
    named = bool(elsewhere)  # several machines: name each in its targets heading
    lines = [machine_line(results), "", *_targets_table(results["targets"], _cpu(results) if named else None)]
    lines += _model_table(results["model"]) + _module_summary(results.get("module", []))
    lines += _variants_table(results.get("variants", []))
    for run in elsewhere:
        lines += _targets_table(run["targets"], _cpu(run), legend=False)
        lines += [f"Measured on {machine_line(run, explain=False)}", ""]
    return "\n".join(f"##{line}" if line.startswith("## ") else line for line in lines).strip()


def machine_line(results: dict, explain: bool = True) -> str:
    """Machine, versions and date, and unless `explain` is False, how to read the times."""
    meta = results["meta"]
    m = meta["machine"]
    line = (
        _cpu(results)
        + (f" ({m['cpu_caches']})" if m.get("cpu_caches") else "")
        + f", {m['logical_cpus']} logical CPUs, torch threads: {meta['threads']}"
        + (f", GPU {m['gpu']}" if "gpu" in m else "")
        + f"; torch {m['torch']}, ultralytics {m['ultralytics']}, onnxruntime {m['onnxruntime']}, timm {m['timm']};"
        + f" {meta['date']}."
    )
    if not explain:
        return line
    return line + (
        " Times are medians of interleaved samples; a ratio is ours / theirs (lower is better), the median over rounds"
        " of the two samples taken back to back. Other load on the machine only adds time, so the ratio of the fastest"
        " samples is shown too."
    )


def _cpu(results: dict) -> str:
    return results["meta"]["machine"]["cpu"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(row) + " |" for row in rows] + [""]


def _ms(t: dict) -> str:
    v = t["median_ms"]
    return f"{v:.3g}" if v < 100 else f"{v:.0f}"


def _targets_table(targets: list[dict], cpu: str | None = None, legend: bool = True) -> list[str]:
    if not targets:
        return []
    counts = count_outcomes(targets)
    outcomes = ", ".join(f"{n} {name}" for name, n in counts.items())
    lines = [f"## Speed targets ({f'CPU: {cpu}' if cpu else 'CPU'}): {outcomes} (of {len(targets)})", ""]
    if legend:
        lines += [
            "Met: the ratio is at most the limit. Within noise: the ratio is above the limit, but the limit lies inside"
            " the ratio's 95 % interval (another run may well come out on the other side). Missed: the whole interval"
            " lies above the limit. Module-level targets are listed only where not met.",
            "",
        ]
    shown = [t for t in targets if not t["target"].startswith("module")]
    shown += [t for t in targets if t not in shown and _outcome(t) != MET]
    rows = [
        [t["target"], f"{t['ratio']:.3f}", _interval(t.get("interval")), f"≤ {t['limit']}", _verdict(t)] for t in shown
    ]
    if rows:
        lines += _table(["target", "ratio", "95 % interval", "limit", "outcome"], rows)
    return lines


def _outcome(target: dict) -> str:
    """The outcome of a target, from its ratio, limit and interval (so also for results saved before outcomes)."""
    return outcome(target["ratio"], target["limit"], target.get("interval"))


def _verdict(target: dict) -> str:
    found = _outcome(target)
    return f"**{found}**" if found == MISSED else found


def _interval(interval: list[float] | None) -> str:
    return f"{interval[0]:.3f} – {interval[1]:.3f}" if interval else "–"


MODEL_KINDS = {
    "eager": "eager PyTorch (fused)",
    "compiled": "torch.compile, Inductor (fused)",
    "onnxruntime": "ONNX Runtime",
    "onnxruntime-dynamic": "ONNX Runtime, dynamic export",
    "train": "training step",
    "train-compiled": "training step, forward compiled",
}


def _model_table(records: list[dict]) -> list[str]:
    if not records:
        return []
    rows = []
    for r in records:
        rows.append([f"yolov8{r['scale']}", MODEL_KINDS[r["kind"]], r["device"], f"{r['batch']}x{r['imgsz']}"])
        rows[-1] += [_ms(r["times"]["yolov8"]), _ms(r["times"]["yolov8-cbam"]), f"{r['ratio']:.3f}"]
        rows[-1] += [_interval(r.get("ratio_interval")), f"{r['ratio_of_minima']:.3f}"]
    header = ["model", "measurement", "device", "batch x imgsz", "yolov8 ms", "yolov8-cbam ms", "ratio"]
    return ["## Model level", "", *_table([*header, "95 % interval", "ratio of minima"], rows)]


def _memory_table(records: list[dict]) -> list[str]:
    if not records:
        return []
    rows = [
        [f"yolov8{r['scale']}", r["kind"], r["device"], f"{r['batch']}x{r['imgsz']}"]
        + [f"{r['mib'][k]:.0f}" if r["mib"][k] is not None else "n/a" for k in ("yolov8", "yolov8-cbam")]
        + [f"{r['ratio']:.3f}" if r["ratio"] is not None else "n/a"]
        for r in records
    ]
    header = ["model", "pass", "device", "batch x imgsz", "yolov8 MiB", "yolov8-cbam MiB", "ratio"]
    return ["## Peak memory allocated by PyTorch during one call", "", *_table(header, rows)]


def _size_table(records: list[dict]) -> list[str]:
    if not records:
        return []
    rows = []
    for r in records:
        base, ours = r["yolov8"], r["yolov8-cbam"]
        added = f"{100 * (ours['params'] / base['params'] - 1):+.2f} %"
        rows.append([f"yolov8{r['scale']}", f"{base['params']:,}", f"{ours['params']:,}", added])
        rows[-1] += [f"{base['gflops']:.2f}", f"{ours['gflops']:.2f}"]
    header = ["model", "yolov8 params", "yolov8-cbam params", "added", "yolov8 GFLOPs", "yolov8-cbam GFLOPs"]
    return [f"## Size (GFLOPs at {records[0]['imgsz']})", "", *_table(header, rows)]


def _module_table(records: list[dict]) -> list[str]:
    if not records:
        return []
    others = [k for k in records[0]["times"] if k != "ours"]
    rows = [
        [f"yolov8{r['scale']} {r['layer']}", "x".join(map(str, r["shape"])), r["pass"], r["device"]]
        + [_ms(r["times"][k]) for k in ("ours", *others)]
        + [f"{r['ratios'][k]:.2f}" for k in others]
        for r in records
    ]
    header = ["layer", "input", "pass", "device", *(f"{k} ms" for k in ("ours", *others))]
    return ["## Module level", "", *_table(header + [f"ours / {k}" for k in others], rows)]


def _module_summary(records: list[dict]) -> list[str]:
    """The range of each module-level ratio over all layers, passes and batches, and at the largest batch."""
    if not records:
        return []
    largest = max(r["batch"] for r in records)
    rows = []
    for other in records[0]["ratios"]:
        ratios = [r["ratios"][other] for r in records]
        at_largest = [r["ratios"][other] for r in records if r["batch"] == largest]
        rows.append([f"ours / {other}", _range(ratios), _range(at_largest)])
    header = ["comparison", f"ratio, {len(records)} cases", f"at batch {largest}"]
    return ["## Module level, summary", "", *_table(header, rows)]


def _range(values: list[float]) -> str:
    return f"{min(values):.2f} – {max(values):.2f}"


def _variants_table(records: list[dict]) -> list[str]:
    """Each forward variant's ONNX Runtime time per case, its ratio to the reference, and the fastest overall."""
    if not records:
        return []
    names = list(records[0]["times"])
    rows = [["x".join(map(str, r["shape"])), *(_ms(r["times"][n]) for n in names)] for r in records]
    best, means = fastest(records)
    rows.append([f"geometric mean of ratios to {REFERENCE_FORWARD}", *(f"{means[n]:.3f}" for n in names)])
    worst = max(max(r["max_abs_diff"].values()) for r in records)
    legend = [f"- MLP `{k}`: {v}" for k, v in MLP_FORMS.items()] + [f"- pooling `{k}`: {v}" for k, v in POOLS.items()]
    return [
        "## CBAM forward variants in ONNX Runtime",
        "",
        "Equivalent ways to write CBAM's forward, each exported as Ultralytics' `format=onnx` does (TorchScript"
        " exporter, static shapes, onnxslim) and timed interleaved; times in ms (medians). Spatial descriptors: mean"
        f" and amax over channels in all. Largest difference of any output from PyTorch's: {worst:.1e}.",
        "",
        *legend,
        "",
        *_table(["input", *(f"`{n}`" for n in names)], rows),
        f"Fastest overall: `{best}` (geometric mean of its ratios to `{REFERENCE_FORWARD}`: {means[best]:.3f}).",
        "",
    ]


def fastest(records: list[dict]) -> tuple[str, dict[str, float]]:
    """The forward variant with the lowest geometric mean of its ratios to REFERENCE_FORWARD over all cases, and every
    variant's geometric mean."""
    names = list(records[0]["ratios"])
    means = {name: float(np.exp(np.mean([np.log(r["ratios"][name]) for r in records]))) for name in names}
    return min(means, key=means.get), means
