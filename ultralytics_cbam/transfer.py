"""Weight transfer between models whose layer lists differ by CBAM rows.

Inserting a CBAM row shifts the index of every later layer, and Ultralytics matches checkpoint tensors by name
(``model.{index}.…``), so a stock checkpoint would only fill the layers before the first CBAM. Here the two layer
lists are aligned by layer type, the checkpoint's layers are moved to their new indices, and Ultralytics' own loading
then copies every tensor whose shape matches.
"""

from __future__ import annotations

import copy
import difflib
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

from ultralytics_cbam.modules import is_attention_layer
from ultralytics_cbam.utils.model_inputs import in_place_model, torch_model

__all__ = (
    "TaskMismatchError",
    "TransferReport",
    "align_layers",
    "involves_attention",
    "load_aligned",
    "transfer_weights",
)

_MAX_LISTED = 8  # shape mismatches named one by one in the log
_FIRST_CONV = "model.0.conv.weight"


class TaskMismatchError(ValueError):
    """A checkpoint of one task (say detect) loaded into a model of another (say segment)."""


@dataclass
class TransferReport:
    """What a weight transfer did.

    Attributes:
        source: Name of the weights (checkpoint path or class name).
        arrived: Target state-dict keys that received a source tensor, mapped to the source key they came from.
        adapted: Like `arrived`, for a first convolution Ultralytics filled for another number of input channels.
        mismatched: (source key, target key, source shape, target shape) of tensors skipped because shapes differ.
        unused: Source keys with no place in the model (layers the model does not have).
        fresh: Target keys that keep their initialisation (CBAM layers new to the model, unmatched layers).
        moved: Source layer index -> target layer index, for layers whose index changed.
        source_total: Number of tensors in the source state dict.
        target_total: Number of tensors in the model's state dict.
    """

    source: str
    arrived: dict[str, str] = field(default_factory=dict)
    adapted: dict[str, str] = field(default_factory=dict)
    mismatched: list[tuple[str, str, tuple, tuple]] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    moved: dict[int, int] = field(default_factory=dict)
    source_total: int = 0
    target_total: int = 0

    def summary(self) -> str:
        """One line: how many tensors arrived out of how many, and where the rest went."""
        arrived = len(self.arrived) + len(self.adapted)
        text = (
            f"Transferred {arrived}/{self.target_total} items from pretrained weights {self.source}: "
            f"{arrived}/{self.source_total} of its tensors arrived, {len(self.moved)} layers at new indices"
        )
        if self.fresh:
            text += f"; {len(self.fresh)} tensors keep their initialisation ({_layers_of(self.fresh)})"
        return text

    def mismatch_lines(self) -> list[str]:
        """Human-readable lines for the tensors skipped because their shapes differ."""
        lines = [f"  {s} {tuple(a)} -> {t} {tuple(b)}" for s, t, a, b in self.mismatched[:_MAX_LISTED]]
        if len(self.mismatched) > _MAX_LISTED:
            lines.append(f"  ... and {len(self.mismatched) - _MAX_LISTED} more")
        return lines


def _layers_of(keys: list[str]) -> str:
    indices = sorted({i for i in map(_index, keys) if i is not None})
    return "layers " + ", ".join(map(str, indices)) if indices else "no indexed layers"


# --- alignment -------------------------------------------------------------------------------------------------


def _layer_type(module: nn.Module) -> str:
    return getattr(module, "type", None) or f"{type(module).__module__}.{type(module).__qualname__}"


def align_layers(target: list[nn.Module], source: list[nn.Module]) -> dict[int, int]:
    """Map target layer indices to source layer indices.

    Non-CBAM layers are matched in order by type (the longest common run first, so an extra or missing layer only
    leaves that layer unmatched). A CBAM-type layer is matched only to a source layer of the same type that follows
    the same matched non-CBAM layer at the same position, i.e. sits at the same place in the network.

    Args:
        target: Layers of the model that receives the weights.
        source: Layers of the model the weights come from.

    Returns:
        (dict): target index -> source index for every matched layer.
    """
    t_plain = [i for i, m in enumerate(target) if not is_attention_layer(m)]
    s_plain = [i for i, m in enumerate(source) if not is_attention_layer(m)]
    matcher = difflib.SequenceMatcher(
        None, [_layer_type(target[i]) for i in t_plain], [_layer_type(source[i]) for i in s_plain], autojunk=False
    )
    mapping = {}
    for block in matcher.get_matching_blocks():
        for n in range(block.size):
            mapping[t_plain[block.a + n]] = s_plain[block.b + n]

    def cbam_places(layers: list[nn.Module], anchor_of) -> dict[tuple, int]:
        places, anchor, run = {}, "start", 0
        for i, m in enumerate(layers):
            if is_attention_layer(m):
                if anchor is not None:  # a CBAM after a layer without counterpart has no place to match
                    places[(anchor, run, _layer_type(m))] = i
                run += 1
            else:
                anchor, run = anchor_of(i), 0
        return places

    source_places = cbam_places(source, lambda j: j)
    for place, i in cbam_places(target, mapping.get).items():
        if place in source_places:
            mapping[i] = source_places[place]
    return mapping


# --- transfer --------------------------------------------------------------------------------------------------


def _source_module(weights) -> nn.Module | None:
    """The module a checkpoint dict or module stands for (EMA weights first, as Ultralytics does)."""
    if isinstance(weights, dict):
        weights = weights.get("ema") or weights.get("model")
    return weights if isinstance(weights, nn.Module) else None


def _layer_list(model: nn.Module) -> list[nn.Module] | None:
    layers = getattr(model, "model", None)
    return list(layers) if isinstance(layers, nn.Sequential) else None


def _source_name(model: nn.Module) -> str:
    path = getattr(model, "pt_path", None)
    return Path(path).name if path else type(model).__name__


def model_task(model: nn.Module) -> str | None:
    """Task of a YOLO model ('detect', 'segment', ...), from its YAML when it has one, else from its head."""
    from ultralytics.nn.tasks import guess_model_task

    yaml = getattr(model, "yaml", None)
    task = guess_model_task(yaml) if isinstance(yaml, dict) else None
    return task or getattr(model, "task", None) or guess_model_task(model)


def check_same_task(model: nn.Module, source: nn.Module) -> None:
    """Raise TaskMismatchError if `source` was built for another task than `model`."""
    task, source_task = model_task(model), model_task(source)
    if task and source_task and task != source_task:
        raise TaskMismatchError(
            f"'{_source_name(source)}' is a {source_task} checkpoint, but the model is a {task} model"
            f"{_yaml_name(model)}. Load a {task} checkpoint, or transfer the layers the two share on purpose with "
            f"ultralytics_cbam.transfer.transfer_weights(model, weights, other_task=True)."
        )


def _yaml_name(model: nn.Module) -> str:
    yaml = getattr(model, "yaml", None)
    name = yaml.get("yaml_file") if isinstance(yaml, dict) else None
    return f" ({Path(name).name})" if name else ""


def _remapped(source: nn.Module, mapping: dict[int, int], length: int) -> nn.Module:
    """A shallow copy of `source` whose layer list is reordered to the target's indices (empty where unmatched)."""
    clone = copy.copy(source)
    clone._modules = type(source._modules)(source._modules)
    clone._modules["model"] = nn.Sequential(
        *(source.model[mapping[i]] if i in mapping else nn.Identity() for i in range(length))
    )
    return clone


def _rekey(key: str, mapping: dict[int, int]) -> str:
    """Translate a remapped key `model.{target}.…` back to the source's own `model.{source}.…`."""
    head, index, rest = key.split(".", 2)
    return f"{head}.{mapping[int(index)]}.{rest}"


def transfer_weights(model: nn.Module, weights, verbose: bool = True, other_task: bool = False) -> TransferReport:
    """Load `weights` into `model`, moving every layer of the source to its index in `model`.

    Args:
        model: Ultralytics model (``YOLO`` or ``DetectionModel`` etc.) that receives the weights.
        weights: Checkpoint path, checkpoint dict (``{'model': …}`` or ``{'ema': …}``), ``YOLO`` or model.
        verbose: Log the summary and the tensors skipped because their shapes differ.
        other_task: Allow a checkpoint of another task (only the layers both models share are transferred).

    Returns:
        (TransferReport): What arrived, what was skipped and why.
    """
    from ultralytics.nn.tasks import BaseModel

    model = in_place_model(model)
    if not isinstance(weights, dict) and (weights := torch_model(weights, "weights")) is None:
        raise TypeError("weights must be a checkpoint (.pt), checkpoint dict, YOLO object or model; a YAML has none")
    load = getattr(BaseModel.load, "__wrapped__", BaseModel.load)
    return load_aligned(model, weights, load, verbose=verbose, other_task=other_task)


def load_aligned(model, weights, load, verbose: bool, other_task: bool) -> TransferReport:
    """Load `weights` into `model` with Ultralytics' `load` after moving the source's layers to their new indices."""
    source = _source_module(weights)
    target_layers, source_layers = _layer_list(model), _layer_list(source) if source is not None else None
    for name, module, layers in (("model", model, target_layers), ("weights", source, source_layers)):
        if layers is None:
            raise TypeError(f"cannot align layers: {name} ({type(module).__name__}) has no Ultralytics layer list")
    if not other_task:
        check_same_task(model, source)
    mapping = align_layers(target_layers, source_layers)
    remapped = _remapped(source, mapping, len(target_layers))
    first_conv = model.state_dict().get(_FIRST_CONV)
    first_conv = None if first_conv is None else first_conv.clone()
    load(model, remapped, verbose=False)

    report = TransferReport(source=_source_name(source))
    target_sd, source_sd = model.state_dict(), source.state_dict()
    report.source_total, report.target_total = len(source_sd), len(target_sd)
    report.moved = {j: i for i, j in mapping.items() if i != j}
    for key, tensor in remapped.state_dict().items():
        src_key = _rekey(key, mapping)
        if key not in target_sd:
            report.unused.append(src_key)
        elif target_sd[key].shape == tensor.shape:
            report.arrived[key] = src_key
        elif key == _FIRST_CONV and target_sd[key].shape[0] == tensor.shape[0]:
            report.adapted[key] = src_key  # Ultralytics fills a first conv with another input channel count
        else:
            report.mismatched.append((src_key, key, tuple(tensor.shape), tuple(target_sd[key].shape)))
            if key == _FIRST_CONV and first_conv is not None:  # undo Ultralytics' partial copy of other filters
                target_sd[key].copy_(first_conv)
    used = set(mapping.values())
    report.unused += [k for k in source_sd if _index(k) is not None and _index(k) not in used]
    taken = {*report.arrived, *report.adapted, *(m[1] for m in report.mismatched)}
    report.fresh = [k for k in target_sd if k not in taken]
    _adopt_names(model, source, report, target_layers)
    if verbose:
        _log(report, source, model)
    return report


def _index(key: str) -> int | None:
    """Layer index of a state-dict key `model.{index}.…`, or None."""
    parts = key.split(".")
    return int(parts[1]) if len(parts) > 2 and parts[0] == "model" and parts[1].isdigit() else None


def _adopt_names(model, source, report: TransferReport, layers: list[nn.Module]) -> None:
    """Take the source's class names when every tensor outside new CBAM layers arrived (as Ultralytics does)."""
    cbam = {i for i, m in enumerate(layers) if is_attention_layer(m)}
    if report.mismatched or any(_index(k) not in cbam for k in report.fresh):
        return
    names = getattr(source, "names", None)
    if isinstance(names, dict) and getattr(model, "names", None) == {i: str(i) for i in range(len(names))}:
        model.names = dict(names)


def _log(report: TransferReport, source: nn.Module, model: nn.Module) -> None:
    from ultralytics.utils import LOGGER

    LOGGER.info(report.summary())
    if getattr(source, "is_fused", lambda: False)() and not getattr(model, "is_fused", lambda: True)():
        LOGGER.warning("Pretrained weights are fused for inference; train from the unfused checkpoint instead.")
    if report.mismatched:
        LOGGER.warning(
            f"{len(report.mismatched)} tensors of {report.source} were skipped because their shapes differ from the "
            "model's (another number of classes, keypoints or another scale); they keep their initialisation:\n"
            + "\n".join(report.mismatch_lines())
        )
    if report.unused:
        LOGGER.warning(
            f"{len(report.unused)} tensors of {report.source} have no place in the model "
            f"({_layers_of(report.unused)} of the source)"
        )


def involves_attention(model: nn.Module, weights) -> bool:
    """Whether `model` or the checkpoint `weights` has attention layers, so that loading must align the layers."""
    source = _source_module(weights)
    layers, source_layers = _layer_list(model), _layer_list(source) if source is not None else None
    return layers is not None and source_layers is not None and any(map(is_attention_layer, layers + source_layers))
