"""Every generated doc block is the render of the raw records committed beside its script (benchmarks/results/*.json),
so it is rebuilt here without measuring, on any Ultralytics release; the scripts save the records and write the block
from them."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from benchmarks.config import RESULTS_DIR
from benchmarks.readme_tables import block_content, load_json

REPO = Path(__file__).resolve().parents[1]
BLOCKS = [  # doc, block, script, its render of the records
    ("docs/families.md", "families", "families_table", "families_block"),
    ("docs/parameters.md", "params", "families_table", "params_block"),
    ("docs/export-formats.md", "exports", "export_matrix", "block"),
    ("docs/gentle-init.md", "gentle", "gentle_init", "block"),
    ("README.md", "quickstart", "quickstart", "block"),
]
FRESH = [("yolov8", "detect"), ("yolo11", "segment")]  # families rows rebuilt at scale n


@pytest.mark.parametrize(("doc", "name", "script", "render"), BLOCKS, ids=[b[1] for b in BLOCKS])
def test_doc_block_is_rendered_from_the_committed_records(doc, name, script, render):
    module = importlib.import_module(f"benchmarks.{script}")
    results = Path(module.DEFAULTS["results"])
    assert results.parent == RESULTS_DIR
    records = load_json(results)
    assert set(records["versions"]) >= {"python", "torch", "ultralytics"}
    assert block_content(REPO / doc, name) == getattr(module, render)(records)


def test_families_rows_built_fresh_match_the_committed_ones():
    """Under the Ultralytics release the records were measured with, a few rows come out the same again."""
    import ultralytics

    from benchmarks import families_table

    records = load_json(families_table.DEFAULTS["results"])
    measured = records["versions"]["ultralytics"]
    if ultralytics.__version__ != measured:
        pytest.skip(f"families.json was measured with Ultralytics {measured}, this is {ultralytics.__version__}")
    committed = {(r.family, r.task, r.scale): r for r in families_table.rows_of(records)}
    for family, task in FRESH:
        fresh = families_table.measure(family, task, "n", records["settings"]["imgsz"])
        saved = committed[family, task, "n"]
        assert (fresh.stock, fresh.after, fresh.params) == (saved.stock, saved.after, saved.params)
        assert fresh.gflops_text(2) == saved.gflops_text(2)


def test_families_table_saves_its_rows_and_writes_both_blocks_from_them(tmp_path, monkeypatch):
    import ultralytics

    from benchmarks import families_table

    rows = [
        families_table.Row("yolov8", "detect", "n", "yolov8n.yaml", "2 C2f, 9 SPPF", (1000, 1010), (8.9, 8.92)),
        families_table.Row("yolo11", "detect", "n", "yolo11n.yaml", "2 C3k2", (2000, 2020), (6.5, 6.51)),
    ]
    monkeypatch.setattr(families_table, "build_rows", lambda imgsz, scales: rows)
    for doc, name in (("families.md", "families"), ("parameters.md", "params")):
        (tmp_path / doc).write_text(f"intro\n<!-- {name}:start -->\nold\n<!-- {name}:end -->\nend\n")
    args = [f"docs={tmp_path / 'families.md'}", f"params={tmp_path / 'parameters.md'}", "imgsz=320"]
    families_table.main([*args, f"results={tmp_path / 'families.json'}"])
    records = load_json(tmp_path / "families.json")
    assert families_table.rows_of(records) == rows and records["settings"] == {"imgsz": 320, "scales": "nslmx"}
    assert records["versions"]["ultralytics"] == ultralytics.__version__
    params = block_content(tmp_path / "parameters.md", "params")
    assert params == families_table.params_block(records)
    assert params.splitlines()[2] == "| detect | n | 1,000 | 1,010 | +10 (1.00 %) | 8.9 | 8.9 | +0.02 |"
    families = block_content(tmp_path / "families.md", "families")
    assert families == families_table.families_block(records)
    assert "| yolo11n (detect) | 2 C3k2 | 2,000 | 2,020 | +20 (1.00 %) | 6.50 | 6.51 |" in families
    assert families.endswith(f"Ultralytics {ultralytics.__version__}, torch {records['versions']['torch']}, written "
                             "by `python -m benchmarks.families_table`.")  # fmt: skip


def test_quickstart_saves_its_run_and_writes_the_block_from_it(tmp_path, monkeypatch):
    from benchmarks import quickstart

    run = {"command": "yolo train x=1", "cpus": 2, "cpu": "Some CPU", "cores": 2, "wall_s": 76.6, "cpu_s": 75.2,
           "load_before": 0.5, "load_after": 0.94, "map50": 0.3704}  # fmt: skip
    monkeypatch.setattr(quickstart, "run", lambda epochs, imgsz, cpus: run)
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- quickstart:start -->\nold\n<!-- quickstart:end -->\nb\n")
    text = quickstart.main([f"readme={readme}", f"results={tmp_path / 'quickstart.json'}"])
    records = load_json(tmp_path / "quickstart.json")
    assert records["run"] == run and "ultralytics" in records["versions"]
    assert block_content(readme, "quickstart") == text == quickstart.block(records)
    assert text.splitlines()[2] == "| `yolo train x=1` | Some CPU, 2 cores | 77 s | 75 s | 0.5 / 0.9 | 0.370 |"
