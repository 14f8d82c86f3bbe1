"""The model to insert into: any model input read as its YAML dict, its file's comments and, for a checkpoint, its
module."""

from __future__ import annotations

import copy
from pathlib import Path

from torch import nn

from ultralytics_cbam.insert.yaml_text import read_comments, write_model_yaml
from ultralytics_cbam.integration.yaml_rows import ModelYAMLError, yaml_row
from ultralytics_cbam.utils.model_inputs import is_yaml_path, torch_model
from ultralytics_cbam.utils.names import scale_free

__all__ = ("ModelSource", "find_yaml", "guess_scale", "model_yaml")


def model_yaml(model) -> tuple[dict, str, str]:
    """The model YAML of any model input `add_cbam` takes, and its scale.

    Args:
        model: Model YAML path or Ultralytics name, model dict, checkpoint path (.pt) or YOLO model.

    Returns:
        (tuple): The model dict (a copy), its YAML text (the file's, with its comments; written anew for a checkpoint or
            dict) and its scale letter ('' where it has none).
    """
    source = ModelSource.resolve(model)
    d = copy.deepcopy(source.dict)
    text = source.text or write_model_yaml(d, read_comments("", len(source.rows())), f"model YAML of {source.name}")
    return d, text, source.scale


class ModelSource:
    """The model to insert into: its YAML dict, its file's comments and, for a checkpoint, its module."""

    def __init__(self, d: dict, name: str, path: Path | None, module: nn.Module | None, scale: str, text: str = ""):
        self.dict, self.name, self.path, self.module, self.scale, self.text = d, name, path, module, scale, text

    @classmethod
    def resolve(cls, model) -> ModelSource:
        from ultralytics.engine.model import Model
        from ultralytics.nn.tasks import BaseModel

        if isinstance(model, dict):
            return cls.from_dict(model, model.get("yaml_file"))
        if is_yaml_path(model):
            return cls.from_yaml(model)
        if isinstance(model, (str, Path)) and not str(model).lower().endswith(".pt"):
            raise ValueError(f"model '{model}' is neither a model YAML (.yaml) nor a checkpoint (.pt)")
        if not isinstance(model, (Model, BaseModel, str, Path)):
            kind = type(model).__name__
            raise TypeError(f"model must be a YAML or .pt path, a model dict or a YOLO model, got {kind}")
        module = torch_model(model)
        if isinstance(model, Model) and not (model.ckpt or getattr(module, "pt_path", None)):
            return cls.from_dict(module.yaml, module.yaml.get("yaml_file"))  # built from a YAML: no weights to keep
        return cls.from_module(module)

    @classmethod
    def from_yaml(cls, path: str | Path) -> ModelSource:
        import yaml

        file = find_yaml(path)
        try:
            text = file.read_text(encoding="utf-8")
            d = yaml.safe_load(text)
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            mark = getattr(e, "problem_mark", None)
            where = f"line {mark.line + 1}: {e.problem}" if mark else str(e)
            raise ModelYAMLError(f"model YAML '{file}' is not valid YAML ({where})") from None
        if not isinstance(d, dict):
            raise ModelYAMLError(f"model YAML '{file}' is not a mapping of keys such as nc, backbone and head")
        return cls(d, Path(path).name, file, None, guess_scale(path), text)

    @classmethod
    def from_dict(cls, d: dict, yaml_file: str | None) -> ModelSource:
        d = {k: v for k, v in d.items() if k not in ("yaml_file",)}
        name = Path(yaml_file).name if yaml_file else "model dict"
        return cls(d, name, None, None, d.pop("scale", "") or (guess_scale(yaml_file) if yaml_file else ""))

    @classmethod
    def from_module(cls, module: nn.Module) -> ModelSource:
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


def find_yaml(path: str | Path) -> Path:
    """The file a model YAML name stands for: the path itself, or a packaged or Ultralytics YAML of that name."""
    if Path(path).is_file():
        return Path(path)
    from ultralytics.utils.checks import check_yaml

    for name in (str(path), scale_free(str(path))):
        found = check_yaml(name, hard=False)
        if found:
            return Path(found)
    raise FileNotFoundError(f"model YAML '{path}' not found (no such file, and no Ultralytics model of that name)")


def guess_scale(path) -> str:
    """The scale letter Ultralytics reads from a model file name ('yolov8n.yaml' -> 'n'), '' where it has none."""
    from ultralytics.nn.tasks import guess_model_scale

    return guess_model_scale(path) if path else ""
