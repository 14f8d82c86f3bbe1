"""`yolo val` and `yolo predict` of a CBAM checkpoint in a fresh process match the in-process model; fuse() is exact."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import cv2
import numpy as np
import torch
from helpers import yolo_cli
from ultralytics import YOLO

from ultralytics_cbam.modules import CBAM

IMGSZ = 64
# A checkpoint trained this briefly scores every box below Ultralytics' default thresholds; a tiny conf keeps boxes.
CONF = 1e-5
FUSE_TOLERANCE = 1e-4  # max abs difference allowed between fused and unfused outputs (pixels and class scores)


def image_batch(paths: list[Path], size: int = IMGSZ) -> torch.Tensor:
    """Real photographs as a (N, 3, size, size) RGB float batch in [0, 1]."""
    images = [cv2.resize(cv2.imread(str(p)), (size, size))[..., ::-1] for p in paths]
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2))).float() / 255


def read_txt_predictions(folder: Path) -> dict[str, np.ndarray]:
    """`save_txt save_conf` label files: image stem -> rows of (class, x, y, w, h, conf)."""
    return {f.stem: np.loadtxt(f, ndmin=2) for f in folder.glob("*.txt")}


def test_cli_val_in_fresh_process_gives_same_boxes(trained_cbam, coco8, tmp_path):
    common = {"data": str(coco8), "imgsz": IMGSZ, "batch": 4, "conf": CONF, "save_json": True, "plots": False}
    YOLO(trained_cbam).val(**common, project=str(tmp_path), name="in_process")
    done = yolo_cli(
        ["val", f"model={trained_cbam}", *(f"{k}={v}" for k, v in common.items()), f"project={tmp_path}", "name=cli"],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "all" in done.stdout + done.stderr
    ours = json.loads((tmp_path / "in_process" / "predictions.json").read_text())
    theirs = json.loads((tmp_path / "cli" / "predictions.json").read_text())
    assert ours, "no predictions to compare"
    key = lambda p: (p["image_id"], -p["score"], p["category_id"], p["bbox"])  # noqa: E731
    assert sorted(theirs, key=key) == sorted(ours, key=key)


def test_cli_predict_in_fresh_process_gives_same_boxes(trained_cbam, coco8_images, tmp_path):
    results = YOLO(trained_cbam).predict([str(p) for p in coco8_images], imgsz=IMGSZ, conf=CONF, verbose=False)
    source = coco8_images[0].parent
    args = [f"model={trained_cbam}", f"source={source}", f"imgsz={IMGSZ}", f"conf={CONF}", "save_txt=True"]
    done = yolo_cli(["predict", *args, "save_conf=True", f"project={tmp_path}", "name=cli"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = read_txt_predictions(tmp_path / "cli" / "labels")
    assert sum(len(r.boxes) for r in results) > 0, "no boxes to compare"
    for r in results:
        stem = Path(r.path).stem
        expected = torch.cat((r.boxes.cls[:, None], r.boxes.xywhn, r.boxes.conf[:, None]), 1).numpy()
        got = saved.get(stem, np.zeros((0, 6)))
        order = lambda a: a[np.lexsort(a.T[::-1])]  # noqa: E731
        np.testing.assert_allclose(order(got), order(expected), rtol=1e-4, atol=1e-6, err_msg=stem)


def test_fuse_keeps_outputs(trained_cbam, coco8_images):
    model = YOLO(trained_cbam)
    reference = copy.deepcopy(model.model).eval()
    x = image_batch(coco8_images)
    model.fuse()
    fused = model.model.eval()
    assert fused.is_fused()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert sum(isinstance(m, CBAM) for m in fused.modules()) == sum(isinstance(m, CBAM) for m in reference.modules())
    with torch.no_grad():
        expected, got = reference(x)[0], fused(x)[0]
    assert (got - expected).abs().max().item() <= FUSE_TOLERANCE
