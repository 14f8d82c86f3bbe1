"""YAML layers whose input channels are inferred from the row's input: the one place that reads the frame of
Ultralytics' `parse_model`."""

from __future__ import annotations

import inspect
import sys
from types import FrameType

from ultralytics_cbam.integration.yaml_rows import ModelYAMLError, yaml_row, yaml_source


def yaml_layer(layer: type) -> type:
    """A stand-in for `layer` that Ultralytics' parse_model instantiates with the row's args only.

    It builds the real `layer`, prepending the input channel count of the row's input when the layer takes one, so
    YAML rows read ``[-1, 1, CBAM, [reduction, kernel_size]]`` and one YAML serves every width scale.
    """
    params = list(inspect.signature(layer).parameters.values())
    takes_channels = params[0].name == "channels"
    yaml_params = params[1:] if takes_channels else params
    shown = [p for p in params if p.name != "bias"]  # what the model summary lists

    def __new__(cls, *args):
        frame = _parse_model_frame()
        if frame is None:  # not built from a YAML: behave like the layer itself
            return layer(*args)
        row = frame.f_locals
        d = row.get("d") or {}
        where = yaml_row(yaml_source(d), d, row["i"])
        names = ", ".join(p.name for p in yaml_params)
        inferred = "; the input channels are inferred, not given" if takes_channels else ""
        if len(args) > len(yaml_params):
            raise ModelYAMLError(f"{where}: {layer.__name__} takes at most {len(yaml_params)} args [{names}]{inferred}")
        full = list(args)
        if takes_channels:
            full.insert(0, _input_channels(row, where))
        try:
            module = layer(*full)
        except (TypeError, ValueError) as e:
            raise ModelYAMLError(f"{where}: {e} ({layer.__name__} args: [{names}]{inferred})") from None
        if row.get("n") == 1 and isinstance(row.get("args"), list):  # readable summary: [channels, r, k]
            defaults = [p.default for p in shown[len(full) :]]
            row["args"][:] = full + defaults
        return module

    namespace = {"__new__": __new__, "__module__": layer.__module__, "__qualname__": layer.__qualname__}
    return type(layer.__name__, (layer,), namespace)


def _parse_model_frame() -> FrameType | None:
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_name != "parse_model":
        frame = frame.f_back
    return frame


def _input_channels(row: dict, where: str) -> int:
    """Channels of the row's single input; raises if the input is not one feature map."""
    from ultralytics.nn.modules import Classify, Detect

    f, ch, layers = row["f"], row["ch"], row["layers"]
    if not isinstance(f, int):
        raise ModelYAMLError(f"{where}: takes one input feature map, but 'from' is {f}")
    if layers and isinstance(layers[f], (Detect, Classify)):
        raise ModelYAMLError(f"{where}: its input is the output of {type(layers[f]).__name__}, not a feature map")
    return ch[f]
