"""Speed targets, the machine, and the JSON and Markdown of a benchmark run."""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path

import numpy as np
from ultralytics.utils.torch_utils import get_cpu_info

from benchmarks.module_bench import MLP_FORMS, POOLS, REFERENCE_FORWARD
from benchmarks.readme_tables import markdown_table, versions

# Limits of the ratios ours / theirs, on CPU. Module level: against timm's CbamModule at every shape. Model level,
# yolov8n-cbam / yolov8n: eager by batch size, the other kinds at every batch size.
MODULE_LIMIT = 1.0
EAGER_LIMITS = {1: 1.05, 8: 1.03}
KIND_LIMITS = {"train": 1.07, "onnxruntime": 1.08, "compiled": 1.03, "train-compiled": 1.03}
OUTCOMES = ("met", "within noise", "missed")
LEGEND = (
    "Met: the ratio is at most the limit. Within noise: the ratio is above the limit, but the limit lies inside the"
    " ratio's 95 % interval (another run may well come out on the other side). Missed: the whole interval lies above"
    " the limit. Module-level targets are listed only where not met."
)
READING = (
    " Times are medians of interleaved samples; a ratio is ours / theirs (lower is better), the median over rounds of"
    " the two samples taken back to back. Other load on the machine only adds time, so the ratio of the fastest"
    " samples is shown too."
)
MODEL_KINDS = {
    "eager": "eager PyTorch (fused)",
    "compiled": "torch.compile, Inductor (fused)",
    "onnxruntime": "ONNX Runtime",
    "onnxruntime-dynamic": "ONNX Runtime, dynamic export",
    "train": "training step",
    "train-compiled": "training step, forward compiled",
}


def outcome(ratio: float, interval: list[float] | None, limit: float) -> str:
    """'met' (the ratio at most the limit), 'within noise' (above it, the limit inside the interval) or 'missed'."""
    if ratio <= limit:
        return "met"
    return "within noise" if interval and interval[0] <= limit <= interval[1] else "missed"


def evaluate_targets(results: dict) -> list[dict]:
    """Every speed target that the run measured: its ratio, interval, limit and outcome."""
    found = []
    for r in results.get("module", []):
        if "timm" in r["ratios"]:
            name = f"module {r['layer']} yolov8{r['scale']} {_size(r['shape'])} {r['pass']}: ours / timm"
            found.append((name, r["ratios"]["timm"], r["ratio_intervals"]["timm"], MODULE_LIMIT))
    for r in results.get("model", []):
        limit = EAGER_LIMITS.get(r["batch"]) if r["kind"] == "eager" else KIND_LIMITS.get(r["kind"])
        if limit and r["scale"] == "n":
            found.append(
                (f"yolov8n-cbam / yolov8n {r['kind']} batch {r['batch']}", r["ratio"], r["ratio_interval"], limit)
            )
    keys = ("target", "ratio", "interval", "limit")
    return [dict(zip(keys, t, strict=True), outcome=outcome(*t[1:])) for t in found]


def machine() -> dict:
    """What the numbers were measured on (Ultralytics' CPU name; the versions of the release imported)."""
    caches = [
        f"L{(index / 'level').read_text().strip()} {(index / 'size').read_text().strip()}"
        for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"))
        if (index / "level").read_text().strip() in {"2", "3"}
    ]
    info = {"cpu": get_cpu_info(), "cpu_caches": ", ".join(caches), "logical_cpus": os.cpu_count()}
    info["platform"] = platform.platform()
    return info | dict.fromkeys(("onnxruntime", "timm"), "not installed") | versions("onnxruntime", "timm")


def save(results: dict, folder: Path, name: str) -> Path:
    """Write `<name>.json` and `<name>.md` into `folder`; return the JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.md").write_text(markdown(results))
    (folder / f"{name}.json").write_text(to_json(results))
    return folder / f"{name}.json"


def to_json(results: dict) -> str:
    """`results` as indented JSON, each list of raw samples on one line."""
    text = json.dumps(results, indent=1)
    return re.sub(r'("samples_ms": )\[([^\]]*)\]', lambda m: m[1] + json.dumps(json.loads(f"[{m[2]}]")), text) + "\n"


def rewrite(path: Path) -> None:
    """Evaluate the targets of a saved run again, and rewrite its JSON and Markdown."""
    results = json.loads(path.read_text())
    save(results | {"targets": evaluate_targets(results)}, path.parent, path.stem)


def markdown(results: dict) -> str:
    """Every table of a run, as Markdown."""
    lines = [f"# CBAM benchmark ({results['meta']['mode']} mode)", "", machine_line(results), ""]
    lines += _targets(results["targets"]) + _model(results.get("model", [])) + _memory(results.get("memory", []))
    lines += _module(results.get("module", [])) + _module_summary(results.get("module", []))
    lines += _variants(results.get("variants", []))
    return "\n".join(lines) + "\n"


def summary(results: dict, *elsewhere: dict) -> str:
    """The machine line, speed targets, model-level table and module-level summary of `results`, then the speed
    targets and machine of each run in `elsewhere` (other machines); headings at level 4, for benchmarks/README.md.

    Raises:
        ValueError: A run without speed targets or model-level records.
    """
    if not all(run.get("targets") and run.get("model") for run in (results, *elsewhere)):
        raise ValueError("results have no speed targets or no model-level records")
    cpu = results["meta"]["machine"]["cpu"] if elsewhere else None  # several machines: each named in its heading
    lines = [machine_line(results), "", *_targets(results["targets"], cpu)]
    lines += _model(results["model"]) + _module_summary(results.get("module", []))
    for run in elsewhere:
        lines += _targets(run["targets"], run["meta"]["machine"]["cpu"], legend=False)
        lines += [f"Measured on {machine_line(run, reading=False)}", ""]
    return "\n".join(f"##{line}" if line.startswith("## ") else line for line in lines).strip()


def machine_line(results: dict, reading: bool = True) -> str:
    """Machine, versions and date; unless `reading` is False, how to read the times."""
    meta, m = results["meta"], results["meta"]["machine"]
    caches = f" ({m['cpu_caches']})" if m.get("cpu_caches") else ""
    line = f"{m['cpu']}{caches}, {m['logical_cpus']} logical CPUs, torch threads: {meta['threads']}; torch {m['torch']}"
    line += f", ultralytics {m['ultralytics']}, onnxruntime {m['onnxruntime']}, timm {m['timm']}; {meta['date']}."
    return line + READING * reading


def _table(title: str, header: str, rows: list[str], *notes: str) -> list[str]:
    """A level-2 section: the notes, then the table (header and rows: cells joined by ' | '); nothing without rows."""
    if not rows:
        return []
    lines = [f"## {title}", "", *(line for note in notes for line in (note, ""))]
    return [*lines, *markdown_table(header.split(" | "), [row.split(" | ") for row in rows]), ""]


def _size(shape: list[int]) -> str:
    return "x".join(map(str, shape))


def _ms(t: dict) -> str:
    return f"{t['median_ms']:.3g}" if t["median_ms"] < 100 else f"{t['median_ms']:.0f}"


def _interval(interval: list[float] | None) -> str:
    return f"{interval[0]:.3f} – {interval[1]:.3f}" if interval else "–"


def _targets(targets: list[dict], cpu: str | None = None, legend: bool = True) -> list[str]:
    """The outcomes of the speed targets; module-level ones only where not met."""
    if not targets:
        return []
    found = [outcome(t["ratio"], t.get("interval"), t["limit"]) for t in targets]  # also where saved without outcome
    counts = ", ".join(f"{found.count(name)} {name}" for name in OUTCOMES)
    title = f"Speed targets ({f'CPU: {cpu}' if cpu else 'CPU'}): {counts} (of {len(targets)})"
    shown = [(t, o) for t, o in zip(targets, found, strict=True) if not t["target"].startswith("module") or o != "met"]
    shown.sort(key=lambda pair: pair[0]["target"].startswith("module"))  # model level first
    rows = [
        f"{t['target']} | {t['ratio']:.3f} | {_interval(t.get('interval'))} | ≤ {t['limit']} | "
        + (f"**{o}**" if o == "missed" else o)
        for t, o in shown
    ]
    header = "target | ratio | 95 % interval | limit | outcome"
    return _table(title, header, rows, *[LEGEND] * legend) or [f"## {title}", ""]


def _model(records: list[dict]) -> list[str]:
    rows = [
        f"yolov8{r['scale']} | {MODEL_KINDS[r['kind']]} | {r['batch']}x{r['imgsz']} | {_ms(r['times']['yolov8'])} | "
        f"{_ms(r['times']['yolov8-cbam'])} | {r['ratio']:.3f} | {_interval(r.get('ratio_interval'))} | "
        f"{r['ratio_of_minima']:.3f}"
        for r in records
    ]
    header = "model | measurement | batch x imgsz | yolov8 ms | yolov8-cbam ms | ratio | 95 % interval"
    return _table("Model level", f"{header} | ratio of minima", rows)


def _memory(records: list[dict]) -> list[str]:
    rows = [
        f"yolov8{r['scale']} | {r['kind']} | {r['batch']}x{r['imgsz']} | {r['mib']['yolov8']:.0f} | "
        f"{r['mib']['yolov8-cbam']:.0f} | {r['ratio']:.3f}"
        for r in records
    ]
    header = "model | pass | batch x imgsz | yolov8 MiB | yolov8-cbam MiB | ratio"
    return _table("Peak memory allocated by PyTorch during one call", header, rows)


def _module(records: list[dict]) -> list[str]:
    names = list(records[0]["times"]) if records else []  # ours first
    rows = [
        f"yolov8{r['scale']} {r['layer']} | {_size(r['shape'])} | {r['pass']} | "
        + " | ".join([*(_ms(r["times"][n]) for n in names), *(f"{r['ratios'][n]:.2f}" for n in names[1:])])
        for r in records
    ]
    header = " | ".join(["layer | input | pass", *(f"{n} ms" for n in names), *(f"ours / {n}" for n in names[1:])])
    return _table("Module level", header, rows)


def _module_summary(records: list[dict]) -> list[str]:
    """The range of each module-level ratio over all cases, and at the largest batch size."""
    largest = max((r["batch"] for r in records), default=0)
    rows = []
    for name in records[0]["ratios"] if records else []:
        ratios = [(r["ratios"][name], r["batch"]) for r in records]
        spans = ([v for v, _ in ratios], [v for v, batch in ratios if batch == largest])
        rows.append(f"ours / {name} | " + " | ".join(f"{min(v):.2f} – {max(v):.2f}" for v in spans))
    return _table("Module level, summary", f"comparison | ratio, {len(records)} cases | at batch {largest}", rows)


def fastest(records: list[dict]) -> tuple[str, dict[str, float]]:
    """The forward variant with the lowest geometric mean of its ratios to REFERENCE_FORWARD over all cases, and every
    variant's geometric mean."""
    means = {
        name: float(np.exp(np.mean([np.log(r["ratios"][name]) for r in records]))) for name in records[0]["ratios"]
    }
    return min(means, key=means.get), means


def _variants(records: list[dict]) -> list[str]:
    """Each forward variant's time per case, the geometric mean of its ratios to the reference, and the fastest."""
    if not records:
        return []
    names, (best, means) = list(records[0]["times"]), fastest(records)
    rows = [" | ".join([_size(r["shape"]), *(_ms(r["times"][name]) for name in names)]) for r in records]
    rows.append(" | ".join([f"geometric mean of ratios to {REFERENCE_FORWARD}", *(f"{means[n]:.3f}" for n in names)]))
    worst = max(max(r["max_abs_diff"].values()) for r in records)
    about = (
        "Equivalent ways to write CBAM's forward, each exported as Ultralytics' `format=onnx` does (TorchScript"
        " exporter, static shapes, onnxslim) and timed interleaved; times in ms (medians). Spatial descriptors: mean"
        f" and amax over channels in all. Largest difference of any output from PyTorch's: {worst:.1e}."
    )
    legend = [f"- MLP `{k}`: {v}" for k, v in MLP_FORMS.items()] + [f"- pooling `{k}`: {v}" for k, v in POOLS.items()]
    header = " | ".join(["input", *(f"`{n}`" for n in names)])
    best_line = f"Fastest overall: `{best}` (geometric mean of its ratios to `{REFERENCE_FORWARD}`: {means[best]:.3f})."
    return [*_table("CBAM forward variants in ONNX Runtime", header, rows, about, "\n".join(legend)), best_line, ""]
