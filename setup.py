"""Builds lightsr's native CPU kernels at install time, as an optional part of the package.

All metadata is in pyproject.toml; this file only adds ``lightsr/native/libsafmn.so``, a plain
shared library with a C ABI that ``lightsr.native.ops`` loads with ctypes (not a Python
extension module). It is built on x86-64 Linux only, with the compile command of
``lightsr.native.ops`` (its ``_FLAGS`` and ``ABI`` are read from that file, which is not
imported: it needs torch), by ``$CXX`` or else ``g++``, ``c++`` or ``clang++``. Without a
compiler, or when the compiler fails, the install still succeeds without the library: one
warning line is printed, and ``lightsr/native/libsafmn.txt`` records why (a reason line and a fix
line), which ``lightsr doctor`` and the fallback notice show; lightsr then uses its PyTorch path.
"""

from __future__ import annotations

import ast
import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent
NATIVE = HERE / "src" / "lightsr" / "native"
KERNELS = "lightsr.native.libsafmn"  # the extension's name; its file is libsafmn.so
SOURCE = "src/lightsr/native/kernels/safmn.cpp"
#: Every source of the library, in lightsr.native.ops._SOURCES's order (the digest hashes them
#: concatenated).
SOURCES = [SOURCE, "src/lightsr/native/kernels/safmn_train.cpp"]
#: The header the sources include, in lightsr.native.ops._HEADERS's order: hashed after SOURCES,
#: and a dependency of the extension (editing it rebuilds the library).
HEADERS = ["src/lightsr/native/kernels/simd_common.h"]


def _ops_constants() -> tuple[list[str], int]:
    """``_FLAGS`` and ``ABI`` from ``lightsr/native/ops.py``, without importing it."""
    found: dict[str, object] = {}
    for node in ast.parse((NATIVE / "ops.py").read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("_FLAGS", "ABI"):
                found[node.targets[0].id] = ast.literal_eval(node.value)
    flags, abi = found["_FLAGS"], found["ABI"]
    assert isinstance(flags, list) and isinstance(abi, int), "ops.py: _FLAGS and ABI literals"
    return flags, abi


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class BuildKernels(build_ext):
    """Compiles the kernels with lightsr's own command; never fails the install."""

    def get_ext_filename(self, fullname: str) -> str:
        # distutils asks with the last part of the name, setuptools with the whole name
        if fullname in (KERNELS, KERNELS.rpartition(".")[2]):
            return os.path.join(*fullname.split(".")[:-1], "libsafmn.so")
        return super().get_ext_filename(fullname)

    def build_extension(self, ext: Extension) -> None:
        if ext.name != KERNELS:
            super().build_extension(ext)
            return
        out = Path(self.get_ext_fullpath(ext.name))
        note = out.with_name("libsafmn.txt")
        out.parent.mkdir(parents=True, exist_ok=True)
        for stale in (out, note):  # from an earlier build in the same build folder
            stale.unlink(missing_ok=True)
        try:
            self._compile(out)
        except (OSError, RuntimeError) as exc:
            reason, fix = exc.args if len(exc.args) == 2 else (str(exc), "reinstall lightsr")
            out.unlink(missing_ok=True)
            note.write_text(f"{reason}\n{fix}\n", encoding="utf-8")
            print(f"warning: lightsr: {reason}; lightsr will use its PyTorch path", file=sys.stderr)

    def _compile(self, out: Path) -> None:
        cxx = _compiler()
        if cxx is None:
            reason = "no C++ compiler found when lightsr was installed"
            raise RuntimeError(reason, "install g++ (or set CXX) and reinstall lightsr")
        flags, abi = _ops_constants()
        sources = [HERE / s for s in SOURCES]
        text = b"".join((HERE / s).read_bytes() for s in (*SOURCES, *HEADERS))
        digest = int(hashlib.sha256(text).hexdigest()[:16], 16)
        defines = [f"-DLSR_ABI={abi}", f"-DLSR_SOURCE_DIGEST={digest:#018x}ULL"]
        command = [cxx, *flags, *defines, "-o", str(out), *map(str, sources)]
        print(" ".join(command), file=sys.stderr)
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            first = (done.stderr.strip().splitlines() or ["(no output)"])[0][:200]
            reason = f"{Path(cxx).name} failed when lightsr was installed: {first}"
            raise RuntimeError(reason, "reinstall lightsr with `pip install -v` to see the error")
        os.chmod(out, 0o755)


def _kernels() -> list[Extension]:
    """The kernels' extension on x86-64 Linux (AVX2 code), none elsewhere."""
    if sys.platform.startswith("linux") and platform.machine().lower() in ("x86_64", "amd64"):
        return [Extension(KERNELS, sources=SOURCES, depends=HEADERS, optional=True)]
    return []


setup(ext_modules=_kernels(), cmdclass={"build_ext": BuildKernels})
