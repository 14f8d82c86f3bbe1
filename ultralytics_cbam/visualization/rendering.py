"""Drawing attention maps: overlays with a title and scale bar, grids of tiles, and channel-weight plots."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import cv2
import numpy as np

__all__ = (
    "channel_plot",
    "colour_limits",
    "grid_image",
    "grid_layout",
    "label_tile",
    "overlay",
    "resize_image",
    "scale_ticks",
)

GRID_COLUMNS = 3  # most tiles per row of the grid image
GRID_TILE_MAX = 640  # longest side of a tile in a full row of the grid, in pixels
TEXT_FRACTION = 1 / 20  # height of digits in titles and scale bars, relative to the shorter side of the picture
TEXT_MIN = 10  # smallest height of digits, in pixels
CHANNEL_PLOT_WIDTH, CHANNEL_PLOT_ROW = 800, 200  # pixels: channel plot width, height per layer
_DPI = 100
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_DIGIT_HEIGHT = 21  # pixel height of a digit of _FONT at font scale 1
_SHADE = 0.3  # brightness left to the picture behind text


def colour_limits(a: np.ndarray, normalize: bool) -> tuple[float, float]:
    return (float(a.min()), float(a.max())) if normalize else (0.0, 1.0)


def resize_image(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """`image` at (height, width) `shape`: area averaging to shrink, bilinear to enlarge."""
    if image.shape[:2] == tuple(shape):
        return image
    shrink = shape[0] * shape[1] < image.shape[0] * image.shape[1]
    return cv2.resize(image, shape[::-1], interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _text_scale(image: np.ndarray) -> tuple[float, int]:
    """Font scale and stroke thickness for text on `image`.

    Digits are TEXT_FRACTION of the image's shorter side tall, at least TEXT_MIN px; strokes thicken with the size.
    """
    height = max(min(image.shape[:2]) * TEXT_FRACTION, TEXT_MIN)
    return height / _DIGIT_HEIGHT, max(round(height / 10), 1)


def label_tile(image: np.ndarray, text: str) -> np.ndarray:
    """Write `text` at the top left of a copy of `image`, white on a dark box."""
    out = image.copy()
    scale, thickness = _text_scale(out)
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, thickness)
    pad = max(th // 4, 2)
    box = out[: th + base + 2 * pad, : tw + 2 * pad]
    box[:] = (box * _SHADE).astype(np.uint8)
    cv2.putText(out, text, (pad, pad + th), _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out


def overlay(
    image: np.ndarray, attention: np.ndarray, colours, alpha: float, title: str = "", limits=(0.0, 1.0)
) -> np.ndarray:
    """Blend a colour-mapped map over a BGR image and draw its scale bar at the right edge.

    Args:
        image: BGR uint8 image (h, w, 3).
        attention: float map (h, w).
        colours: Matplotlib colour map.
        alpha: Opacity of the colour map.
        title: Label written at the top left.
        limits: Map values shown as the first and last colour of the colour map.

    Returns:
        BGR uint8 image of the same size as `image`.
    """
    lo, hi = limits
    scaled = (attention - lo) / (hi - lo) if hi > lo else np.full_like(attention, 0.5)
    heat = colours(np.clip(scaled, 0, 1))[..., 2::-1] * 255  # RGBA -> BGR
    out = (image.astype(np.float32) * (1 - alpha) + heat * alpha).round().astype(np.uint8)
    _scale_bar(out, colours, limits)
    return label_tile(out, title) if title else out


def _scale_bar(image: np.ndarray, colours, limits: tuple[float, float]) -> None:
    """Draw a vertical colour bar from limits[0] (bottom) to limits[1] (top) into the right edge of `image`.

    The bar, its tick labels and the dark box behind them scale with the text size of `_text_scale`.
    """
    h, w = image.shape[:2]
    scale, thickness = _text_scale(image)
    ticks = scale_ticks(limits)
    tw = max(cv2.getTextSize(text, _FONT, scale, thickness)[0][0] for _, text in ticks)
    th = round(scale * _DIGIT_HEIGHT)
    margin = max(th // 3, 2)
    bar_w, bar_h = max(round(th * 0.7), 4), max(h // 2, 3 * th)
    x1 = max(w - margin - tw - margin, 0)  # right end of the bar; the tick labels follow
    x0, y0 = max(x1 - bar_w, 0), max((h - bar_h) // 2, 0)
    y1 = min(y0 + bar_h, h)
    box = image[max(y0 - th // 2 - margin, 0) : min(y1 + th // 2 + margin, h), max(x0 - margin, 0) :]
    box[:] = (box * _SHADE).astype(np.uint8)
    ramp = colours(np.linspace(1, 0, y1 - y0))[:, 2::-1] * 255
    image[y0:y1, x0:x1] = ramp[:, None].round().astype(np.uint8)
    for value, text in ticks:
        y = round(y1 - 1 - value * (y1 - y0 - 1))
        cv2.line(image, (x0, y), (x1 - 1, y), (0, 0, 0), thickness)  # a dark tick across the bar
        org = (x1 + margin, min(max(y + th // 2, th), h - 1))
        cv2.putText(image, text, org, _FONT, scale, (255, 255, 255), thickness, cv2.LINE_AA)


def scale_ticks(limits: tuple[float, float]) -> list[tuple[float, str]]:
    """(position from 0 at the bottom to 1 at the top, label) of the bottom, middle and top ticks of a scale bar.

    Labels carry enough digits to tell the two limits apart: one for [0, 1], at least three otherwise.
    """
    lo, hi = limits
    digits = 1 if (lo, hi) == (0.0, 1.0) else max(3, 2 - math.floor(math.log10(max(hi - lo, 1e-6))))
    return [(k, f"{lo + k * (hi - lo):.{digits}f}") for k in (0.0, 0.5, 1.0)]


def grid_layout(n: int, shape: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) of `n` tiles of an image of (height, width) `shape` in a grid with no empty cell.

    The tiles fill ceil(n / GRID_COLUMNS) rows, as evenly as possible and with fewer tiles in the first rows. Every row
    spans the width of the fullest one, whose tiles have the image's shape scaled to at most GRID_TILE_MAX px on the
    longer side, so the tiles of a shorter row are larger.
    """
    h, w = shape
    gain = min(GRID_TILE_MAX / max(h, w), 1.0)
    tile_h, tile_w = max(round(h * gain), 1), max(round(w * gain), 1)
    rows = math.ceil(n / GRID_COLUMNS)
    cols = math.ceil(n / rows)
    cells, top = [], 0
    for r in range(rows):
        k = n // rows + (r >= rows - n % rows)  # tiles in this row
        row_h = round(tile_h * cols / k)
        edges = [round(i * cols * tile_w / k) for i in range(k + 1)]
        cells += [(top, x0, row_h, x1 - x0) for x0, x1 in itertools.pairwise(edges)]
        top += row_h
    return cells


def grid_image(tiles: list[np.ndarray], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Place images of one aspect ratio in the cells of `grid_layout`, resizing those not drawn at their cell's size.

    Args:
        tiles: BGR uint8 images, in reading order.
        shape: (height, width) of the image the layout is made for; default: the first tile's.

    Returns:
        BGR uint8 grid image.
    """
    cells = grid_layout(len(tiles), shape or tiles[0].shape[:2])
    height = max(top + h for top, _, h, _ in cells)
    width = max(left + w for _, left, _, w in cells)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    for tile, (top, left, h, w) in zip(tiles, cells, strict=True):
        canvas[top : top + h, left : left + w] = resize_image(tile, (h, w))
    return canvas


def channel_plot(weights: dict[str, np.ndarray], titles: dict[str, str], file: Path, normalize: bool = False) -> None:
    """Save the channel weights of each layer as bars sorted from high to low, one row per layer.

    The weight axis spans [0, 1], or with `normalize` each layer's own range.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(CHANNEL_PLOT_WIDTH / _DPI, CHANNEL_PLOT_ROW * len(weights) / _DPI), dpi=_DPI)
    axes = fig.subplots(len(weights), 1, squeeze=False)[:, 0]
    for ax, (name, w) in zip(axes, weights.items(), strict=True):
        ordered = np.sort(w)[::-1]
        ax.bar(np.arange(len(ordered)), ordered, width=1.0, color="tab:blue")
        ax.set_xlim(-0.5, len(ordered) - 0.5)
        lo, hi = colour_limits(w, normalize)
        pad = (hi - lo) * 0.05 or 0.01
        ax.set_ylim(*((lo - pad, hi + pad) if normalize else (lo, hi)))
        ax.set_ylabel("weight")
        ax.set_title(f"{name} {titles[name]}: {len(w)} channels, mean {w.mean():.3f}", fontsize=10)
    axes[-1].set_xlabel("channel (sorted by weight)")
    fig.tight_layout()
    fig.savefig(file, dpi=_DPI)
