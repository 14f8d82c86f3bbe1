"""Helpers for the ablation tests: run `ablate` and keep the lines it logged."""

from __future__ import annotations

import logging

from ultralytics.utils import LOGGER, remove_colorstr

from ultralytics_cbam.ablation.runner import AblationResults, ablate


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(remove_colorstr(record.getMessage()))


def logged(func, *args, **kwargs) -> tuple[object, list[str]]:
    """`func(*args, **kwargs)` and the messages Ultralytics' logger got meanwhile, colours removed."""
    handler = _Lines()
    LOGGER.addHandler(handler)
    try:
        return func(*args, **kwargs), handler.lines
    finally:
        LOGGER.removeHandler(handler)


def ablate_logged(**kwargs) -> tuple[AblationResults, list[str]]:
    """`ablate(**kwargs)` and the messages Ultralytics' logger got meanwhile, colours removed."""
    return logged(ablate, **kwargs)
