"""The patches that plug CBAM into Ultralytics, all or nothing: the YAML layer names, packaged YAML lookup, YAML checks
and CBAM-aware checkpoint loading; and the registry that can put every one of them back."""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable
from types import ModuleType

from ultralytics_cbam import modules
from ultralytics_cbam.cfg.packaged import packaged_yaml
from ultralytics_cbam.integration.compat import allow_in_restricted_loading
from ultralytics_cbam.integration.yaml_layer import yaml_layer
from ultralytics_cbam.integration.yaml_rows import YAML_LAYER_NAMES, check_model_dict, check_output_row
from ultralytics_cbam.transfer import involves_attention, load_aligned


class _Patches:
    """Every attribute the plugin sets in Ultralytics, so that one failure can put all of them back."""

    _MISSING = object()

    def __init__(self) -> None:
        self._undo: list[tuple[object, str, object]] = []
        self.failed = False

    def set(self, owner: object, name: str, value: object) -> None:
        """setattr(owner, name, value), remembering what was there before."""
        self._undo.append((owner, name, vars(owner).get(name, self._MISSING)))
        setattr(owner, name, value)

    def undo(self) -> None:
        """Restore every attribute set so far, newest first."""
        for owner, name, old in reversed(self._undo):
            if old is self._MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)
        self._undo.clear()


PATCHES = _Patches()


def patch(name: str, module: ModuleType) -> None:
    """Patch the Ultralytics module `name` once it has loaded: all or nothing.

    If any patch fails, every patch applied so far is undone, none is applied later, and one warning names the
    Ultralytics version and what did not fit. Stock Ultralytics then runs exactly as without the plugin.
    """
    if PATCHES.failed:
        return
    try:
        {"ultralytics.utils.checks": patch_checks, "ultralytics.nn.tasks": patch_tasks}[name](module)
    except Exception as e:
        PATCHES.undo()
        PATCHES.failed = True
        version = getattr(sys.modules.get("ultralytics"), "__version__", "(unknown version)")
        warnings.warn(
            f"ultralytics-cbam is inactive: it does not fit Ultralytics {version} ({name}: {e!r}). Ultralytics runs "
            "unchanged, without CBAM; install a release of ultralytics-cbam that supports this Ultralytics.",
            RuntimeWarning,
            stacklevel=2,
        )


def patch_checks(checks: ModuleType) -> None:
    """Make `check_file` (and so `check_yaml`) find the packaged YAMLs by bare name.

    A file of the same name in the working directory still wins, as it does for Ultralytics' own YAMLs.
    """
    original = checks.check_file
    if getattr(original, "__wrapped_by_cbam__", False):
        return

    @functools.wraps(original)
    def check_file(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and not os.path.exists(str(file).strip()):
            found = packaged_yaml(file)
            if found is not None:
                return str(found)
        return original(file, *args, **kwargs)

    check_file.__wrapped_by_cbam__ = True
    _replace_everywhere(original, check_file)


def _replace_everywhere(original, replacement) -> None:
    """Rebind `original` to `replacement` in every loaded Ultralytics module that holds it under its name.

    Only modules loaded before the patch (activation after Ultralytics was imported) can hold the original.
    """
    name = original.__name__
    for module_name, module in list(sys.modules.items()):
        if module_name.split(".")[0] == "ultralytics" and getattr(module, name, None) is original:
            PATCHES.set(module, name, replacement)


def patch_tasks(tasks: ModuleType) -> None:
    """Register the CBAM layers under their YAML names and check model YAML rows before Ultralytics builds them."""
    if getattr(tasks.parse_model, "__wrapped_by_cbam__", False):
        return
    PATCHES.set(tasks.BaseModel, "load", cbam_aware_load(tasks.BaseModel.load))
    for name in YAML_LAYER_NAMES:
        PATCHES.set(tasks, name, yaml_layer(getattr(modules, name)))
    original = tasks.parse_model

    @functools.wraps(original)
    def checked_parse_model(d, ch, *args, **kwargs):
        check_model_dict(d, vars(tasks))
        return original(d, ch, *args, **kwargs)

    checked_parse_model.__wrapped_by_cbam__ = True
    PATCHES.set(tasks, "parse_model", checked_parse_model)

    original_guess = tasks.guess_model_task

    @functools.wraps(original_guess)
    def guess_model_task(model):
        if isinstance(model, dict):
            check_output_row(model)
        return original_guess(model)

    _replace_everywhere(original_guess, guess_model_task)
    allow_in_restricted_loading(tasks, [getattr(modules, name) for name in YAML_LAYER_NAMES])


def cbam_aware_load(original: Callable) -> Callable:
    """Wrap ``BaseModel.load`` (used by ``YOLO(...).load`` and ``pretrained=``) so that it moves layers past CBAM rows.

    Models without CBAM on either side load exactly as before.
    """

    @functools.wraps(original)
    def load(self, weights, verbose=True):
        if not involves_attention(self, weights):
            return original(self, weights, verbose=verbose)
        load_aligned(self, weights, original, verbose=verbose, other_task=False)
        return None

    return load
