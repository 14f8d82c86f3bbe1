"""Insert CBAM rows into any Ultralytics model YAML or checkpoint.

The result is a plain model YAML (one flow-style row per line, like Ultralytics' own files) and, for a checkpoint, a
new checkpoint that carries every old tensor over to the layer's new index.
"""

from __future__ import annotations

import copy
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ultralytics_cbam.integration import YAML_LAYER_NAMES, ModelYAMLError, yaml_row

__all__ = ("CBAMInsertion", "add_cbam", "insert_rows", "model_yaml", "neck_places")

_PROBE_SIZE = 256  # input size used to find each backbone layer's stride (divisible by 64 for P6 models)
_DEFAULT_R, _DEFAULT_K = 16, 7
LAYER_ARGS = {"CBAM": ("r", "k"), "SE": ("r",), "ChannelAttention": ("r",), "SpatialAttention": ("k",)}
_PAPERS = {"CBAM": "Woo et al., ECCV 2018", "SE": "Hu et al., CVPR 2018"}


@dataclass
class CBAMInsertion:
    """What `add_cbam` wrote.

    Attributes:
        yaml: The new model YAML.
        weights: The new checkpoint, when the input was a checkpoint.
        after: Layer indices of the input model that CBAM was inserted after.
        cbam_layers: Indices of the new CBAM layers in the new model.
        index_map: Old layer index -> new layer index.
    """

    yaml: Path
    weights: Path | None
    after: list[int]
    cbam_layers: list[int]
    index_map: dict[int, int]


def add_cbam(
    model,
    output: str | Path | None = None,
    where: str | int | list | tuple | None = "default",
    r: int = _DEFAULT_R,
    k: int = _DEFAULT_K,
    gentle: bool = False,
    force: bool = False,
    layer: str = "CBAM",
) -> CBAMInsertion:
    """Insert CBAM (or SE, ...) into a model and write it as a new model YAML (and checkpoint, for a checkpoint input).

    Every later layer index shifts, so every ``from`` reference (Concat, Detect, Segment, Pose, OBB, Classify, ...)
    is rewired; layers that read a layer now read the CBAM that follows it.

    Args:
        model: Model YAML path (also Ultralytics' bare names such as 'yolov8n.yaml' or 'yolo11s-seg.yaml'), model
            dict, checkpoint path (.pt), ``YOLO`` object or Ultralytics model.
        output: Path of the new YAML (a checkpoint is written beside it with the suffix .pt); a .pt path names the
            checkpoint instead. Default: '<name>-cbam.yaml' (and '<name>-cbam.pt') in the current directory.
        where: 'default' (after the last layer of every backbone stage from stride 4 (P2) on, or after the stage's
            SPPF-type block where it has one), 'neck' (after the neck's blocks of the types the output head reads),
            layer indices of the input model ('2,4,6,9' or [2, 4, 6, 9]), module types ('C2f,SPPF'; every layer of
            that type), or a mix ('default,neck').
        r: Channel-attention reduction ratio.
        k: Spatial-attention kernel size (odd).
        gentle: Start the new CBAM layers close to identity (``ultralytics_cbam.init.gentle_init``); needs a
            checkpoint input, since a YAML holds no weights.
        force: Insert even where a CBAM layer already follows the chosen layer.
        layer: The attention layer to insert: 'CBAM', 'SE' (Squeeze-and-Excitation, the CBAM paper's comparator;
            r applies, k does not), 'ChannelAttention' or 'SpatialAttention'.

    Returns:
        (CBAMInsertion): Paths written and where CBAM went.
    """
    source = _Source.resolve(model)
    _check_layer(layer, r, k)
    if gentle and layer == "SE":
        raise ValueError(f"gentle=True starts CBAM's gates near identity; it does not apply to layer={layer}")
    if gentle and source.module is None:
        raise ValueError(
            f"gentle=True needs a checkpoint (.pt) input, but {source.name} is a model YAML without weights; "
            "load weights into the built model and call ultralytics_cbam.init.gentle_init(model) instead"
        )
    inserted = _inserted(source, where, r, k, force, layer)
    new_dict, index_map, cbam_layers, after = inserted.dict, inserted.index_map, inserted.cbam_layers, inserted.after
    yaml_path, weights_path = _output_paths(source, output)
    if source.scale and source.module is not None and _guess_scale(yaml_path) != source.scale:
        new_dict["scales"] = {source.scale: source.dict["scales"][source.scale]}  # the only scale the weights fit
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    yaml_path.write_text(inserted.text(), encoding="utf-8")
    built = _build(new_dict, source, yaml_path)

    from ultralytics.utils import LOGGER

    LOGGER.info(
        f"Wrote {yaml_path}: {layer} after layers {_list(after)} of {source.name} ({layer} layers {_list(cbam_layers)})"
    )
    _warn_if_shadowed(yaml_path, new_dict)
    if source.module is not None:
        _carry_weights(source, built, cbam_layers, weights_path, gentle)
        LOGGER.info(f"Wrote {weights_path} with the weights of {source.name}")
    return CBAMInsertion(yaml_path, weights_path if source.module is not None else None, after, cbam_layers, index_map)


def default_cbam_yaml(path: str | Path) -> str:
    """The text of model YAML `path` with CBAM at `add_cbam`'s default placement, written nowhere.

    Args:
        path: Model YAML file without CBAM, e.g. Ultralytics' 'yolo11.yaml'.

    Returns:
        (str): The new model YAML, as `add_cbam(path)` would write it.
    """
    return _inserted(_Source.from_yaml(path), "default", _DEFAULT_R, _DEFAULT_K, False, "CBAM").text()


@dataclass
class InsertedRows:
    """A model dict with CBAM rows inserted and every `from` rewired, not yet written (see `insert_rows`).

    Attributes:
        dict: The new model dict; its rows may still be edited before `text()`.
        after: Layer indices of the input model that CBAM was inserted after.
        cbam_layers: Indices of the new CBAM rows in the new model.
        index_map: Old layer index -> new layer index.
        note: The comment `text()` puts at the top of the YAML.
    """

    dict: dict
    after: list[int]
    cbam_layers: list[int]
    index_map: dict[int, int]
    note: str
    comments: _Comments = field(repr=False)

    def text(self) -> str:
        """The model YAML text of `dict`, with the input file's comments and `note`."""
        return write_model_yaml(self.dict, self.comments, self.note)


def insert_rows(
    model, where="default", r: int = _DEFAULT_R, k: int = _DEFAULT_K, force: bool = False, layer: str = "CBAM"
) -> InsertedRows:
    """Insert CBAM (or another attention layer's) rows into a model's YAML as `add_cbam` does, writing nothing.

    Args:
        model: Model YAML path or Ultralytics name, model dict, checkpoint path or YOLO model (as for `add_cbam`).
        where: Placement, as for `add_cbam`.
        r: Channel-attention reduction ratio.
        k: Spatial-attention kernel size (odd).
        force: Insert even where a CBAM layer already follows the chosen layer.
        layer: The attention layer: 'CBAM', 'SE', 'ChannelAttention' or 'SpatialAttention'.

    Returns:
        (InsertedRows): The new model dict, where CBAM went, and its YAML text on demand.
    """
    _check_layer(layer, r, k)
    return _inserted(_Source.resolve(model), where, r, k, force, layer)


def _inserted(source: _Source, where, r: int, k: int, force: bool, layer: str) -> InsertedRows:
    rows = source.rows()
    after = _placement(source, rows, where)
    _check_not_present(source, rows, after, where, force)
    new_dict, index_map, cbam_layers, comments = _insert(source, rows, after, layer, layer_args(layer, r, k))
    return InsertedRows(new_dict, after, cbam_layers, index_map, _note(source, after, cbam_layers, layer), comments)


def _note(source: _Source, after: list[int], cbam_layers: list[int], layer: str) -> str:
    paper = f" ({_PAPERS[layer]})" if layer in _PAPERS else ""
    return f"{layer}{paper} after layers {_list(after)} of {source.name}: {layer} layers {_list(cbam_layers)}"


def layer_args(layer: str, r: int = _DEFAULT_R, k: int = _DEFAULT_K) -> list[int]:
    """The YAML args of an attention row: the layer's r and/or k, trailing defaults left out as Ultralytics writes."""
    values = {"r": (r, _DEFAULT_R), "k": (k, _DEFAULT_K)}
    args = [values[name] for name in LAYER_ARGS[layer]]
    while args and args[-1][0] == args[-1][1]:
        args.pop()
    return [value for value, _ in args]


def _check_layer(layer: str, r: int, k: int) -> None:
    if layer not in LAYER_ARGS:
        raise ValueError(f"layer must be one of {', '.join(LAYER_ARGS)}, got {layer!r}")
    _check_int("r", r)
    _check_int("k", k, odd=True)
    for name, value, default in (("r", r, _DEFAULT_R), ("k", k, _DEFAULT_K)):
        if value != default and name not in LAYER_ARGS[layer]:
            takes = ", ".join(n for n, a in LAYER_ARGS.items() if name in a)
            raise ValueError(f"{name}={value} applies to layer={takes}, not to layer={layer}")


# --- input -----------------------------------------------------------------------------------------------------


def model_yaml(model) -> tuple[dict, str, str]:
    """The model YAML of any model input `add_cbam` takes, and its scale.

    Args:
        model: Model YAML path or Ultralytics name, model dict, checkpoint path (.pt) or YOLO model.

    Returns:
        (tuple): The model dict (a copy), its YAML text (the file's, with its comments; written anew for a checkpoint or
            dict) and its scale letter ('' where it has none).
    """
    source = _Source.resolve(model)
    d = copy.deepcopy(source.dict)
    text = source.text or write_model_yaml(d, read_comments("", len(source.rows())), f"model YAML of {source.name}")
    return d, text, source.scale


class _Source:
    """The model to insert into: its YAML dict, its file's comments and, for a checkpoint, its module."""

    def __init__(self, d: dict, name: str, path: Path | None, module: nn.Module | None, scale: str, text: str = ""):
        self.dict, self.name, self.path, self.module, self.scale, self.text = d, name, path, module, scale, text

    @classmethod
    def resolve(cls, model) -> _Source:
        from ultralytics.engine.model import Model
        from ultralytics.nn.tasks import BaseModel

        if isinstance(model, Model):
            if model.ckpt or getattr(model.model, "pt_path", None):
                return cls.from_module(model.model)
            return cls.from_dict(model.model.yaml, getattr(model.model, "yaml", {}).get("yaml_file"))
        if isinstance(model, BaseModel):
            return cls.from_module(model)
        if isinstance(model, dict):
            return cls.from_dict(model, model.get("yaml_file"))
        if isinstance(model, (str, Path)):
            if str(model).lower().endswith(".pt"):
                from ultralytics_cbam.transfer import load_checkpoint_model

                return cls.from_module(load_checkpoint_model(model))
            if str(model).lower().endswith((".yaml", ".yml")):
                return cls.from_yaml(model)
            raise ValueError(f"model '{model}' is neither a model YAML (.yaml) nor a checkpoint (.pt)")
        raise TypeError(f"model must be a YAML or .pt path, a model dict or a YOLO model, got {type(model).__name__}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> _Source:
        import yaml

        file = _find_yaml(path)
        text = file.read_text(encoding="utf-8")
        d = yaml.safe_load(text)
        if not isinstance(d, dict):
            raise ModelYAMLError(f"model YAML '{file}' is not a mapping of keys such as nc, backbone and head")
        return cls(d, Path(path).name, file, None, _guess_scale(path), text)

    @classmethod
    def from_dict(cls, d: dict, yaml_file: str | None) -> _Source:
        d = {k: v for k, v in d.items() if k not in ("yaml_file",)}
        name = Path(yaml_file).name if yaml_file else "model dict"
        return cls(d, name, None, None, d.pop("scale", "") or (_guess_scale(yaml_file) if yaml_file else ""))

    @classmethod
    def from_module(cls, module: nn.Module) -> _Source:
        d = getattr(module, "yaml", None)
        pt = getattr(module, "pt_path", None)
        name = Path(pt).name if pt else type(module).__name__
        if not isinstance(d, dict):
            raise ModelYAMLError(f"{name} carries no model YAML (model.yaml), so CBAM cannot be inserted into it")
        d = {k: v for k, v in copy.deepcopy(d).items() if k != "yaml_file"}
        return cls(d, name, Path(pt) if pt else None, module, d.pop("scale", "") or "")

    def rows(self) -> list[list]:
        for section in ("backbone", "head"):
            if not isinstance(self.dict.get(section), list) or not self.dict[section]:
                raise ModelYAMLError(
                    f"{self.describe()} has no '{section}' list of [from, repeats, module, args] rows, so it is not an "
                    "Ultralytics model YAML CBAM can be inserted into"
                )
        rows = [list(row) for row in self.dict["backbone"] + self.dict["head"]]
        for i, row in enumerate(rows):
            if len(row) != 4:
                raise ModelYAMLError(
                    f"{yaml_row(self.describe(), self.dict, i)}: a row must be [from, repeats, module, args]"
                )
        return rows

    def describe(self) -> str:
        return f"model YAML '{self.path or self.name}'" if self.module is None else f"checkpoint '{self.name}'"

    @property
    def channels(self) -> int:
        return int(self.dict.get("channels") or self.dict.get("ch") or 3)


def _find_yaml(path: str | Path) -> Path:
    """The file a model YAML name stands for: the path itself, or a packaged or Ultralytics YAML of that name."""
    if Path(path).is_file():
        return Path(path)
    from ultralytics.utils.checks import check_yaml

    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", str(path))  # yolov8n.yaml -> yolov8.yaml, as Ultralytics does
    for name in (str(path), unified):
        found = check_yaml(name, hard=False)
        if found:
            return Path(found)
    raise FileNotFoundError(f"model YAML '{path}' not found (no such file, and no Ultralytics model of that name)")


def _guess_scale(path) -> str:
    from ultralytics.nn.tasks import guess_model_scale

    return guess_model_scale(path) if path else ""


def _check_int(name: str, value, odd: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (odd and value % 2 == 0):
        raise ValueError(f"{name} must be a positive{' odd' if odd else ''} integer, got {value!r}")


def _list(indices) -> str:
    return ", ".join(map(str, indices))


# --- placement -------------------------------------------------------------------------------------------------


def _is_cbam_row(row: list) -> bool:
    return row[2] in YAML_LAYER_NAMES


def _placement(source: _Source, rows: list[list], where) -> list[int]:
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
    items = [items] if isinstance(items, int) else list(items)
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


def _default_places(source: _Source, rows: list[list]) -> list[int]:
    """After the last layer of each backbone stage of stride >= 4, or after the stage's SPPF-type block."""
    n_backbone = len(source.dict["backbone"])
    strides = _backbone_strides(source, n_backbone)
    places, stage = [], []
    plain = [i for i in range(n_backbone) if not _is_cbam_row(rows[i]) and strides.get(i)]
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
        while _is_cbam_row(rows[i]) and rows[i][0] == -1:  # a CBAM already there: the block it follows
            sources[n] = i = i - 1
    types = {rows[i][2] for i in sources}
    return [i for i in range(len(d["backbone"]), last) if rows[i][2] in types]


def _neck_places(source: _Source, rows: list[list]) -> list[int]:
    places = neck_places(source.dict)
    if not places:
        raise ValueError(f"where: 'neck': {source.describe()} has no neck blocks between its backbone and output head")
    return places


def _backbone_strides(source: _Source, n_backbone: int) -> dict[int, int]:
    """Output stride (a power of 2) of every backbone layer whose output is a 4-D feature map, from a forward pass."""
    import math

    import torch

    try:
        if source.module is not None:
            layers = list(source.module.model)
        else:
            d = {**source.dict, "yaml_file": str(source.path or source.name)}  # errors name the file
            layers = list(_parse(d, _smallest_scale(d) or source.scale, source.channels))
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


def _smallest_scale(d: dict) -> str:
    scales = d.get("scales")
    return min(scales, key=lambda s: (scales[s][1], scales[s][0])) if isinstance(scales, dict) and scales else ""


def _parse(d: dict, scale: str, channels: int) -> nn.Sequential:
    from ultralytics.nn import tasks

    d = copy.deepcopy(d)
    d["scale"] = scale
    return tasks.parse_model(d, ch=channels, verbose=False)[0]


def _check_not_present(source: _Source, rows: list[list], after: list[int], where, force: bool) -> None:
    """Refuse to add CBAM where one already follows the chosen layer, unless forced."""
    present = [i for i in after if _is_cbam_row(rows[i]) or (i + 1 < len(rows) and _is_cbam_row(rows[i + 1]))]
    if present and not force:
        places = "; ".join(
            yaml_row(source.describe(), source.dict, i if _is_cbam_row(rows[i]) else i + 1) for i in present
        )
        raise ValueError(f"CBAM is already there (where={where!r}): {places}; pass force=True to add another anyway")


# --- rewriting -------------------------------------------------------------------------------------------------


def _insert(source: _Source, rows: list[list], after: list[int], layer: str, args: list[int]):
    """Rows with `layer` inserted and every `from` rewired; returns (dict, index map, new CBAM indices, comments)."""
    n_backbone = len(source.dict["backbone"])
    inserted = set(after)
    index_map, new = {}, 0
    for i in range(len(rows)):
        index_map[i] = new
        new += 2 if i in inserted else 1

    def output_of(old: int) -> int:  # readers of a layer now read the CBAM after it
        return index_map[old] + (1 if old in inserted else 0)

    def rewire(f, i: int):
        if isinstance(f, list):
            return [rewire(x, i) for x in f]
        if i == 0 or not isinstance(f, int):
            return f
        target = output_of(f if f >= 0 else i + f)
        return target - index_map[i] if f < 0 else target

    comments = read_comments(source.text, n_rows=len(rows))
    numbered = not comments.rows  # without comments of its own, every row shows its index
    backbone, head, cbam_layers, row_comments = [], [], [], {}
    for i, row in enumerate(rows):
        section = backbone if i < n_backbone else head
        section.append([rewire(row[0], i), row[1], row[2], copy.deepcopy(row[3])])
        row_comments[index_map[i]] = str(index_map[i]) if numbered else _renumber(comments.rows.get(i), index_map[i])
        if i in inserted:
            section.append([-1, 1, layer, list(args)])
            cbam_layers.append(index_map[i] + 1)
            row_comments[index_map[i] + 1] = f"{index_map[i] + 1}"
    new_dict = {key: copy.deepcopy(v) for key, v in source.dict.items()}
    new_dict["backbone"], new_dict["head"] = backbone, head
    comments.rows = row_comments
    comments.before_rows = {index_map[i]: c for i, c in comments.before_rows.items()}
    return new_dict, index_map, cbam_layers, comments


def _renumber(comment: str | None, index: int) -> str | None:
    """A row comment that starts with the layer's index ('# 3-P3/8') gets its new index."""
    return re.sub(r"^\d+", str(index), comment) if comment else comment


# --- output ----------------------------------------------------------------------------------------------------


def _output_paths(source: _Source, output) -> tuple[Path, Path]:
    if output is None:
        stem = Path(source.name).stem if source.path or source.name != "model dict" else "model"
        yaml_path = Path.cwd() / f"{stem}-cbam.yaml"
    else:
        output = Path(output)
        if output.is_dir():
            yaml_path = output / f"{Path(source.name).stem}-cbam.yaml"
        elif output.suffix.lower() in (".yaml", ".yml", ".pt"):
            yaml_path = output.with_suffix(".yaml") if output.suffix.lower() == ".pt" else output
        else:
            raise ValueError(f"output '{output}' must be a .yaml or .pt file name or an existing directory")
    weights_path = yaml_path.with_suffix(".pt")
    for path in (yaml_path, weights_path):
        if source.path is not None and path.resolve() == source.path.resolve():
            raise ValueError(f"output '{path}' would overwrite the input {source.describe()}; choose another output")
    return yaml_path, weights_path


def _build(new_dict: dict, source: _Source, yaml_path: Path) -> nn.Module:
    """Build the new model (the checkpoint's class and scale, or a YAML's smallest scale) to check it."""
    d = copy.deepcopy(new_dict)
    d["yaml_file"] = str(yaml_path)
    if source.module is None:
        _parse(d, _smallest_scale(d) or source.scale, source.channels)
        return None
    d["scale"] = source.scale
    try:
        return type(source.module)(d, ch=source.channels, verbose=False)
    except TypeError:  # models whose constructor takes the YAML only
        return type(source.module)(d)


def _carry_weights(source: _Source, built: nn.Module, cbam_layers: list[int], path: Path, gentle: bool) -> None:
    from datetime import datetime

    import torch
    from ultralytics import __version__

    from ultralytics_cbam.transfer import transfer_weights

    report = transfer_weights(built, source.module, verbose=False, other_task=True)
    if len(report.arrived) != report.source_total:
        missing = sorted(set(source.module.state_dict()) - set(report.arrived.values()))[:5]
        raise RuntimeError(f"weights of {source.name} did not all carry over (first missing: {missing})")
    for attr in ("names", "args", "task"):
        if hasattr(source.module, attr):
            setattr(built, attr, copy.deepcopy(getattr(source.module, attr)))
    if gentle:
        from ultralytics_cbam.init import gentle_init

        gentle_init(built, layers=[built.model[i] for i in cbam_layers])
    from ultralytics.nn.tasks import guess_model_task

    args = getattr(source.module, "args", None)
    # Older Ultralytics releases fill a checkpoint's missing task with their default, 'detect'; name it.
    train_args = {**(args if isinstance(args, dict) else {}), "task": guess_model_task(built.yaml)}
    ckpt = {
        "date": datetime.now().astimezone().isoformat(),
        "version": __version__,
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "model": copy.deepcopy(built).half(),
        "ema": None,
        "train_args": train_args,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, path)


def _warn_if_shadowed(yaml_path: Path, new_dict: dict) -> None:
    """Warn when Ultralytics would read another file (a packaged YAML of the scale-free name) for this name."""
    from ultralytics.nn.tasks import yaml_model_load
    from ultralytics.utils import LOGGER

    try:
        read = yaml_model_load(yaml_path)
    except Exception:
        return
    if read.get("backbone") != new_dict["backbone"] or read.get("head") != new_dict["head"]:
        LOGGER.warning(
            f"this Ultralytics version reads another YAML ('{read.get('yaml_file')}' resolves elsewhere) when given "
            f"'{yaml_path}'; pass output= a name without a scale letter, e.g. '{yaml_path.with_name('my-cbam.yaml')}'"
        )


# --- YAML text -------------------------------------------------------------------------------------------------


@dataclass
class _Comments:
    """Comments of a model YAML file, keyed by what they belong to."""

    before_keys: dict[str, list[str]] = field(default_factory=dict)  # full-line comments and blank lines before a key
    keys: dict[str, str] = field(default_factory=dict)  # trailing comment of a top-level key
    before_scales: dict[str, list[str]] = field(default_factory=dict)
    scales: dict[str, str] = field(default_factory=dict)
    before_rows: dict[int, list[str]] = field(default_factory=dict)  # by layer index
    rows: dict[int, str | None] = field(default_factory=dict)
    trailing: list[str] = field(default_factory=list)


def _trailing_comment(text: str) -> str | None:
    """The text after an unquoted ' #', without the '#'."""
    quote = None
    for pos, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (pos == 0 or text[pos - 1].isspace()):
            return text[pos + 1 :].strip()
    return None


def read_comments(text: str, n_rows: int) -> _Comments:
    """Collect the comments of a model YAML written one row per line (as Ultralytics writes them)."""
    comments, pending, section, row = _Comments(), [], None, 0
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            pending.append(line.rstrip())
            continue
        if not line[0].isspace() and not stripped.startswith("-") and ":" in line:
            section, rest = (part.strip() for part in line.split(":", 1))
            comments.before_keys[section], pending = pending, []
            comments.keys[section] = _trailing_comment(rest)
        elif section in ("backbone", "head") and stripped.startswith("-"):
            comments.before_rows[row], pending = pending, []
            comments.rows[row] = _trailing_comment(stripped)
            row += 1
        elif section == "scales" and ":" in stripped:
            name = stripped.split(":", 1)[0].strip()
            comments.before_scales[name], pending = pending, []
            comment = _trailing_comment(stripped.split(":", 1)[1])
            # Ultralytics' per-scale "summary: ... parameters" describes the model without CBAM
            comments.scales[name] = None if comment and "summary:" in comment else comment
    comments.trailing = pending
    if row != n_rows:  # rows not one per line: keep no row comments rather than misplace them
        comments.before_rows, comments.rows = {}, {}
    return comments


def _flow(value) -> str:
    """A value in YAML flow style, as in Ultralytics' model YAMLs: [-1, 1, Conv, [64, 3, 2]]."""
    import json

    import yaml

    if isinstance(value, bool):
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        bare = re.fullmatch(r"[A-Za-z_][\w.]*", value) and yaml.safe_load(value) == value
        return value if bare else json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_flow, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_flow(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {type(value).__name__} value {value!r} to a model YAML")


def _with_comment(text: str, comment: str | None) -> str:
    return f"{text} # {comment}" if comment else text


def write_model_yaml(d: dict, comments: _Comments, note: str) -> str:
    """The model dict as YAML text: top-level keys in order, one flow-style row per line, comments kept."""
    lines, index = [], 0
    for n, (key, value) in enumerate(d.items()):
        before = list(comments.before_keys.get(key, []))
        if n == 0:  # the note goes after the file's opening comment block
            cut = next((j for j, line in enumerate(before) if not line.strip()), len(before))
            before[cut:cut] = [*([""] if cut else []), f"# {note}", *([] if before[cut:] else [""])]
        lines += before
        if key in ("backbone", "head"):
            lines.append(_with_comment(f"{key}:", comments.keys.get(key)))
            for row in value:
                lines += comments.before_rows.get(index, [])
                lines.append(_with_comment(f"  - {_flow(row)}", comments.rows.get(index)))
                index += 1
        elif key == "scales" and isinstance(value, dict):
            lines.append(_with_comment("scales:", comments.keys.get(key)))
            for name, scale in value.items():
                lines += comments.before_scales.get(name, [])
                lines.append(_with_comment(f"  {name}: {_flow(scale)}", comments.scales.get(name)))
        else:
            lines.append(_with_comment(f"{key}: {_flow(value)}", comments.keys.get(key)))
    lines += comments.trailing
    return "\n".join(lines).rstrip() + "\n"
