"""Argument checks whose errors name the argument."""

from __future__ import annotations

__all__ = ("flag", "positive_int")


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
