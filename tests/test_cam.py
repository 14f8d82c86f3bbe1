"""`yolo-cbam cam`: Ultralytics' LayerCAM of several models side by side, one figure per image."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import console_script, save_checkpoint
from ultralytics import YOLO
from ultralytics.utils import SETTINGS, plotting
from ultralytics.utils.files import increment_path

from ultralytics_cbam.cli import main
from ultralytics_cbam.integration.compat import LAYERCAM_RELEASE as MIN_RELEASE
from ultralytics_cbam.visualization.layercam import FIGURE_WIDTH, GAP, Panel, cam, cam_figures, figure

UL83 = Path(__file__).resolve().parents[1] / ".ci" / "ultralytics-8.3.253"  # made by .ci/run
needs_cam = pytest.mark.skipif(
    not hasattr(plotting, "class_activation_map"), reason=f"class activation maps need Ultralytics >= {MIN_RELEASE}"
)
OLD_RELEASE = rf"class activation maps need Ultralytics >= {MIN_RELEASE}, installed: \S+; pip install"


@pytest.fixture(scope="module")
def checkpoints(trained_cbam, coco8, tmp_path_factory) -> dict[str, Path]:
    """Model name -> best.pt: the shared yolov8n-cbam run ('train') and a yolov8n baseline trained the same way."""
    project = tmp_path_factory.mktemp("cam-runs")
    args = dict(data=str(coco8), epochs=1, imgsz=64, batch=4, workers=0, device="cpu", plots=False, verbose=False)
    YOLO("yolov8n.yaml").train(**args, project=str(project), name="baseline", seed=0, deterministic=True, amp=False)
    return {"baseline": project / "baseline" / "weights" / "best.pt", "train": trained_cbam}


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> dict[str, Path]:
    """Task -> checkpoint of an untrained yolov8n or yolov8n-cls, where no training is needed."""
    folder = tmp_path_factory.mktemp("untrained")
    return {
        task: save_checkpoint(YOLO(f"yolov8n{suffix}.yaml"), folder / f"yolov8n{suffix}.pt")
        for task, suffix in (("detect", ""), ("classify", "-cls"))
    }


@needs_cam
def test_cli_writes_one_figure_per_image_with_a_panel_per_model(checkpoints, coco8_images):
    expected = increment_path(Path(SETTINGS["runs_dir"]) / "detect" / "cam")
    source = coco8_images[0].parent
    figures = main(["cam", f"models={checkpoints['baseline']},{checkpoints['train']}", f"source={source}", "conf=0.01"])
    assert figures[0].file.parent == expected.resolve()
    assert sorted(expected.glob("*.jpg")) == sorted(expected / f"{p.stem}_cam.jpg" for p in coco8_images)
    assert [f.image for f in figures] == coco8_images
    for f in figures:
        assert [p.title for p in f.panels] == ["baseline", "train"]
        assert all(p.prediction for p in f.panels)
        for p in f.panels:  # the overlays Ultralytics' predictor saved with visualize=True
            assert p.file.parent == expected.resolve() / "overlays" / p.title
            assert p.file.name.startswith(f"{f.image.stem}_cam")
            assert np.array_equal(cv2.imread(str(p.file)), p.overlay)
        image = cv2.imread(str(f.file))
        assert image.shape[1] == FIGURE_WIDTH
        pw, below = (FIGURE_WIDTH - GAP) // 2, image[image.shape[0] // 2 :]
        assert below[:, pw + 1 : pw + GAP - 1].min() > 230  # the white gap between two panels
        assert below[:, :pw].mean() < 200 and below[:, pw + GAP :].mean() < 200  # a heatmap on each side of it


@needs_cam
def test_names_are_unique_and_yolo_objects_are_left_as_they_were(checkpoints, coco8_images, tmp_path):
    yolo = YOLO(checkpoints["baseline"])
    glob = str(coco8_images[1].parent / f"*{coco8_images[1].stem[-3:]}.jpg")  # one image
    figures = cam([checkpoints["baseline"], yolo], source=glob, project=str(tmp_path), name="twice")
    assert [p.title for p in figures[0].panels] == ["baseline", "baseline-2"]
    assert figures[0].file == tmp_path / "twice" / f"{coco8_images[1].stem}_cam.jpg"
    assert yolo.predictor is None  # a later yolo.predict() does not inherit visualize=True


@needs_cam
def test_cam_figures_write_one_figure_per_image_into_the_given_folder(checkpoints, coco8_images, tmp_path):
    images = coco8_images[:2]
    files = cam_figures({"yolov8n": checkpoints["baseline"], "yolov8n + CBAM": checkpoints["train"]}, images, tmp_path)
    assert files == [tmp_path / f"{p.stem}_cam.jpg" for p in images]
    assert all(cv2.imread(str(f)).shape[1] == FIGURE_WIDTH for f in files)
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == ["yolov8n", "yolov8n___CBAM"]


@needs_cam
def test_classify_models_are_titled_with_their_top_class(untrained, coco8_images, tmp_path):
    yolo = YOLO(untrained["classify"])
    files = cam_figures({"a": untrained["classify"], "b": yolo}, coco8_images[:1], tmp_path, imgsz=64)
    assert files == [tmp_path / f"{coco8_images[0].stem}_cam.jpg"]
    top1 = yolo.predict(str(coco8_images[0]), imgsz=64, verbose=False)[0].probs
    expected = f"{yolo.names[top1.top1]} {float(top1.top1conf):.2f}"
    figures = cam([untrained["classify"]], source=coco8_images[0], imgsz=64, project=str(tmp_path), name="cls")
    assert figures[0].file.parent == tmp_path / "cls" and figures[0].panels[0].prediction == expected


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_figure_fills_even_rows_of_at_most_three_and_centres_a_short_last_row(n):
    panels = [Panel(f"model {k}", "person 0.50", np.zeros((60, 80, 3), np.uint8), Path(f"{k}.jpg")) for k in range(n)]
    image = figure(panels)
    cols = {1: 1, 2: 2, 3: 3, 4: 2, 5: 3}[n]
    pw = (FIGURE_WIDTH - (cols - 1) * GAP) // cols
    assert image.shape[1] == FIGURE_WIDTH
    bottom = image[-2]  # the last pixel row of the last row of panels: black where a panel is
    dark = np.flatnonzero(bottom.max(1) < 50)
    last_row = n - (n - 1) // cols * cols
    assert last_row * (pw - 1) <= len(dark) <= last_row * pw
    assert abs((dark.min() + dark.max()) / 2 - FIGURE_WIDTH / 2) <= 1  # centred


def test_long_titles_are_cut_to_the_panel():
    long = "a-checkpoint-name-far-too-long-for-one-of-three-panels-of-a-900-px-figure"
    panels = [Panel(long, "person 0.50", np.zeros((60, 80, 3), np.uint8), Path("a.jpg")) for _ in range(3)]
    image = figure(panels)
    pw = (FIGURE_WIDTH - 2 * GAP) // 3
    title = image[: image.shape[0] // 4]
    assert title[:, pw + 1 : pw + GAP - 1].min() == 255  # no text runs into the gap between panels


@needs_cam
@pytest.mark.parametrize(
    "case, message",
    [
        ("missing model", r"checkpoint '\S*missing\.pt' not found"),
        ("missing asset-like name", r"checkpoint 'nothere\.pt' not found$"),
        ("unreadable model", r"checkpoint '\S*garbage\.pt' cannot be read as a PyTorch checkpoint \(.+\)"),
        ("folder as model", r"checkpoint '\S*empty' is a folder"),
        ("no models", r"models is required"),
        ("missing source", r"source '\S*nowhere\.jpg' not found"),
        ("empty folder", r"source '\S*empty' holds no images"),
        ("not an image", r"source '\S*notes\.txt' is not an image"),
        ("image file that is not one", r"source '\S*fake\.jpg' is not an image"),
        ("classes as text", r"classes must be a class id or a list of class ids \(integers >= 0\), got 'abc'"),
        ("zero imgsz", r"imgsz must be a positive integer, got 0"),
        ("conf above 1", r"conf must be a number in \[0, 1\], got 2"),
        ("exist_ok as text", r"exist_ok must be True or False, got 'no'"),
        (
            "mixed tasks",
            r"models of different tasks cannot share a figure: yolov8n \(detect\), yolov8n-cls \(classify\)",
        ),
    ],
)
def test_bad_input_is_a_one_line_error_naming_it_and_writes_nothing(
    case, message, untrained, coco8_images, tmp_path, monkeypatch
):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "fake.jpg").write_text("not an image")
    (tmp_path / "garbage.pt").write_text("garbage\n")
    monkeypatch.chdir(tmp_path)
    detect, classify, image = untrained["detect"], untrained["classify"], coco8_images[0]
    models, source, *extra = {
        "missing model": ([tmp_path / "missing.pt"], image),
        "missing asset-like name": (["nothere.pt"], image),
        "unreadable model": ([tmp_path / "garbage.pt"], image),
        "folder as model": ([tmp_path / "empty"], image),
        "no models": ([], image),
        "missing source": ([detect], tmp_path / "nowhere.jpg"),
        "empty folder": ([detect], tmp_path / "empty"),
        "not an image": ([detect], tmp_path / "notes.txt"),
        "image file that is not one": ([detect], tmp_path / "fake.jpg"),
        "classes as text": ([detect], image, "classes=abc"),
        "zero imgsz": ([detect], image, "imgsz=0"),
        "conf above 1": ([detect], image, "conf=2"),
        "exist_ok as text": ([detect], image, "exist_ok=no"),
        "mixed tasks": ([detect, classify], image),
    }[case]
    args = [f"models={','.join(map(str, models))}"] if models else []
    with pytest.raises(SystemExit) as e:
        main(["cam", *args, f"source={source}", *extra, f"project={tmp_path / 'runs'}"])
    assert str(e.value).startswith("yolo-cbam cam: ") and "\n" not in str(e.value)
    assert re.search(message, str(e.value)), str(e.value)
    assert not (tmp_path / "runs").exists()


def test_an_older_release_is_a_one_line_error_naming_the_release_needed(monkeypatch, coco8_images):
    monkeypatch.delattr(plotting, "class_activation_map", raising=False)
    with pytest.raises(ImportError, match=OLD_RELEASE):
        cam("a.pt", source=coco8_images[0])
    with pytest.raises(SystemExit, match=rf"^yolo-cbam cam: {OLD_RELEASE}") as e:
        main(["cam", "models=a.pt,b.pt", f"source={coco8_images[0]}"])
    assert "\n" not in str(e.value)


@pytest.mark.skipif(not (UL83 / "ultralytics").is_dir(), reason="no Ultralytics 8.3.253 overlay (.ci/run makes it)")
def test_ultralytics_8_3_gives_the_one_line_error_in_a_fresh_process(coco8_images, tmp_path):
    (tmp_path / "config").mkdir()  # else 8.3 keeps its settings in /tmp/Ultralytics
    done = console_script(
        "yolo-cbam",
        ["cam", "models=a.pt,b.pt", f"source={coco8_images[0]}"],
        tmp_path,
        env={"PYTHONPATH": str(UL83), "YOLO_CONFIG_DIR": str(tmp_path / "config")},  # 8.3 rewrites 8.4's settings
        timeout=300,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stderr
    assert lines[-1] == (
        f"yolo-cbam cam: class activation maps need Ultralytics >= {MIN_RELEASE}, installed: 8.3.253; "
        f'pip install "ultralytics>={MIN_RELEASE}"'
    )
    assert not (tmp_path / "runs").exists()
