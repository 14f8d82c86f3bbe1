"""Time the README's quick-start command and report the mAP50 it reaches.

Runs ``yolo train model=yolov8n-cbam.yaml data=cbam-shapes.yaml epochs=E imgsz=S`` with the stock ``yolo`` command
in a fresh process, offline, with fresh Ultralytics settings, datasets and runs folders, so the time includes
generating cbam-shapes on first use. On Linux the run is pinned to `--cpus` cores to stand for a small machine.
Prints a Markdown table: the machine, wall time, CPU time of the run, the load average of the machine before and
after (other processes share the CPU), and box mAP50 of best.pt on the val split. With ``--readme`` it also writes the
table into the README's ``<!-- quickstart:start -->`` block.

Usage:
    python benchmarks/quickstart.py --epochs 10 --imgsz 128 --readme README.md
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.readme_tables import check_block, write_block
from benchmarks.report import cpu_name

COMMAND = "yolo train model=yolov8n-cbam.yaml data=cbam-shapes.yaml epochs={epochs} imgsz={imgsz}"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(epochs: int, imgsz: int, cpus: int, extra: list[str], keep: Path | None) -> dict:
    """Run the quick-start command once in a sandbox; returns timing and accuracy figures."""
    sandbox = Path(tempfile.mkdtemp(prefix="cbam-quickstart-")) if keep is None else keep.resolve()
    sandbox.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_CONFIG_DIR": str(sandbox / "config")}
    yolo = str(Path(sys.executable).with_name("yolo"))
    settings = [f"datasets_dir={sandbox / 'datasets'}", f"runs_dir={sandbox / 'runs'}", "sync=False"]
    subprocess.run([yolo, "settings", *settings], env=env, check=True, capture_output=True)

    command = COMMAND.format(epochs=epochs, imgsz=imgsz).split()[1:] + extra
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
    return {
        "command": " ".join(["yolo", *command]),
        "cpus": cpus,
        "wall_s": wall,
        "cpu_s": cpu,
        "load_before": load_before,
        "load_after": load_after,
        "map50": map50,
    }


def table(r: dict) -> str:
    """The Markdown table of one run of `run`."""
    cores = r["cpus"] or os.cpu_count()
    return "\n".join(
        [
            "| command | machine | wall time | CPU time | load avg before/after | mAP50 (best.pt, val) |",
            "| --- | --- | --- | --- | --- | --- |",
            f"| `{r['command']}` | {cpu_name()}, {cores} cores | {r['wall_s']:.0f} s | {r['cpu_s']:.0f} s "
            f"| {r['load_before']:.1f} / {r['load_after']:.1f} | {r['map50']:.3f} |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--cpus", type=int, default=2, help="cores to pin the run to (0: no pinning)")
    parser.add_argument("--keep", type=Path, help="sandbox folder to use and keep (default: a new temp dir)")
    parser.add_argument("--readme", type=Path, help="README whose quickstart block receives the table")
    parser.add_argument("extra", nargs="*", help="further key=value arguments for 'yolo train'")
    args = parser.parse_args()
    if args.readme is not None:
        check_block(args.readme, "quickstart")  # before the run, not after it
    text = table(run(args.epochs, args.imgsz, args.cpus, args.extra, args.keep))
    print(text)
    if args.readme is not None:
        write_block(args.readme, "quickstart", text)


if __name__ == "__main__":
    main()
