"""The fine-tuning study script: one pretraining, a grid fine-tuned from its checkpoint, the doc block."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from ablate_helpers import logged

from benchmarks import transfer_study

REPO = Path(__file__).resolve().parents[1]
RECORDS = REPO / "benchmarks" / "results" / "transfer-study.json"
PAGE = REPO / "docs" / "transfer-study.md"


def block_of(text: str) -> str:
    return text.split("<!-- transfer:start -->\n")[1].split("\n<!-- transfer:end -->")[0]


def test_study_pretrains_once_and_fine_tunes_every_run_from_the_checkpoint(coco8, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer_study, "VARIANTS", "baseline,cbam")
    page, records, figure = tmp_path / "page.md", tmp_path / "records.json", tmp_path / "figures" / "transfer.png"
    page.write_text("# Title\n\n<!-- transfer:start -->\nold\n<!-- transfer:end -->\n\nAfter.\n")
    project = tmp_path / "runs"
    settings = {"source": str(coco8), "data": str(coco8), "pretrain_epochs": 1, "epochs": 1, "imgsz": 64, "seeds": 2}
    argv = [f"{k}={v}" for k, v in settings.items()] + [f"project={project}", f"records={records}"]
    argv += [f"readme={page}", f"figure={figure}", "batch=4", "workers=0", "device=cpu", "latency_runs=2"]

    recorded = transfer_study.main(argv)
    best = (project / "pretrain" / "weights" / "best.pt").resolve()
    made = best.stat().st_mtime_ns
    assert recorded["pretrain"]["weights"] == str(best) and len(recorded["pretrain"]["digest"]) == 64
    assert recorded["pretrain"]["settings"]["epochs"] == 1 and 0 <= recorded["pretrain"]["record"]["map50_95"] <= 1
    runs = [(r["variant"], r["seed"]) for r in recorded["runs"]]
    assert runs == [(v, s) for v in ("baseline", "cbam") for s in (0, 1)]
    assert all(r["settings"]["weights"] == str(best) for r in recorded["runs"])  # every run loaded the checkpoint
    for variant, seed in runs:
        marker = json.loads((project / "transfer-study" / f"{variant}-seed{seed}" / "ablate.json").read_text())
        assert marker["settings"]["weights"] == str(best)
    assert json.loads(records.read_text()) == recorded

    text = page.read_text()
    block = block_of(text)
    assert text.startswith("# Title\n\n") and text.endswith("\n\nAfter.\n") and "old" not in text
    assert block == transfer_study.block(recorded, {**transfer_study.DEFAULTS, **settings}, figure, page)
    assert f"Pretraining: `yolo train model=yolov8n.yaml data={coco8} epochs=1 imgsz=64 seed=0" in block
    assert "base=runs/detect/pretrain/weights/best.pt variants=baseline,cbam seeds=2 epochs=1 imgsz=64`" in block
    assert "The checkpoint (yolov8n.yaml, 1 epochs at 64 px on coco8.yaml, seed 0) scores mAP50" in block
    assert "| cbam | CBAM(r=16, k=7)" in block and "| baseline | the checkpoint best.pt, no attention |" in block
    assert block.endswith("](figures/transfer.png)") and cv2.imread(str(figure)) is not None

    # the same command again: neither the pretraining nor any fine-tuning run trains again
    again, log = logged(transfer_study.main, argv)
    assert best.stat().st_mtime_ns == made
    assert [line for line in log if ") training" in line or line.startswith("Starting training")] == []
    assert sum("finished earlier, skipped" in line for line in log) == 4
    assert again["pretrain"] == recorded["pretrain"]
    for before, after in zip(recorded["runs"], again["runs"], strict=True):  # the same runs; latency measured anew
        assert {**before, "profile": None} == {**after, "profile": None}
    assert block_of(page.read_text()) == transfer_study.block(
        again, {**transfer_study.DEFAULTS, **settings}, figure, page
    )


def test_block_without_records_says_so(tmp_path):
    page = tmp_path / "page.md"
    block = transfer_study.block({"models": {}, "runs": []}, transfer_study.DEFAULTS, tmp_path / "x.png", page)
    assert block.startswith("Pretraining: `yolo train model=yolov8n.yaml data=cbam-shapes.yaml epochs=30")
    assert block.endswith("No fine-tuning run is recorded yet.") and "|" not in block


@pytest.mark.skipif(not RECORDS.exists(), reason="benchmarks/results/transfer-study.json is not written yet")
def test_doc_block_is_the_one_the_committed_records_give():
    records = json.loads(RECORDS.read_text(encoding="utf-8"))
    expected = transfer_study.block(records, transfer_study.DEFAULTS, transfer_study.DEFAULTS["figure"], PAGE)
    assert block_of(PAGE.read_text(encoding="utf-8")) == expected


class Stopped(Exception):
    pass


def test_interrupted_pretraining_is_resumed_and_a_finished_one_kept(coco8, tmp_path, monkeypatch):
    import torch
    from ultralytics.utils.callbacks import base

    def stop(trainer):
        raise Stopped(trainer.epoch)

    args = {**transfer_study.DEFAULTS, "source": str(coco8), "pretrain_epochs": 2, "imgsz": 64, "project": tmp_path}
    train_args = {"batch": 4, "workers": 0, "device": "cpu"}
    with monkeypatch.context() as patch:
        patch.setitem(base.default_callbacks, "on_model_save", [stop])  # killed once the first epoch is saved
        with pytest.raises(Stopped):
            transfer_study.pretrain(args, train_args)
    last = tmp_path / "pretrain" / "weights" / "last.pt"
    assert torch.load(last, weights_only=False)["epoch"] == 0

    best, log = logged(transfer_study.pretrain, args, train_args)
    assert best == (tmp_path / "pretrain" / "weights" / "best.pt").resolve()
    ckpt = transfer_study.load_checkpoint(best)
    assert ckpt["epoch"] == -1  # finished
    assert any(line.startswith("Resuming training") and "from epoch 2 to 2 total epochs" in line for line in log)
    assert len((tmp_path / "pretrain" / "results.csv").read_text().splitlines()) == 3  # header and 2 epochs
    made = best.stat().st_mtime_ns
    assert transfer_study.pretrain(args, train_args) == best and best.stat().st_mtime_ns == made
    with pytest.raises(ValueError, match="was trained with"):
        transfer_study.pretrain({**args, "pretrain_epochs": 3}, train_args)


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("epoch=1", "epoch is not an Ultralytics training argument; similar: epochs"),
        ("seeds=0", "seeds must be a positive integer, got 0"),
        ("pretrain_epochs=abc", "pretrain_epochs must be a positive integer, got 'abc'"),
        ("lr=0.1", "lr is not an Ultralytics training argument; similar: "),
        ("base=yolov8n.yaml", "base: the study sets it itself"),
    ],
)
def test_bad_argument_is_named_before_the_pretraining(pair, message, coco8, tmp_path, monkeypatch):
    def pretrain(args, train_args):
        raise AssertionError("the pretraining started")

    monkeypatch.setattr(transfer_study, "pretrain", pretrain)
    argv = [f"source={coco8}", f"data={coco8}", "imgsz=64", "workers=0", "device=cpu"]
    argv += [f"project={tmp_path / 'runs'}", f"records={tmp_path / 'records.json'}", pair]
    with pytest.raises(SystemExit) as exit_info:
        transfer_study.main(argv)
    text = str(exit_info.value.code)
    assert text.startswith(f"benchmarks.transfer_study: {message}") and "\n" not in text
    assert not list(tmp_path.iterdir())
