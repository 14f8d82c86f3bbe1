"""Weight transfer from stock (CBAM-free) checkpoints into CBAM models: every tensor at its remapped index."""

from __future__ import annotations

import logging
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from helpers import run_python, save_checkpoint, yolo_cli
from ultralytics import YOLO
from ultralytics.nn import tasks
from ultralytics.utils import LOGGER

from ultralytics_cbam import modules
from ultralytics_cbam.transfer import TaskMismatchError, transfer_weights

UL81 = Path(__file__).resolve().parents[1] / ".ci" / "ultralytics-8.1.0"  # made by .ci/run
TASK_SUFFIXES = {"detect": "", "segment": "-seg", "pose": "-pose", "obb": "-obb", "classify": "-cls"}


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    """Builds (once) and returns the path of a stock checkpoint, e.g. stock('yolov8n-seg')."""
    folder, made = tmp_path_factory.mktemp("stock"), {}

    def make(name: str) -> Path:
        if name not in made:
            made[name] = folder / f"{name}.pt"
            save_checkpoint(YOLO(f"{name}.yaml"), made[name])
        return made[name]

    return make


def checkpoint_state(path: Path) -> dict[str, torch.Tensor]:
    """The FP32 state dict stored in a checkpoint file, read with torch alone."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return (ckpt.get("ema") or ckpt["model"]).float().state_dict()


def plain_indices(model: torch.nn.Module) -> list[int]:
    """Indices of the layers of a CBAM model that are not CBAM: the i-th stock layer belongs at the i-th of these."""
    return [j for j, m in enumerate(model.model) if not isinstance(m, modules.CBAM)]


def moved(key: str, places: list[int]) -> str:
    head, index, rest = key.split(".", 2)
    return f"{head}.{places[int(index)]}.{rest}"


@contextmanager
def captured_log():
    """Collect what Ultralytics' LOGGER prints."""
    records: list[str] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    LOGGER.addHandler(handler)
    try:
        yield records
    finally:
        LOGGER.removeHandler(handler)


@pytest.mark.parametrize("task", list(TASK_SUFFIXES))
def test_every_stock_tensor_arrives_at_its_remapped_index(task, stock):
    suffix = TASK_SUFFIXES[task]
    path = stock(f"yolov8n{suffix}")
    model = YOLO(f"yolov8n{suffix}-cbam.yaml")
    cbam_before = {k: v.clone() for k, v in model.model.state_dict().items() if _is_cbam_key(model.model, k)}
    with captured_log() as log:
        model.load(path)

    source, target = checkpoint_state(path), model.model.state_dict()
    places = plain_indices(model.model)
    assert len(places) == len(YOLO(f"yolov8n{suffix}.yaml").model.model)
    for key, tensor in source.items():
        assert torch.equal(target[moved(key, places)], tensor), key
    for key, tensor in cbam_before.items():  # CBAM layers are new: they keep their initialisation
        assert torch.equal(target[key], tensor), key
    assert len(source) + len(cbam_before) == len(target)
    expected = f"Transferred {len(source)}/{len(target)} items from pretrained weights {path.name}"
    assert any(line.startswith(expected) for line in log), log
    assert any(f"{len(source)}/{len(source)} of its tensors arrived" in line for line in log), log


def _is_cbam_key(model, key: str) -> bool:
    return isinstance(model.model[int(key.split(".")[1])], modules.CBAM)


def test_another_scale_transfers_every_tensor(stock):
    path = stock("yolov8s")
    model = YOLO("yolov8s-cbam.yaml").load(path)
    places, target = plain_indices(model.model), model.model.state_dict()
    for key, tensor in checkpoint_state(path).items():
        assert torch.equal(target[moved(key, places)], tensor), key


def test_other_class_count_skips_and_reports_only_the_class_convs(stock):
    path = stock("yolov8n")
    source = checkpoint_state(path)
    model = tasks.DetectionModel("yolov8n-cbam.yaml", nc=3, verbose=False)
    with captured_log() as log:
        report = transfer_weights(model, path)

    places, target = plain_indices(model), model.state_dict()
    differ = [k for k in source if target[moved(k, places)].shape != source[k].shape]
    assert differ and all(".cv3." in k for k in differ)  # only the class branches depend on nc
    for key, tensor in source.items():
        got = target[moved(key, places)]
        if key not in differ:
            assert torch.equal(got, tensor), key
            continue
        overlap = tensor[tuple(slice(0, n) for n in got.shape)]  # what a partial copy would have written
        if overlap.unique().numel() > 1:  # constant initialisations (BatchNorm's ones, zeros) look copied anyway
            assert not torch.equal(got, overlap), key
    assert sorted(m[0] for m in report.mismatched) == sorted(differ)
    warning = next(line for line in log if "skipped because their shapes differ" in line)
    assert f"{len(differ)} tensors of {path.name}" in warning
    assert f"{differ[0]} {tuple(source[differ[0]].shape)}" in warning


def test_other_scale_is_skipped_never_sliced(stock):
    path = stock("yolov8s")
    source = checkpoint_state(path)
    model = tasks.DetectionModel("yolov8n-cbam.yaml", verbose=False)
    first_before = model.state_dict()["model.0.conv.weight"].clone()
    report = transfer_weights(model, path, verbose=False)

    places, target = plain_indices(model), model.state_dict()
    same = [k for k in source if target[moved(k, places)].shape == source[k].shape]
    assert len(report.arrived) == len(same)
    assert len(report.mismatched) == len(source) - len(same)
    assert torch.equal(target["model.0.conv.weight"], first_before)  # not filled with the first filters of 's'
    for key in same:
        assert torch.equal(target[moved(key, places)], source[key]), key


def test_checkpoint_of_another_task_is_a_clear_error(stock):
    path = stock("yolov8n-seg")
    with pytest.raises(
        TaskMismatchError, match=r"'yolov8n-seg\.pt' is a segment checkpoint, but the model is a detect"
    ):
        YOLO("yolov8n-cbam.yaml").load(path)
    model = tasks.DetectionModel("yolov8n-cbam.yaml", verbose=False)
    report = transfer_weights(model, path, verbose=False, other_task=True)  # on purpose: the shared layers
    source = checkpoint_state(path)
    places, target = plain_indices(model), model.state_dict()
    for key in (k for k in source if not k.startswith("model.22.")):  # everything but the heads
        assert torch.equal(target[moved(key, places)], source[key]), key
    assert report.unused and all(k.startswith("model.22.") for k in report.unused if ".cv4." in k or "proto" in k)


def test_models_without_cbam_load_exactly_as_before(stock):
    path = stock("yolov8n")
    a = tasks.DetectionModel("yolov8n.yaml", verbose=False)
    b = tasks.DetectionModel("yolov8n.yaml", verbose=False)
    b.load_state_dict(a.state_dict())
    weights = YOLO(path).model
    a.load(weights)
    tasks.BaseModel.load.__wrapped__(b, weights)  # Ultralytics' own load
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb), ka


def test_cbam_weights_follow_their_place(tmp_path):
    """CBAM tensors move with the layer they follow; a CBAM at a new place keeps its initialisation."""
    from ultralytics_cbam.insert import add_cbam

    source = tasks.DetectionModel("yolov8n-cbam.yaml", verbose=False)  # CBAM after stock layers 2, 4, 6, 9
    out = add_cbam("yolov8n.yaml", output=tmp_path / "yolov8n-other.yaml", where=[4, 6, 9, 12])
    model = tasks.DetectionModel(str(out.yaml), verbose=False)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = transfer_weights(model, source, verbose=False)

    target = model.state_dict()
    source_cbam = dict(enumerate(plain_indices(source)))  # stock index -> source index
    for stock_index in (4, 6, 9):  # both have a CBAM after these stock layers
        s, t = source_cbam[stock_index] + 1, out.index_map[stock_index] + 1
        for name, tensor in source.model[s].state_dict().items():
            assert torch.equal(target[f"model.{t}.{name}"], tensor)
    new_place = out.index_map[12] + 1
    for name in model.model[new_place].state_dict():
        assert torch.equal(target[f"model.{new_place}.{name}"], fresh[f"model.{new_place}.{name}"])
    assert any(k.startswith(f"model.{source_cbam[2] + 1}.") for k in report.unused)  # the CBAM after layer 2


def test_pretrained_argument_of_yolo_train(stock, coco8, tmp_path):
    """`yolo train model=yolov8n-cbam.yaml pretrained=yolov8n.pt` reports that every stock tensor arrived."""
    path = stock("yolov8n")
    n_source = len(checkpoint_state(path))
    n_target = len(tasks.DetectionModel("yolov8n-cbam.yaml", verbose=False).state_dict())
    args = [
        "train",
        "model=yolov8n-cbam.yaml",
        f"pretrained={path}",
        f"data={coco8}",
        "epochs=1",
        "imgsz=64",
        "batch=4",
        "workers=0",
        "device=cpu",
        f"project={tmp_path}",
        "plots=False",
        "val=False",
    ]
    result = yolo_cli(args, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    assert f"Transferred {n_source}/{n_target} items from pretrained weights {path.name}" in out, out[-3000:]
    assert f"{n_source}/{n_source} of its tensors arrived" in out


@pytest.mark.skipif(not (UL81 / "ultralytics").is_dir(), reason="no Ultralytics 8.1.0 overlay (.ci/run makes it)")
def test_transfer_on_ultralytics_8_1(tmp_path):
    code = textwrap.dedent("""
        import copy
        import torch
        import ultralytics
        from ultralytics import YOLO
        assert ultralytics.__version__.startswith("8.1"), ultralytics.__version__
        stock = YOLO("yolov8n-pose.yaml").model
        torch.save({"model": copy.deepcopy(stock).half()}, "stock.pt")
        source = torch.load("stock.pt", weights_only=False)["model"].float().state_dict()
        model = YOLO("yolov8n-pose-cbam.yaml").load("stock.pt")
        places = [j for j, m in enumerate(model.model.model) if type(m).__name__ != "CBAM"]
        target = model.model.state_dict()
        for key, tensor in source.items():
            head, index, rest = key.split(".", 2)
            assert torch.equal(target[f"{head}.{places[int(index)]}.{rest}"], tensor), key
        print("ALL", len(source))
    """)
    env = {
        "PYTHONPATH": str(UL81),
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
        "YOLO_CONFIG_DIR": str(tmp_path / "config"),
    }
    result = run_python(code, tmp_path, env=env)  # its own settings: an older release rewrites a newer one's
    assert result.returncode == 0, result.stderr[-3000:]
    n = int(result.stdout.split("ALL ")[1].split()[0])
    assert f"{n}/{n} of its tensors arrived" in result.stdout + result.stderr


def test_bad_arguments_name_the_argument(stock):
    model = tasks.DetectionModel("yolov8n-cbam.yaml", verbose=False)
    with pytest.raises(TypeError, match=r"weights must be a checkpoint .*a YAML has none"):
        transfer_weights(model, "yolov8n.yaml")
    with pytest.raises(TypeError, match=r"model must be a YOLO object or a torch module .*'yolov8n-cbam\.yaml'"):
        transfer_weights("yolov8n-cbam.yaml", stock("yolov8n"))
    with pytest.raises(TypeError, match=r"cannot align layers: model \(Conv2d\) has no Ultralytics layer list"):
        transfer_weights(torch.nn.Conv2d(3, 3, 1), stock("yolov8n"))
