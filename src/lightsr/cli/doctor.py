"""`lightsr doctor`: what lightsr finds on this machine, and why a fast path is not used."""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

from lightsr.cli.common import EXIT_OK, add_command

DOCTOR_SUMMARY = "show versions, CPU/CUDA, whether the native kernels are used (and why not)"
DOCTOR_DETAILS = (
    "Print lightsr's and its dependencies' versions, the CPU and CUDA devices, "
    "whether lightsr's native CPU kernels are in use (the library, or why not and how to "
    "fix it) and where the shared reference data is looked for."
)


def _lines() -> list[tuple[str, str]]:
    """(label, value) pairs: versions, CPU, CUDA, native kernels, shared data."""
    import torch

    import lightsr
    from lightsr.native import ops
    from lightsr.runtime import available_cpus, cpu_name, cpu_supports_bf16, shared_root

    where = Path(lightsr.__file__ or "?").parent
    bf16 = "native" if cpu_supports_bf16() else "emulated (no AVX512-BF16/AMX)"
    cpu = (
        f"{cpu_name()} ({platform.machine()}); {available_cpus()} CPUs available, torch uses "
        f"{torch.get_num_threads()} threads; {torch.backends.cpu.get_cpu_capability()}; "
        f"bfloat16 {bf16}"
    )
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        cuda = f"available (CUDA {torch.version.cuda}): {names}"
    else:
        cuda = "not available" + (f" (torch built with CUDA {torch.version.cuda})"
                                  if torch.version.cuda else " (CPU-only torch)")  # fmt: skip
    width = ""
    if ops.status().available:  # LIGHTSR_NATIVE_ISA=avx2 keeps the products to AVX2
        width = f"; Winograd products {'AVX-512' if ops.avx512_in_use() else 'AVX2'}"
    root = shared_root()
    shared = f"{root} ({'found' if root.is_dir() else 'not found; set LIGHTSR_SHARED'})"
    return [
        ("lightsr", f"{lightsr.__version__} ({where})"),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("torch", torch.__version__),
        ("cpu", cpu),
        ("cuda", cuda),
        ("native kernels", ops.status().describe() + width),
        ("shared data", shared),
    ]


def doctor(args: argparse.Namespace) -> int:
    for label, value in _lines():
        print(f"{label + ':':16}{value}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    add_command(sub, "doctor", doctor, DOCTOR_SUMMARY, DOCTOR_DETAILS)
