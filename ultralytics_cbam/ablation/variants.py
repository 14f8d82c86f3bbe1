"""Variants of an ablation grid: names such as 'cbam', 'neck+r8' or 'baseline@s', and their model YAMLs.

Every variant is derived from one base model YAML (any Ultralytics model YAML, or a user's) with the same inserter as
`add_cbam`, at its default placement (after each backbone stage from stride 4 on); 'neck' also puts attention after
the neck blocks that feed the output head.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ultralytics_cbam.insert import insert_rows, model_yaml, read_comments, write_model_yaml
from ultralytics_cbam.utils.names import SCALES, with_scale

__all__ = ("DEFAULT_BASE", "Variant", "build_variant", "is_checkpoint", "model_file_name", "parse_variants")

DEFAULT_BASE = "yolov8n.yaml"
_PLACEMENTS = {"cbam": "backbone", "neck": "backbone+neck", "neck-only": "neck"}
_MODULES = {"channel": "ChannelAttention", "spatial": "SpatialAttention", "se": "SE"}
_WHERE = {"backbone": "after each backbone stage (add_cbam's default)", "neck": "after the neck blocks"}
_WHERE["backbone+neck"] = f"{_WHERE['backbone']} and {_WHERE['neck']}"


@dataclass(frozen=True)
class Variant:
    """One model of the grid.

    Attributes:
        name: Label in tables, plots and run directory names.
        placement: 'none' (the base model), 'backbone' (add_cbam's default), 'backbone+neck', 'neck', or 'file'.
        module: Attention row module: 'CBAM', 'ChannelAttention', 'SpatialAttention' or 'SE' (Squeeze-and-Excitation).
        reduction: Channel-attention reduction ratio r.
        kernel_size: Spatial-attention kernel size k.
        gentle: Start the attention layers near identity (`ultralytics_cbam.weight_init.gentle_init`) before training.
        scale: Model scale n, s, m, l or x ('@s'); None for the base's.
        file: The user's model YAML for placement 'file', trained as it is.
    """

    name: str
    placement: str = "backbone"
    module: str = "CBAM"
    reduction: int = 16
    kernel_size: int = 7
    gentle: bool = False
    scale: str | None = None
    file: Path | None = None

    @classmethod
    def parse(cls, name: str) -> Variant:
        """Variant from a name: tokens joined by '+' (e.g. 'cbam', 'neck+r8', 'spatial+k3', 'cbam+gentle'), an
        optional '@<scale>' (e.g. 'baseline@s'), or a model YAML path."""
        name = str(name).strip()
        if name.endswith((".yaml", ".yml")):
            return cls._from_file(name)
        tokens, scale = name, None
        if "@" in name:
            tokens, scale = name.rsplit("@", 1)
            if scale not in tuple(SCALES):
                raise ValueError(f"variant '{name}': '@{scale}' is not a model scale; use @n, @s, @m, @l or @x")
        if tokens == "baseline":
            return cls(name, placement="none", scale=scale)
        fields: dict = {}
        for token in tokens.split("+"):
            key, value = cls._token(name, token)
            if key in fields:
                raise ValueError(f"variant '{name}': sets {key} twice")
            fields[key] = value
        module = fields.get("module", "CBAM")
        if module in ("ChannelAttention", "SE") and "kernel_size" in fields:
            raise ValueError(f"variant '{name}': k (kernel size) does not apply to {module}")
        if module == "SpatialAttention" and "reduction" in fields:
            raise ValueError(f"variant '{name}': r (reduction) does not apply to spatial attention")
        if module == "SE" and fields.get("gentle"):
            raise ValueError(f"variant '{name}': gentle starts CBAM's gates near identity; it does not apply to SE")
        return cls(name, scale=scale, **fields)

    @staticmethod
    def _token(name: str, token: str) -> tuple[str, object]:
        if token in _PLACEMENTS:
            return "placement", _PLACEMENTS[token]
        if token in _MODULES:
            return "module", _MODULES[token]
        if token == "gentle":
            return "gentle", True
        match = re.fullmatch(r"([rk])(\d+)", token)
        if match and int(match[2]) > 0 and (match[1] == "r" or int(match[2]) % 2):
            return ("reduction" if match[1] == "r" else "kernel_size"), int(match[2])
        if match:
            kind = "a positive integer" if match[1] == "r" else "a positive odd integer"
            raise ValueError(f"variant '{name}': {token[0]} must be {kind}, got '{token}'")
        raise ValueError(
            f"unknown variant '{name}' (part '{token}'); use baseline, cbam, se, channel, spatial, r<N>, k<N>, neck, "
            "neck-only, gentle, several joined by '+' (e.g. neck+r8), '@<scale>' (e.g. baseline@s), or a model YAML"
        )

    @classmethod
    def _from_file(cls, name: str) -> Variant:
        from ultralytics.utils.checks import check_yaml

        try:
            file = Path(check_yaml(name))
        except FileNotFoundError:
            raise FileNotFoundError(f"variant model YAML '{name}' not found") from None
        return cls(file.stem, placement="file", file=file)

    def describe(self, base: str = DEFAULT_BASE) -> str:
        """One line saying what the variant is."""
        if self.placement == "file":
            return f"model YAML {self.file}"
        scale = f" at scale {self.scale}" if self.scale else ""
        if self.placement == "none":
            return f"{'the checkpoint' if is_checkpoint(base) else 'stock'} {Path(base).name}{scale}, no attention"
        args = ", ".join(f"{k}={v}" for k, v in self.args().items())
        gentle = ", started near identity (gentle_init)" if self.gentle else ""
        return f"{self.module}({args}) {_WHERE[self.placement]}{gentle}{scale}"

    def args(self) -> dict:
        """The attention rows' YAML args by name."""
        if self.module in ("ChannelAttention", "SE"):
            return {"r": self.reduction}
        if self.module == "SpatialAttention":
            return {"k": self.kernel_size}
        return {"r": self.reduction, "k": self.kernel_size}


def parse_variants(variants: str | Sequence[str]) -> list[Variant]:
    """Variants of the grid from 'a,b,c' or a list of names and model YAML paths."""
    names = variants.split(",") if isinstance(variants, str) else list(variants)
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names:
        raise ValueError("variants is empty; e.g. variants=baseline,cbam")
    parsed = [Variant.parse(n) for n in names]
    seen: set[str] = set()
    for v in parsed:
        if v.name in seen:
            raise ValueError(f"variant '{v.name}' is listed twice")
        seen.add(v.name)
    return parsed


def base_scale(base: str, d: dict) -> str:
    """The scale Ultralytics builds `base` at: the one in its name (yolov8n.yaml), else the YAML's first."""
    from ultralytics.nn.tasks import guess_model_scale

    scales = d.get("scales") or {}
    return guess_model_scale(base) or next(iter(scales), "")


def is_checkpoint(base: str | Path) -> bool:
    """Whether the grid's base is a trained checkpoint (its variants start from its weights) rather than a YAML."""
    return str(base).lower().endswith(".pt")


def build_variant(variant: Variant, base: str = DEFAULT_BASE) -> tuple[dict, str, str]:
    """The model dict, YAML text and scale of a variant of `base`, a model YAML or a trained checkpoint (.pt).

    The scales of the YAML are cut to the variant's one, so the model is that scale whatever its file is called.
    """
    if variant.placement == "file":
        text = variant.file.read_text(encoding="utf-8")
        d = yaml.safe_load(text)
        if not isinstance(d, dict) or "backbone" not in d or "head" not in d:
            raise ValueError(f"variant model YAML '{variant.file}' has no 'backbone' and 'head' sections")
        return d, text, base_scale(variant.file.name, d)
    d, text, base_letter = model_yaml(base)
    if not isinstance(d.get("backbone"), list) or not isinstance(d.get("head"), list):
        raise ValueError(f"base model YAML '{base}' has no 'backbone' and 'head' lists")
    scales = d.get("scales") or {}
    scale = variant.scale or base_letter or base_scale(base, d)
    if variant.scale and is_checkpoint(base) and variant.scale != base_letter:
        raise ValueError(
            f"variant '{variant.name}': base '{base}' is a checkpoint of scale '{base_letter}', whose weights fit no "
            f"other scale; use its model YAML as base for '@{variant.scale}'"
        )
    if variant.scale and variant.scale not in scales:
        have = f"its scales are {', '.join(scales)}" if scales else "it has no scales"
        raise ValueError(f"variant '{variant.name}': base '{base}' has no scale '{variant.scale}' ({have})")
    note = f"ablation variant '{variant.name}': {variant.describe(base)}"
    if variant.placement == "none":
        if scale in scales:
            d["scales"] = {scale: scales[scale]}
        rows = len(d["backbone"]) + len(d["head"])
        return d, write_model_yaml(d, read_comments(text, rows), note), scale
    where = {"backbone": "default", "backbone+neck": "default,neck", "neck": "neck"}
    inserted = insert_rows(
        base, where=where[variant.placement], r=variant.reduction, k=variant.kernel_size, layer=variant.module
    )
    if scale in scales:
        inserted.dict["scales"] = {scale: scales[scale]}
    inserted.note = note
    return inserted.dict, inserted.text(), scale


def model_file_name(variant: Variant, base: str, scale: str) -> str:
    """The variant's YAML file name, from which Ultralytics reads the scale: 'yolo11s-cbam.yaml' for base
    'yolo11n.yaml' and scale s; a user's YAML variant keeps its own name."""
    if variant.file is not None:
        return variant.file.name
    return f"{with_scale(Path(base).stem, scale)}-{slug(variant.name)}.yaml"


def slug(name: str) -> str:
    """`name` as a file name."""
    return re.sub(r"[^\w.+@-]", "_", name)
