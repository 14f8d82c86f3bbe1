"""Attention maps of CBAM models: spatial attention overlaid on the images, channel attention as bar plots.

Example:
    >>> from ultralytics_cbam import visualize
    >>> maps = visualize("runs/detect/train/weights/best.pt", source="images/")
    >>> maps[0].spatial["layer3"].shape  # (H/4, W/4) of the letterboxed input
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ultralytics_cbam.modules import CBAM, ChannelAttention, SpatialAttention
from ultralytics_cbam.run_dirs import run_dir, unique_name

__all__ = ("AttentionMaps", "attention_layers", "map_to_image", "visualize")

GRID_COLUMNS = 3  # most tiles per row of the grid image
GRID_TILE_MAX = 640  # longest side of a tile in a full row of the grid, in pixels
TEXT_FRACTION = 1 / 20  # height of digits in titles and scale bars, relative to the shorter side of the picture
TEXT_MIN = 10  # smallest height of digits, in pixels
CHANNEL_PLOT_WIDTH, CHANNEL_PLOT_ROW = 800, 200  # pixels: channel plot width, height per layer
_DPI = 100
_FONT = cv2.FONT_HERSHEY_SIMPLEX
_DIGIT_HEIGHT = 21  # pixel height of a digit of _FONT at font scale 1
_SHADE = 0.3  # brightness left to the picture behind text


@dataclass
class AttentionMaps:
    """The attention of every attention layer of a model for one image.

    Attributes:
        path: Source image path (a generated name for in-memory images).
        orig_shape: (height, width) of the original image.
        input_shape: (height, width) of the letterboxed image the model saw.
        spatial: Layer name -> spatial attention, float32 (H, W) in [0, 1] at the layer's feature-map resolution.
        channel: Layer name -> channel attention weights, float32 (C,) in [0, 1].
        files: PNG files saved for this image.
    """

    path: str
    orig_shape: tuple[int, int]
    input_shape: tuple[int, int]
    spatial: dict[str, np.ndarray] = field(default_factory=dict)
    channel: dict[str, np.ndarray] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)

    def on_image(self, layer: str) -> np.ndarray:
        """Spatial map of `layer` upsampled and aligned to the original image, shape `orig_shape`."""
        if layer not in self.spatial:
            raise KeyError(f"no spatial attention for layer {layer!r}; layers: {', '.join(self.spatial) or 'none'}")
        return map_to_image(self.spatial[layer], self.input_shape, self.orig_shape)


def map_to_image(attention: np.ndarray, input_shape: tuple[int, int], orig_shape: tuple[int, int]) -> np.ndarray:
    """Upsample a map of the letterboxed input to that input, cut off the letterbox padding, resize to the image.

    Args:
        attention: (h, w) map covering the whole letterboxed input.
        input_shape: (H, W) of the letterboxed input.
        orig_shape: (height, width) of the original image.

    Returns:
        float32 (height, width) map aligned with the original image.
    """
    (h_in, w_in), (h0, w0) = input_shape, orig_shape
    gain = min(h_in / h0, w_in / w0)  # the inverse of LetterBox, as in Ultralytics' scale_boxes/scale_masks
    content_h, content_w = max(round(h0 * gain), 1), max(round(w0 * gain), 1)
    top, left = round((h_in - content_h) / 2 - 0.1), round((w_in - content_w) / 2 - 0.1)
    t = torch.as_tensor(np.asarray(attention, dtype=np.float32))[None, None]
    t = F.interpolate(t, size=(h_in, w_in), mode="bilinear", align_corners=False)
    t = t[..., top : top + content_h, left : left + content_w]
    t = F.interpolate(t, size=(h0, w0), mode="bilinear", align_corners=False)
    return t[0, 0].clamp_(0, 1).numpy()


def attention_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Name -> module for every CBAM, and every ChannelAttention/SpatialAttention that is not part of a CBAM.

    Ultralytics layers are named after their index (``layer3``); other modules by their path in `model`.
    """
    layers = {}
    inside_cbam = {id(sub) for m in model.modules() if isinstance(m, CBAM) for sub in m.modules() if sub is not m}
    sequence = getattr(model, "model", None)  # Ultralytics models keep their layers in model.model
    top_level = {id(m) for m in sequence} if isinstance(sequence, nn.Sequential) else set()
    for name, m in model.named_modules():
        if isinstance(m, (CBAM, ChannelAttention, SpatialAttention)) and id(m) not in inside_cbam:
            index = getattr(m, "i", None)
            layers[f"layer{index}" if id(m) in top_level and isinstance(index, int) else name] = m
    return layers


class _Recorder:
    """Forward pre-hooks that recompute the attention gates of each layer from the layer's input."""

    def __init__(self, layers: dict[str, nn.Module]) -> None:
        self.layers = layers
        self.spatial: dict[str, torch.Tensor] = {}
        self.channel: dict[str, torch.Tensor] = {}
        self._handles = []

    def __enter__(self) -> _Recorder:
        for name, m in self.layers.items():
            self._handles.append(m.register_forward_pre_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple) -> None:
            x = args[0]
            if isinstance(module, CBAM):
                c = module.channel.gate(x)
                self.channel[name] = c.flatten(1)
                self.spatial[name] = module.spatial.gate(x * c)[:, 0]
            elif isinstance(module, ChannelAttention):
                self.channel[name] = module.gate(x).flatten(1)
            else:
                self.spatial[name] = module.gate(x)[:, 0]

        return hook


def _resolve_model(model, device: str | None) -> tuple[nn.Module, str, dict]:
    """The torch module, task and settings (Ultralytics' model overrides) of a YOLO model, a torch module, or a
    checkpoint or YAML path."""
    from ultralytics import YOLO
    from ultralytics.engine.model import Model
    from ultralytics.nn.tasks import BaseModel, guess_model_task

    if isinstance(model, (Model, nn.Module)) and device is not None:
        raise ValueError("device= applies to models loaded from a path; move a model object to the device yourself")
    if isinstance(model, Model):
        if not isinstance(model.model, nn.Module):
            raise ValueError(f"model {model.model!r} is not a PyTorch model (exported formats have no attention hooks)")
        return model.model, model.task, model.overrides
    if isinstance(model, nn.Module):
        args = getattr(model, "args", None)  # a checkpoint's training settings
        args = args if isinstance(args, dict) else vars(args) if args is not None else {}
        return model, guess_model_task(model) if isinstance(model, BaseModel) else "detect", args
    if isinstance(model, (str, Path)):
        yolo = YOLO(str(model))
        net = yolo.model
        if device is not None:
            from ultralytics.utils.torch_utils import select_device

            net = net.to(select_device(device, verbose=False))
        return net, yolo.task, yolo.overrides
    kind = type(model).__name__
    raise TypeError(f"model must be a checkpoint or YAML path, a YOLO model or a torch module, got {kind}")


def _model_name(model, net: nn.Module) -> str:
    """The file a model came from, for messages; its class name where it has none."""
    if isinstance(model, (str, Path)):
        return str(model)
    yaml_file = getattr(net, "yaml", {}).get("yaml_file") if isinstance(getattr(net, "yaml", None), dict) else None
    return str(getattr(net, "pt_path", None) or yaml_file or type(net).__name__)


def _images(source) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (path, BGR uint8 image) for every image of an Ultralytics inference source."""
    from ultralytics.data.build import load_inference_source

    if source is None:
        raise ValueError("source is required: an image, a list of images, a folder, a glob or a video")
    if isinstance(source, torch.Tensor):  # an RGB batch in [0, 1], as Ultralytics' predict accepts
        batch = source[None] if source.dim() == 3 else source
        source = [(x.permute(1, 2, 0).flip(-1).clamp(0, 1) * 255).round().byte().cpu().numpy() for x in batch]
    dataset = load_inference_source(source)
    counts: dict[str, int] = {}
    for batch in dataset:  # (paths, images, info), and a video capture before the info in Ultralytics 8.1
        for path, image in zip(batch[0], batch[1], strict=True):
            if getattr(dataset, "mode", "image") == "video":
                counts[path] = counts.get(path, 0) + 1
                path = f"{Path(path).with_suffix('')}_{counts[path]}{Path(path).suffix}"
            yield str(path), np.ascontiguousarray(image)


def _stride(model: nn.Module) -> int:
    stride = getattr(model, "stride", None)
    return max(int(torch.as_tensor(stride).max()), 32) if stride is not None else 32


def _check_args(imgsz, alpha: float, cmap: str):
    from matplotlib import colormaps

    if cmap not in colormaps:
        raise ValueError(f"cmap={cmap!r} is not a matplotlib colour map, e.g. 'jet', 'turbo', 'viridis'")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    if imgsz is not None:
        _check_imgsz(imgsz)
    return colormaps[cmap]


def _check_imgsz(imgsz) -> None:
    sizes = [imgsz] if isinstance(imgsz, (int, float)) else imgsz
    if not sizes or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise ValueError(f"imgsz must be a positive integer or [height, width], got {imgsz!r}")


def visualize(
    model="yolov8n-cbam.yaml",
    source=None,
    imgsz: int | list[int] | None = None,
    grid: bool = True,
    cmap: str = "jet",
    alpha: float = 0.5,
    normalize: bool = True,
    save: bool = True,
    project: str | None = None,
    name: str = "visualize",
    exist_ok: bool = False,
    device: str | None = None,
) -> list[AttentionMaps]:
    """Compute and save the attention maps of every CBAM layer of a model for each image of a source.

    Images are letterboxed as Ultralytics' predict does; the spatial maps are mapped back onto the original image.
    Per image it saves `<stem>_attention.png` (the image and one overlay per layer in rows of at most 3 tiles that
    leave no cell empty, tiles of a full row at most 640 px on the longer side) or, with grid=False, one
    `<stem>_<layer>.png` per layer at the image's size, each with a scale bar; and `<stem>_channel.png`, the sorted
    channel weights per layer (800 px wide, 200 px per layer). The model is left as it was: hooks are removed and
    train/eval modes restored.

    Args:
        model: Checkpoint or model YAML path, a YOLO model or a torch module containing CBAM layers.
        source: Image, list of images (paths, numpy arrays, PIL images), RGB tensor batch, folder, glob or video.
        imgsz: Inference size, an int or [height, width]. Default: the size a checkpoint was trained at, as in
            Ultralytics' predict; 640 for other models.
        grid: One grid image per image instead of one file per layer.
        cmap: Matplotlib colour map of the overlays.
        alpha: Opacity of the colour map over the image.
        normalize: Stretch the colours of each map (and the channel plot's axis) from its minimum to its maximum, so
            that the maps of briefly trained models, whose weights all lie near 0.5, show their structure; the scale
            bar gives that range. False: colours span the full range [0, 1] of the gates. The returned maps are never
            changed.
        save: Save the PNGs; False only returns the maps.
        project: Output project directory (default runs/<task>).
        name: Output directory name, incremented if it exists unless exist_ok.
        exist_ok: Reuse an existing output directory.
        device: Device for a model loaded from a path, e.g. 'cpu' or '0'; model objects run where they are.

    Returns:
        One AttentionMaps per image, with the raw maps as numpy arrays.
    """
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils import LOGGER, colorstr
    from ultralytics.utils.checks import check_imgsz

    colours = _check_args(imgsz, alpha, cmap)
    net, task, settings = _resolve_model(model, device)
    layers = attention_layers(net)
    if not layers:
        name = _model_name(model, net)
        raise ValueError(
            f"model '{name}' has no CBAM, ChannelAttention or SpatialAttention layer to visualize; insert CBAM with "
            f"'yolo-cbam add model={name}' (add_cbam in Python) and train the result"
        )
    if imgsz is None:
        imgsz = settings.get("imgsz") or 640
        _check_imgsz(imgsz)
    stride = _stride(net)
    letterbox = LetterBox(check_imgsz(imgsz, stride=stride, min_dim=2), auto=True, stride=stride)
    param = next(net.parameters())
    save_dir = run_dir(task, project, name, exist_ok, mkdir=True) if save else None
    modes = {m: m.training for m in net.modules()}
    results, used_stems = [], set()
    try:
        net.eval()
        with _Recorder(layers) as recorder, torch.inference_mode():
            for path, image in _images(source):
                x = letterbox(image=image)
                im = torch.from_numpy(x[..., ::-1].transpose(2, 0, 1).copy())[None]
                recorder.spatial.clear()
                recorder.channel.clear()
                net(im.to(param.device, param.dtype) / 255)
                maps = AttentionMaps(
                    path=path,
                    orig_shape=image.shape[:2],
                    input_shape=x.shape[:2],
                    spatial={k: v[0].float().cpu().numpy() for k, v in recorder.spatial.items()},
                    channel={k: v[0].float().cpu().numpy() for k, v in recorder.channel.items()},
                )
                if save_dir is not None:
                    stem = unique_name(Path(path).stem, used_stems)
                    maps.files = _save(maps, image, layers, save_dir, stem, grid, colours, alpha, normalize)
                results.append(maps)
    finally:
        for m, training in modes.items():
            m.training = training
    if save_dir is not None:
        LOGGER.info(f"{colorstr('visualize:')} {len(results)} image(s), {len(layers)} layer(s), saved to {save_dir}")
    return results


# --- rendering -------------------------------------------------------------------------------------------------


def _title(name: str, module: nn.Module, attention: np.ndarray) -> str:
    return f"{name} {type(module).__name__} {attention.shape[0]}x{attention.shape[1]}"


def _limits(a: np.ndarray, normalize: bool) -> tuple[float, float]:
    return (float(a.min()), float(a.max())) if normalize else (0.0, 1.0)


def _save(maps: AttentionMaps, image, layers, save_dir, stem, grid, colours, alpha, normalize) -> list[Path]:
    files = []

    def draw(name: str, shape: tuple[int, int]) -> np.ndarray:
        a = maps.spatial[name]
        heat = map_to_image(a, maps.input_shape, shape)
        return overlay(
            _resize(image, shape), heat, colours, alpha, _title(name, layers[name], a), _limits(a, normalize)
        )

    if grid and maps.spatial:
        # each tile is drawn at its size in the grid, so that its text scales with the tile
        shapes = [(h, w) for _, _, h, w in grid_layout(1 + len(maps.spatial), image.shape[:2])]
        tiles = [_label(_resize(image, shapes[0]), "input")]
        tiles += [draw(name, shape) for name, shape in zip(maps.spatial, shapes[1:], strict=True)]
        files.append(save_dir / f"{stem}_attention.png")
        cv2.imwrite(str(files[-1]), grid_image(tiles, image.shape[:2]))
    else:
        for name in maps.spatial:
            files.append(save_dir / f"{stem}_{name.replace('.', '-')}.png")
            cv2.imwrite(str(files[-1]), draw(name, image.shape[:2]))
    if maps.channel:
        files.append(save_dir / f"{stem}_channel.png")
        titles = {name: type(layers[name]).__name__ for name in maps.channel}
        channel_plot(maps.channel, titles, files[-1], normalize)
    return files


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
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


def _label(image: np.ndarray, text: str) -> np.ndarray:
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
    return _label(out, title) if title else out


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
        canvas[top : top + h, left : left + w] = _resize(tile, (h, w))
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
        lo, hi = _limits(w, normalize)
        pad = (hi - lo) * 0.05 or 0.01
        ax.set_ylim(*((lo - pad, hi + pad) if normalize else (lo, hi)))
        ax.set_ylabel("weight")
        ax.set_title(f"{name} {titles[name]}: {len(w)} channels, mean {w.mean():.3f}", fontsize=10)
    axes[-1].set_xlabel("channel (sorted by weight)")
    fig.tight_layout()
    fig.savefig(file, dpi=_DPI)
