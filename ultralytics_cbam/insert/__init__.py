"""Insert CBAM rows into any Ultralytics model YAML or checkpoint.

The result is a plain model YAML (one flow-style row per line, like Ultralytics' own files) and, for a checkpoint, a
new checkpoint that carries every old tensor over to the layer's new index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ultralytics_cbam.insert.output import build_checked, output_paths, warn_if_shadowed, write_checkpoint
from ultralytics_cbam.insert.placement import check_not_present, neck_places, placement
from ultralytics_cbam.insert.rewire import rewire_rows
from ultralytics_cbam.insert.source import ModelSource, guess_scale, model_yaml
from ultralytics_cbam.insert.yaml_text import Comments, read_comments, write_model_yaml
from ultralytics_cbam.utils.checks import flag, positive_int

__all__ = (
    "CBAMInsertion",
    "InsertedRows",
    "add_cbam",
    "default_cbam_yaml",
    "insert_rows",
    "layer_args",
    "model_yaml",
    "neck_places",
    "read_comments",
    "write_model_yaml",
)

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
        gentle: Start the new CBAM layers close to identity (``ultralytics_cbam.weight_init.gentle_init``); needs a
            checkpoint input, since a YAML holds no weights.
        force: Insert even where a CBAM layer already follows the chosen layer.
        layer: The attention layer to insert: 'CBAM', 'SE' (Squeeze-and-Excitation, the CBAM paper's comparator;
            r applies, k does not), 'ChannelAttention' or 'SpatialAttention'.

    Returns:
        (CBAMInsertion): Paths written and where CBAM went.
    """
    gentle, force = flag("gentle", gentle), flag("force", force)
    source = ModelSource.resolve(model)
    _check_layer(layer, r, k)
    if gentle and layer == "SE":
        raise ValueError(f"gentle=True starts CBAM's gates near identity; it does not apply to layer={layer}")
    if gentle and source.module is None:
        raise ValueError(
            f"gentle=True needs a checkpoint (.pt) input, but {source.name} is a model YAML without weights; "
            "load weights into the built model and call ultralytics_cbam.weight_init.gentle_init(model) instead"
        )
    inserted = _inserted(source, where, r, k, force, layer)
    new_dict, index_map, cbam_layers, after = inserted.dict, inserted.index_map, inserted.cbam_layers, inserted.after
    yaml_path, weights_path = output_paths(source, output)
    if source.scale and source.module is not None and guess_scale(yaml_path) != source.scale:
        new_dict["scales"] = {source.scale: source.dict["scales"][source.scale]}  # the only scale the weights fit
    built = build_checked(new_dict, source, yaml_path)  # before writing: a model that fails to build replaces nothing

    from ultralytics.utils import LOGGER

    written = (yaml_path, weights_path) if source.module is not None else (yaml_path,)
    if replaced := [str(path) for path in written if path.exists()]:
        LOGGER.warning(f"replacing {' and '.join(replaced)}, which already existed")
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    yaml_path.write_text(inserted.text(), encoding="utf-8")
    LOGGER.info(
        f"Wrote {yaml_path}: {layer} after layers {index_list(after)} of {source.name} "
        f"({layer} layers {index_list(cbam_layers)})"
    )
    warn_if_shadowed(yaml_path, new_dict)
    if source.module is not None:
        write_checkpoint(source, built, cbam_layers, weights_path, gentle)
        LOGGER.info(f"Wrote {weights_path} with the weights of {source.name}")
    return CBAMInsertion(yaml_path, weights_path if source.module is not None else None, after, cbam_layers, index_map)


def default_cbam_yaml(path: str | Path) -> str:
    """The text of model YAML `path` with CBAM at `add_cbam`'s default placement, written nowhere.

    Args:
        path: Model YAML file without CBAM, e.g. Ultralytics' 'yolo11.yaml'.

    Returns:
        (str): The new model YAML, as `add_cbam(path)` would write it.
    """
    return _inserted(ModelSource.from_yaml(path), "default", _DEFAULT_R, _DEFAULT_K, False, "CBAM").text()


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
    comments: Comments = field(repr=False)

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
    return _inserted(ModelSource.resolve(model), where, r, k, force, layer)


def _inserted(source: ModelSource, where, r: int, k: int, force: bool, layer: str) -> InsertedRows:
    rows = source.rows()
    after = placement(source, rows, where)
    check_not_present(source, rows, after, where, force)
    new_dict, index_map, cbam_layers, comments = rewire_rows(source, rows, after, layer, layer_args(layer, r, k))
    return InsertedRows(new_dict, after, cbam_layers, index_map, _note(source, after, cbam_layers, layer), comments)


def _note(source: ModelSource, after: list[int], cbam_layers: list[int], layer: str) -> str:
    paper = f" ({_PAPERS[layer]})" if layer in _PAPERS else ""
    return f"{layer}{paper} after layers {index_list(after)} of {source.name}: {layer} layers {index_list(cbam_layers)}"


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
    positive_int("r", r)
    positive_int("k", k, odd=True)
    for name, value, default in (("r", r, _DEFAULT_R), ("k", k, _DEFAULT_K)):
        if value != default and name not in LAYER_ARGS[layer]:
            takes = ", ".join(n for n, a in LAYER_ARGS.items() if name in a)
            raise ValueError(f"{name}={value} applies to layer={takes}, not to layer={layer}")


def index_list(indices) -> str:
    return ", ".join(map(str, indices))
