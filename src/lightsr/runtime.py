"""Where lightsr runs: device, precision, CPU threads and features, and where shared data lives.

One home for these decisions; inference, evaluation, benchmarking and training all ask here.
Messages name the option as the caller names it (``what``), so the library says ``precision``
and the CLI ``--precision``.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

import torch

from lightsr.errors import LightSRError

__all__ = [
    "PRECISIONS",
    "available_cpus",
    "configure_threads",
    "cpu_name",
    "cpu_supports_bf16",
    "data_root",
    "precision_dtype",
    "resolve_device",
    "resolve_precision",
    "shared_root",
]

#: Precision names and their torch dtypes.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_PRECISION_ALIASES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16", "half": "fp16"}


# --------------------------------------------------------------------------------------------
# Device and precision


def resolve_device(
    device: str | torch.device = "auto", *, what: str = "device", local_rank: int = 0
) -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; other values are checked.

    ``local_rank`` picks the GPU for a plain ``"cuda"`` in a multi-process run.
    """
    text = str(device)
    if text == "auto":
        text = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(text)
    except RuntimeError as exc:
        raise LightSRError(f"{what}: {device!r} is not a device; use auto, cpu or cuda") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LightSRError(
            f"{what}: {device} asked for, but no CUDA GPU is available here; use cpu"
        )
    if dev.type == "cuda" and dev.index is None and local_rank:
        dev = torch.device("cuda", local_rank)
    return dev


def resolve_precision(precision: str, device: torch.device, *, what: str = "precision") -> str:
    """The canonical precision name (``fp32``, ``bf16``, ``fp16``) for ``device``.

    Raises:
        LightSRError: an unknown name, or fp16 on a CPU (its float16 kernels are slow and inexact).
    """
    p = _PRECISION_ALIASES.get(precision.lower(), precision.lower())
    if p not in PRECISIONS:
        raise LightSRError(f"{what}: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if p == "fp16" and device.type != "cuda":
        raise LightSRError(
            f"{what} fp16 needs a CUDA GPU (CPU float16 kernels are slow and inexact); "
            "use bf16 or fp32 on the CPU"
        )
    return p


def precision_dtype(
    precision: str, device: torch.device, *, what: str = "precision"
) -> torch.dtype:
    """The torch dtype of :func:`resolve_precision`'s answer."""
    return PRECISIONS[resolve_precision(precision, device, what=what)]


# --------------------------------------------------------------------------------------------
# CPU


def cpu_name() -> str:
    """This machine's CPU model (``/proc/cpuinfo``'s model name; else :mod:`platform`'s guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover - not Linux
        pass
    return platform.processor() or platform.machine()


def cpu_supports_bf16() -> bool:
    """True when this CPU computes bfloat16 natively (AVX512-BF16 or AMX) through oneDNN."""
    if not torch.backends.mkldnn.is_available():
        return False
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota if any.

    A container limited to 2 CPUs on a 64-core host sees 64 cores; torch would start one thread
    per physical core and oversubscribe the quota (each parallel region then waits for threads
    that are not scheduled: measured here, two threads sharing a core with another busy process
    ran SAFMN 5x slower than one).
    """
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        n = os.cpu_count() or 1
    quota = None
    try:  # cgroup v2: "max 100000" or "<quota> <period>"
        q, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        quota = None if q == "max" else int(q) / int(period)
    except (OSError, ValueError):
        try:  # cgroup v1
            q1 = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            p1 = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            quota = q1 / p1 if q1 > 0 and p1 > 0 else None
        except (OSError, ValueError):
            quota = None
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return n


def configure_threads() -> int:
    """Cap torch's intra-op threads at :func:`available_cpus`; returns the thread count.

    An explicit ``OMP_NUM_THREADS`` is left alone, as is a ``torch.set_num_threads`` below the
    cap. On a machine shared with other busy processes, fewer threads (``OMP_NUM_THREADS=1``)
    can be much faster than one per core.
    """
    allowed = available_cpus()
    if "OMP_NUM_THREADS" not in os.environ and torch.get_num_threads() > allowed:
        torch.set_num_threads(allowed)
    return torch.get_num_threads()


# --------------------------------------------------------------------------------------------
# Shared reference data


def shared_root() -> Path:
    """The ``shared/`` folder with reference datasets, third-party weights and golden outputs.

    In this order: ``$LIGHTSR_SHARED``; ``../shared`` relative to the current directory when it
    exists; ``shared/`` beside the lightsr checkout (an editable install's repository).
    """
    env = os.environ.get("LIGHTSR_SHARED")
    if env:
        return Path(env).expanduser()
    cwd = Path.cwd().parent / "shared"
    if cwd.is_dir():
        return cwd
    return Path(__file__).resolve().parents[3] / "shared"


def data_root() -> Path:
    """Where benchmark names (``Set5``...) are looked up: ``$LIGHTSR_DATA``, else
    :func:`shared_root` ``/datasets``."""
    env = os.environ.get("LIGHTSR_DATA")
    return Path(env).expanduser() if env else shared_root() / "datasets"
