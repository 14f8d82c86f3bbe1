"""cbam-shapes `generate` on a user's mistakes: a file or another folder where the data set goes, a bad seed."""

from __future__ import annotations

import pytest

from ultralytics_cbam import cbam_shapes as shapes

SMALL = {"train": 2, "val": 1, "size": 64}


def test_existing_file_is_refused_and_kept(tmp_path):
    file = tmp_path / "ds"
    file.write_text("mine")
    with pytest.raises(FileExistsError, match=r"^'.*ds' is a file, not a data set folder"):
        shapes.generate(file, **SMALL)
    assert file.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["ds"]


@pytest.mark.parametrize(("task", "made"), [("detect", "data.yaml"), ("classify", "val")])
def test_empty_folder_is_filled(task, made, tmp_path):
    (tmp_path / "ds").mkdir()
    root = shapes.generate(tmp_path / "ds", task=task, **SMALL)
    assert root == (tmp_path / "ds").resolve() and (root / made).exists()
    assert len(list(root.rglob("*.png"))) == SMALL["train"] + SMALL["val"]
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no partial folder left


def test_folder_with_other_content_is_refused_and_kept(tmp_path):
    (tmp_path / "ds" / "images").mkdir(parents=True)
    (tmp_path / "ds" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"^folder '.*ds' holds no cbam-shapes detect data set \(no data.yaml\)"):
        shapes.generate(tmp_path / "ds", **SMALL)
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["images", "notes.txt"]


def test_finished_data_set_is_returned_as_it_is(tmp_path):
    root = shapes.generate(tmp_path / "ds", **SMALL)
    stamp = (root / "data.yaml").stat().st_mtime_ns
    assert shapes.generate(tmp_path / "ds", **SMALL) == root and (root / "data.yaml").stat().st_mtime_ns == stamp


@pytest.mark.parametrize("seed", ["abc", -1, 1.5, True, None])
def test_bad_seed_is_named(seed, tmp_path):
    with pytest.raises(ValueError, match=rf"^seed must be a non-negative integer, got {seed!r}$".replace(".", r"\.")):
        shapes.generate(tmp_path / "ds", seed=seed, **SMALL)
    assert not list(tmp_path.iterdir())
