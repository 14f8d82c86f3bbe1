"""Time the README's quick-start command (stock ``yolo train``, fresh process, offline, fresh settings, datasets and
runs folders, pinned to `cpus` cores on Linux) and report the mAP50 it reaches. The run's record (timings, machine,
mAP50, versions) is saved to `results` (benchmarks/results/quickstart.json, committed); the ``quickstart`` block of
`readme` is rendered from it. Run it on an otherwise idle machine: the wall time is what it measures.

Usage (from the repository root):
    python -m benchmarks.quickstart readme=README.md  # epochs=10 imgsz=128
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ultralytics.utils.torch_utils import get_cpu_info

from benchmarks.config import RESULTS_DIR, options, refusing
from benchmarks.readme_tables import checked, markdown_table, save_json, versions, write_rendered

COMMAND = "yolo train model=yolov8n-cbam.yaml data=cbam-shapes.yaml epochs={epochs} imgsz={imgsz}"
DEFAULTS = {"epochs": 10, "imgsz": 128, "cpus": 2, "readme": None}  # cpus=0: no pinning
DEFAULTS["results"] = RESULTS_DIR / "quickstart.json"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(epochs: int, imgsz: int, cpus: int) -> dict:
    """Run the quick-start command once in a sandbox; returns timing and accuracy figures."""
    sandbox = Path(tempfile.mkdtemp(prefix="cbam-quickstart-"))
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(sandbox / "config")}
    yolo = str(Path(sys.executable).with_name("yolo"))
    settings = [f"datasets_dir={sandbox / 'datasets'}", f"runs_dir={sandbox / 'runs'}", "sync=False"]
    subprocess.run([yolo, "settings", *settings], env=env, check=True, capture_output=True)

    command = COMMAND.format(epochs=epochs, imgsz=imgsz).split()[1:]
    pin = ["taskset", "-c", f"0-{cpus - 1}"] if cpus and shutil.which("taskset") else []
    load_before = os.getloadavg()[0]
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    done = subprocess.run([*pin, yolo, *command], cwd=sandbox, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - cpu0
    load_after = os.getloadavg()[0]
    (sandbox / "train.log").write_text(done.stdout + done.stderr)
    if done.returncode:
        raise SystemExit(f"quick-start command failed (log: {sandbox / 'train.log'}):\n{done.stderr[-3000:]}")

    best = next((sandbox / "runs" / "detect").glob("*/weights/best.pt"))
    code = (
        "from ultralytics import YOLO;"
        f"m = YOLO({str(best)!r}).val(data='cbam-shapes.yaml', imgsz={imgsz}, batch=16, plots=False, verbose=False,"
        f" project={str(sandbox / 'val')!r});"
        "print('MAP50', m.box.map50)"
    )
    val = subprocess.run([sys.executable, "-c", code], cwd=sandbox, env=env, capture_output=True, text=True, check=True)
    map50 = float(next(line.split()[1] for line in val.stdout.splitlines() if line.startswith("MAP50")))
    shutil.rmtree(sandbox, ignore_errors=True)
    times = {"wall_s": wall, "cpu_s": cpu, "load_before": load_before, "load_after": load_after}
    machine = {"cpu": get_cpu_info(), "cores": cpus or os.cpu_count()}
    return {"command": " ".join(["yolo", *command]), "cpus": cpus, **machine, **times, "map50": map50}


def block(records: dict) -> str:
    """The README block, from the records alone."""
    r = records["run"]
    header = ["command", "machine", "wall time", "CPU time", "load avg before/after", "mAP50 (best.pt, val)"]
    times = [f"{r['wall_s']:.0f} s", f"{r['cpu_s']:.0f} s", f"{r['load_before']:.1f} / {r['load_after']:.1f}"]
    return "\n".join(
        markdown_table(header, [[f"`{r['command']}`", f"{r['cpu']}, {r['cores']} cores", *times, f"{r['map50']:.3f}"]])
    )


def main(argv: list[str] | None = None) -> str:
    """Run the quick-start command, save its record and write the table from it; key=value arguments as DEFAULTS
    names them."""
    with refusing("benchmarks.quickstart"):
        args = DEFAULTS | options(argv, DEFAULTS, "benchmarks.quickstart", ("readme",), ("epochs", "imgsz"))
        readme = checked(args["readme"], "quickstart")
    save_json(args["results"], {"run": run(args["epochs"], args["imgsz"], args["cpus"]), "versions": versions()})
    text = write_rendered(readme, "quickstart", block, args["results"])
    print(text)
    return text


if __name__ == "__main__":
    main()
