"""`pip install .` with and without a C++ compiler: the native kernels are an optional part.

Each test installs a copy of this checkout (pyproject.toml, setup.py, README.md, src/) with
``pip install --no-deps --no-build-isolation --target DIR`` (the copy keeps pip's build folder
out of the checkout), then runs ``python -m lightsr.cli`` from DIR (``PYTHONPATH=DIR``) in a
subprocess: an install without a compiler must succeed and fall back to the PyTorch path with
one notice; one with a compiler must ship the library and use it without compiling at run time.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lightsr.inference.io import read_image, write_image

REPO = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
NOTICE = "lightsr: native CPU kernels unavailable"


def _copy_source(dst: Path) -> Path:
    dst.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, dst / name)
    junk = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.so", "libsafmn.txt")
    shutil.copytree(REPO / "src", dst / "src", ignore=junk)
    return dst


def _env(path: list[Path] | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without compiler or Python-path settings, plus ``extra``;
    ``path`` replaces PATH."""
    drop = ("CC", "CXX", "PYTHONPATH", "LIGHTSR_NATIVE")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    if path is not None:
        env["PATH"] = os.pathsep.join(map(str, path))
    return {**env, **extra}


def _install(tmp: Path, env: dict[str, str]) -> Path:
    """pip-installs a copy of the checkout into ``tmp/target``; returns the target."""
    source, target = _copy_source(tmp / "source"), tmp / "target"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
           "--no-index", "--disable-pip-version-check", "-q", "--target", str(target),
           str(source)]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp)
    print(f"pip install: {time.perf_counter() - t0:.1f} s")
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def _lightsr(
    target: Path, args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    env = {**env, "PYTHONPATH": str(target)}
    cmd = [sys.executable, "-m", "lightsr.cli", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=target.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _upscale(tmp: Path, target: Path, env: dict[str, str]) -> str:
    """Upscales a 16x16 image with the bundled default model (x4); returns stderr."""
    src, dst = tmp / "in.png", tmp / "out.png"
    rng = np.random.default_rng(0)
    write_image(src, rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    done = _lightsr(target, ["upscale", str(src), "-o", str(dst)], env)
    assert read_image(dst).shape == (64, 64, 3)
    return done.stderr


def test_install_without_a_compiler_uses_the_pytorch_path(tmp_path: Path) -> None:
    """No compiler anywhere (an empty PATH, no CC/CXX): the install succeeds without the
    library; upscaling works and prints the fallback notice once; doctor says why."""
    empty = tmp_path / "bin"
    empty.mkdir()
    env = _env([empty], LIGHTSR_CACHE_DIR=str(tmp_path / "cache"))
    target = _install(tmp_path, env)
    native = target / "lightsr" / "native"
    assert not (native / "libsafmn.so").exists()
    assert (native / "libsafmn.txt").read_text().startswith("no C++ compiler found")
    err = _upscale(tmp_path, target, env)
    notices = [line for line in err.splitlines() if line.startswith(NOTICE)]
    assert notices == [
        f"{NOTICE} (no C++ compiler found when lightsr was installed); using the PyTorch path, "
        "about 2x slower. Install g++ (or set CXX) and reinstall lightsr."
    ], err
    out = _lightsr(target, ["doctor"], env).stdout
    assert f"lightsr:        0.1.0 ({target / 'lightsr'})" in out  # the installed copy ran
    assert (
        "native kernels: not used: no C++ compiler found when lightsr was installed; "
        "fix: install g++ (or set CXX) and reinstall lightsr"
    ) in out, out
    assert not (tmp_path / "cache").exists()  # an installed lightsr never builds at run time


def _need_compiler() -> None:
    """Skip (fail in CI, which has g++ on x86-64 Linux) where the kernels cannot be built."""
    from lightsr.native import ops

    reason = None
    if not sys.platform.startswith("linux") or platform.machine().lower() != "x86_64":
        reason = (
            f"the kernels are built on x86-64 Linux only, not {sys.platform}/{platform.machine()}"
        )
    elif ops._compiler() is None:
        reason = "no C++ compiler found"
    elif ops._platform_reason() is not None:
        reason = str(ops._platform_reason())
    if reason is not None:
        if IN_CI:
            pytest.fail(f"the install test with a compiler cannot run in CI: {reason}")
        pytest.skip(reason)


def test_install_with_a_compiler_ships_and_uses_the_library(tmp_path: Path) -> None:
    """The install builds lightsr/native/libsafmn.so; a run uses it without compiling (a fake
    g++ first on PATH and in CXX would leave a marker), prints no notice, and doctor names it."""
    _need_compiler()
    target = _install(tmp_path, _env())
    library = target / "lightsr" / "native" / "libsafmn.so"
    assert library.is_file() and not library.with_name("libsafmn.txt").exists()
    fake, marker = tmp_path / "fakebin", tmp_path / "compiled"
    fake.mkdir()
    (fake / "g++").write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    (fake / "g++").chmod(0o755)
    path = [fake, *map(Path, os.environ.get("PATH", "").split(os.pathsep))]
    env = _env(path, CXX=str(fake / "g++"), LIGHTSR_CACHE_DIR=str(tmp_path / "cache"))
    err = _upscale(tmp_path, target, env)
    assert NOTICE not in err, err
    out = _lightsr(target, ["doctor"], env).stdout
    assert f"native kernels: in use ({library}, built at install time)" in out, out
    assert not marker.exists() and not (tmp_path / "cache").exists()
