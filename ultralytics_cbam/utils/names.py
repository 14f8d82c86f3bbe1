"""Ultralytics' model names and their scale letter: 'yolo11n-seg.yaml' is 'yolo11-seg.yaml' at scale n."""

from __future__ import annotations

import re

__all__ = ("SCALES", "scale_free", "with_scale")

SCALES = "nslmx"
_SCALED_NAME = re.compile(rf"(\d+)([{SCALES}])(.+)?$")  # the rule of Ultralytics' yaml_model_load
_FAMILY = re.compile(rf"^(yolo(?:e-)?v?\d+)[{SCALES}]?")


def scale_free(name: str) -> str:
    """The name Ultralytics reads a scaled model name from: 'yolov8n.yaml' -> 'yolov8.yaml'."""
    return _SCALED_NAME.sub(r"\1\3", name)


def with_scale(stem: str, scale: str) -> str:
    """`stem` with its scale letter set to `scale`: ('yolo11-seg', 's') -> 'yolo11s-seg', ('yolov8n', 'm') ->
    'yolov8m'; other stems stay as they are."""
    return _FAMILY.sub(rf"\g<1>{scale}", stem, count=1)
