"""Output folders and file names as Ultralytics makes them: runs/<task>/<name>, incremented unless told otherwise."""

from __future__ import annotations

from pathlib import Path

__all__ = ("run_dir", "unique_name")


def run_dir(task: str, project: str | None, name: str, exist_ok: bool = False, mkdir: bool = False) -> Path:
    """An Ultralytics-style run directory: project/name, a relative project under runs/<task>, incremented (name2,
    name3, ...) unless exist_ok, as Ultralytics' trainer and predictor name theirs."""
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.files import increment_path

    base = Path(project or "")
    if not base.is_absolute():  # relative projects live under runs/<task>, as in Ultralytics
        base = Path(SETTINGS["runs_dir"]) / task / base
    return increment_path(base / name, exist_ok=exist_ok, mkdir=mkdir).resolve()


def unique_name(stem: str, used: set[str]) -> str:
    """`stem`, or 'stem-2', 'stem-3', ... if taken; the result joins `used`."""
    unique, k = stem, 1
    while unique in used:
        k += 1
        unique = f"{stem}-{k}"
    used.add(unique)
    return unique
