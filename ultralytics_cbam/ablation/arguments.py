"""`ablate`'s settings checked before any work: its own, and those it passes on to Ultralytics' trainer."""

from __future__ import annotations

import difflib
import logging
import os

from ultralytics_cbam.utils.checks import flag, positive_int

__all__ = ("BACKENDS", "RESERVED", "check_arguments")

RESERVED = ("model", "data", "epochs", "imgsz", "batch", "seed", "project", "name", "exist_ok", "resume")
BACKENDS = ("local", "ray")


def check_arguments(
    train_args: dict,
    epochs: int = 50,
    imgsz: int = 640,
    batch: int | float = 16,
    resume: bool = True,
    latency_runs: int = 20,
    backend: str = "local",
    cam_images: int = 3,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
) -> None:
    """Check `ablate`'s settings before any work, raising a ValueError or TypeError that names the bad one.

    `train_args` (the settings passed on to Ultralytics' trainer) and `batch` are checked against Ultralytics' config:
    names, types and ranges, and with the local backend the device, as the trainer would only once the first run starts.
    """
    reserved = sorted(set(train_args) & set(RESERVED))
    if reserved:
        raise ValueError(f"ablate sets {', '.join(reserved)} itself (use base=, seeds=, project=, name=, resume=)")
    for key, value in {"epochs": epochs, "imgsz": imgsz, "latency_runs": latency_runs}.items():
        positive_int(key, value)
    flag("resume", resume)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if isinstance(cam_images, bool) or not isinstance(cam_images, int) or cam_images < 0:
        raise ValueError(f"cam_images must be a number of images (0 for none), got {cam_images!r}")
    for key, value in (("cpus_per_run", cpus_per_run), ("gpus_per_run", gpus_per_run)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"{key} must be a number of at least 0, got {value!r}")
    _check_train_args(train_args, batch, local=backend == "local")


def _check_train_args(train_args: dict, batch: int | float, local: bool) -> None:
    """Ultralytics' own checks of the training settings, in one line and without its help banner."""
    from ultralytics.cfg import DEFAULT_CFG_DICT, get_cfg

    known = set(DEFAULT_CFG_DICT)
    settings = {k: v for k, v in train_args.items() if k != "augmentations"}  # Python-only; Ultralytics judges it
    for key in settings:
        if key not in known:
            similar = difflib.get_close_matches(key, sorted(known))
            hint = f"; similar: {', '.join(similar)}" if similar else ""
            raise ValueError(f"{key} is not an Ultralytics training argument{hint}")
    try:
        get_cfg(dict(DEFAULT_CFG_DICT), {**settings, "batch": batch})  # types and ranges (batch=abc, lr0=2)
        if local and settings.get("device") is not None:  # Ray's workers may have devices that this machine lacks
            _check_device(settings["device"])
    except (TypeError, ValueError) as e:
        raise type(e)(str(e).strip().splitlines()[0]) from None


def _check_device(device: object) -> None:
    """Ultralytics' `select_device`, quiet, leaving CUDA_VISIBLE_DEVICES as it was (8.1 sets it, also on failure)."""
    from ultralytics.utils import LOGGER
    from ultralytics.utils.torch_utils import select_device

    visible, level = os.environ.get("CUDA_VISIBLE_DEVICES"), LOGGER.level
    LOGGER.setLevel(logging.WARNING)  # no version line before the error
    try:
        select_device(device, verbose=False)
    finally:
        LOGGER.setLevel(level)
        if visible is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = visible
