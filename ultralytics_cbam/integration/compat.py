"""Every difference between the Ultralytics releases this package supports (8.1 to 8.4), in one place."""

from __future__ import annotations

import inspect
import pickle
from contextlib import contextmanager
from pathlib import Path

__all__ = (
    "LAYERCAM_RELEASE",
    "allow_in_restricted_loading",
    "check_layercam",
    "checkpoint_train_args",
    "load_checkpoint",
    "quiet_yolo",
)

LAYERCAM_RELEASE = "8.4.113"  # the first release with ultralytics.utils.plotting.class_activation_map
_UNREADABLE = (  # how loading a file that is no checkpoint fails (AssertionError: Ultralytics' check of the suffix)
    pickle.UnpicklingError, EOFError, RuntimeError, ValueError, LookupError, AttributeError, TypeError, AssertionError
)  # fmt: skip


def load_checkpoint(file: str | Path):
    """(model, checkpoint dict) of a checkpoint file: `load_checkpoint` from 8.4 on, `attempt_load_one_weight`
    before."""
    from ultralytics.nn import tasks

    loader = getattr(tasks, "load_checkpoint", None) or tasks.attempt_load_one_weight
    with _readable(file):
        return loader(file)


@contextmanager
def _readable(file: str | Path):
    """Turn the errors of unpickling a file that is no checkpoint (text, a truncated download, a bare tensor or state
    dict) into one ValueError naming the file."""
    try:
        yield
    except _UNREADABLE as e:
        raise ValueError(f"checkpoint '{file}' cannot be read as a PyTorch checkpoint ({e})") from e


def quiet_yolo(model: str):
    """`YOLO(model)` without its model summary (8.1's constructor takes no `verbose`); a checkpoint that cannot be read
    raises a ValueError naming it, as `load_checkpoint` does."""
    from ultralytics import YOLO

    quiet = {"verbose": False} if "verbose" in inspect.signature(YOLO.__init__).parameters else {}
    if str(model).lower().endswith((".yaml", ".yml")):
        return YOLO(model, **quiet)
    with _readable(model):
        return YOLO(model, **quiet)


def checkpoint_train_args(args: object, task: str) -> dict:
    """A checkpoint's train_args naming its task: releases before 8.3 fill a missing task with 'detect'."""
    return {**(args if isinstance(args, dict) else {}), "task": task}


def allow_in_restricted_loading(tasks, classes: list[type]) -> None:
    """Let Ultralytics' opt-in weights-only checkpoint loading (ULTRALYTICS_SAFE_LOAD, 8.4 on) rebuild `classes`."""
    import torch

    if hasattr(tasks, "_SafeLoad") and hasattr(torch.serialization, "add_safe_globals"):
        torch.serialization.add_safe_globals(classes)


def check_layercam() -> None:
    """Raise an ImportError naming the release needed where Ultralytics has no class activation maps, from a
    LookupError (the missing name) so that the command line reports it in one line."""
    import ultralytics
    from ultralytics.utils import plotting

    if not hasattr(plotting, "class_activation_map"):
        raise ImportError(
            f"class activation maps need Ultralytics >= {LAYERCAM_RELEASE}, installed: {ultralytics.__version__}; "
            f'pip install "ultralytics>={LAYERCAM_RELEASE}"'
        ) from LookupError("ultralytics.utils.plotting.class_activation_map")
