"""Where the attention layers go: after the backbone stages (found by a forward pass), after the neck blocks, or
after named layers and module types."""

from __future__ import annotations

import copy
import difflib
import re

from torch import nn

from ultralytics_cbam.insert.source import ModelSource
from ultralytics_cbam.integration.yaml_rows import YAML_LAYER_NAMES, ModelYAMLError, yaml_row

__all__ = ("check_not_present", "is_attention_row", "neck_places", "parse_layers", "placement", "smallest_scale")

_PROBE_SIZE = 256  # input size used to find each backbone layer's stride (divisible by 64 for P6 models)


def is_attention_row(row: list) -> bool:
    return row[2] in YAML_LAYER_NAMES


def placement(source: ModelSource, rows: list[list], where) -> list[int]:
    """Sorted, unique layer indices (of the input model) to insert CBAM after."""
    tokens = _where_tokens(where)
    after = set()
    for token in tokens:
        if token == "default":
            after |= set(_default_places(source, rows))
        elif token == "neck":
            after |= set(_neck_places(source, rows))
        elif isinstance(token, int):
            if not 0 <= token < len(rows):
                raise IndexError(
                    f"where: layer index {token} does not exist; {source.describe()} has layers 0-{len(rows) - 1}"
                )
            after.add(token)
        else:
            found = [i for i, row in enumerate(rows) if row[2] == token]
            if not found:
                types = list(dict.fromkeys(str(row[2]) for row in rows))
                close = difflib.get_close_matches(token, types, n=2, cutoff=0.5)
                hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
                raise ValueError(
                    f"where: module type '{token}' is not in {source.describe()} (its types: {', '.join(types)}).{hint}"
                )
            after |= set(found)
    last = len(rows) - 1
    if last in after:
        raise ValueError(
            f"where: {yaml_row(source.describe(), source.dict, last)} is the model's output head; CBAM needs a "
            "feature map as input"
        )
    return sorted(after)


def _where_tokens(where) -> list:
    """'default', ints and module type names from where='2,4,C2f', [2, 'C2f'], 5, None ..."""
    if where is None:
        return ["default"]
    items = re.split(r"[,\s]+", str(where).strip("[]() ")) if isinstance(where, str) else where
    items = list(items) if isinstance(items, (list, tuple)) else [items]
    tokens = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise ValueError(f"where: {item!r} is neither a layer index nor a module type name")
        if isinstance(item, str):
            item = item.strip().strip("'\"")
            if not item:
                continue
            item = int(item) if re.fullmatch(r"-?\d+", item) else item
        tokens.append(item)
    if not tokens:
        raise ValueError(f"where: {where!r} names no layer; use 'default', 'neck', layer indices or module types")
    return tokens


def _default_places(source: ModelSource, rows: list[list]) -> list[int]:
    """After the last layer of each backbone stage of stride >= 4, or after the stage's SPPF-type block."""
    n_backbone = len(source.dict["backbone"])
    strides = _backbone_strides(source, n_backbone)
    places, stage = [], []
    plain = [i for i in range(n_backbone) if not is_attention_row(rows[i]) and strides.get(i)]
    for pos, i in enumerate(plain):
        stage.append(i)
        if pos + 1 == len(plain) or strides[plain[pos + 1]] != strides[i]:
            if strides[i] >= 4:
                spp = [j for j in stage if "SPP" in str(rows[j][2])]
                places.append(spp[-1] if spp else stage[-1])
            stage = []
    if not places:
        raise ValueError(f"{source.describe()}: its backbone has no feature stage of stride 4 or more to follow")
    return places


def neck_places(d: dict) -> list[int]:
    """Head layers of the block types that feed the output layer (C2f in YOLOv8, C3k2 in YOLO11 and YOLO26)."""
    rows = d["backbone"] + d["head"]
    last = len(rows) - 1
    head = rows[last][0]
    sources = [f if f >= 0 else last + f for f in (head if isinstance(head, list) else [head])]
    for n, i in enumerate(sources):
        while is_attention_row(rows[i]) and rows[i][0] == -1:  # a CBAM already there: the block it follows
            sources[n] = i = i - 1
    types = {rows[i][2] for i in sources}
    return [i for i in range(len(d["backbone"]), last) if rows[i][2] in types]


def _neck_places(source: ModelSource, rows: list[list]) -> list[int]:
    places = neck_places(source.dict)
    if not places:
        raise ValueError(f"where: 'neck': {source.describe()} has no neck blocks between its backbone and output head")
    return places


def _backbone_strides(source: ModelSource, n_backbone: int) -> dict[int, int]:
    """Output stride (a power of 2) of every backbone layer whose output is a 4-D feature map, from a forward pass."""
    import math

    import torch

    try:
        if source.module is not None:
            layers = list(source.module.model)
        else:
            d = {**source.dict, "yaml_file": str(source.path or source.name)}  # errors name the file
            layers = list(parse_layers(d, smallest_scale(d) or source.scale, source.channels))
        dtype = next((p.dtype for m in layers for p in m.parameters()), torch.float32)
        x = torch.zeros(1, source.channels, _PROBE_SIZE, _PROBE_SIZE, dtype=dtype)
        outputs, strides = [], {}
        with torch.no_grad():
            for i, m in enumerate(layers[:n_backbone]):
                if m.f != -1:
                    x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
                training, _ = m.training, m.eval()
                x = m(x)
                m.train(training)
                outputs.append(x)
                if isinstance(x, torch.Tensor) and x.dim() == 4:
                    strides[i] = 2 ** round(math.log2(_PROBE_SIZE / x.shape[-1]))
    except ModelYAMLError:
        raise
    except Exception as e:
        raise RuntimeError(
            f"where='default' runs the backbone of {source.describe()} once to find its stages, which failed "
            f"({type(e).__name__}: {e}); give where= layer indices or module types instead"
        ) from e
    return strides


def smallest_scale(d: dict) -> str:
    scales = d.get("scales")
    return min(scales, key=lambda s: (scales[s][1], scales[s][0])) if isinstance(scales, dict) and scales else ""


def parse_layers(d: dict, scale: str, channels: int) -> nn.Sequential:
    from ultralytics.nn import tasks

    d = copy.deepcopy(d)
    d["scale"] = scale
    return tasks.parse_model(d, ch=channels, verbose=False)[0]


def check_not_present(source: ModelSource, rows: list[list], after: list[int], where, force: bool) -> None:
    """Refuse to add CBAM where one already follows the chosen layer, unless forced."""
    present = [i for i in after if is_attention_row(rows[i]) or (i + 1 < len(rows) and is_attention_row(rows[i + 1]))]
    if present and not force:
        places = "; ".join(
            yaml_row(source.describe(), source.dict, i if is_attention_row(rows[i]) else i + 1) for i in present
        )
        raise ValueError(f"CBAM is already there (where={where!r}): {places}; pass force=True to add another anyway")
