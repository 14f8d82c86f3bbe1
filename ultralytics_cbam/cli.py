"""`yolo-cbam` command line, in Ultralytics' `key=value` style.

Examples:
    yolo-cbam add model=yolov8n.pt
    yolo-cbam visualize model=runs/detect/train/weights/best.pt source=images/
    yolo-cbam ablate data=cbam-shapes.yaml variants=baseline,cbam epochs=5 seeds=3
    yolo-cbam cam models=runs/detect/baseline/weights/best.pt,runs/detect/cbam/weights/best.pt source=images/
"""

from __future__ import annotations

import importlib
import inspect
import sys

# command -> (module, function, one-line help)
COMMANDS = {
    "add": ("ultralytics_cbam.insert", "add_cbam", "insert CBAM into a model YAML or checkpoint"),
    "visualize": ("ultralytics_cbam.visualization.attention_maps", "visualize", "save attention maps of a CBAM model"),
    "ablate": ("ultralytics_cbam.ablation.runner", "ablate", "train and compare CBAM variants"),
    "cam": ("ultralytics_cbam.visualization.layercam", "cam", "LayerCAM of several models side by side"),
}
# Errors of what a user gave (arguments, files, model YAMLs, a missing connection): one line, no traceback.
USER_ERRORS = (ValueError, TypeError, LookupError, OSError)


def _usage() -> str:
    lines = ["Usage: yolo-cbam COMMAND key=value ...", "", "Commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, _, text) in COMMANDS.items()]
    lines += ["", "Run 'yolo-cbam COMMAND help' for the arguments of one command."]
    return "\n".join(lines)


def parse_overrides(pairs: list[str]) -> dict:
    """Turn ['a=1', 'b=x,y'] into {'a': 1, 'b': 'x,y'} with Ultralytics' value parsing."""
    from ultralytics.cfg import smart_value

    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SystemExit(f"yolo-cbam: argument '{pair}' is not of the form key=value")
        overrides[key.strip()] = smart_value(value.strip())
    return overrides


def main(argv: list[str] | None = None) -> object:
    """Run one `yolo-cbam` command and return its result."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in {"help", "-h", "--help"}:
        print(_usage())
        return None
    command, *pairs = argv
    if command not in COMMANDS:
        raise SystemExit(f"yolo-cbam: unknown command '{command}'.\n\n{_usage()}")
    module, name, _ = COMMANDS[command]
    func = getattr(importlib.import_module(module), name)
    if pairs in (["help"], ["-h"], ["--help"]):
        print(f"yolo-cbam {command} {inspect.signature(func)}\n\n{inspect.getdoc(func)}")
        return None
    overrides = parse_overrides(pairs)
    allowed = inspect.signature(func).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in allowed.values()):
        unknown = sorted(set(overrides) - set(allowed))
        if unknown:
            raise SystemExit(
                f"yolo-cbam {command}: unknown argument(s) {', '.join(unknown)}; valid: {', '.join(allowed)}"
            )
    try:
        return func(**overrides)
    except Exception as e:
        if not _user_mistake(e):
            raise
        raise SystemExit(f"yolo-cbam {command}: {' '.join(str(e).split())}") from None


def _user_mistake(e: BaseException | None) -> bool:
    """Whether `e`, or an error it was raised from (e.g. Ultralytics' trainer on a missing data file), is a user's."""
    while e is not None:
        if isinstance(e, USER_ERRORS):
            return True
        e = e.__cause__
    return False


def entrypoint() -> None:
    """Console-script entry point."""
    main()
