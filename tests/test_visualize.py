"""Attention-map visualisation: saved PNGs, raw maps, alignment with the image, and an untouched model."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import save_checkpoint
from matplotlib import colormaps
from ultralytics import YOLO
from ultralytics.data.augment import LetterBox

from ultralytics_cbam.modules import CBAM, ChannelAttention, SpatialAttention
from ultralytics_cbam.visualization.attention_maps import map_to_image, visualize

IMGSZ = 96
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A small detector with standalone attention rows instead of CBAM.
STANDALONE_YAML = """
nc: 2
backbone:
  - [-1, 1, Conv, [16, 3, 2]]
  - [-1, 1, ChannelAttention, [4]]
  - [-1, 1, Conv, [32, 3, 2]]
  - [-1, 1, SpatialAttention, [3]]
  - [-1, 1, Conv, [64, 3, 2]]
head:
  - [[4], 1, Detect, [nc]]
"""


def png_size(path) -> tuple[int, int]:
    """(height, width) of a PNG file, after checking that it is one."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    image = cv2.imread(str(path))
    assert image is not None, f"{path} does not decode"
    return image.shape[:2]


def model_input(path, imgsz=IMGSZ) -> torch.Tensor:
    """The image as Ultralytics' predict feeds a PyTorch model: letterboxed to a stride-32 rectangle, RGB, [0, 1]."""
    im = LetterBox(imgsz, auto=True, stride=32)(image=cv2.imread(str(path)))
    return torch.from_numpy(im[..., ::-1].copy()).permute(2, 0, 1)[None].float() / 255


def capture_attention_io(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[type, torch.Tensor, torch.Tensor]]:
    """(type, input, output) of every top-level attention layer for input x, in forward order."""
    records, handles = [], []
    layers = [m for m in model.model if isinstance(m, (CBAM, ChannelAttention, SpatialAttention))]
    for m in layers:
        handles.append(m.register_forward_hook(lambda mod, i, o: records.append((type(mod), i[0].clone(), o.clone()))))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return records


def flat_tensors(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in out for t in flat_tensors(o)]


@pytest.fixture(scope="module")
def folder_run(trained_cbam, coco8_images, tmp_path_factory):
    project = tmp_path_factory.mktemp("vis")
    maps = visualize(trained_cbam, source=coco8_images[0].parent, imgsz=IMGSZ, project=str(project), name="grid")
    return maps, project


def test_folder_gives_one_result_per_image_with_valid_pngs(folder_run, coco8_images):
    maps, project = folder_run
    assert [m.path for m in maps] == [str(p) for p in coco8_images]
    for m, path in zip(maps, coco8_images, strict=True):
        h0, w0 = cv2.imread(str(path)).shape[:2]
        assert m.orig_shape == (h0, w0)
        grid, channel = m.files
        assert grid.parent == project / "grid"
        assert grid.name == f"{path.stem}_attention.png" and channel.name == f"{path.stem}_channel.png"
        # the input image plus one tile per spatial map, up to 3 tiles per row, tiles of a full row at most 640 px:
        # 5 tiles fill a row of 2 tiles, each 3/2 the size of a full row's, above a row of 3, with no empty cell
        tiles = 1 + len(m.spatial)
        assert tiles == 5
        gain = min(640 / max(h0, w0), 1)
        tile_h, tile_w = round(h0 * gain), round(w0 * gain)
        assert png_size(grid) == (round(tile_h * 3 / 2) + tile_h, 3 * tile_w)
        picture = cv2.imread(str(grid))
        last = picture[-tile_h:, -tile_w:]  # the last tile, which 3 tiles per row would leave empty
        assert last.std() > 10  # a picture, not a blank fill
        assert png_size(channel) == (200 * len(m.channel), 800)


def test_maps_are_the_gates_the_model_applies(folder_run, trained_cbam, coco8_images):
    maps, _ = folder_run
    model = YOLO(trained_cbam).model.eval()
    n_cbam = sum(isinstance(m, CBAM) for m in model.modules())
    assert n_cbam == 4
    for m, path in zip(maps, coco8_images, strict=True):
        x = model_input(path)
        assert m.input_shape == tuple(x.shape[2:])
        records = capture_attention_io(model, x)
        assert list(m.spatial) == list(m.channel) and len(m.spatial) == len(records) == n_cbam
        for name, (kind, inp, out) in zip(m.spatial, records, strict=True):
            s, c = m.spatial[name], m.channel[name]
            assert kind is CBAM
            assert s.dtype == np.float32 and c.dtype == np.float32
            assert s.shape == tuple(inp.shape[2:])  # the feature map's resolution
            assert c.shape == (inp.shape[1],)  # one weight per feature-map channel
            assert s.min() >= 0 and s.max() <= 1 and c.min() >= 0 and c.max() <= 1
            # CBAM(x) = x * Mc(x) * Ms(x * Mc(x)): the returned maps reproduce the layer's output
            expected = inp * torch.from_numpy(c)[None, :, None, None] * torch.from_numpy(s)[None, None]
            torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_map_to_image_removes_the_letterbox_padding(coco8_images):
    for path in coco8_images:
        image = cv2.imread(str(path))
        # Ultralytics' LetterBox on a white image of the same size: its padding is grey, the image stays white
        white = LetterBox((IMGSZ, IMGSZ), auto=False, stride=32)(image=np.full_like(image, 255))
        content = (white == 255).all(2).astype(np.float32)
        assert 0 < content.sum() < IMGSZ * IMGSZ  # the test needs padding to remove
        on_image = map_to_image(content, (IMGSZ, IMGSZ), image.shape[:2])
        assert on_image.shape == image.shape[:2]
        np.testing.assert_allclose(on_image, 1)  # nothing of the padding reaches the image
        np.testing.assert_allclose(map_to_image(1 - content, (IMGSZ, IMGSZ), image.shape[:2]), 0)


def colour_indices(picture: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """For each BGR pixel, the index (0-255) of the nearest colour of the colour map's 256-entry table."""
    table = colormaps[cmap](np.linspace(0, 1, 256))[:, 2::-1] * 255
    distances = ((picture.reshape(-1, 1, 3).astype(np.float32) - table[None].astype(np.float32)) ** 2).sum(-1)
    return distances.argmin(1).reshape(picture.shape[:2])


def centre(picture: np.ndarray) -> np.ndarray:
    """The part of a per-layer picture away from its label (top left) and scale bar (right edge)."""
    h, w = picture.shape[:2]
    return picture[h // 6 :, : w // 2]


def test_per_layer_files_have_the_image_size_and_show_the_map(trained_cbam, coco8_images, tmp_path):
    path = coco8_images[0]
    image = cv2.imread(str(path))
    (m,) = visualize(trained_cbam, source=path, imgsz=IMGSZ, grid=False, alpha=1.0, project=str(tmp_path), name="x")
    layer_files = [f for f in m.files if not f.name.endswith("_channel.png")]
    assert [f.name for f in layer_files] == [f"{path.stem}_{name}.png" for name in m.spatial]
    for name, f in zip(m.spatial, layer_files, strict=True):
        assert png_size(f) == image.shape[:2]
        # with alpha 1 the pixels away from the labels and scale bar are the colour map of the upsampled map, its
        # colours stretched from the map's minimum to its maximum
        lo, hi = float(m.spatial[name].min()), float(m.spatial[name].max())
        expected = colormaps["jet"]((m.on_image(name) - lo) / (hi - lo))[..., 2::-1] * 255
        np.testing.assert_allclose(centre(cv2.imread(str(f))), centre(expected), atol=1.01)


def test_default_colours_show_the_structure_of_a_briefly_trained_model(trained_cbam, coco8_images, tmp_path):
    kwargs = {"source": coco8_images[0], "grid": False, "alpha": 1.0, "project": str(tmp_path)}
    (default,) = visualize(trained_cbam, name="default", **kwargs)
    (absolute,) = visualize(trained_cbam, name="absolute", normalize=False, **kwargs)
    for name, f_default, f_absolute in zip(default.spatial, default.files, absolute.files, strict=False):
        a = default.spatial[name]
        assert a.max() - a.min() < 0.5  # one epoch: the gates stay near their start
        shown = colour_indices(centre(cv2.imread(str(f_default))))
        flat = colour_indices(centre(cv2.imread(str(f_absolute))))
        # on the [0, 1] scale the map takes a narrow band of the colour map; by default it spans most of it
        assert np.ptp(flat) < 0.5 * 255 <= np.ptp(shown), name


@pytest.mark.parametrize("limits", [(0.0, 1.0), (0.4812, 0.5237), (0.49991, 0.50013), (0.2, 0.9)])
def test_scale_bar_labels_give_the_limits(limits):
    from ultralytics_cbam.visualization.rendering import scale_ticks

    (p0, bottom), (p1, middle), (p2, top) = scale_ticks(limits)
    lo, hi = limits
    assert (p0, p1, p2) == (0.0, 0.5, 1.0)
    digits = len(top.split(".")[1])
    for label, value in ((bottom, lo), (middle, (lo + hi) / 2), (top, hi)):
        assert abs(float(label) - value) <= 0.5 * 10**-digits
    assert len({bottom, middle, top}) == 3  # the labels tell the limits apart


def text_rows(mask: np.ndarray) -> list[int]:
    """Heights of the runs of rows of a boolean picture that hold a True pixel (one run per line of text)."""
    rows = np.flatnonzero(mask.any(1))
    runs = np.split(rows, np.flatnonzero(np.diff(rows) > 1) + 1) if rows.size else []
    return [len(r) for r in runs]


# shorter side of a picture -> height in px of its digits: 1/20 of the side, at least 10 px
TEXT_HEIGHTS = {64: 10, 160: 10, 200: 10, 320: 16, 480: 24, 640: 32, 1080: 54}


@pytest.mark.parametrize(("side", "digits"), TEXT_HEIGHTS.items())
@pytest.mark.parametrize("landscape", [False, True])
def test_text_grows_with_the_picture_and_has_a_minimum(side, digits, landscape):
    from ultralytics_cbam.visualization.rendering import overlay

    shape = (side, side * 4 // 3) if landscape else (side * 4 // 3, side)
    black = np.zeros((*shape, 3), dtype=np.uint8)
    # alpha 0 keeps the picture black: the only bright pixels are the text
    bar = overlay(black, np.zeros(shape, np.float32), colormaps["jet"], 0.0, limits=(0.0, 1.0))
    white = (bar >= 128).all(2)
    assert not white[:, : shape[1] // 2].any()  # the scale bar sits at the right edge
    heights = text_rows(white)
    assert len(heights) == 3  # the labels 1.0, 0.5 and 0.0, one above the other
    assert all(abs(h - digits) <= max(2, digits // 10) for h in heights), heights
    titled = overlay(black, np.zeros(shape, np.float32), colormaps["jet"], 0.0, title="CBAM 10x10")
    (title, *_) = text_rows((titled >= 128).all(2)[:, : shape[1] // 2])
    assert abs(title - digits) <= max(2, digits // 10) + 1  # titles have the same size


def test_text_is_legible_in_a_grid_shown_at_readme_width():
    from ultralytics_cbam.visualization.rendering import grid_image, overlay

    # cbam-shapes images are 160 px; their 5-tile grid is shown 800 px wide in the README
    black = np.zeros((160, 160, 3), dtype=np.uint8)
    tile = overlay(black, np.zeros((160, 160), np.float32), colormaps["jet"], 0.0, limits=(0.0, 1.0))
    grid = grid_image([black, black, tile, tile, tile])
    shown = cv2.resize(grid, (800, round(grid.shape[0] * 800 / grid.shape[1])), interpolation=cv2.INTER_AREA)
    last_tile = shown[-shown.shape[0] * 2 // 5 :, -800 // 3 :]
    assert min(text_rows((last_tile >= 128).all(2))) >= 12  # px: about the size of the README's own text


@pytest.mark.parametrize("n", range(1, 11))
@pytest.mark.parametrize("shape", [(48, 64), (90, 60), (900, 1200)])
def test_grid_has_no_empty_cell(n, shape):
    from ultralytics_cbam.visualization.rendering import grid_image

    h, w = shape
    colours = [(10 + 20 * k, 200 - 15 * k, 30 + 7 * k) for k in range(n)]  # distinct, never black or white
    grid = grid_image([np.full((h, w, 3), c, dtype=np.uint8) for c in colours])
    boxes = []  # (top, left, height, width) of each tile
    for c in colours:
        ys, xs = np.nonzero((grid == c).all(2))
        box = (ys.min(), xs.min(), ys.max() + 1 - ys.min(), xs.max() + 1 - xs.min())
        assert len(ys) == box[2] * box[3]  # each tile is one rectangle
        assert abs(box[3] / box[2] - w / h) < 2 / min(box[2:])  # of the image's shape, up to rounding
        boxes.append(box)
    assert sum(bh * bw for _, _, bh, bw in boxes) == grid.shape[0] * grid.shape[1]  # nothing else: no empty cell
    assert boxes == sorted(boxes)  # in reading order
    tops = sorted({top for top, *_ in boxes})
    assert len(tops) == math.ceil(n / 3)  # at most 3 tiles per row
    per_row = [sum(box[0] == top for box in boxes) for top in tops]
    assert per_row == sorted(per_row) and per_row[-1] - per_row[0] <= 1  # as even as can be, fuller rows last
    gain = min(640 / max(h, w), 1)
    tile = (round(h * gain), round(w * gain))  # the image at most 640 px on its longer side
    assert boxes[-1][2:] == tile and grid.shape[1] == per_row[-1] * tile[1]  # the fullest row's tiles


def test_imgsz_defaults_to_the_training_size(trained_cbam, coco8_images):
    path = coco8_images[0]
    image = cv2.imread(str(path))
    trained_at = YOLO(trained_cbam).overrides["imgsz"]
    assert trained_at == 64
    expected = LetterBox(trained_at, auto=True, stride=32)(image=image).shape[:2]
    for model in (trained_cbam, YOLO(trained_cbam), YOLO(trained_cbam).model):
        (m,) = visualize(model, source=path, save=False)
        assert m.input_shape == expected
    (m,) = visualize("yolov8n-cbam.yaml", source=path, save=False)  # no training size: Ultralytics' 640
    assert m.input_shape == LetterBox(640, auto=True, stride=32)(image=image).shape[:2]


def test_model_without_cbam_names_the_file_and_the_fix(coco8_images, tmp_path):
    stock = save_checkpoint(YOLO("yolov8n.yaml"), tmp_path / "stock.pt")
    with pytest.raises(ValueError) as e:
        visualize(str(stock), source=coco8_images[0], save=False)
    assert f"model '{stock}' has no CBAM" in str(e.value)
    assert f"'yolo-cbam add model={stock}'" in str(e.value)


def test_accepts_yaml_model_objects_and_batches(coco8_images, tmp_path):
    images = [cv2.imread(str(p)) for p in coco8_images[:2]]
    by_name = visualize("yolov8n-cbam.yaml", source=images, imgsz=64, save=False)
    assert len(by_name) == 2 and all(len(m.spatial) == 4 for m in by_name)
    yolo = YOLO("yolov8n-cbam.yaml")
    from_object = visualize(yolo, source=images, imgsz=64, save=False)
    from_module = visualize(yolo.model, source=images, imgsz=64, save=False)
    for a, b in zip(from_object, from_module, strict=True):
        for name in a.spatial:
            np.testing.assert_array_equal(a.spatial[name], b.spatial[name])
    # an RGB tensor batch in [0, 1], as predict takes it
    batch = torch.cat([F.interpolate(model_input(p, 64), size=(64, 64)) for p in coco8_images[:3]])
    from_tensor = visualize(yolo, source=batch, imgsz=64, save=False)
    assert len(from_tensor) == 3 and all(m.orig_shape == (64, 64) for m in from_tensor)
    assert not list(tmp_path.iterdir())  # save=False writes nothing


def test_standalone_channel_and_spatial_layers(coco8_images, tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    cfg = tmp_path / "attention-rows.yaml"
    cfg.write_text(STANDALONE_YAML)
    model = DetectionModel(str(cfg), verbose=False).eval()
    (m,) = visualize(model, source=coco8_images[0], imgsz=64, project=str(tmp_path), name="standalone")
    assert list(m.channel) == ["layer1"] and list(m.spatial) == ["layer3"]
    records = capture_attention_io(model, model_input(coco8_images[0], 64))
    (ca, ca_in, ca_out), (sa, sa_in, sa_out) = records
    assert (ca, sa) == (ChannelAttention, SpatialAttention)
    assert m.channel["layer1"].shape == (ca_in.shape[1],) and m.spatial["layer3"].shape == tuple(sa_in.shape[2:])
    torch.testing.assert_close(ca_out, ca_in * torch.from_numpy(m.channel["layer1"])[None, :, None, None])
    torch.testing.assert_close(sa_out, sa_in * torch.from_numpy(m.spatial["layer3"])[None, None])
    assert [f.name for f in m.files] == [f"{coco8_images[0].stem}_attention.png", f"{coco8_images[0].stem}_channel.png"]
    assert png_size(m.files[1]) == (200, 800)


def test_leaves_the_model_unchanged(coco8_images):
    model = YOLO("yolov8n-cbam.yaml").model
    model.train()
    model.model[0].eval()  # a mixed state must come back as it was
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x = model_input(coco8_images[0], 64)
    model.eval()
    with torch.no_grad():
        before = flat_tensors(model(x))
    model.train()
    model.model[0].eval()

    visualize(model, source=coco8_images[:2], imgsz=64, save=False)

    assert [m.training for m in model.modules()] == modes
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    after_state = model.state_dict()
    assert all(torch.equal(state[k], after_state[k]) for k in state)
    model.eval()
    with torch.no_grad():
        after = flat_tensors(model(x))
    assert len(before) == len(after) and all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_normalize_changes_only_the_pictures(trained_cbam, coco8_images, tmp_path):
    kwargs = {"source": coco8_images[0], "imgsz": 64, "project": str(tmp_path)}
    (plain,) = visualize(trained_cbam, name="plain", normalize=False, **kwargs)
    (stretched,) = visualize(trained_cbam, name="stretched", **kwargs)
    for name in plain.spatial:
        np.testing.assert_array_equal(plain.spatial[name], stretched.spatial[name])
    assert not np.array_equal(cv2.imread(str(plain.files[0])), cv2.imread(str(stretched.files[0])))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"model": "yolov8n.yaml"}, ValueError, "'yolov8n.yaml' has no CBAM"),
        ({"cmap": "not-a-map"}, ValueError, "cmap"),
        ({"alpha": 1.5}, ValueError, "alpha"),
        ({"imgsz": 0}, ValueError, "imgsz"),
        ({"imgsz": [64, 64, 64]}, ValueError, r"imgsz must be a positive integer or \[height, width\]"),
        ({"source": None}, ValueError, "source"),
        ({"model": 3}, TypeError, "model"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, match, coco8_images):
    args = {"model": "yolov8n-cbam.yaml", "source": coco8_images[0], "imgsz": 64, "save": False, **kwargs}
    with pytest.raises(error, match=match):
        visualize(**args)


def test_missing_source_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        visualize("yolov8n-cbam.yaml", source=tmp_path / "nothing-here.jpg", imgsz=64, save=False)


def test_cli_command(trained_cbam, coco8_images, tmp_path):
    source = coco8_images[0]
    command = [str(Path(sys.executable).with_name("yolo-cbam")), "visualize", f"model={trained_cbam}"]
    command += [f"source={source}", "imgsz=64", f"project={tmp_path}", "name=cli"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert result.returncode == 0, result.stderr
    (m,) = visualize(trained_cbam, source=source, imgsz=64, save=False)
    out = tmp_path / "cli"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{source.stem}_attention.png", f"{source.stem}_channel.png"]
    )
    assert png_size(out / f"{source.stem}_channel.png") == (200 * len(m.channel), 800)


def test_package_level_call(coco8_images):
    import ultralytics_cbam

    kwargs = {"source": coco8_images[0], "imgsz": 64, "save": False}
    (via_package,) = ultralytics_cbam.visualize("yolov8n-cbam.yaml", **kwargs)
    (direct,) = visualize("yolov8n-cbam.yaml", **kwargs)
    assert list(via_package.spatial) == list(direct.spatial) == ["layer3", "layer6", "layer9", "layer13"]
    assert [a.shape for a in via_package.spatial.values()] == [a.shape for a in direct.spatial.values()]


@pytest.mark.parametrize(
    ("source", "error", "message"),
    [
        ("fake.jpg", ValueError, r"source '\S*fake\.jpg' is not an image"),
        ("notes.txt", ValueError, r"source '\S*notes\.txt' is not an image or video"),
        ("empty", ValueError, r"source '\S*empty' holds no images"),
        ("nowhere.jpg", FileNotFoundError, r"source '\S*nowhere\.jpg' not found"),
        ("", ValueError, r"source is required"),
    ],
)
def test_bad_source_is_named_before_the_run_folder_is_made(source, error, message, tmp_path):
    (tmp_path / "fake.jpg").write_text("not an image")
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    path = str(tmp_path / source) if source else source
    with pytest.raises(error, match=message):
        visualize("yolov8n-cbam.yaml", source=path, imgsz=64, project=str(tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_comma_separated_sources_are_read_as_cam_reads_them(coco8_images):
    (a, b) = visualize("yolov8n-cbam.yaml", source=f"{coco8_images[0]},{coco8_images[1]}", imgsz=64, save=False)
    assert [a.path, b.path] == [str(coco8_images[0]), str(coco8_images[1])]


@pytest.mark.parametrize("arg", ["save", "grid", "normalize", "exist_ok"])
def test_flags_given_as_text_are_named(arg, coco8_images, tmp_path):
    with pytest.raises(TypeError, match=rf"^{arg} must be True or False, got 'no'$"):
        visualize("yolov8n-cbam.yaml", source=coco8_images[0], imgsz=64, project=str(tmp_path), **{arg: "no"})
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("model", "error", "message"),
    [
        ("garbage.pt", ValueError, r"checkpoint '\S*garbage\.pt' cannot be read as a PyTorch checkpoint \(.+\)"),
        ("folder", IsADirectoryError, r"model '\S*folder' is a folder; visualize needs a checkpoint"),
        ("nothing-here.pt", FileNotFoundError, r"^checkpoint 'nothing-here\.pt' not found$"),
    ],
)
def test_bad_model_file_is_named(model, error, message, coco8_images, tmp_path, monkeypatch):
    (tmp_path / "garbage.pt").write_text("garbage\n")
    (tmp_path / "folder").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=message):
        visualize(model if model == "nothing-here.pt" else str(tmp_path / model), source=coco8_images[0], save=False)
