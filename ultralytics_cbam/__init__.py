"""CBAM (Convolutional Block Attention Module) for Ultralytics YOLO.

Importing this package is cheap: torch and Ultralytics load only when a layer or tool is first used.
"""

from __future__ import annotations

import importlib

from ultralytics_cbam._hooks import activate

_EXPORTS = {
    "CBAM": "ultralytics_cbam.modules",
    "ChannelAttention": "ultralytics_cbam.modules",
    "SpatialAttention": "ultralytics_cbam.modules",
    "SE": "ultralytics_cbam.modules",
    "ModelYAMLError": "ultralytics_cbam.integration.yaml_rows",
    "add_cbam": "ultralytics_cbam.insert",
    "gentle_init": "ultralytics_cbam.weight_init",
    "transfer_weights": "ultralytics_cbam.transfer",
    "visualize": "ultralytics_cbam.visualization.attention_maps",
    "AttentionMaps": "ultralytics_cbam.visualization.attention_maps",
    "ablate": "ultralytics_cbam.ablation.runner",
    "AblationResults": "ultralytics_cbam.ablation.runner",
}
__all__ = ("__version__", "activate", *_EXPORTS)


def __getattr__(name: str):
    if name == "__version__":  # read on demand: start-up, which imports this package, stays cheap
        from importlib.metadata import version

        return version("ultralytics-cbam")
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'ultralytics_cbam' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


activate()
