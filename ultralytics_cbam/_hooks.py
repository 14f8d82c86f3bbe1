"""Post-import hooks that plug the package into Ultralytics as soon as Ultralytics loads.

This module is imported at interpreter start-up (through ``ultralytics_cbam.pth``), so it must stay tiny and must not
import torch or Ultralytics itself: it only waits for the two Ultralytics modules it patches.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType

# the Ultralytics modules that ultralytics_cbam.integration.patches.patch patches once they have loaded
_TARGETS = ("ultralytics.utils.checks", "ultralytics.nn.tasks")
_broken: list[Exception] = []  # the error that kept the patches module from loading, if any


def _patch(name: str, module: ModuleType) -> None:
    if _broken:
        return
    try:
        patches = importlib.import_module("ultralytics_cbam.integration.patches")
    except Exception as e:  # a broken plugin must never break Ultralytics itself
        _broken.append(e)
        warnings.warn(f"ultralytics-cbam is inactive: {e!r}", RuntimeWarning, stacklevel=2)
        return
    patches.patch(name, module)


class _PatchingLoader:
    """Wraps a module's loader and patches the module right after it executes."""

    def __init__(self, loader, name: str) -> None:
        self._loader, self._name = loader, name

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        _patch(self._name, module)

    def __getattr__(self, attr: str):  # get_source, get_filename, ... for inspect and tracebacks
        return getattr(self._loader, attr)


class _UltralyticsFinder:
    """A ``sys.meta_path`` entry that only intercepts the modules in ``_TARGETS``."""

    def find_spec(self, name: str, path=None, target=None):
        if name not in _TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, name)
                return spec
        return None


def activate() -> None:
    """Register CBAM with Ultralytics now if it is loaded, else as soon as it loads. Safe to call repeatedly."""
    if not any(isinstance(f, _UltralyticsFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _UltralyticsFinder())
    for name in _TARGETS:
        module = sys.modules.get(name)
        if module is not None:
            _patch(name, module)
