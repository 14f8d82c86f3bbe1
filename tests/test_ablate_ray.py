"""Ablation grids on Ray: a local cluster of 2 CPUs runs a tiny grid, and a grid whose worker is killed resumes."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path
from types import ModuleType

import pytest
from ablate_helpers import ablate_logged
from helpers import read_csv

from ultralytics_cbam.ablation.runner import MARKER

# CI (CI=true) installs the ray extra: there a module that does not import fails the tests here instead of skipping.
_CI = os.environ.get("CI", "").lower() in {"true", "1"}
_IMPORT_ERRORS: dict[str, BaseException] = {}


def _import(name: str, reason: str) -> ModuleType | None:
    """Module `name`; where it does not import, this file is skipped with `reason`, or under CI=true None is returned
    and the error recorded for `_required_under_ci`."""
    if not _CI:
        return pytest.importorskip(name, reason=reason)
    try:
        return importlib.import_module(name)
    except Exception as err:  # a broken install may raise anything on import
        _IMPORT_ERRORS[name] = err
        return None


ray = _import("ray", reason='Ray is not installed (pip install "ultralytics-cbam[ray]")')
psutil = _import("psutil", reason="psutil (an Ultralytics dependency) finds the worker to kill")


@pytest.fixture(scope="module", autouse=True)
def _required_under_ci() -> None:
    """Under CI=true, fail every test here (before the cluster starts) when Ray or psutil did not import."""
    if _IMPORT_ERRORS:
        errors = "; ".join(f"{name}: {err!r}" for name, err in _IMPORT_ERRORS.items())
        pytest.fail(f"CI=true requires Ray (the ray extra) and psutil, which failed to import: {errors}", pytrace=False)


GRID = {"variants": "baseline,cbam", "seeds": 2, "epochs": 1, "imgsz": 32, "batch": 2, "workers": 0}
GRID |= {"latency_runs": 1, "backend": "ray", "cpus_per_run": 1}
RUNS = [(v, s) for v in ("baseline", "cbam") for s in (0, 1)]
_SOCKET_PATH_ROOM = 43  # Ray's socket paths (<temp>/session_<date>_<pid>/sockets/plasma_store) fit in 107 bytes


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray cluster of 2 CPUs for this module, its temporary files in the test's temp dir."""
    temp = tmp_path_factory.mktemp("ray")
    own = len(str(temp)) > _SOCKET_PATH_ROOM  # the test's temp dir is too deep: a short folder, removed afterwards
    if own:
        temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
    env = {"RAY_AUTH_MODE": "disabled"}  # no token file in the home directory
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ray.init(num_cpus=2, _temp_dir=str(temp), include_dashboard=False, log_to_driver=False)
    try:
        yield temp
    finally:
        ray.shutdown()
        for k, v in before.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        if own:
            shutil.rmtree(temp, ignore_errors=True)


def _ablate(coco8, project, **kwargs):
    return ablate_logged(data=str(coco8), project=str(project), **{**GRID, **kwargs})


def _check_complete(results) -> None:
    """Every run present once, in the tables and on disk."""
    save_dir = results.save_dir
    runs = read_csv(results.files["runs_csv"])
    assert [(r["variant"], int(r["seed"])) for r in runs] == RUNS
    assert sorted(p.name for p in save_dir.iterdir() if p.is_dir() and p.name != "cam") == [
        f"{v}-seed{s}" for v, s in RUNS
    ] + ["models"]
    for v, s in RUNS:
        assert (save_dir / f"{v}-seed{s}" / MARKER).is_file() and (save_dir / f"{v}-seed{s}/weights/best.pt").is_file()
    table = {r["variant"]: r for r in read_csv(results.files["csv"])}
    assert list(table) == ["baseline", "cbam"] and all(r["runs"] == "2" for r in table.values())
    assert table["cbam"]["vs_baseline_pairs"] == "2" and table["cbam"]["vs_baseline_verdict"]
    assert results.files["plot"].is_file() and "| cbam |" in results.files["markdown"].read_text()


_PROBE = """
def probe():
    import sys

    activated = "ultralytics_cbam" in sys.modules  # before anything here imports it
    from ultralytics import YOLO

    model = YOLO("yolov8n-cbam.yaml").model
    return activated, sorted({type(m).__module__ for m in model.model if type(m).__name__ == "CBAM"})
"""


def test_workers_see_cbam_without_an_import(cluster):
    namespace = {"__name__": "__main__"}  # sent to the worker by value: unpickling it imports nothing of ours
    exec(_PROBE, namespace)
    activated, modules = ray.get(ray.remote(namespace["probe"]).remote())
    assert activated
    assert modules == ["ultralytics_cbam.modules"]


def test_grid_on_two_cpu_workers(cluster, coco8, tmp_path):
    results, lines = _ablate(coco8, tmp_path, name="grid")
    _check_complete(results)
    assert any("4 runs queued on Ray (1 CPU, 0 GPU each)" in line for line in lines)
    done = [line for line in lines if " done: mAP50 " in line]
    assert len(done) == 4 and all(
        line.split("ablate: run ")[1][:4] in ("1/4 ", "2/4 ", "3/4 ", "4/4 ") for line in done
    )
    import yaml

    args = yaml.safe_load((results.save_dir / "cbam-seed1" / "args.yaml").read_text())
    assert args["device"] == "cpu" and args["seed"] == 1 and Path(args["project"]) == results.save_dir

    again, lines = _ablate(coco8, tmp_path, name="grid")  # resumed: nothing left to train
    assert sum("finished earlier, skipped" in line for line in lines) == 4
    assert [r["map50_95"] for r in again.runs] == [r["map50_95"] for r in results.runs]
    with pytest.raises(ValueError, match="epochs differ"):
        _ablate(coco8, tmp_path, name="grid", epochs=2)


def _kill_first_training_worker(save_dir: Path, killed: list, stop: threading.Event) -> None:
    """SIGKILL the Ray worker of the first run that has started training (its args.yaml exists)."""
    while not stop.is_set():
        for proc in psutil.Process().children(recursive=True):  # this cluster's processes only
            try:
                title = " ".join(proc.cmdline())
            except psutil.Error:
                continue
            if title.startswith("ray::ablate "):
                variant, seed = title.split()[1], title.split()[3]
                if (save_dir / f"{variant}-seed{seed}" / "args.yaml").is_file():
                    os.kill(proc.pid, signal.SIGKILL)
                    killed.append((variant, int(seed)))
                    return
        time.sleep(0.05)


def test_killed_worker_run_is_trained_again_on_rerun(cluster, coco8, tmp_path):
    killed, stop = [], threading.Event()
    killer = threading.Thread(target=_kill_first_training_worker, args=(tmp_path / "killed", killed, stop))
    killer.start()
    try:
        with pytest.raises(RuntimeError, match=r"1 of 4 runs failed.*Run the same ablate command again") as error:
            _ablate(coco8, tmp_path, name="killed")
    finally:
        stop.set()
        killer.join()
    assert len(killed) == 1
    variant, seed = killed[0]
    assert f"{variant}, seed {seed}: " in str(error.value)
    save_dir = tmp_path / "killed"
    assert not (save_dir / f"{variant}-seed{seed}" / MARKER).exists()  # never marked finished
    assert len(read_csv(save_dir / "runs.csv")) == 3  # the tables of the finished runs are written

    results, lines = _ablate(coco8, tmp_path, name="killed")
    assert sum("finished earlier, skipped" in line for line in lines) == 3
    assert any(f"({variant}, seed {seed}) was not finished, queued again" in line for line in lines)
    _check_complete(results)
