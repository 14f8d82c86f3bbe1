"""Image sources as the tools take them: image files, folders, globs and lists of these (comma-separated on the
command line), or anything Ultralytics' predictor reads."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = ("decoded_images", "image_files", "split_list")


def split_list(value) -> list:
    """A list, a comma-separated string of items (unless it names an existing file), or one item as a list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and "," in value and not Path(value).exists():
        return [v.strip() for v in value.split(",") if v.strip()]
    return [] if value is None or value == "" else [value]


def image_files(source, arg: str = "source") -> list[Path]:
    """The image files of an image path, a folder, a glob, or a list (or comma-separated string) of these.

    Args:
        source: What to look in.
        arg: The argument's name, for errors.
    """
    from ultralytics.data.utils import IMG_FORMATS

    items, images = split_list(str(source) if isinstance(source, Path) else source), []
    if not items:
        raise ValueError(f"{arg} is required: an image, a folder of images, a glob or a list of images")
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = list(path.iterdir())
        elif path.is_file():
            if path.suffix[1:].lower() not in IMG_FORMATS:
                raise ValueError(f"{arg} '{item}' is not an image ({', '.join(sorted(IMG_FORMATS))})")
            files = [path]
        elif glob.has_magic(str(item)):
            files = [Path(f) for f in glob.glob(str(item), recursive=True)]
        else:
            raise FileNotFoundError(f"{arg} '{item}' not found")
        found = sorted(f for f in files if f.is_file() and f.suffix[1:].lower() in IMG_FORMATS)
        if not found:
            raise ValueError(f"{arg} '{item}' holds no images")
        images += found
    return images


def decoded_images(source) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (path, BGR uint8 image) for every image (or video frame) of an Ultralytics inference source."""
    import torch
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
