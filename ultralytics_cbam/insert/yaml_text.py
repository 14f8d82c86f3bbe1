"""Model YAML text as Ultralytics writes it (one flow-style row per line), with the input file's comments kept."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ("Comments", "read_comments", "write_model_yaml")


@dataclass
class Comments:
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


def read_comments(text: str, n_rows: int) -> Comments:
    """Collect the comments of a model YAML written one row per line (as Ultralytics writes them)."""
    comments, pending, section, row = Comments(), [], None, 0
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


def write_model_yaml(d: dict, comments: Comments, note: str) -> str:
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
