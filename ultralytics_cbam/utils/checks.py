"""Argument checks whose errors name the argument."""

from __future__ import annotations

__all__ = ("positive_int",)


def positive_int(name: str, value: object, *, odd: bool = False, zero: bool = False) -> int:
    """Return `value` if it is a positive (or, with zero=True, non-negative; if asked, odd) int, else raise a
    ValueError naming `name`."""
    low = 0 if zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (odd and value % 2 == 0):
        kind = "a non-negative" if zero else "a positive"
        raise ValueError(f"{name} must be {kind}{' odd' if odd else ''} integer, got {value!r}")
    return value
