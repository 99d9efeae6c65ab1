"""Native CPU kernels in C++ (``kernels/safmn.cpp``), a plain C ABI called via ctypes.

SAFMN's feature mixing module in one streamed pass per block (:func:`safmn_block`): the SAFM's
full-resolution depth-wise convolution, the levels' nearest upsampling, aggregation, GELU,
modulation, residual and the CCM's LayerNorm, row by row into per-thread ring buffers, and the
CCM (3x3 expansion by Winograd's F(4x4, 3x3) algorithm, a quarter of the direct convolution's
multiplications; GELU; 1x1 projection; residual) and the next block's first LayerNorm from those
rows; plus the level pooling (:func:`pool_levels`) and the upsampler's 3x3 convolution with its
pixel shuffle (:func:`conv3x3_f43`). The pieces are also callable on their own
(:func:`safm_out`, :func:`ccm_f43`).
:class:`lightsr.native.fast.FastSAFMN` uses them for float32 on x86-64 CPUs with AVX2 and FMA.

Why a hand-written kernel: oneDNN and inductor run the 3x3 layer as a direct convolution, which
already reaches most of these CPUs' float32 peak, so only fewer multiplications make it faster;
and the library routes to Winograd's matrix products are slow at these sizes (36 products of a
few thousand rows by 36 by 72 ran at 24 GFLOP/s in ``torch.bmm`` and 58 in oneDNN's linear
here, against 137 for the direct convolution; NNPACK's Winograd convolution was no faster than
oneDNN's direct one).

Building. ``pip install`` builds the kernels on x86-64 Linux as an optional part of the package
(``setup.py``): a plain shared library, ``lightsr/native/libsafmn.so`` (not a Python extension
module: it exports C functions only and does not depend on the Python version), compiled by
``$CXX``, else ``g++``, ``c++`` or ``clang++``, with :data:`_FLAGS` (``-O3 -mavx2 -mfma
-fopenmp -fPIC -shared -fno-math-errno``) and two defines, ``LSR_ABI`` (:data:`ABI`) and
``LSR_SOURCE_DIGEST`` (SHA-256 of the sources and of the header they share,
``kernels/simd_common.h``), which the library reports back. The flags and the ABI number live
here only: ``setup.py`` reads both from this file. Without a compiler, or when the compiler
fails, the install still succeeds, without the library, and leaves the reason and its fix in
``lightsr/native/libsafmn.txt``. A library whose ABI or source digest does not match this module
and the ``kernels/`` beside it is not used; ctypes signatures come from one table,
:data:`_SIGNATURES`.

Loading, in this order (:func:`status` says which happened, and why not):

1. ``libsafmn.so`` beside this module: the library built at install time (or, in a source
   checkout, by ``pip install -e .``, which puts it into ``src/lightsr/native``). It is trusted as
   much as this module's own code in the same folder, so it is not ownership-checked.
2. Only in a source checkout (this file is ``<root>/src/lightsr/native/ops.py`` and
   ``<root>/pyproject.toml`` exists, as in an editable install): built on first use (about
   5 s) into ``$LIGHTSR_CACHE_DIR/native`` (default ``~/.cache/lightsr/native``; else
   ``<tmp>/lightsr-native-<uid>``) under a name that hashes the source, the flags and the
   compiler, written to a temporary file and renamed, so concurrent processes are safe and an
   edited source is rebuilt. Such a folder is created with mode 0700, and before anything in it
   is built or loaded the library and its folder must be owned by the current user and not
   writable by group or others, and no folder above may be writable by others without the
   sticky bit (as ``/tmp`` has); otherwise it is refused, with the reason, and the next folder
   is tried.
3. Otherwise the callers use their PyTorch formulation (SAFMN's fast path is about 2x slower:
   2.2x at 320x180 eager, ``docs/performance.md``).
   :class:`~lightsr.native.fast.FastSAFMN` then prints one line on stderr, once per process
   (:func:`notice_fallback`), saying why and how to fix it, unless the kernels were turned off
   (``LIGHTSR_NATIVE=0``, ``native=False``) or cannot run on this machine (not x86-64, no
   AVX2/FMA). ``lightsr doctor`` prints the same status.

``LIGHTSR_NATIVE=0`` turns the kernels off. The Winograd matrix products run 16 lanes wide where
the CPU has AVX-512F (functions compiled for it and chosen at run time; the rest is AVX2);
``LIGHTSR_NATIVE_ISA=avx2`` or :func:`set_avx512` keeps them to AVX2. Both give the same bits.

Threads: the kernel shares rows of tiles among OpenMP threads. It links ``libgomp.so.1``, which
torch has already loaded, so it runs in torch's own thread pool (``torch.set_num_threads``
applies); a second pool would spin against torch's on every call.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "ABI",
    "MAX_CHANNELS",
    "MAX_LEVEL_CHANNELS",
    "NativeStatus",
    "avx512_in_use",
    "cache_dir",
    "ccm_f43",
    "conv3x3_f43",
    "fits",
    "notice_fallback",
    "pack_ccm",
    "pack_conv3x3",
    "pack_norm",
    "pack_safm",
    "pool_levels",
    "safm_out",
    "safmn_block",
    "set_avx512",
    "status",
    "unavailable_reason",
]

_SOURCE = Path(__file__).with_name("kernels") / "safmn.cpp"
#: Every source compiled into the library (training's backward kernels: ``safmn_train.cpp``,
#: used by :mod:`lightsr.native.train_ops`); the digest covers them all, in this order.
_SOURCES = (_SOURCE, _SOURCE.with_name("safmn_train.cpp"))
#: The header both sources include (``simd_common.h``: their shared SIMD helpers); not compiled
#: on its own, but hashed after :data:`_SOURCES`, so that editing it rebuilds the library.
_HEADERS = (_SOURCE.with_name("simd_common.h"),)
#: The library built at install time (``setup.py``) and the note it leaves when it could not.
_INSTALLED = Path(__file__).with_name("libsafmn.so")
_INSTALL_NOTE = Path(__file__).with_name("libsafmn.txt")
# The compiler flags, read by setup.py too (keep this a literal list).
_FLAGS = ["-O3", "-mavx2", "-mfma", "-fopenmp", "-fPIC", "-shared", "-fno-math-errno"]

#: The C ABI of ``kernels/safmn.cpp``: bump it with any change to :data:`_SIGNATURES`. Compiled
#: into the library (``-DLSR_ABI``, read by setup.py too: keep it a literal) and checked on load.
ABI = 9

#: Every exported function once: ``"result:arguments"`` in ctypes codes (i int, f float,
#: p pointer, Q uint64; spaces only group the arguments as the C prototypes do).
_SIGNATURES = {
    "lsr_abi": "i:",
    "lsr_source_digest": "Q:",
    "lsr_ccm_f43": "i: ppp iiiii ppppppp f",
    "lsr_safm_out": "i: ppp i pppp iiii pppp f",
    "lsr_block": "i: ppp i pppppp f iiiii pppppppp f",
    "lsr_conv3x3_f43": "i: pp iiiii pp i",
    "lsr_conv3x3_gelu_f43": "i: ppp iiiii pp",
    "lsr_pool_levels": "i: p iiiii p",
    "lsr_set_isa": "i: i",
}
_CTYPES = {"i": ctypes.c_int, "f": ctypes.c_float, "p": ctypes.c_void_p, "Q": ctypes.c_uint64}

# Winograd F(4x4, 3x3) weight transform G (Lavin & Gray 2016), applied in float64.
_G = (
    (1 / 4, 0.0, 0.0),
    (-1 / 6, -1 / 6, -1 / 6),
    (-1 / 6, 1 / 6, -1 / 6),
    (1 / 24, 1 / 12, 1 / 6),
    (1 / 24, -1 / 12, 1 / 6),
    (0.0, 0.0, 1.0),
)


def cache_dir() -> Path:
    """Where built kernels are kept: ``$LIGHTSR_CACHE_DIR``, else ``$XDG_CACHE_HOME/lightsr``."""
    env = os.environ.get("LIGHTSR_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lightsr"


@dataclass(frozen=True)
class NativeStatus:
    """Whether the native kernels are in use (:func:`status`).

    ``library``: the library loaded, or the one that was refused or failed (else None);
    ``origin``: ``"installed"`` (built at install time) or ``"built"`` (built on first use in a
    source checkout); ``reason``: why they are not used; ``fix``: what would make them usable
    (None when they were turned off or cannot run on this machine).
    """

    available: bool
    library: Path | None = None
    origin: str = ""
    reason: str | None = None
    fix: str | None = None

    def describe(self) -> str:
        """One line: ``in use (...)`` or ``not used: <reason>[; fix: <fix>]``."""
        if self.available:
            how = "built at install time" if self.origin == "installed" else "built on first use"
            return f"in use ({self.library}, {how})"
        return f"not used: {self.reason}" + (f"; fix: {self.fix}" if self.fix else "")


class _Unavailable(RuntimeError):
    """Why a library cannot be built or used, and what would fix it."""

    def __init__(self, reason: str, fix: str | None, library: Path | None = None) -> None:
        super().__init__(reason)
        self.fix = fix
        self.library = library


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _platform_reason() -> str | None:
    if os.environ.get("LIGHTSR_NATIVE", "1") == "0":
        return "LIGHTSR_NATIVE=0"
    if platform.machine().lower() not in ("x86_64", "amd64") or sys.platform == "win32":
        where = f"{sys.platform}/{platform.machine()}"
        return f"native kernels need Linux or macOS on x86-64, not {where}"
    capability = torch.backends.cpu.get_cpu_capability()
    if capability not in ("AVX2", "AVX512"):
        return f"native kernels need a CPU with AVX2 and FMA (torch reports {capability})"
    return None


def _source_checkout() -> bool:
    """Whether this module runs from a source checkout (``<root>/src/lightsr/native/ops.py``
    with ``<root>/pyproject.toml``), e.g. an editable install: only there are the kernels built
    on first use."""
    here = Path(__file__).resolve()
    return here.parents[2].name == "src" and (here.parents[3] / "pyproject.toml").is_file()


def _source_bytes() -> bytes:
    """The sources of :data:`_SOURCES`, then the headers of :data:`_HEADERS`, concatenated (what
    the digest and the build key hash)."""
    return b"".join(p.read_bytes() for p in (*_SOURCES, *_HEADERS))


def _source_digest() -> int | None:
    """The first 64 bits of the SHA-256 of the sources and headers (:func:`_source_bytes`; None
    without them)."""
    try:
        return int(hashlib.sha256(_source_bytes()).hexdigest()[:16], 16)
    except OSError:
        return None


def _compile_command(cxx: str, out: str) -> list[str]:
    """The compiler call; ``setup.py`` builds the same one from :data:`_FLAGS` and :data:`ABI`."""
    defines = [f"-DLSR_ABI={ABI}", f"-DLSR_SOURCE_DIGEST={_source_digest() or 0:#018x}ULL"]
    return [cxx, *_FLAGS, *defines, "-o", out, *map(str, _SOURCES)]


def _unsafe_reason(path: Path) -> str | None:
    """Why loading or building in ``path`` (a cache or temporary folder, or a library in one)
    is unsafe, or None: it (and, for a file, its folder) must be owned by the current user and
    not writable by group or others; no folder above may be writable by others without the
    sticky bit."""
    uid = os.getuid()
    real = path.resolve()
    own = [real, real.parent] if real.is_file() else [real]
    for p in [*own, *real.parents[len(own) - 1 :]]:
        try:
            st = p.stat()
        except OSError as exc:
            return f"{p}: {exc.strerror}"
        if p in own and st.st_uid != uid:
            return f"{p} is owned by uid {st.st_uid}, not by this user (uid {uid})"
        if p in own and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{p} is writable by group or others (mode {stat.S_IMODE(st.st_mode):o})"
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            return f"{p} is writable by others without the sticky bit"
    return None


def _declare(lib: ctypes.CDLL, path: Path) -> None:
    """Give each function its ctypes signature from :data:`_SIGNATURES`, checking the ABI first
    and then that the library was built from the ``kernels/safmn.cpp`` beside this module."""

    def refuse(what: str) -> _Unavailable:
        return _Unavailable(f"{path} {what}", "reinstall lightsr", path)

    try:
        for name, sig in _SIGNATURES.items():  # lsr_abi first
            fn = getattr(lib, name)
            result, args = sig.split(":")
            fn.restype = _CTYPES[result]
            fn.argtypes = [_CTYPES[code] for code in args.replace(" ", "")]
            if name == "lsr_abi" and fn() != ABI:
                raise refuse(f"has ABI {fn()}, this lightsr needs {ABI}")
    except AttributeError as exc:
        raise refuse(f"lacks a function ({exc})") from None
    digest = _source_digest()
    if digest is not None and lib.lsr_source_digest() != digest:
        raise refuse("was built from another kernels/safmn.cpp than the one beside it")


def _load(path: Path) -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise _Unavailable(f"{path} cannot be loaded: {exc}", "reinstall lightsr", path) from None
    _declare(lib, path)
    if os.environ.get("LIGHTSR_NATIVE_ISA", "").strip().lower() == "avx2":
        lib.lsr_set_isa(0)
    else:  # the CPU decides the products' width now, not lazily on the kernels' threads
        lib.lsr_set_isa(-2)
    return lib


def _compile_into(cxx: str, folder: Path, target: Path) -> None:
    """Compile to a temporary file in ``folder``, then rename it to ``target``, so that
    concurrent processes never load a half-written library."""
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=folder)
    os.close(fd)
    try:
        done = subprocess.run(_compile_command(cxx, tmp), capture_output=True, text=True)
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["(no output)"])[0]
            raise _Unavailable(
                f"{Path(cxx).name} failed: {first[:200]}", "set CXX to a working C++ compiler"
            )
        os.chmod(tmp, 0o755)  # the linker's mode follows the umask: never group-writable
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _mkdir_private(folder: Path) -> None:
    """Create ``folder`` and any missing parents with mode 0700 (whatever the umask)."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)


def _cached_or_built(cxx: str, name: str) -> Path:
    """The library ``name`` from the cache folder (else the temporary directory, when the cache
    cannot be written or is not safe), compiled there first if it is not yet."""
    folders = (
        cache_dir() / "native",
        Path(tempfile.gettempdir()) / f"lightsr-native-{os.getuid()}",
    )
    problems = []
    for folder in folders:
        try:
            _mkdir_private(folder)
        except OSError as exc:  # e.g. a read-only home: try the next folder
            problems.append(f"{folder}: {exc.strerror}")
            continue
        target = folder / name
        unsafe = _unsafe_reason(target if target.exists() else folder)
        if unsafe is None and not target.exists():
            _compile_into(cxx, folder, target)
            unsafe = _unsafe_reason(target)
        if unsafe is None:
            return target
        problems.append(f"refusing {target}: {unsafe}")
    fix = "make the cache folder yours and not writable by others, or set LIGHTSR_CACHE_DIR"
    raise _Unavailable(f"no safe writable folder for the library ({'; '.join(problems)})", fix)


def _build() -> Path:
    """The library built on first use (source checkouts): found in the cache or compiled."""
    cxx = _compiler()
    if cxx is None:
        raise _Unavailable("no C++ compiler found (set CXX or install g++)", "install g++")
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False)
    command = " ".join(_compile_command("", ""))
    key = hashlib.sha256(_source_bytes() + command.encode() + version.stdout.encode())
    return _cached_or_built(cxx, f"safmn-{key.hexdigest()[:16]}.so")


def _missing_installed() -> NativeStatus:
    """Why an installed lightsr (not a source checkout) has no library: the note setup.py left
    (a reason line and a fix line), else a guess."""
    try:
        lines = _INSTALL_NOTE.read_text(encoding="utf-8").strip().splitlines()
    except OSError:
        lines = []
    if len(lines) >= 2:
        return NativeStatus(False, reason=lines[0], fix=lines[1])
    reason = f"{_INSTALLED.name} was not built when lightsr was installed"
    return NativeStatus(False, reason=reason, fix="reinstall lightsr with g++ installed")


def _find() -> tuple[ctypes.CDLL | None, NativeStatus]:
    """Load the library in the order of the module docstring."""
    reason = _platform_reason()
    if reason is not None:
        return None, NativeStatus(False, reason=reason)
    installed_problem: _Unavailable | None = None
    if _INSTALLED.exists():
        try:
            return _load(_INSTALLED), NativeStatus(True, _INSTALLED, "installed")
        except _Unavailable as exc:
            installed_problem = exc
    if not _source_checkout():
        if installed_problem is not None:
            bad = installed_problem
            return None, NativeStatus(False, bad.library, "installed", str(bad), bad.fix)
        return None, _missing_installed()
    try:
        path = _build()
        return _load(path), NativeStatus(True, path, "built")
    except Exception as exc:  # a missing or broken compiler: use PyTorch instead
        fix = exc.fix if isinstance(exc, _Unavailable) else "set CXX to a working C++ compiler"
        library = exc.library if isinstance(exc, _Unavailable) else None
        msg = f"building the native kernel failed: {exc}"
        return None, NativeStatus(False, library, "built", msg, fix)


_lock = threading.Lock()
_state: dict[str, object] = {}


def _library() -> ctypes.CDLL | None:
    with _lock:
        if "status" not in _state:
            _state["lib"], _state["status"] = _find()
        lib = _state.get("lib")
        return lib if isinstance(lib, ctypes.CDLL) else None


def set_avx512(enabled: bool | None) -> bool:
    """Let the Winograd matrix products (most of the 3x3 convolutions' arithmetic, inference and
    training) run 16 lanes wide on CPUs with AVX-512F (True, the default), keep them to AVX2
    (False), or return to the default (None). Returns whether they now run AVX-512. The outputs
    are the same bits either way (the same FMAs in the same order). ``LIGHTSR_NATIVE_ISA=avx2``
    in the environment sets False when the library loads. False without the library."""
    lib = _library()
    if lib is None:
        return False
    return bool(lib.lsr_set_isa(-1 if enabled is None else int(enabled)))


def avx512_in_use() -> bool:
    """Whether the Winograd matrix products run AVX-512 now (:func:`set_avx512`)."""
    lib = _library()
    return bool(lib is not None and lib.lsr_set_isa(-2))


def status() -> NativeStatus:
    """Whether the native kernels are in use, the library, and why not (loading them on first
    call)."""
    _library()
    st = _state["status"]
    assert isinstance(st, NativeStatus)
    return st


def unavailable_reason() -> str | None:
    """Why the native kernels cannot run here (loading or building them on first call), or
    None."""
    return status().reason


def notice_fallback() -> None:
    """One line on stderr, once per process, when the kernels are missing and could be had: why,
    and how to fix it. Nothing when they are in use, were turned off or cannot run here."""
    st = status()
    with _lock:
        if st.available or st.fix is None or _state.get("noticed"):
            return
        _state["noticed"] = True
    reason = " ".join(str(st.reason).split())
    fix = st.fix[:1].upper() + st.fix[1:]
    print(
        f"lightsr: native CPU kernels unavailable ({reason}); using the PyTorch path, about "
        f"2x slower. {fix}.",
        file=sys.stderr,
        flush=True,
    )


def _pad(t: torch.Tensor, n: int) -> torch.Tensor:
    out = torch.zeros(n)
    out[: t.numel()] = t.detach().float().cpu().reshape(-1)
    return out


def pack_ccm(
    w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The CCM's 3x3 (E, C, 3, 3) and 1x1 (C, E, 1, 1) weights in the kernel's float32 layout.

    Returns ``(U, b1, W2, b2)``: ``U = G w G^T`` per channel pair as (36, C, EP), computed in
    float64 and rounded once; ``W2`` transposed to (E, CP); zero padding to EP (a multiple of
    24) and CP (a multiple of 8) columns.
    """
    e, c = w1.shape[:2]
    ep, cp = -(-e // 24) * 24, -(-c // 8) * 8
    g = torch.tensor(_G, dtype=torch.float64)
    u = torch.einsum("ai,ecij,bj->abce", g, w1.detach().double().cpu(), g).reshape(36, c, e)
    u_p = torch.zeros(36, c, ep)
    u_p[..., :e] = u.float()
    w2_p = torch.zeros(e, cp)
    w2_p[:, :c] = w2.detach().float().cpu().reshape(c, e).t()
    return u_p.contiguous(), _pad(b1, ep), w2_p.contiguous(), _pad(b2, cp)


def pack_conv3x3(w: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3x3 convolution's (E, C, 3, 3) weights and bias for :func:`conv3x3_f43`: ``(U, b)``
    as in :func:`pack_ccm`."""
    e, c = w.shape[:2]
    zeros = torch.zeros(c, e, 1, 1)
    u, bp, _, _ = pack_ccm(w, b, zeros, torch.zeros(c))
    return u, bp


def pack_norm(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A channel LayerNorm's weight and bias, zero padded to a multiple of 8."""
    cp = -(-weight.numel() // 8) * 8
    return _pad(weight, cp), _pad(bias, cp)


def pack_safm(
    dw0_w: torch.Tensor,
    dw0_b: torch.Tensor,
    aggr_w: torch.Tensor,
    aggr_b: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The SAFM's full-resolution depth-wise 3x3 (k, 1, 3, 3) and its 1x1 aggregation (C, C, 1, 1).

    Returns ``(w0, b0, Wa, ba)``: ``w0`` tap-major as (9, KP), ``Wa`` transposed to (C, CP), the
    vectors zero padded (KP, CP: k and C rounded up to multiples of 8).
    """
    k, c = dw0_w.shape[0], aggr_w.shape[0]
    kp, cp = -(-k // 8) * 8, -(-c // 8) * 8
    w0 = torch.zeros(9, kp)
    w0[:, :k] = dw0_w.detach().float().cpu().reshape(k, 9).t()
    wa = torch.zeros(c, cp)
    wa[:, :c] = aggr_w.detach().float().cpu().reshape(c, c).t()
    return w0.contiguous(), _pad(dw0_b, kp), wa.contiguous(), _pad(aggr_b, cp)


#: The kernels keep a pixel's channels on the stack (at most this many) and a level's channels
#: in at most eight AVX vectors (``MAX_LEVEL_CHANNELS``).
MAX_CHANNELS = 512
MAX_LEVEL_CHANNELS = 64


def fits(channels: int, levels: int) -> bool:
    """Whether a SAFMN block of ``channels`` channels split into ``levels`` levels fits the
    kernels (the limits above)."""
    return (
        0 < channels <= MAX_CHANNELS
        and levels > 0
        and channels % levels == 0
        and channels // levels <= MAX_LEVEL_CHANNELS
    )


def _lib() -> ctypes.CDLL:
    lib = _library()
    if lib is None:
        raise RuntimeError(f"lightsr native kernel unavailable: {unavailable_reason()}")
    return lib


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) float32 CPU -> its (B, H, W, C) storage (a view for channels-last tensors)."""
    if t.dtype != torch.float32 or t.device.type != "cpu" or t.dim() != 4:
        raise ValueError(f"lightsr native kernels take 4-D float32 CPU tensors, got {t.dtype} "
                         f"{t.device.type} {tuple(t.shape)}")  # fmt: skip
    return t.permute(0, 2, 3, 1).contiguous()


def _ptrs(*ts: torch.Tensor) -> list[int]:
    """Addresses of packed weights (contiguous float32 CPU tensors that outlive the call)."""
    for t in ts:
        if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous():
            raise ValueError(
                "lightsr native kernels take weights packed by lightsr.native.ops.pack_*"
            )
    return [t.data_ptr() for t in ts]


def _ptr_array(ts: list[torch.Tensor]) -> ctypes.Array[ctypes.c_void_p]:
    """A C array of the tensors' addresses (the caller keeps the tensors alive)."""
    return (ctypes.c_void_p * max(1, len(ts)))(*(t.data_ptr() for t in ts))


def _next_norm_output(
    xs: torch.Tensor, next_norm: list[torch.Tensor]
) -> tuple[torch.Tensor, list[int | None]]:
    """The optional next-block LayerNorm output of a kernel writing ``xs``'s shape: the tensor
    (empty without ``next_norm``) and the output, weight and bias addresses (None without)."""
    if len(next_norm) not in (0, 2):
        raise ValueError("lightsr native kernels take 0 or 2 next-norm tensors")
    if not next_norm:
        return torch.empty(0), [None, None, None]
    yn = torch.empty_like(xs)
    return yn, [yn.data_ptr(), *_ptrs(*next_norm)]


def _nchw(t: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) storage -> the (B, C, H, W) channels-last view; empty tensors unchanged."""
    return t.permute(0, 3, 1, 2) if t.dim() == 4 else t


def _custom_op(fn: Callable[..., Any]) -> Any:
    """Register ``fn`` as the torch custom op ``lightsr::<its name>`` and return its caller.

    ``torch.compile`` graphs call the op (one opaque kernel); eager runs call ``fn`` directly,
    because a custom op's first eager call imports ``torch._dynamo`` (about 2 s of a one-image
    ``lightsr upscale``). The op itself is the caller's ``op`` attribute.
    """
    op = torch.library.custom_op(f"lightsr::{fn.__name__}", mutates_args=(), device_types="cpu")(fn)

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        return op(*args, **kwargs) if torch.compiler.is_compiling() else fn(*args, **kwargs)

    call.op = op  # type: ignore[attr-defined]
    return call


@_custom_op
def ccm_f43(
    x: torch.Tensor,
    y: torch.Tensor,
    ccm: list[torch.Tensor],
    next_norm: list[torch.Tensor],
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``x + conv1x1(gelu(conv3x3(y)))``, float32 CPU, with ``ccm = [U, b1, W2, b2]`` from
    :func:`pack_ccm`; with ``next_norm = [lw, lb]`` (:func:`pack_norm`) also the LayerNorm of
    the output with that weight and bias and ``eps``, computed while the output is in cache.

    ``x`` and ``y`` are (B, C, H, W) with H and W multiples of 4. Returns ``(out, LN(out))``,
    channels-last; the second is empty without ``next_norm``. A custom op, so
    ``torch.compile`` graphs call it as one opaque kernel.
    """
    n, c, h, w = x.shape
    if len(ccm) != 4:
        raise ValueError("ccm_f43: expected 4 CCM tensors")
    if h % 4 or w % 4:
        raise ValueError(f"ccm_f43: height and width must be multiples of 4, got {h}x{w}")
    xs, ys = _nhwc(x), _nhwc(y)
    out = torch.empty_like(xs)
    yn, norm = _next_norm_output(xs, next_norm)
    code = _lib().lsr_ccm_f43(
        ys.data_ptr(), xs.data_ptr(), out.data_ptr(), n, h, w, c, ccm[2].shape[0], *_ptrs(*ccm),
        *norm, eps,
    )  # fmt: skip
    if code:
        raise RuntimeError(f"ccm_f43 kernel failed with code {code}")
    return _nchw(out), _nchw(yn)


@_custom_op
def safm_out(
    x: torch.Tensor,
    y: torch.Tensor,
    levels: list[torch.Tensor],
    w0: torch.Tensor,
    b0: torch.Tensor,
    wa: torch.Tensor,
    ba: torch.Tensor,
    lw: torch.Tensor,
    lb: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The SAFM's output and the CCM's LayerNorm (float32 CPU; :func:`pack_safm`,
    :func:`pack_norm`).

    ``x' = x + gelu(aggr(cat(dw0(y[:, :k]), up2(levels[0]), up4(levels[1]), ...))) * y`` and
    ``y' = LN(x')``, where ``k = C / (len(levels) + 1)``, ``dw0`` is the full-resolution 3x3
    depth-wise convolution (computed here) and ``levels[i - 1]`` is level i after its
    depth-wise convolution, at (H >> i, W >> i) with k channels, upsampled by nearest
    neighbour. Returns ``(x', y')``, channels-last.
    """
    n, c, h, w = x.shape
    if not fits(c, len(levels) + 1):
        raise ValueError(f"safm_out: {c} channels in {len(levels) + 1} levels do not fit")
    xs, ys = _nhwc(x), _nhwc(y)
    ls = [_nhwc(t) for t in levels]
    xo, yo = torch.empty_like(xs), torch.empty_like(xs)
    code = _lib().lsr_safm_out(
        xs.data_ptr(), ys.data_ptr(), _ptr_array(ls), len(ls) + 1, *_ptrs(w0, b0), xo.data_ptr(),
        yo.data_ptr(), n, h, w, c, *_ptrs(wa, ba, lw, lb), eps,
    )  # fmt: skip
    if code:
        raise ValueError(f"safm_out: unsupported sizes {tuple(x.shape)} with {len(ls) + 1} levels")
    return _nchw(xo), _nchw(yo)


@_custom_op
def safmn_block(
    x: torch.Tensor,
    y: torch.Tensor,
    levels: list[torch.Tensor],
    safm: list[torch.Tensor],
    eps: float,
    ccm: list[torch.Tensor],
    next_norm: list[torch.Tensor],
    next_eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One feature mixing module after its first LayerNorm, in one streamed pass (float32 CPU).

    ``x`` is the residual stream and ``y = LN1(x)``; ``levels`` as in :func:`safm_out`;
    ``safm = [w0, b0, Wa, ba, n2w, n2b]`` (:func:`pack_safm`, :func:`pack_norm` of the block's
    second LayerNorm); ``ccm = [U, b1, W2, b2]`` (:func:`pack_ccm`); ``next_norm`` the packed
    first LayerNorm of the next block, or empty. Computes :func:`safm_out` row by row into
    per-thread ring buffers from which the CCM reads at once, so ``x'`` and ``y'`` never go
    through memory. Returns ``(out, LN_next(out))``; the second is empty without
    ``next_norm``.
    """
    n, c, h, w = x.shape
    if not fits(c, len(levels) + 1):
        raise ValueError(f"safmn_block: {c} channels in {len(levels) + 1} levels do not fit")
    if len(safm) != 6 or len(ccm) != 4:
        raise ValueError("safmn_block: expected 6 SAFM and 4 CCM tensors")
    xs, ys = _nhwc(x), _nhwc(y)
    ls = [_nhwc(t) for t in levels]
    out = torch.empty_like(xs)
    yn, norm = _next_norm_output(xs, next_norm)
    code = _lib().lsr_block(
        xs.data_ptr(), ys.data_ptr(), _ptr_array(ls), len(ls) + 1, *_ptrs(*safm), eps,
        n, h, w, c, ccm[2].shape[0], *_ptrs(*ccm), out.data_ptr(), *norm, next_eps,
    )  # fmt: skip
    if code:
        raise ValueError(f"safmn_block: unsupported sizes {tuple(x.shape)} (code {code})")
    return _nchw(out), _nchw(yn)


@_custom_op
def conv3x3_f43(
    x: torch.Tensor, u: torch.Tensor, b: torch.Tensor, channels: int, shuffle: int = 0
) -> torch.Tensor:
    """A 3x3 convolution with zero padding and bias by Winograd F(4x4, 3x3) (float32 CPU).

    ``x`` is (B, C, H, W) with H and W multiples of 4; ``u, b`` from :func:`pack_conv3x3`.
    Returns (B, channels, H, W), channels-last; or, with ``shuffle = s``, its pixel shuffle
    (B, channels / s^2, H s, W s), contiguous, written in place by the kernel.
    """
    n, c, h, w = x.shape
    if h % 4 or w % 4:
        raise ValueError(f"conv3x3_f43: height and width must be multiples of 4, got {h}x{w}")
    if shuffle < 0 or (shuffle and channels % (shuffle * shuffle)):
        raise ValueError(f"conv3x3_f43: {channels} channels cannot be shuffled by {shuffle}")
    xs = _nhwc(x)
    if shuffle:
        out = torch.empty(n, channels // shuffle**2, h * shuffle, w * shuffle)
    else:
        out = torch.empty(n, h, w, channels)
    code = _lib().lsr_conv3x3_f43(
        xs.data_ptr(), out.data_ptr(), n, h, w, c, channels, *_ptrs(u, b), shuffle
    )
    if code:
        raise RuntimeError(f"conv3x3_f43 kernel failed with code {code}")
    return out if shuffle else out.permute(0, 3, 1, 2)


@_custom_op
def pool_levels(y: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """The SAFM's max-pooled levels 1 .. levels - 1 of ``y`` (B, C, H, W), float32 CPU.

    Level i is ``max_pool2d(y[:, i k:(i + 1) k], 2^i)`` with ``k = C / levels``; H and W must
    be multiples of ``2^(levels - 1)``. One pass over ``y`` instead of a strided copy and a
    pooling call per level. Results are channels-last.
    """
    n, c, h, w = y.shape
    k = c // max(1, levels)
    ys = _nhwc(y)
    outs = [torch.empty(n, h >> i, w >> i, k) for i in range(1, levels)]
    code = _lib().lsr_pool_levels(ys.data_ptr(), n, h, w, c, levels, _ptr_array(outs))
    if code:
        raise ValueError(f"pool_levels: unsupported sizes {tuple(y.shape)} with {levels} levels")
    return [_nchw(t) for t in outs]


def _like(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.channels_last)


@ccm_f43.op.register_fake
def _(
    x: torch.Tensor, y: torch.Tensor, ccm: list[torch.Tensor], next_norm: list[torch.Tensor],
    eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    return _like(x), (_like(x) if next_norm else x.new_empty(0))


@safm_out.op.register_fake
def _(x: torch.Tensor, y: torch.Tensor, *args: object) -> tuple[torch.Tensor, torch.Tensor]:
    return _like(x), _like(x)


@safmn_block.op.register_fake
def _(
    x: torch.Tensor, y: torch.Tensor, levels: list[torch.Tensor], safm: list[torch.Tensor],
    eps: float, ccm: list[torch.Tensor], next_norm: list[torch.Tensor], next_eps: float,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    return _like(x), (_like(x) if next_norm else x.new_empty(0))


@conv3x3_f43.op.register_fake
def _(
    x: torch.Tensor, u: torch.Tensor, b: torch.Tensor, channels: int, shuffle: int = 0
) -> torch.Tensor:
    n, _, h, w = x.shape
    if shuffle:
        return x.new_empty(n, channels // shuffle**2, h * shuffle, w * shuffle)
    return x.new_empty(n, h, w, channels).permute(0, 3, 1, 2)


@pool_levels.op.register_fake
def _(y: torch.Tensor, levels: int) -> list[torch.Tensor]:
    n, c, h, w = y.shape
    k = c // max(1, levels)
    return [y.new_empty(n, h >> i, w >> i, k).permute(0, 3, 1, 2) for i in range(1, levels)]
