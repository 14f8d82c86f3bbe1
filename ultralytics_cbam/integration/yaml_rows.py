"""The attention layers' rows in Ultralytics model YAMLs: their names, their checks, and errors that name the file,
layer and row."""

from __future__ import annotations

import difflib
import inspect

YAML_LAYER_NAMES = ("CBAM", "ChannelAttention", "SpatialAttention", "SE")


class ModelYAMLError(ValueError):
    """A model YAML row that cannot be built, with the file, row and reason in the message."""


ModelYAMLError.__module__ = "ultralytics_cbam"  # its public name, in tracebacks and pickles


def yaml_source(d: dict) -> str:
    return f"model YAML '{d['yaml_file']}'" if d.get("yaml_file") else "model YAML"


def yaml_row(source: str, d: dict, i: int) -> str:
    """How every error names layer `i` of a model dict: "<source>, layer <i> (<section> row <j>: <row>)"."""
    backbone, head = d.get("backbone") or [], d.get("head") or []
    section, j, rows = ("backbone", i, backbone) if i < len(backbone) else ("head", i - len(backbone), head)
    return f"{source}, layer {i} ({section} row {j}: {rows[j]})" if 0 <= j < len(rows) else f"{source}, layer {i}"


def check_model_dict(d: dict, namespace: dict) -> None:
    """Raise ModelYAMLError for a missing section, a malformed row, an unknown module or a bad 'from' index.

    Args:
        d: Model dictionary as loaded from the YAML.
        namespace: Names that rows may use, i.e. the globals of ``ultralytics.nn.tasks``.
    """
    source = yaml_source(d)
    for section in ("backbone", "head"):
        if not isinstance(d.get(section), list):
            raise ModelYAMLError(f"{source} has no '{section}' list of [from, repeats, module, args] rows")
    for i, row in enumerate(d["backbone"] + d["head"]):
        where = yaml_row(source, d, i)
        if not (isinstance(row, (list, tuple)) and len(row) == 4):
            raise ModelYAMLError(f"{where}: a row must be [from, repeats, module, args]")
        f, n, m, args = row
        if not isinstance(m, str) or not _resolves(m, namespace):
            raise ModelYAMLError(f"{where}: unknown module {m!r}.{_did_you_mean(m, namespace)}")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ModelYAMLError(f"{where}: repeats must be a positive integer, got {n!r}")
        if not isinstance(args, list):
            raise ModelYAMLError(f"{where}: args must be a list, got {args!r}")
        if m in YAML_LAYER_NAMES and not isinstance(f, int):
            raise ModelYAMLError(f"{where}: {m} takes one input feature map, but 'from' is {f}")
        for x in [f] if not isinstance(f, list) else f:
            if isinstance(x, bool) or not isinstance(x, int) or not _valid_from(x, i):
                raise ModelYAMLError(f"{where}: 'from' index {x!r} does not name an earlier layer")


def check_output_row(d: dict) -> None:
    """Raise ModelYAMLError if the last row is a CBAM layer: Ultralytics reads the task from the output row."""
    head = d.get("head")
    last = head[-1] if isinstance(head, list) and head else None
    if isinstance(last, (list, tuple)) and len(last) == 4 and last[2] in YAML_LAYER_NAMES:
        i = len(d.get("backbone") or []) + len(head) - 1
        raise ModelYAMLError(
            f"{yaml_row(yaml_source(d), d, i)}: the last row must be the output layer "
            f"(Detect, Segment, Pose, OBB or Classify), not {last[2]}; put {last[2]} before it"
        )


def _valid_from(x: int, i: int) -> bool:
    return (-i <= x < 0 or 0 <= x < i) if i else x == -1


def _resolves(m: str, namespace: dict) -> bool:
    import torch

    if m.startswith("nn."):
        return hasattr(torch.nn, m[3:])
    if m.startswith("torchvision.ops."):
        return hasattr(__import__("torchvision").ops, m[16:])
    return m in namespace


def _did_you_mean(m: object, namespace: dict) -> str:
    layers = [k for k, v in namespace.items() if inspect.isclass(v) and hasattr(v, "forward")]
    close = difflib.get_close_matches(str(m), layers, n=3, cutoff=0.6)
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
