"""What `add_cbam` writes: the output paths, the new model built to check it, and the new checkpoint."""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from ultralytics_cbam.insert.placement import parse_layers, smallest_scale
from ultralytics_cbam.insert.source import ModelSource
from ultralytics_cbam.integration.compat import checkpoint_train_args
from ultralytics_cbam.transfer import transfer_weights
from ultralytics_cbam.weight_init import gentle_init

__all__ = ("build_checked", "output_paths", "warn_if_shadowed", "write_checkpoint")


def output_paths(source: ModelSource, output) -> tuple[Path, Path]:
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


def build_checked(new_dict: dict, source: ModelSource, yaml_path: Path) -> nn.Module:
    """Build the new model (the checkpoint's class and scale, or a YAML's smallest scale) to check it."""
    d = copy.deepcopy(new_dict)
    d["yaml_file"] = str(yaml_path)
    if source.module is None:
        parse_layers(d, smallest_scale(d) or source.scale, source.channels)
        return None
    d["scale"] = source.scale
    try:
        return type(source.module)(d, ch=source.channels, verbose=False)
    except TypeError:  # models whose constructor takes the YAML only
        return type(source.module)(d)


def write_checkpoint(source: ModelSource, built: nn.Module, cbam_layers: list[int], path: Path, gentle: bool) -> None:
    from datetime import datetime

    import torch
    from ultralytics import __version__

    report = transfer_weights(built, source.module, verbose=False, other_task=True)
    if len(report.arrived) != report.source_total:
        missing = sorted(set(source.module.state_dict()) - set(report.arrived.values()))[:5]
        raise RuntimeError(f"weights of {source.name} did not all carry over (first missing: {missing})")
    for attr in ("names", "args", "task"):
        if hasattr(source.module, attr):
            setattr(built, attr, copy.deepcopy(getattr(source.module, attr)))
    if gentle:
        gentle_init(built, layers=[built.model[i] for i in cbam_layers])
    from ultralytics.nn.tasks import guess_model_task

    args = getattr(source.module, "args", None)
    train_args = checkpoint_train_args(args, guess_model_task(built.yaml))
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


def warn_if_shadowed(yaml_path: Path, new_dict: dict) -> None:
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
