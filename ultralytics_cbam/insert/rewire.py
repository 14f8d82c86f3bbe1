"""Rows with the attention layers inserted and every `from` index rewired."""

from __future__ import annotations

import copy
import re

from ultralytics_cbam.insert.source import ModelSource
from ultralytics_cbam.insert.yaml_text import read_comments

__all__ = ("rewire_rows",)


def rewire_rows(source: ModelSource, rows: list[list], after: list[int], layer: str, args: list[int]):
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
