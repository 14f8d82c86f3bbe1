"""Image sources as the tools take them: image files, folders, globs and lists of these (comma-separated on the
command line), or anything Ultralytics' predictor reads."""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

__all__ = ("decoded_images", "image_files", "inference_source", "split_list")


def split_list(value) -> list:
    """A list, a comma-separated string of items (unless it names an existing file), or one item as a list."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and "," in value and not Path(value).exists():
        return [v.strip() for v in value.split(",") if v.strip()]
    return [] if value is None or value == "" else [value]


def image_files(source, arg: str = "source", videos: bool = False) -> list[Path]:
    """The image files of an image path, a folder, a glob, or a list (or comma-separated string) of these.

    Args:
        source: What to look in.
        arg: The argument's name, for errors.
        videos: Take video files too.

    Raises:
        ValueError: For no source, a file that is not an image (by its name or its content) and a folder or glob
            without images.
        FileNotFoundError: For a path that does not exist.
    """
    from ultralytics.data.utils import IMG_FORMATS, VID_FORMATS

    formats = {*IMG_FORMATS, *VID_FORMATS} if videos else set(IMG_FORMATS)
    what = "an image or video" if videos else "an image"
    items, images = split_list(str(source) if isinstance(source, Path) else source), []
    if not items:
        raise ValueError(f"{arg} is required: an image, a folder of images, a glob or a list of images")
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = list(path.iterdir())
        elif path.is_file():
            if path.suffix[1:].lower() not in formats:
                raise ValueError(f"{arg} '{item}' is not {what} ({', '.join(sorted(formats))})")
            if not _decodable(path):
                raise ValueError(f"{arg} '{item}' is not an image: its content is no image format that can be read")
            files = [path]
        elif glob.has_magic(str(item)):
            files = [Path(f) for f in glob.glob(str(item), recursive=True)]
        else:
            raise FileNotFoundError(f"{arg} '{item}' not found")
        found = sorted(f for f in files if f.is_file() and f.suffix[1:].lower() in formats and _decodable(f))
        if not found:
            raise ValueError(f"{arg} '{item}' holds no images")
        images += found
    return images


def _decodable(file: Path) -> bool:
    """Whether OpenCV knows the format of an image file from its first bytes (a cheap check, no decoding); true for
    videos and for the formats Ultralytics decodes with Pillow plug-ins it installs on demand (AVIF, HEIC)."""
    from ultralytics.data.utils import IMG_FORMATS

    kind = file.suffix[1:].lower()
    return kind not in IMG_FORMATS or kind in {"avif", "heic", "heif"} or cv2.haveImageReader(str(file))


def inference_source(source, arg: str = "source"):
    """`source` as `decoded_images` takes it, checked before any work: the image and video files of paths, folders,
    globs and lists of these (comma-separated on the command line); arrays, PIL images and tensors as they are."""
    if isinstance(source, (list, tuple)) and not all(isinstance(s, (str, Path)) for s in source):
        return source  # arrays or PIL images
    if source is None or isinstance(source, (str, Path, list, tuple)):
        return image_files(source, arg, videos=True)
    return source


def decoded_images(source) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (path, BGR uint8 image) for every image (or video frame) of an Ultralytics inference source, or of the
    files of `inference_source` one by one (so that each keeps its path)."""
    import torch
    from ultralytics.data.build import load_inference_source

    if source is None:
        raise ValueError("source is required: an image, a list of images, a folder, a glob or a video")
    if isinstance(source, list) and source and all(isinstance(s, Path) for s in source):
        for file in source:
            yield from decoded_images(str(file))
        return
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
