"""Argument checks whose errors name the argument."""

from __future__ import annotations

__all__ = ("flag", "image_size", "positive_int", "unit_interval")


def positive_int(name: str, value: object, *, odd: bool = False) -> int:
    """Return `value` if it is a positive (and, if asked, odd) int, else raise a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (odd and value % 2 == 0):
        raise ValueError(f"{name} must be a positive{' odd' if odd else ''} integer, got {value!r}")
    return value


def flag(name: str, value: object) -> bool:
    """Return `value` if it is a bool, else raise a TypeError naming `name` (from the command line: True or False)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def unit_interval(name: str, value: object) -> float:
    """Return `value` if it is a number in [0, 1], else raise a ValueError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return value


def image_size(value: object) -> int | list[int]:
    """Return `value` if it is an `imgsz`: a positive int, or a [size] or [height, width] list of them; else raise a
    ValueError naming imgsz."""
    if isinstance(value, (list, tuple)) and len(value) not in (1, 2):
        raise ValueError(f"imgsz must be a positive integer or [height, width], got {value!r}")
    for size in value if isinstance(value, (list, tuple)) else [value]:
        positive_int("imgsz", size)
    return value
