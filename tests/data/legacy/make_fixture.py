"""Write the legacy-checkpoint fixture: a small CBAM model and layers saved by ultralytics-cbam 0.1.0, with outputs.

The files beside this script were written by this script with the 0.1.0 release (commit 212cd60). Run again, it writes
the current release's files; the test compares the current code against the 0.1.0 files, so do not rerun it to "fix"
a failing comparison.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from torch import nn
from ultralytics import YOLO

from ultralytics_cbam import CBAM, ChannelAttention, SpatialAttention
from ultralytics_cbam.cfg.packaged import packaged_yaml

HERE = Path(__file__).resolve().parent


def main() -> None:
    torch.manual_seed(0)
    cfg = yaml.safe_load(packaged_yaml("yolov8-cbam.yaml").read_text())
    cfg["nc"], cfg["scales"] = 3, {"t": [0.33, 0.0625, 1024]}
    path = HERE / "yolov8t-cbam.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    model = YOLO(str(path))
    path.unlink()
    for m in model.model.modules():
        if isinstance(m, nn.BatchNorm2d):  # trained-looking statistics, so that the outputs are not degenerate
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    model.save(HERE / "yolov8t-cbam-0.1.0.pt")

    layers = nn.Sequential(CBAM(16, 4, 3, bias=True), ChannelAttention(16, 8), SpatialAttention(5))
    for p in layers.parameters():
        nn.init.normal_(p, std=0.5)
    torch.save(layers, HERE / "layers-0.1.0.pt")

    reloaded = torch.load(HERE / "yolov8t-cbam-0.1.0.pt", weights_only=False)["model"].float().eval()
    image = torch.rand(2, 3, 64, 96)
    features = torch.randn(2, 16, 9, 13)
    with torch.no_grad():
        outputs = {"model": reloaded(image)[0], "layers": layers.eval()(features)}
    torch.save({"image": image, "features": features, **outputs}, HERE / "outputs-0.1.0.pt")


if __name__ == "__main__":
    main()
