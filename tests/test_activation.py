"""The plugin activates in fresh processes with no `import ultralytics_cbam`, installed editable or as a wheel."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import run_python, save_checkpoint, yolo_cli

REPO = Path(__file__).resolve().parents[1]
BUILD = (
    "from ultralytics import YOLO; m = YOLO('yolov8n-cbam.yaml'); print(sum(p.numel() for p in m.model.parameters()))"
)


def stock_plus_cbam_n() -> int:
    from ultralytics import YOLO

    stock = sum(p.numel() for p in YOLO("yolov8n.yaml").model.parameters())
    return stock + sum(2 * c * (c // 16) + 98 for c in (32, 64, 128, 256))


def test_python_api_without_import(tmp_path):
    code = "import sys; assert 'torch' not in sys.modules and 'ultralytics' not in sys.modules; " + BUILD
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.split()[-1]) == stock_plus_cbam_n()


def test_stock_yolo_cli_without_import(tmp_path, coco8_images):
    args = ["predict", "model=yolov8n-cbam.yaml", f"source={coco8_images[0]}", "imgsz=64", "save=False", "device=cpu"]
    result = yolo_cli(args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Speed:" in result.stdout + result.stderr


def test_checkpoint_loads_in_fresh_process(tmp_path):
    from ultralytics import YOLO

    model = YOLO("yolov8n-cbam.yaml")
    save_checkpoint(model, tmp_path / "cbam.pt")
    code = (
        "from ultralytics import YOLO; import sys; m = YOLO('cbam.pt'); "
        "names = {type(x).__module__ + '.' + type(x).__name__ for x in m.model.modules()}; "
        "print('RESULT', 'ultralytics_cbam.modules.CBAM' in names, sum(p.numel() for p in m.model.parameters()))"
    )
    # Ultralytics 8.1 predates torch's weights_only default and needs this to load any checkpoint
    result = run_python(code, tmp_path, env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    assert result.returncode == 0, result.stderr
    found = result.stdout.split("RESULT")[-1].split()
    assert found == ["True", str(sum(p.numel() for p in model.model.parameters()))]


def test_trainer_in_fresh_process_builds_cbam_model(tmp_path, coco8):
    """Multi-GPU (DDP) workers are fresh interpreters that rebuild the trainer's model from its YAML."""
    code = (
        "from ultralytics.models.yolo.detect import DetectionTrainer; "
        f"t = DetectionTrainer(overrides=dict(model='yolov8n-cbam.yaml', data=r'{coco8}', device='cpu', "
        f"project=r'{tmp_path}')); "
        "m = t.get_model(cfg='yolov8n-cbam.yaml', verbose=False); "
        "print(sum(p.numel() for p in m.parameters()) - sum(p.numel() for p in m.model[-1].parameters()))"
    )
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    from ultralytics import YOLO

    expected = YOLO("yolov8n-cbam.yaml").model
    assert int(result.stdout.split()[-1]) == sum(p.numel() for p in expected.parameters()) - sum(
        p.numel() for p in expected.model[-1].parameters()
    )


def test_file_in_working_directory_wins(tmp_path):
    ours = (REPO / "model_yamls" / "yolov8-cbam.yaml").read_text()
    (tmp_path / "yolov8-cbam.yaml").write_text(ours.replace("nc: 80", "nc: 3"))
    result = run_python("from ultralytics import YOLO; print(YOLO('yolov8n-cbam.yaml').model.yaml['nc'])", tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "3"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_python("from ultralytics import YOLO; print(YOLO('yolov8n-cbam.yaml').model.yaml['nc'])", elsewhere)
    assert result.stdout.split()[-1] == "80"


def test_startup_imports_neither_torch_nor_ultralytics(tmp_path):
    command = [sys.executable, "-X", "importtime", "-c", "pass"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)
    modules = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "ultralytics_cbam" in modules  # the start-up hook did run
    assert not {m for m in modules if m.split(".")[0] in {"torch", "ultralytics", "numpy"}}


def test_environment_variable_turns_activation_off(tmp_path):
    code = "import sys; import ultralytics.nn.tasks as t; print('ultralytics_cbam' in sys.modules, hasattr(t, 'CBAM'))"
    on = run_python(code, tmp_path)
    off = run_python(code, tmp_path, env={"ULTRALYTICS_CBAM_AUTOLOAD": "0"})
    assert on.stdout.split() == ["True", "True"], on.stderr
    assert off.stdout.split() == ["False", "False"], off.stderr
    failed = run_python(BUILD, tmp_path, env={"ULTRALYTICS_CBAM_AUTOLOAD": "0"})
    assert failed.returncode != 0
    assert "cbam.yaml' does not exist" in failed.stderr
    explicit = run_python("import ultralytics_cbam; " + BUILD, tmp_path, env={"ULTRALYTICS_CBAM_AUTOLOAD": "0"})
    assert explicit.returncode == 0, explicit.stderr


def test_late_explicit_import_after_ultralytics(tmp_path, coco8):
    """Importing the package after Ultralytics (activation off) still registers everything, data lookup included."""
    code = (
        "import ultralytics.data.utils as du; from ultralytics import YOLO; import ultralytics_cbam; "
        "from pathlib import Path; "
        "print('DIR', Path(du.check_file('yolov8-cbam.yaml')).parent.name); " + BUILD
    )
    result = run_python(code, tmp_path, env={"ULTRALYTICS_CBAM_AUTOLOAD": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("DIR")[-1].split()[0] == "model_yamls"
    assert result.stdout.split()[-1] == str(stock_plus_cbam_n())


def test_activation_is_all_or_nothing(tmp_path):
    """A release whose Ultralytics lacks something the plugin patches gets no patch at all, and one warning."""
    code = (
        "import warnings; warnings.simplefilter('always'); import ultralytics.utils.checks as c; "
        "import ultralytics.nn.tasks as t; from ultralytics import __version__; "
        "stock = (c.check_file, t.parse_model, t.BaseModel.load); guess = t.guess_model_task; del t.guess_model_task; "
        "import ultralytics_cbam; t.guess_model_task = guess; "
        "print('RESULT', (c.check_file, t.parse_model, t.BaseModel.load) == stock, hasattr(t, 'CBAM'), __version__); "
        "from ultralytics import YOLO; YOLO('yolov8n-cbam.yaml')"
    )
    result = run_python(code, tmp_path, env={"ULTRALYTICS_CBAM_AUTOLOAD": "0"})
    from ultralytics import __version__

    assert result.stdout.split("RESULT")[-1].split() == ["True", "False", __version__], result.stderr
    warnings = [line for line in result.stderr.splitlines() if "RuntimeWarning" in line]
    assert len(warnings) == 1, result.stderr
    assert f"Ultralytics {__version__}" in warnings[0] and "guess_model_task" in warnings[0]
    assert result.returncode != 0 and "cbam.yaml' does not exist" in result.stderr  # stock behaviour


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)]
    subprocess.run(build, check=True, capture_output=True)
    (path,) = out.glob("ultralytics_cbam-*.whl")
    return path


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "ultralytics_cbam.pth" in names
    yamls = {Path(n).name for n in names if n.startswith("ultralytics_cbam/model_yamls/")}
    assert yamls >= {p.name for p in (REPO / "model_yamls").glob("*.yaml")}


def test_wheel_install_activates(wheel, tmp_path):
    """A fresh venv with only the wheel installed (its dependencies come from this environment)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    (Path(venv_site) / "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = dict(os.environ)
    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], capture_output=True, text=True, env=env
    )
    assert install.returncode == 0, install.stderr
    work = tmp_path / "work"
    work.mkdir()
    code = BUILD + "; import ultralytics_cbam; print(ultralytics_cbam.__file__)"
    result = subprocess.run([python, "-c", code], cwd=work, capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    count, location = result.stdout.split()[-2:]
    assert int(count) == stock_plus_cbam_n()
    assert Path(location).is_relative_to(venv)
    shutil.rmtree(venv)
