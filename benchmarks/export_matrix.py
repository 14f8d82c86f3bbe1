"""Try every Ultralytics export format on a CBAM model and on a stock yolov8n, each export in its own process, offline
and with auto-install off; run each export with AutoBackend and compare its output with PyTorch's
(docs/export-formats.md). Compare checkpoints trained alike: an untrained model's output hardly depends on the image.
Each format's outcome per model, with the settings and the versions of the exporter packages found, is saved to
`results` (benchmarks/results/exports.json, committed); the ``exports`` block of `readme` is rendered from it.

Usage (from the repository root):
    python -m benchmarks.export_matrix                  # untrained yolov8n-cbam and yolov8n, imgsz 64
    python -m benchmarks.export_matrix weights=best.pt stock_weights=stock.pt imgsz=128 readme=docs/export-formats.md
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.config import RESULTS_DIR, listed, options, refusing
from benchmarks.readme_tables import checked, markdown_table, measure_and_write, versions

ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = {
    "weights": None,  # CBAM checkpoint; default an untrained yolov8n-cbam
    "stock_weights": None,  # stock checkpoint to compare; default an untrained yolov8n
    "imgsz": 64,
    "image": None,  # image to run; default a cbam-shapes scene
    "data": "cbam-shapes.yaml",  # calibration data of the formats that take it
    "formats": None,  # the format arguments to try, e.g. 'onnx,openvino'; default all
    "timeout": 600,  # seconds per export
    "logs": None,  # folder for each export's full log
    "readme": None,  # file whose <!-- exports:start --> block receives the table
    "results": RESULTS_DIR / "exports.json",
}
MISSING = re.compile(r"requirements? (\[.*?\]) not found, AutoUpdate disabled")
EXPORTERS = ("onnx", "onnxruntime", "onnxslim", "openvino", "coremltools", "tensorrt", "tensorflow", "onnx2tf")
EXPORTERS += ("ai-edge-litert", "litert-torch", "paddlepaddle", "x2paddle", "MNN", "ncnn", "pnnx", "executorch")
EXPORTERS += ("coreai-torch", "amd-quark", "dx-com")  # the distributions whose versions the results record
STATUS = {
    "runs": "✅ exports and runs; max abs diff vs PyTorch {max_abs_diff:.1e}",
    "exports": "⚠️ exports; running it here failed ({reason})",
    "not installed": "➖ not installed here: needs {needs}",
    "needs GPU": "➖ needs an NVIDIA GPU ({reason})",
    "failed": "❌ export failed: {reason}",
}


def _image(imgsz: int, path: Path | None):
    """A real photograph (or a cbam-shapes scene) as a (1, 3, imgsz, imgsz) RGB float tensor."""
    import cv2
    import numpy as np
    import torch

    if path is not None:
        bgr = cv2.imread(str(path))
    else:
        from ultralytics_cbam.cbam_shapes import scene

        bgr = scene(0, "val", 0)[0]
    rgb = cv2.resize(bgr, (imgsz, imgsz))[..., ::-1].transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(rgb))[None].float() / 255


def _first(y):
    y = y[0] if isinstance(y, (list, tuple)) else y
    return y if not isinstance(y, (list, tuple)) else _first(y)


def _onnx2tf_calibration_file() -> None:
    """Write the calibration sample that Ultralytics' TensorFlow export otherwise downloads, from cbam-shapes scenes."""
    import cv2
    import numpy as np

    from ultralytics_cbam.cbam_shapes import scene

    path = Path("calibration_image_sample_data_20x128x128x3_float32.npy")
    if not path.exists():
        images = [cv2.resize(scene(0, "val", i)[0], (128, 128))[..., ::-1] for i in range(20)]
        np.save(path, (np.stack(images) / 255).astype(np.float32))


def try_format(fmt: str, weights: Path, imgsz: int, image: Path | None, data: str | None, out: Path) -> None:
    """Export `weights` to `fmt`, run the result and compare it with PyTorch; writes what it got to `out` as JSON.

    Runs inside a worker process. `out` is rewritten after each step, so a later failure keeps what succeeded.
    """
    import numpy as np
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.autobackend import AutoBackend

    x = _image(imgsz, image)
    with torch.no_grad():
        reference = _first(YOLO(weights).model.fuse().float().eval()(x)).numpy()
    _onnx2tf_calibration_file()
    t = time.perf_counter()
    exported = YOLO(weights).export(format=fmt, imgsz=imgsz, device="cpu", **({"data": data} if data else {}))
    result = {"exported": str(exported), "export_s": round(time.perf_counter() - t, 1)}
    out.write_text(json.dumps(result))
    backend = AutoBackend(exported, device=torch.device("cpu"), fp16=False)
    with torch.no_grad():
        y = _first(backend(x))
    y = y.cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if y.shape != reference.shape:
        result["error"] = f"output shape {y.shape}, PyTorch {reference.shape}"
    else:
        result["max_abs_diff"] = float(np.abs(y - reference).max())
    out.write_text(json.dumps(result))


def _worker(args: dict) -> None:
    out = Path(args["result"])
    try:
        try_format(args["one"], args["weights"], args["imgsz"], args.get("image"), args.get("data"), out)
    except BaseException as e:  # keep the reason next to whatever succeeded
        partial = json.loads(out.read_text()) if out.exists() else {}
        out.write_text(json.dumps({**partial, "error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}))
        raise


def _reason(result: dict, log: str) -> str:
    """The error of a failed step; for an exporter that just exited, the last error its log shows."""
    error = result.get("error", "no result (crashed or timed out)")
    if error.startswith("SystemExit"):
        logged = [line.strip() for line in log.splitlines() if re.search(r"\w+(Error|Exception): ", line)]
        error = logged[-1][:300] if logged else error
    return error


def _outcome(fmt_row: dict, result: dict, log: str) -> dict:
    """One export's status (a key of STATUS) with its max abs difference, missing packages or reason."""
    missing = sorted({pkg for found in MISSING.findall(log) for pkg in ast.literal_eval(found)})
    if "max_abs_diff" in result:
        return {"status": "runs", "max_abs_diff": result["max_abs_diff"]}
    if "exported" in result:
        return {"status": "exports", "reason": _reason(result, log)}
    if missing:
        return {"status": "not installed", "needs": missing}
    gpu_only = not fmt_row["CPU"] and fmt_row["GPU"]
    return {"status": "needs GPU" if gpu_only else "failed", "reason": _reason(result, log)}


def status_text(outcome: dict) -> str:
    """An outcome of `_outcome` as the table shows it."""
    needs = ", ".join(f"`{pkg}`" for pkg in outcome.get("needs", []))
    return STATUS[outcome["status"]].format(**{**outcome, "needs": needs})


def _try_in_worker(fmt_row: dict, weights: Path, args: dict) -> tuple[dict, str]:
    """Run one export in a fresh process in a scratch folder; returns its result and log."""
    fmt, timeout = fmt_row["Argument"], args["timeout"]
    work = Path(tempfile.mkdtemp(prefix=f"export-{fmt}-"))
    copy = Path(shutil.copy(weights, work / weights.name))
    result_file = work / "result.json"
    command = [sys.executable, "-m", "benchmarks.export_matrix", f"one={fmt}", f"weights={copy}"]
    command += [f"imgsz={args['imgsz']}", f"result={result_file}"]
    command += [f"image={Path(args['image']).resolve()}"] if args["image"] else []
    takes = fmt_row.get("Arguments", ["data"])  # older Ultralytics releases do not list them
    command += [f"data={args['data']}"] if args["data"] and "data" in takes else []
    path = os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH"))))  # the worker runs in `work`
    env = {**os.environ, "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "False", "PYTHONPATH": path}
    try:
        done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
        log = done.stdout + done.stderr
    except subprocess.TimeoutExpired as e:
        log = f"{e.stdout or ''}{e.stderr or ''}\ntimed out after {timeout} s"
    result = json.loads(result_file.read_text()) if result_file.exists() else {}
    if "error" not in result and "timed out" in log[-100:]:
        result["error"] = f"timed out after {timeout} s"
    shutil.rmtree(work, ignore_errors=True)
    return result, log


def export_rows() -> list[dict]:
    """Ultralytics' export formats, one dict (Format, Argument, ...) each, less the PyTorch checkpoint itself."""
    from ultralytics.engine.exporter import export_formats

    formats = export_formats()  # a dict of columns; a pandas DataFrame in older releases
    if hasattr(formats, "to_dict"):
        formats = formats.to_dict("list")
    rows = (dict(zip(formats, values, strict=True)) for values in zip(*formats.values(), strict=True))
    return [row for row in rows if row["Argument"] != "-"]


def run_matrix(models: dict[str, Path], args: dict) -> list[dict]:
    """Try each format (or those in ``args['formats']``) on each model; returns one row per format."""
    only = set(listed(args["formats"])) if args["formats"] else None
    rows = []
    for row in export_rows():
        if only and row["Argument"] not in only:
            continue
        line = {"format": row["Format"], "argument": row["Argument"], "results": {}}
        for name, weights in models.items():
            t = time.perf_counter()
            result, log = _try_in_worker(row, weights, args)
            line["results"][name] = _outcome(row, result, log)
            if args["logs"]:
                Path(args["logs"]).mkdir(parents=True, exist_ok=True)
                (Path(args["logs"]) / f"{row['Argument']}-{name.replace(' ', '-')}.log").write_text(log)
            status = status_text(line["results"][name])
            print(f"{row['Format']:<22} {name:<14} {status}  ({time.perf_counter() - t:.0f} s)", flush=True)
        rows.append(line)
    return rows


def block(records: dict) -> str:
    """The doc block, from the records alone: the settings and versions, and the table of outcomes."""
    v, models = records["versions"], [m["name"] for m in records["models"]]
    checkpoints = ", ".join(f"{m['name']} {m['weights']}" for m in records["models"])
    packages = ", ".join(f"{k} {v[k]}" for k in sorted(v, key=str.lower) if k not in ("python", "torch", "ultralytics"))
    note = (
        f"Export at imgsz {records['settings']['imgsz']}, CPU, offline; {checkpoints}; ultralytics {v['ultralytics']},"
        f" torch {v['torch']}, Python {v['python']}; exporter packages installed: {packages or 'none'}."
    )
    rows = [
        [r["format"], f"`{r['argument']}`", *(status_text(r["results"][m]).replace("|", "/") for m in models)]
        for r in records["rows"]
    ]
    return "\n".join([note, "", *markdown_table(["format", "`format=`", *models], rows)])


def _label(weights: Path) -> str:
    """The model's name from the YAML it was built from (yolov8n-cbam, yolov8s, ...)."""
    from ultralytics import YOLO

    return Path(YOLO(weights).model.yaml.get("yaml_file", weights.name)).stem


def _described(weights: str | None) -> str:
    return f"`{Path(weights).name}`" if weights else "untrained"


def _save_untrained(yaml_name: str, path: Path) -> None:
    """A checkpoint of a model built from `yaml_name` (older Ultralytics releases' YOLO.save cannot)."""
    import copy

    import torch
    from ultralytics import YOLO

    torch.save({"model": copy.deepcopy(YOLO(yaml_name).model).half()}, path)


def measure(args: dict, scratch: Path) -> dict:
    """The records of the matrix for the models `args` name (untrained ones saved in `scratch`)."""
    models, described, keys = {}, [], ("weights", "stock_weights")
    for key, yaml, prefix in zip(keys, ("yolov8n-cbam.yaml", "yolov8n.yaml"), ("", "stock "), strict=True):
        path = Path(args[key]).resolve() if args[key] else scratch / Path(yaml).with_suffix(".pt")
        if not args[key]:
            _save_untrained(yaml, path)
        name = prefix + _label(path)
        models[name] = path
        described.append({"name": name, "weights": _described(args[key])})
    settings = {k: args[k] for k in ("imgsz", "data", "formats", "timeout")}
    settings["image"] = Path(args["image"]).name if args["image"] else None
    rows = run_matrix(models, args)
    return {"settings": settings, "models": described, "versions": versions(*EXPORTERS), "rows": rows}


def main(argv: list[str] | None = None) -> str:
    """Try the formats, save the records and write the table from them; key=value arguments as DEFAULTS names them."""
    files, positive = ("weights", "stock_weights", "image", "readme"), ("imgsz", "timeout")
    given = options(argv, DEFAULTS | {"one": None, "result": None}, "benchmarks.export_matrix", files, positive)
    if "one" in given:  # the worker process of format `one`
        _worker(given)
        return ""
    args = DEFAULTS | given
    with refusing("benchmarks.export_matrix"):
        readme = checked(args["readme"], "exports")
        known = [row["Argument"] for row in export_rows()]
        if unknown := sorted(set(listed(args["formats"] or [])) - set(known)):
            raise ValueError(f"formats: unknown {', '.join(unknown)}; valid: {', '.join(known)}")
    return measure_and_write(readme, "exports", block, args["results"], lambda scratch: measure(args, scratch))


if __name__ == "__main__":
    main()
