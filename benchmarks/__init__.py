"""Benchmarks of the CBAM layers and the scripts that write the documentation's generated tables and figures.

Run a script from the repository root as ``python -m benchmarks.<name> key=value ...``.
"""

import os

os.environ.setdefault("YOLO_OFFLINE", "1")  # benchmarks must not download anything
os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # the memory profiler's GPU probe errors are noise on CPU machines
