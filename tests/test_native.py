"""lightsr's native CPU kernels: parity with the PyTorch formulation, fallback, build cache."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightsr.inference.io import read_image
from lightsr.inference.tiling import pad_to_multiple
from lightsr.models.archs.safmn import SAFMN
from lightsr.models.checkpoint import load_checkpoint
from lightsr.native import ops as native
from lightsr.native.fast import FastRunner, FastSAFMN

from conftest import need_shared

CL = torch.channels_last
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def need_native() -> None:
    """Skip (fail in CI, whose machine has g++ and AVX2) when the kernels cannot be built."""
    reason = native.unavailable_reason()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"native kernels unavailable in CI: {reason}")
        pytest.skip(f"native kernels unavailable: {reason}")


def rand(*shape: int, scale: float = 1.0) -> torch.Tensor:
    return torch.randn(*shape) * scale


def test_ci_builds_the_native_kernels() -> None:
    if not IN_CI:
        pytest.skip("checks the CI machine")
    assert native.unavailable_reason() is None


@pytest.mark.parametrize(
    ("n", "c", "e", "h", "w"),
    [(1, 36, 72, 16, 24), (2, 8, 16, 8, 16), (1, 20, 40, 12, 8), (1, 3, 5, 4, 4),
     (1, 64, 128, 8, 8)],
)  # fmt: skip
def test_ccm_matches_the_torch_formulation(n: int, c: int, e: int, h: int, w: int) -> None:
    """x + conv1x1(gelu(conv3x3(y))) within float32 rounding of a float64 reference, for channel
    counts that are and are not multiples of 8 and images of one to several tiles."""
    need_native()
    torch.manual_seed(c + e)
    x = rand(n, c, h, w).contiguous(memory_format=CL)
    y = rand(n, c, h, w).contiguous(memory_format=CL)
    w1, b1 = rand(e, c, 3, 3, scale=0.1), rand(e, scale=0.1)
    w2, b2 = rand(c, e, 1, 1, scale=0.1), rand(c, scale=0.1)
    d = torch.float64
    ref = x.to(d) + F.conv2d(
        F.gelu(F.conv2d(y.to(d), w1.to(d), b1.to(d), padding=1)), w2.to(d), b2.to(d)
    )
    out, empty = native.ccm_f43(x, y, list(native.pack_ccm(w1, b1, w2, b2)), [], 0.0)
    assert empty.numel() == 0
    assert out.shape == x.shape and out.is_contiguous(memory_format=CL)
    assert (out.to(d) - ref).abs().max().item() < 5e-5


def layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The paper's channel LayerNorm in float64 (eps 1e-6)."""
    mu = x.mean(1, keepdim=True)
    var = (x - mu).pow(2).mean(1, keepdim=True)
    return (x - mu) / (var + 1e-6).sqrt() * w.to(x)[:, None, None] + b.to(x)[:, None, None]


def test_ccm_with_the_next_norm() -> None:
    """With a norm, ccm_f43 also returns the LayerNorm of its output (the next block's first)."""
    need_native()
    torch.manual_seed(1)
    n, c, e, h, w = 1, 36, 72, 8, 16
    x = rand(n, c, h, w).contiguous(memory_format=CL)
    y = rand(n, c, h, w).contiguous(memory_format=CL)
    w1, b1 = rand(e, c, 3, 3, scale=0.1), rand(e, scale=0.1)
    w2, b2 = rand(c, e, 1, 1, scale=0.1), rand(c, scale=0.1)
    lw, lb = 1 + rand(c, scale=0.1), rand(c, scale=0.1)
    packed = native.pack_ccm(w1, b1, w2, b2)
    out, yn = native.ccm_f43(x, y, list(packed), list(native.pack_norm(lw, lb)), 1e-6)
    assert torch.equal(out, native.ccm_f43(x, y, list(packed), [], 0.0)[0])
    assert (yn.double() - layer_norm(out.double(), lw, lb)).abs().max().item() < 1e-5


@pytest.mark.parametrize(("n", "c", "levels", "h", "w"), [(1, 36, 4, 16, 24), (2, 12, 3, 8, 8)])
def test_safm_out_matches_the_torch_formulation(
    n: int, c: int, levels: int, h: int, w: int
) -> None:
    """x' = x + gelu(aggr(cat(dw0(y0), levels upsampled))) * y and y' = LayerNorm(x')."""
    need_native()
    torch.manual_seed(c)
    k = c // levels
    x = rand(n, c, h, w).contiguous(memory_format=CL)
    y = rand(n, c, h, w).contiguous(memory_format=CL)
    lv = [rand(n, k, h >> i, w >> i).contiguous(memory_format=CL) for i in range(1, levels)]
    dw_w, dw_b = rand(k, 1, 3, 3, scale=0.3), rand(k, scale=0.1)
    aw, ab = rand(c, c, 1, 1, scale=0.2), rand(c, scale=0.1)
    lw, lb = 1 + rand(c, scale=0.1), rand(c, scale=0.1)
    d = torch.float64
    s0 = F.conv2d(y[:, :k].to(d), dw_w.to(d), dw_b.to(d), padding=1, groups=k)
    up = [s0] + [F.interpolate(t.to(d), scale_factor=2 ** (i + 1)) for i, t in enumerate(lv)]
    xr = x.to(d) + F.gelu(F.conv2d(torch.cat(up, 1), aw.to(d), ab.to(d))) * y.to(d)
    xo, yo = native.safm_out(
        x, y, lv, *native.pack_safm(dw_w, dw_b, aw, ab), *native.pack_norm(lw, lb), 1e-6
    )
    assert (xo.to(d) - xr).abs().max().item() < 1e-5
    assert (yo.to(d) - layer_norm(xr, lw, lb)).abs().max().item() < 1e-5


@pytest.mark.parametrize(("c", "e"), [(36, 48), (36, 12), (36, 27), (5, 3)])
def test_conv3x3_matches_torch(c: int, e: int) -> None:
    """The tail's 3x3 convolution (3 s^2 outputs: 48, 27, 12) by F(4x4, 3x3)."""
    need_native()
    torch.manual_seed(e)
    x = rand(2, c, 8, 12).contiguous(memory_format=CL)
    w, b = rand(e, c, 3, 3, scale=0.1), rand(e, scale=0.1)
    d = torch.float64
    ref = F.conv2d(x.to(d), w.to(d), b.to(d), padding=1)
    packed = native.pack_conv3x3(w, b)
    out = native.conv3x3_f43(x, *packed, e)
    assert out.shape == ref.shape
    assert (out.to(d) - ref).abs().max().item() < 5e-5
    for s in (2, 3, 4):  # the upsampler's pixel shuffle, written by the kernel
        if e % (s * s) == 0:
            shuffled = native.conv3x3_f43(x, *packed, e, s)
            assert torch.equal(shuffled, F.pixel_shuffle(out, s))


def test_avx512_products_give_the_avx2_bits() -> None:
    """The Winograd products 16 lanes wide (AVX-512F, where the CPU has it) are the same FMAs in
    the same order as the AVX2 ones: the whole fused CCM (96 expanded channels: a 72-column
    block and a 24-column one), convolutions to 24, 48, 72 and 144 channels, and the weight
    gradient (kernels/safmn_train.cpp) are bitwise equal either way."""
    need_native()
    from lightsr.native import train_ops

    torch.manual_seed(3)
    x = rand(2, 36, 12, 16).contiguous(memory_format=CL)
    ccm = list(native.pack_ccm(rand(96, 36, 3, 3, scale=0.1), rand(96, scale=0.1),
                               rand(36, 96, 1, 1, scale=0.1), rand(36, scale=0.1)))  # fmt: skip
    convs = {e: native.pack_conv3x3(rand(e, 36, 3, 3, scale=0.1), rand(e, scale=0.1))
             for e in (24, 48, 72, 144)}  # fmt: skip
    grads = {e: rand(2, e, 12, 16).contiguous(memory_format=CL) for e in (24, 72, 96)}

    def run() -> list[torch.Tensor]:
        outs = [native.ccm_f43(x, x, ccm, [], 0.0)[0]]
        outs += [native.conv3x3_f43(x, *conv, e) for e, conv in convs.items()]
        outs += [train_ops.conv3x3_weight_grad(x, g) for g in grads.values()]
        return outs

    try:
        if not native.set_avx512(True):
            pytest.skip("this CPU has no AVX-512F: only the AVX2 products run here")
        wide = run()
        assert not native.set_avx512(False) and not native.avx512_in_use()
        narrow = run()
    finally:
        native.set_avx512(None)
    assert all(torch.equal(a, b) for a, b in zip(wide, narrow, strict=True))


def test_avx2_only_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``LIGHTSR_NATIVE_ISA=avx2`` keeps the products to AVX2 from the library's load."""
    need_native()
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("LIGHTSR_NATIVE_ISA", "avx2")
    try:
        native.unavailable_reason()  # loads the library again
        assert not native.avx512_in_use()
    finally:
        native.set_avx512(None)


def test_streamed_block_equals_the_two_kernels() -> None:
    """safmn_block (SAFM rows into ring buffers, CCM tiles from them) gives exactly what
    safm_out followed by ccm_f43 gives, on several images and a height that splits
    unevenly among threads."""
    need_native()
    torch.manual_seed(3)
    n, c, e, h, w = 2, 36, 72, 40, 16
    x = rand(n, c, h, w).contiguous(memory_format=CL)
    y = rand(n, c, h, w).contiguous(memory_format=CL)
    lv = [rand(n, 9, h >> i, w >> i).contiguous(memory_format=CL) for i in range(1, 4)]
    safm = [
        *native.pack_safm(rand(9, 1, 3, 3, scale=0.3), rand(9), rand(c, c, 1, 1, scale=0.1),
                          rand(c, scale=0.1)),
        *native.pack_norm(1 + rand(c, scale=0.1), rand(c, scale=0.1)),
    ]  # fmt: skip
    ccm = list(native.pack_ccm(rand(e, c, 3, 3, scale=0.05), rand(e), rand(c, e, 1, 1), rand(c)))
    norm = list(native.pack_norm(1 + rand(c, scale=0.1), rand(c, scale=0.1)))
    x2, y2 = native.safm_out(x, y, lv, *safm, 1e-6)
    want, want_y = native.ccm_f43(x2, y2, ccm, norm, 1e-6)
    for threads in (1, 3):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            out, yn = native.safmn_block(x, y, lv, safm, 1e-6, ccm, norm, 1e-6)
            last, empty = native.safmn_block(x, y, lv, safm, 1e-6, ccm, [], 1e-6)
        finally:
            torch.set_num_threads(before)
        assert torch.equal(out, want) and torch.equal(yn, want_y)
        assert torch.equal(last, want) and empty.numel() == 0


@pytest.mark.parametrize(
    ("c", "levels", "h", "w"), [(36, 4, 16, 24), (12, 3, 8, 12), (8, 2, 6, 10)]
)
def test_pool_levels_matches_max_pool(c: int, levels: int, h: int, w: int) -> None:
    need_native()
    torch.manual_seed(levels)
    k = c // levels
    y = rand(2, c, h, w).contiguous(memory_format=CL)
    got = native.pool_levels(y, levels)
    assert len(got) == levels - 1
    for i, t in enumerate(got, start=1):
        assert torch.equal(t, F.max_pool2d(y[:, i * k : (i + 1) * k], 2**i, 2**i))


def test_fast_safmn_with_native_kernels_matches_plain_on_set5() -> None:
    """The issue's float32 bound (1e-4 in [0, 1] units) on real weights, native vs plain, and
    native vs the PyTorch formulation of the fast path, eager and compiled."""
    need_native()
    plain, _ = load_checkpoint(need_shared("weights", "safmn", "SAFMN_DF2K_x2.pth"))
    plain.eval()
    nat = FastSAFMN(plain)
    assert nat.native
    torch_path = FastSAFMN(plain, native=False)
    assert not torch_path.native
    compiled = FastRunner(FastSAFMN(plain), torch.device("cpu"), compile="on")
    lr = need_shared("datasets", "Set5", "LR_bicubic", "X2")
    with torch.inference_mode():
        for name in ("baby", "butterfly"):
            img = read_image(lr / f"{name}x2.png").astype(np.float32) / 255.0
            x = pad_to_multiple(torch.from_numpy(img).permute(2, 0, 1)[None], 8)[..., :96, :128]
            ref = plain(x).clamp(0, 1)
            a = nat(x).clamp(0, 1)
            assert (a - ref).abs().max().item() <= 1e-4
            assert (torch_path(x).clamp(0, 1) - ref).abs().max().item() <= 1e-4
            assert (compiled(x).clamp(0, 1) - ref).abs().max().item() <= 1e-4
    assert compiled.compiled_shapes and not compiled.compile_failed


@pytest.mark.parametrize(
    ("dim", "blocks", "scale"),
    [(8, 3, 2), (16, 2, 3), (20, 2, 4), (32, 2, 2), (36, 2, 4)],
)
def test_fast_safmn_native_matches_plain_across_configurations(
    dim: int, blocks: int, scale: int
) -> None:
    """Channel counts below, at and between multiples of 8 (level chunks of 2 to 9), several
    blocks (so the fused next-block LayerNorm is used), a batch of two, every scale."""
    need_native()
    torch.manual_seed(dim)
    model = SAFMN(dim=dim, n_blocks=blocks, upscaling_factor=scale).eval()
    fast = FastSAFMN(model)
    assert fast.native
    x = torch.rand(2, 3, 24, 40)
    with torch.inference_mode():
        assert (fast(x) - model(x)).abs().max().item() < 1e-4


def test_disabled_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("LIGHTSR_NATIVE", "0")
    assert native.unavailable_reason() == "LIGHTSR_NATIVE=0"
    model = SAFMN(upscaling_factor=2, n_blocks=1).eval()
    fast = FastSAFMN(model)
    assert not fast.native  # the PyTorch formulation, same outputs
    x = torch.rand(1, 3, 16, 16)
    with torch.inference_mode():
        assert (fast(x) - model(x)).abs().max().item() < 1e-4


def _source_checkout_without_library(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fresh loader state in a source checkout without an installed library, caching in
    ``tmp_path``."""
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setattr(native, "_INSTALLED", tmp_path / "absent" / "libsafmn.so")
    monkeypatch.setattr(native, "_source_checkout", lambda: True)
    monkeypatch.setenv("LIGHTSR_CACHE_DIR", str(tmp_path))


def test_a_failed_build_falls_back_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _source_checkout_without_library(monkeypatch, tmp_path)
    monkeypatch.setattr(native, "_platform_reason", lambda: None)
    monkeypatch.setattr(native, "_compiler", lambda: "/bin/false")
    reason = native.unavailable_reason()
    assert reason is not None and reason.startswith("building the native kernel failed: false")
    assert native.status().fix == "set CXX to a working C++ compiler"
    assert list((tmp_path / "native").iterdir()) == []  # the temporary output was removed


def test_the_build_is_cached_under_a_content_hash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    need_native()
    _source_checkout_without_library(monkeypatch, tmp_path)
    st = native.status()
    assert st.available and st.origin == "built" and st.library is not None
    assert st.library.parent == tmp_path / "native"
    built = sorted(p.name for p in (tmp_path / "native").iterdir())
    assert len(built) == 1 and built[0].startswith("safmn-") and built[0].endswith(".so")
    # Created private whatever the umask, so that the ownership check accepts it.
    assert (tmp_path / "native").stat().st_mode & 0o777 == 0o700
    assert st.library.stat().st_mode & 0o022 == 0
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setattr(native.subprocess, "run", _no_compile(native.subprocess.run))
    assert native.unavailable_reason() is None  # loaded from the cache: no compiler call


def test_every_kernel_file_feeds_the_digest(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The sources and the header they share are hashed, in the same order, by ops (build key
    and digest) and by setup.py, so that editing any of them, the header too, rebuilds."""
    kernels = native._SOURCE.parent
    files = sorted(p.name for p in kernels.iterdir() if p.suffix in (".cpp", ".h"))
    hashed = [p.name for p in (*native._SOURCES, *native._HEADERS)]
    assert sorted(hashed) == files and "simd_common.h" in hashed
    setup_py = (Path(__file__).resolve().parents[1] / "setup.py").read_text()
    assert re.findall(r'"src/lightsr/native/kernels/([\w.]+)"', setup_py) == hashed
    header = tmp_path / "simd_common.h"
    header.write_bytes(native._HEADERS[0].read_bytes() + b"// edited\n")
    before = native._source_digest()
    monkeypatch.setattr(native, "_HEADERS", (header,))
    assert native._source_digest() != before


def _no_compile(run: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(cmd: list[str], *args: Any, **kwargs: Any) -> Any:
        assert "-shared" not in cmd, "the cached library should have been reused"
        return run(cmd, *args, **kwargs)

    return wrapped


def test_a_cache_folder_writable_by_others_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Nothing is built or loaded in a cache or temporary folder that others could write to:
    both candidate folders are mode 0777 here (e.g. made by someone else), so there is no
    library, and the reason names the folders; no compiler is run."""
    _source_checkout_without_library(monkeypatch, tmp_path / "cache")
    monkeypatch.setattr(native, "_platform_reason", lambda: None)
    monkeypatch.setattr(native, "_compiler", lambda: "/bin/true")
    monkeypatch.setattr(native.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    folders = [tmp_path / "cache" / "native", tmp_path / "tmp" / f"lightsr-native-{os.getuid()}"]
    for folder in folders:
        folder.mkdir(parents=True)
        folder.chmod(0o777)
    monkeypatch.setattr(native.subprocess, "run", _no_compile(native.subprocess.run))
    st = native.status()
    assert not st.available and st.reason is not None
    assert "no safe writable folder" in st.reason
    assert all(f"{folder} is writable by group or others (mode 777)" in st.reason
               for folder in folders)  # fmt: skip
    assert st.fix is not None and "LIGHTSR_CACHE_DIR" in st.fix
    assert all(list(folder.iterdir()) == [] for folder in folders)


def test_the_ownership_check(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A library in a private folder is accepted; one writable by group or others, in a folder
    above that others can write to (without the sticky bit) or owned by someone else is not."""
    folder = tmp_path / "lib"
    folder.mkdir(mode=0o700)
    folder.chmod(0o700)
    lib = folder / "safmn-x.so"
    lib.write_bytes(b"")
    lib.chmod(0o755)
    assert native._unsafe_reason(lib) is None
    lib.chmod(0o775)
    assert native._unsafe_reason(lib) == f"{lib} is writable by group or others (mode 775)"
    lib.chmod(0o755)
    tmp_path.chmod(0o777)
    try:
        assert (
            native._unsafe_reason(lib) == f"{tmp_path} is writable by others without the sticky bit"
        )
        tmp_path.chmod(0o1777)  # like /tmp: others cannot rename what is ours
        assert native._unsafe_reason(lib) is None
    finally:
        tmp_path.chmod(0o700)
    uid = os.getuid()
    monkeypatch.setattr(native.os, "getuid", lambda: uid + 1)  # as if someone else ran lightsr
    reason = native._unsafe_reason(lib)
    assert reason == f"{lib} is owned by uid {uid}, not by this user (uid {uid + 1})"


def test_the_signature_table_matches_the_source() -> None:
    """Every exported C function is declared once in ops._SIGNATURES, with its result and
    argument types as in kernels/safmn.cpp."""
    text = native._SOURCE.read_text()
    protos = re.findall(r"^(int|uint64_t) (lsr_\w+)\(([^)]*)\)", text, flags=re.M)
    codes = {"int": "i", "uint64_t": "Q"}
    found = {}
    for result, name, params in protos:
        args = []
        for param in params.split(","):
            kind = param.split()[0] if param.strip() else "void"
            args.append("p" if "*" in param else {"int": "i", "float": "f", "void": ""}[kind])
        found[name] = f"{codes[result]}:{''.join(args)}"
    declared = {k: v.replace(" ", "") for k, v in native._SIGNATURES.items()}
    assert found == declared


def _installed_library(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A copy of a working library as the installed one of a non-checkout install."""
    need_native()
    built = native.status().library
    assert built is not None
    installed = tmp_path / "libsafmn.so"
    shutil.copy(built, installed)
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setattr(native, "_INSTALLED", installed)
    monkeypatch.setattr(native, "_source_checkout", lambda: False)
    monkeypatch.setattr(native.subprocess, "run", _no_compile(native.subprocess.run))
    return installed


def test_an_installed_library_is_used_without_compiling(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    installed = _installed_library(monkeypatch, tmp_path)
    st = native.status()
    assert st == native.NativeStatus(True, installed, "installed")
    assert st.describe() == f"in use ({installed}, built at install time)"


@pytest.mark.parametrize("stale", ["abi", "source"])
def test_a_library_from_another_version_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stale: str
) -> None:
    """The library reports the ABI and source digest it was built with; an installed one that
    does not match is not used (and an installed lightsr does not compile instead)."""
    installed = _installed_library(monkeypatch, tmp_path)
    if stale == "abi":
        monkeypatch.setattr(native, "ABI", native.ABI + 1)
        want = f"{installed} has ABI {native.ABI - 1}, this lightsr needs {native.ABI}"
    else:
        monkeypatch.setattr(native, "_source_digest", lambda: 1)
        want = f"{installed} was built from another kernels/safmn.cpp than the one beside it"
    st = native.status()
    assert st == native.NativeStatus(False, installed, "installed", want, "reinstall lightsr")


def _installed_without_library(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, note: str | None
) -> None:
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setattr(native, "_platform_reason", lambda: None)
    monkeypatch.setattr(native, "_INSTALLED", tmp_path / "libsafmn.so")
    monkeypatch.setattr(native, "_INSTALL_NOTE", tmp_path / "libsafmn.txt")
    monkeypatch.setattr(native, "_source_checkout", lambda: False)
    if note is not None:
        (tmp_path / "libsafmn.txt").write_text(note)


def test_an_install_without_the_library_says_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    note = "no C++ compiler found when lightsr was installed\ninstall g++ and reinstall lightsr\n"
    _installed_without_library(monkeypatch, tmp_path, note)
    st = native.status()
    assert (st.available, st.reason, st.fix) == (
        False, "no C++ compiler found when lightsr was installed",
        "install g++ and reinstall lightsr",
    )  # fmt: skip
    _installed_without_library(monkeypatch, tmp_path / "x", None)  # no note: a generic reason
    assert native.status().reason == "libsafmn.so was not built when lightsr was installed"


def test_the_fallback_notice_is_one_line_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the kernels are missing, FastSAFMN says so once per process, in one line on
    stderr, with the reason and the fix; not when they were turned off."""
    note = "no C++ compiler found when lightsr was installed\ninstall g++ and reinstall lightsr\n"
    _installed_without_library(monkeypatch, tmp_path, note)
    model = SAFMN(upscaling_factor=2, n_blocks=1).eval()
    FastSAFMN(model, native=False)
    assert capsys.readouterr().err == ""  # turned off by the caller
    for _ in range(2):
        assert not FastSAFMN(model).native
    assert capsys.readouterr().err == (
        "lightsr: native CPU kernels unavailable (no C++ compiler found when lightsr was "
        "installed); using the PyTorch path, about 2x slower. Install g++ and reinstall "
        "lightsr.\n"
    )
    monkeypatch.setattr(native, "_state", {})
    monkeypatch.setenv("LIGHTSR_NATIVE", "0")
    monkeypatch.setattr(native, "_platform_reason", lambda: "LIGHTSR_NATIVE=0")
    FastSAFMN(model)
    assert capsys.readouterr().err == ""  # turned off by the environment


def test_doctor_reports_the_native_status(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lightsr.cli import main

    note = "no C++ compiler found when lightsr was installed\ninstall g++ and reinstall lightsr\n"
    _installed_without_library(monkeypatch, tmp_path, note)
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for label in ("lightsr:", "python:", "torch:", "cpu:", "cuda:", "shared data:"):
        assert f"\n{label}" in f"\n{out}"
    assert (
        "native kernels: not used: no C++ compiler found when lightsr was installed; "
        "fix: install g++ and reinstall lightsr\n"
    ) in out
