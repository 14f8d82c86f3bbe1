"""Model inputs as the tools take them: a ``YOLO`` object, an Ultralytics model, or a checkpoint path or asset name."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ultralytics_cbam.integration.compat import load_checkpoint

__all__ = ("checkpoint_file", "in_place_model", "is_yaml_path", "load_checkpoint_model", "torch_model")


def is_yaml_path(model: object) -> bool:
    """Whether `model` is a path or name of a model YAML."""
    return isinstance(model, (str, Path)) and str(model).lower().endswith((".yaml", ".yml"))


def torch_model(model, arg: str = "model") -> nn.Module | None:
    """The PyTorch model of a ``YOLO`` object, a torch module or a checkpoint path; None for YAML paths and dicts.

    Raises:
        ValueError: For a ``YOLO`` object of an exported format (ONNX, ...), which holds no PyTorch model.
    """
    from ultralytics.engine.model import Model

    if isinstance(model, Model):
        if not isinstance(model.model, nn.Module):
            raise ValueError(f"{arg} {model.model!r} is not a PyTorch model (exported formats hold no layers to use)")
        return model.model
    if isinstance(model, nn.Module):
        return model
    if isinstance(model, (str, Path)) and not is_yaml_path(model):
        return load_checkpoint_model(model)
    return None


def load_checkpoint_model(path: str | Path) -> nn.Module:
    """The FP32 model of a checkpoint file, via Ultralytics' own loader (names the file if it is missing)."""
    return load_checkpoint(checkpoint_file(path))[0]


def checkpoint_file(path: str | Path) -> str:
    """The local file of a checkpoint path or URL, or of an Ultralytics asset name such as 'yolov8n.pt', found in or
    downloaded to Ultralytics' weights folder as `yolo predict model=yolov8n.pt` does."""
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset

    if Path(path).is_file():
        return str(path)
    if str(path).strip() and Path(path).is_dir():
        raise IsADirectoryError(f"checkpoint '{path}' is a folder, not a checkpoint file (.pt)")
    name = str(path).strip()
    if (Path(name).name == name and name in GITHUB_ASSETS_NAMES) or name.lower().startswith(("http://", "https://")):
        try:
            file = attempt_download_asset(name)
        except ConnectionError:
            raise FileNotFoundError(
                f"checkpoint '{path}' is not in the working folder or Ultralytics' weights folder, and downloading "
                "it failed: connect to the internet or put the file here"
            ) from None
        if Path(file).is_file():
            return file
    raise FileNotFoundError(f"checkpoint '{path}' not found")


def in_place_model(model, arg: str = "model") -> nn.Module:
    """The torch model of a ``YOLO`` object or module, for tools that change it in place (so not of a path).

    Raises:
        TypeError: For paths, dicts and anything else that holds no model to change.
    """
    found = None if isinstance(model, (str, Path)) else torch_model(model, arg)
    if found is None:
        raise TypeError(f"{arg} must be a YOLO object or a torch module (changed in place), got {model!r}")
    return found
