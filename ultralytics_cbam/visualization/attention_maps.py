"""Attention maps of CBAM models: spatial attention overlaid on the images, channel attention as bar plots.

Example:
    >>> from ultralytics_cbam import visualize
    >>> maps = visualize("runs/detect/train/weights/best.pt", source="images/")
    >>> maps[0].spatial["layer3"].shape  # (H/4, W/4) of the letterboxed input
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ultralytics_cbam.modules import CBAM, ChannelAttention, SpatialAttention
from ultralytics_cbam.utils.checks import flag, image_size, unit_interval
from ultralytics_cbam.utils.model_inputs import is_yaml_path, load_checkpoint_model, torch_model
from ultralytics_cbam.utils.run_dirs import run_dir, unique_name
from ultralytics_cbam.utils.sources import decoded_images, inference_source
from ultralytics_cbam.visualization.rendering import (
    channel_plot,
    colour_limits,
    grid_image,
    grid_layout,
    label_tile,
    overlay,
    resize_image,
)

__all__ = ("AttentionMaps", "attention_layers", "map_to_image", "visualize")


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
        return torch_model(model), model.task, model.overrides
    if is_yaml_path(model):
        yolo = YOLO(str(model))
        net, task, settings = yolo.model, yolo.task, yolo.overrides
    elif isinstance(model, (str, Path, nn.Module)):
        if not isinstance(model, nn.Module) and str(model).strip() and Path(model).is_dir():
            raise IsADirectoryError(f"model '{model}' is a folder; visualize needs a checkpoint (.pt) or a model YAML")
        net = model if isinstance(model, nn.Module) else load_checkpoint_model(model)
        args = getattr(net, "args", None)  # a checkpoint's training settings
        settings = args if isinstance(args, dict) else vars(args) if args is not None else {}
        task = guess_model_task(net) if isinstance(net, BaseModel) else "detect"
    else:
        kind = type(model).__name__
        raise TypeError(f"model must be a checkpoint or YAML path, a YOLO model or a torch module, got {kind}")
    if device is not None:
        from ultralytics.utils.torch_utils import select_device

        net = net.to(select_device(device, verbose=False))
    return net, task, settings


def _model_name(model, net: nn.Module) -> str:
    """The file a model came from, for messages; its class name where it has none."""
    if isinstance(model, (str, Path)):
        return str(model)
    yaml_file = getattr(net, "yaml", {}).get("yaml_file") if isinstance(getattr(net, "yaml", None), dict) else None
    return str(getattr(net, "pt_path", None) or yaml_file or type(net).__name__)


def _stride(model: nn.Module) -> int:
    stride = getattr(model, "stride", None)
    return max(int(torch.as_tensor(stride).max()), 32) if stride is not None else 32


def _check_args(imgsz, alpha: float, cmap: str):
    from matplotlib import colormaps

    if cmap not in colormaps:
        raise ValueError(f"cmap={cmap!r} is not a matplotlib colour map, e.g. 'jet', 'turbo', 'viridis'")
    unit_interval("alpha", alpha)
    if imgsz is not None:
        image_size(imgsz)
    return colormaps[cmap]


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
        source: Image or video path, folder, glob, or a list of these (comma-separated on the command line); or
            numpy arrays, PIL images or an RGB tensor batch.
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

    for arg, value in (("grid", grid), ("normalize", normalize), ("save", save), ("exist_ok", exist_ok)):
        flag(arg, value)
    colours = _check_args(imgsz, alpha, cmap)
    source = inference_source(source)  # a bad source fails before the model loads and the run folder is made
    net, task, settings = _resolve_model(model, device)
    layers = attention_layers(net)
    if not layers:
        name = _model_name(model, net)
        raise ValueError(
            f"model '{name}' has no CBAM, ChannelAttention or SpatialAttention layer to visualize; insert CBAM with "
            f"'yolo-cbam add model={name}' (add_cbam in Python) and train the result"
        )
    if imgsz is None:
        imgsz = image_size(settings.get("imgsz") or 640)
    stride = _stride(net)
    letterbox = LetterBox(check_imgsz(imgsz, stride=stride, min_dim=2), auto=True, stride=stride)
    param = next(net.parameters())
    save_dir = run_dir(task, project, name, exist_ok, mkdir=True) if save else None
    modes = {m: m.training for m in net.modules()}
    results, used_stems = [], set()
    try:
        net.eval()
        with _Recorder(layers) as recorder, torch.inference_mode():
            for path, image in decoded_images(source):
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


def _title(name: str, module: nn.Module, attention: np.ndarray) -> str:
    return f"{name} {type(module).__name__} {attention.shape[0]}x{attention.shape[1]}"


def _save(maps: AttentionMaps, image, layers, save_dir, stem, grid, colours, alpha, normalize) -> list[Path]:
    files = []

    def draw(name: str, shape: tuple[int, int]) -> np.ndarray:
        a = maps.spatial[name]
        heat = map_to_image(a, maps.input_shape, shape)
        return overlay(
            resize_image(image, shape), heat, colours, alpha, _title(name, layers[name], a), colour_limits(a, normalize)
        )

    if grid and maps.spatial:
        # each tile is drawn at its size in the grid, so that its text scales with the tile
        shapes = [(h, w) for _, _, h, w in grid_layout(1 + len(maps.spatial), image.shape[:2])]
        tiles = [label_tile(resize_image(image, shapes[0]), "input")]
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
