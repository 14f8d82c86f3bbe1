"""CBAM versions of every model YAML that ships with Ultralytics, by name: '<stock>-cbam.yaml'.

'yolo11n-cbam.yaml', 'yolo26s-seg-cbam.yaml', 'yolo12m-pose-cbam.yaml', ... are the installed Ultralytics' own
'yolo11n.yaml', ... with CBAM at `add_cbam`'s default placement, and the scale letter picks the scale as it does for
stock names. The YAML is generated from the stock file and kept in Ultralytics' user config directory (rewritten only
when its text changes), never in the working directory.

Example:
    >>> from ultralytics import YOLO
    >>> model = YOLO("yolo11n-cbam.yaml").load("yolo11n.pt")  # every stock tensor moves to its new index
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

from ultralytics_cbam.utils.names import scale_free, with_scale

__all__ = ("SUFFIX", "cbam_yaml", "families", "generated_yaml", "scaled_name", "stock_yamls")

SUFFIX = "-cbam.yaml"
_MODEL_PREFIXES = ("yolo", "rtdetr")  # names of Ultralytics models, which get an error naming the families


@functools.lru_cache
def stock_yamls() -> dict[str, Path]:
    """The model YAMLs that ship with the installed Ultralytics, by file name ('yolo11.yaml': .../11/yolo11.yaml)."""
    from ultralytics.utils import ROOT

    return {path.name: path for path in sorted((ROOT / "cfg" / "models").rglob("*.yaml"))}


@functools.lru_cache
def families() -> dict[str, dict[str, str]]:
    """The YOLO families of the installed Ultralytics with their tasks: {'yolo11': {'detect': 'yolo11.yaml', ...}}.

    A family is a stock 'yolo<version>.yaml' with width scales (n, s, ...); its tasks are the stock files
    'yolo<version>-<suffix>.yaml' of a task other than detect (seg, cls, pose, obb, ...). Variants of one task, such
    as 'yolov8-p6.yaml' or 'yolov8-ghost.yaml', resolve by name too but are no family of their own.
    """
    import yaml
    from ultralytics.nn.tasks import guess_model_task

    found: dict[str, dict[str, str]] = {}
    for name, path in stock_yamls().items():
        match = re.fullmatch(r"(yolov?\d+)(-[a-z]+)?\.yaml", name)
        if not match:
            continue
        d = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(d, dict) or "n" not in (d.get("scales") or {}):
            continue
        task = guess_model_task(d)
        if not task or (task == "detect") == bool(match[2]):  # a suffix must name another task, no suffix means detect
            continue
        found.setdefault(match[1], {})[task] = name
    order = sorted((f for f in found if "detect" in found[f]), key=lambda family: int(re.sub(r"\D", "", family)))
    return {family: dict(sorted(found[family].items(), key=lambda kv: (kv[0] != "detect", kv[1]))) for family in order}


def scaled_name(stock: str, scale: str, cbam: bool = False) -> str:
    """The name of a stock model YAML at a scale: ('yolo11-seg.yaml', 's') -> 'yolo11s-seg.yaml' (or, with cbam=True,
    'yolo11s-seg-cbam.yaml')."""
    return f"{with_scale(Path(stock).stem, scale)}{SUFFIX if cbam else '.yaml'}"


def cbam_yaml(name: str, packaged: Path | None = None) -> Path | None:
    """The CBAM model YAML that a bare name '<stock>-cbam.yaml' stands for, or None for names of another form.

    Args:
        name: File name such as 'yolo11n-cbam.yaml'.
        packaged: Folder of the packaged YAMLs, where the scale-free name ('yolov8-cbam.yaml') is looked up first.

    Returns:
        (Path | None): The generated YAML of '<stock>.yaml'; for a name with a scale letter whose stock YAML has none
            ('yolo11n-cbam.yaml'), the YAML of the scale-free name, as Ultralytics reads it.

    Raises:
        FileNotFoundError: For a name of an Ultralytics model ('yolo...', 'rtdetr...') that the installed Ultralytics
            does not ship, naming the families it has.
    """
    if not name.endswith(SUFFIX):
        return None
    stock = _stock_of(name)
    if stock in stock_yamls():
        return generated_yaml(stock)
    unified = scale_free(name)
    if unified != name:
        if os.path.exists(unified):  # a file of the scale-free name in the working directory wins, as in Ultralytics
            return Path(unified)
        if packaged is not None and (packaged / unified).is_file():
            return packaged / unified
        if _stock_of(unified) in stock_yamls():
            return generated_yaml(_stock_of(unified))
    if stock.startswith(_MODEL_PREFIXES):
        raise FileNotFoundError(_not_shipped(name, _stock_of(unified)))
    return None


def _stock_of(name: str) -> str:
    return name[: -len(SUFFIX)] + ".yaml"


def _not_shipped(name: str, stock: str) -> str:
    import difflib

    from ultralytics import __version__

    tasks = list(families().values())[-1] if families() else {"detect": "yolov8.yaml"}
    examples = [scaled_name(tasks["detect"], "n", cbam=True)]
    examples += [scaled_name(tasks["segment"], "s", cbam=True)] if "segment" in tasks else []
    close = difflib.get_close_matches(name, [f"{Path(s).stem}{SUFFIX}" for s in stock_yamls()], n=3, cutoff=0.7)
    hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
    return (
        f"'{name}' is no file, and Ultralytics {__version__} ships no model YAML '{stock}' to add CBAM to. Its "
        f"families: {', '.join(families())}; name one with a scale and task as for stock models, e.g. "
        f"{' or '.join(map(repr, examples))}.{hint}"
    )


def generated_yaml(stock: str) -> Path:
    """Write (if its text changed) and return the CBAM version of the stock model YAML `stock`, e.g. 'yolo11.yaml'."""
    from ultralytics import __version__
    from ultralytics.utils import USER_CONFIG_DIR

    path = Path(USER_CONFIG_DIR) / "cbam-models" / __version__ / f"{Path(stock).stem}{SUFFIX}"
    text = _text(stock_yamls()[stock])
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)  # whole files only, for processes that read it meanwhile
    return path


@functools.lru_cache
def _text(stock: Path) -> str:
    from ultralytics_cbam.insert import default_cbam_yaml  # loaded only to generate: start-up imports this module

    return default_cbam_yaml(stock)
