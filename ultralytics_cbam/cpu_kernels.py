"""The fused CPU kernels of ``csrc/cbam_cpu.c``: built once with the system C compiler, cached, loaded with ctypes.

The library is plain C with OpenMP, compiled in well under a second, and shares PyTorch's OpenMP runtime (the same
``libgomp.so.1`` is already loaded). It is built on first use into ``ULTRALYTICS_CBAM_CACHE_DIR`` (default: a
folder of this user's in the system temp folder) under a name that hashes the source, the compiler and the CPU, so a
changed source, compiler or machine gets a fresh build. Without a working compiler, or with
``ULTRALYTICS_CBAM_CPU_KERNELS=0``, CBAM runs on PyTorch kernels alone (and says why, once).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

SOURCE = Path(__file__).resolve().parent / "csrc" / "cbam_cpu.c"
DISABLE_ENV = "ULTRALYTICS_CBAM_CPU_KERNELS"
CACHE_ENV = "ULTRALYTICS_CBAM_CACHE_DIR"
_FLAG_SETS = (("-march=native",), ())  # the first set the compiler accepts is used
_BASE_FLAGS = ("-O3", "-fopenmp", "-fPIC", "-shared", "-std=c99")

_P, _I, _T = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_SIGNATURES = {
    "cbam_channel_pool": (_P, _I, _I, _I, _P, _T),
    "cbam_spatial_pool": (_P, _P, _I, _I, _I, _P, _T),
    "cbam_apply": (_P, _P, _P, _I, _I, _I, _P, _T),
    "cbam_spatial_grad": (_P, _P, _P, _P, _I, _I, _I, _P, _P, _T),
    "cbam_gate_grad": (_P, _P, _P, _P, _P, _P, _I, _I, _I, _P, _T),
    "cbam_input_grad": (_P, _P, _P, _P, _P, _P, _P, _P, _I, _I, _I, _P, _T),
    "cbam_spatial_conv": (_P, _P, _I, _I, _I, _I, _P, _T),
    "cbam_channel_gate": (_P, _P, _P, _P, _P, _I, _I, _I, _P, _P, _T),
    "cbam_forward": (_P, _P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _I, _P, _P, _T),
}
MAX_KERNEL_SIZE = 15  # the largest spatial kernel cbam_spatial_conv takes (KMAX in the source)


class KernelBuildError(RuntimeError):
    """The C kernels could not be compiled or loaded."""


class _State:
    lib: ctypes.CDLL | None = None
    failed: str | None = None  # why the kernels are unavailable, once known
    enabled: bool | None = None  # None: the environment variable not read yet
    lock = threading.Lock()


_STATE = _State()


def use_cpu_kernels(enabled: bool = True) -> None:
    """Let CBAM run on the fused C kernels on CPU (the default where they build), or keep it on PyTorch kernels."""
    if not isinstance(enabled, bool):
        raise ValueError(f"enabled must be a bool, got {enabled!r}")
    _STATE.enabled = enabled


def enabled() -> bool:
    """Whether CBAM may use the C kernels: use_cpu_kernels() if called, else ULTRALYTICS_CBAM_CPU_KERNELS (on), read
    once, when first asked (every CBAM call asks)."""
    if _STATE.enabled is None:
        _STATE.enabled = os.environ.get(DISABLE_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}
    return _STATE.enabled


def library() -> ctypes.CDLL | None:
    """The loaded kernels, building them on first use; None if disabled or they cannot be built here."""
    if _STATE.lib is not None or _STATE.failed is not None:
        return _STATE.lib if enabled() else None
    if not enabled():
        return None
    with _STATE.lock:
        if _STATE.lib is None and _STATE.failed is None:
            try:
                _STATE.lib = _load(build())
            except (KernelBuildError, OSError) as e:
                _STATE.failed = str(e)
                _warn(f"CBAM runs on PyTorch kernels only: {e}. Set {DISABLE_ENV}=0 to skip the C kernels.")
    return _STATE.lib


def unavailable_reason() -> str | None:
    """Why library() returned None, if it did."""
    if not enabled():
        return f"turned off ({DISABLE_ENV} or use_cpu_kernels(False))"
    return _STATE.failed


def build(cache_dir: Path | None = None, compiler: str | None = None) -> Path:
    """Compile the kernels unless a build for this source, compiler and CPU is cached; return the library's path.

    Raises:
        KernelBuildError: No compiler, an unsafe cache folder, or a failed compilation (with the compiler's output).
    """
    compiler = compiler or find_compiler()
    folder = _cache_dir(cache_dir)
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, _compiler_id(compiler).encode(), _cpu_id().encode()])).hexdigest()[:16]
    target = folder / f"cbam_cpu_{key}{_suffix()}"
    if target.is_file():
        return target
    errors = []
    for flags in _FLAG_SETS:
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            partial = Path(tmp) / target.name
            cmd = [compiler, *_BASE_FLAGS, *flags, str(SOURCE), "-o", str(partial), "-lm"]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            except (OSError, subprocess.TimeoutExpired) as e:
                raise KernelBuildError(f"compiler {compiler!r} did not run: {e}") from None
            if done.returncode == 0:
                os.replace(partial, target)  # atomic: concurrent builders each install a complete file
                _log(f"CBAM: built the fused CPU kernels with {compiler} into {target}")
                return target
            errors.append(f"$ {' '.join(cmd)}\n{done.stderr.strip()}")
    raise KernelBuildError("compiling the C kernels failed:\n" + "\n".join(errors))


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    for name, argtypes in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = argtypes, None
    return lib


def find_compiler() -> str:
    """$CC if set, else the first of cc, gcc and clang on the PATH."""
    chosen = os.environ.get("CC", "").strip()
    if chosen:
        if shutil.which(chosen):
            return chosen
        raise KernelBuildError(f"the C compiler in CC={chosen!r} was not found")
    for candidate in ("cc", "gcc", "clang"):
        if shutil.which(candidate):
            return candidate
    raise KernelBuildError("no C compiler found (install gcc or clang, or set CC)")


def _cache_dir(folder: Path | None) -> Path:
    """The cache folder, made private to this user; refuses one that others could write to."""
    if folder is None:
        env = os.environ.get(CACHE_ENV)
        user = os.getuid() if hasattr(os, "getuid") else os.environ.get("USERNAME", "user")
        folder = Path(env) if env else Path(tempfile.gettempdir()) / f"ultralytics_cbam_{user}"
    folder = Path(folder)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        stat = folder.stat()
    except OSError as e:
        raise KernelBuildError(f"cache folder {str(folder)!r} is not usable: {e}") from None
    if hasattr(os, "getuid") and (stat.st_uid != os.getuid() or stat.st_mode & 0o022):
        raise KernelBuildError(f"cache folder {str(folder)!r} is not owned by this user or is writable by others")
    return folder


def _compiler_id(compiler: str) -> str:
    """The compiler's path, size and modification time: a new compiler means a new build."""
    path = shutil.which(compiler) or compiler
    try:
        real = os.path.realpath(path)
        stat = os.stat(real)
        return f"{compiler}|{real}|{stat.st_size}|{stat.st_mtime_ns}"
    except OSError:
        return compiler


def _cpu_id() -> str:
    """What -march=native compiles for: the CPU's model and flags."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        wanted = ("model name", "flags", "Features", "CPU part")
        return "|".join(sorted({line for line in lines if line.split(":")[0].strip() in wanted}))
    except OSError:
        return f"{platform.machine()}|{platform.processor()}"


def _suffix() -> str:
    return ".dll" if os.name == "nt" else ".dylib" if platform.system() == "Darwin" else ".so"


def _warn(message: str) -> None:
    from ultralytics.utils import LOGGER

    LOGGER.warning(message)


def _log(message: str) -> None:
    from ultralytics.utils import LOGGER

    LOGGER.info(message)


# --- typed calls ---------------------------------------------------------------------------------------------------


def _run(fn, *args) -> None:
    """Call a kernel with tensors as pointers (None as NULL), then torch's thread count. The caller keeps every tensor
    alive until this returns."""
    fn(*(a.data_ptr() if isinstance(a, torch.Tensor) else a for a in args), torch.get_num_threads())


def _contiguous(*tensors: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
    return tuple(t if t is None else t.contiguous() for t in tensors)


def channel_pool(lib: ctypes.CDLL, x: torch.Tensor) -> torch.Tensor:
    """Mean and max of x over (H, W): shape (N, 2, C)."""
    n, c, h, w = x.shape
    desc = x.new_empty(n, 2, c)
    _run(lib.cbam_channel_pool, x, n, c, h * w, desc)
    return desc


def channel_gate(
    lib: ctypes.CDLL,
    desc: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor | None,
    w2: torch.Tensor,
    b2: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The shared MLP's hidden activations (N, 2, H) and the channel gate (N, C) from desc (N, 2, C); the weights are
    the 1x1 convolutions' (H, C, 1, 1) and (C, H, 1, 1)."""
    n, _, c = desc.shape
    hidden, gate = desc.new_empty(n, 2, w1.shape[0]), desc.new_empty(n, c)
    w1, b1, w2, b2 = _contiguous(w1, b1, w2, b2)
    _run(lib.cbam_channel_gate, desc, w1, b1, w2, b2, n, c, w1.shape[0], hidden, gate)
    return hidden, gate


def spatial_pool(lib: ctypes.CDLL, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Mean and max over C of x * gate[:, :, None, None]: shape (N, 2, H, W)."""
    n, c, h, w = x.shape
    desc = x.new_empty(n, 2, h, w)
    _run(lib.cbam_spatial_pool, x, gate, n, c, h * w, desc)
    return desc


def spatial_conv(lib: ctypes.CDLL, desc: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The 2 -> 1 convolution (weight (1, 2, k, k), k <= MAX_KERNEL_SIZE, 'same' padding, no bias) of desc
    (N, 2, H, W): (N, 1, H, W)."""
    n, _, h, w = desc.shape
    out, weight = desc.new_empty(n, 1, h, w), weight.contiguous()
    _run(lib.cbam_spatial_conv, desc, weight, n, h, w, weight.shape[-1], out)
    return out


def apply(lib: ctypes.CDLL, x: torch.Tensor, gate: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
    """(x * gate[:, :, None, None]) * spatial, for gate (N, C) and spatial (N, 1, H, W)."""
    n, c, h, w = x.shape
    out = torch.empty_like(x)
    _run(lib.cbam_apply, x, gate, spatial, n, c, h * w, out)
    return out


def forward(
    lib: ctypes.CDLL,
    x: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor | None,
    w2: torch.Tensor,
    b2: torch.Tensor | None,
    conv_weight: torch.Tensor,
) -> torch.Tensor:
    """CBAM(x) without autograd in one call: the MLP's 1x1 convolution weights as in channel_gate, the spatial
    convolution's (1, 2, k, k), k <= MAX_KERNEL_SIZE, as in spatial_conv."""
    n, c, h, w = x.shape
    hid = w1.shape[0]
    scratch, out = x.new_empty(n * (3 * c + 2 * hid + 3 * h * w)), torch.empty_like(x)
    w1, b1, w2, b2, conv_weight = _contiguous(w1, b1, w2, b2, conv_weight)
    _run(lib.cbam_forward, x, w1, b1, w2, b2, conv_weight, n, c, hid, h, w, conv_weight.shape[-1], scratch, out)
    return out


def spatial_grad(
    lib: ctypes.CDLL, grad: torch.Tensor, x: torch.Tensor, gate: torch.Tensor, desc: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over C of grad * y, and the number of channels where y reaches its max over C: both (N, 1, H, W)."""
    n, c, h, w = x.shape
    d_spatial, ties = x.new_empty(n, 1, h, w), x.new_empty(n, 1, h, w)
    _run(lib.cbam_spatial_grad, grad, x, gate, desc, n, c, h * w, d_spatial, ties)
    return d_spatial, ties


def gate_grad(
    lib: ctypes.CDLL,
    grad: torch.Tensor,
    x: torch.Tensor,
    gate: torch.Tensor,
    spatial: torch.Tensor,
    desc: torch.Tensor,
    share: torch.Tensor,
) -> torch.Tensor:
    """dL/dgate (N, C), given the spatial descriptors' gradients `share` (N, 2, H, W) divided by C and by the ties."""
    n, c, h, w = x.shape
    d_gate = x.new_empty(n, c)
    _run(lib.cbam_gate_grad, grad, x, gate, spatial, desc, share, n, c, h * w, d_gate)
    return d_gate


def input_grad(
    lib: ctypes.CDLL,
    grad: torch.Tensor,
    x: torch.Tensor,
    gate: torch.Tensor,
    spatial: torch.Tensor,
    desc: torch.Tensor,
    share: torch.Tensor,
    channel_desc: torch.Tensor,
    d_channel: torch.Tensor,
) -> torch.Tensor:
    """dL/dx, given also the channel descriptors (N, 2, C) and their gradients."""
    n, c, h, w = x.shape
    dx = torch.empty_like(x)
    _run(lib.cbam_input_grad, grad, x, gate, spatial, desc, share, channel_desc, d_channel, n, c, h * w, dx)
    return dx
