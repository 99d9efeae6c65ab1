"""The fast path: same outputs as the plain model (each precision), tiling, compile and fallback."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lightsr import runtime
from lightsr.inference.io import read_image
from lightsr.inference.tiling import pad_to_multiple, tiled_apply
from lightsr.inference.upscaler import Upscaler, load_model
from lightsr.models.archs.safmn import SAFMN
from lightsr.models.checkpoint import load_checkpoint
from lightsr.native import fast as fast_mod
from lightsr.native.fast import FastRunner, FastSAFMN, fast_unsupported_reason

from conftest import need_shared

SET5 = ("baby", "bird", "butterfly", "head", "woman")


def weights() -> Path:
    return need_shared("weights", "safmn", "SAFMN_DF2K_x2.pth")


def set5_lr(name: str) -> torch.Tensor:
    """A Set5 x2 LR image as a (1, 3, h, w) float tensor in [0, 1], padded to a multiple of 8."""
    img = read_image(need_shared("datasets", "Set5", "LR_bicubic", "X2", f"{name}x2.png"))
    x = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    return pad_to_multiple(x, 8)


@pytest.fixture(scope="module")
def plain() -> torch.nn.Module:
    model, _ = load_checkpoint(weights())
    return model.eval()


@pytest.fixture(scope="module")
def reference(plain: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The plain float32 model's outputs on Set5 (x2 LR inputs)."""
    with torch.inference_mode():
        return {n: plain(set5_lr(n)) for n in SET5}


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.clamp(0, 1) - b.clamp(0, 1)).double().pow(2).mean().item()
    return 10 * np.log10(1 / mse)


def test_adaptive_pool_is_fixed_pool_on_multiples_of_8() -> None:
    x = torch.randn(2, 9, 40, 56)
    for k in (2, 4, 8):
        a = F.adaptive_max_pool2d(x, (40 // k, 56 // k))
        torch.testing.assert_close(F.max_pool2d(x, k, k), a, rtol=0, atol=0)


def test_fp32_fast_matches_plain_on_set5(
    plain: torch.nn.Module, reference: dict[str, torch.Tensor]
) -> None:
    fast = FastSAFMN(plain)
    with torch.inference_mode():
        for name in SET5:
            diff = (fast(set5_lr(name)) - reference[name]).abs().max().item()
            assert diff <= 1e-4, (name, diff)


def test_bf16_fast_psnr_on_set5(plain: torch.nn.Module, reference: dict[str, torch.Tensor]) -> None:
    fast = FastSAFMN(plain, dtype=torch.bfloat16)
    with torch.inference_mode():
        scores = {n: psnr(fast(set5_lr(n)).float(), reference[n]) for n in SET5}
    assert min(scores.values()) >= 45.0, scores
    # and not accidentally float32
    assert max(scores.values()) < 90.0, scores


def test_upscaler_uses_the_fast_path_by_default() -> None:
    up = load_model(weights(), device="cpu")
    assert up.fast and up.runner is not None and up.runner.compile == "auto"
    plain = load_model(weights(), device="cpu", fast=False)
    assert not plain.fast and plain.runner is None
    img = read_image(need_shared("golden", "inputs", "32x32.png")).astype(np.float32) / 255
    np.testing.assert_allclose(up.upscale(img), plain.upscale(img), rtol=0, atol=1e-4)
    bf16 = load_model(weights(), device="cpu", precision="bf16")
    assert bf16.fast and bf16.runner is not None
    assert bf16.runner.module.dtype == torch.bfloat16


def test_tiled_fast_equals_untiled() -> None:
    up = load_model(weights(), device="cpu", compile="off")
    img = read_image(need_shared("datasets", "Set5", "LR_bicubic", "X2", "birdx2.png"))
    full = up.upscale(img)
    tiled = up.upscale(img, tile=40, tile_overlap=24)  # windows of 88 in a 144 x 144 image
    assert tiled.shape == full.shape == (288, 288, 3)
    assert np.abs(tiled.astype(int) - full.astype(int)).max() <= 1


def test_tiles_share_one_shape_and_batch() -> None:
    """Every window has one padded shape (one compiled graph); batching changes nothing."""
    shapes: set[tuple[int, ...]] = set()

    def fn(t: torch.Tensor) -> torch.Tensor:
        shapes.add(tuple(t.shape[1:]))
        return F.interpolate(t, scale_factor=2, mode="nearest")

    x = torch.rand(3, 181, 317)
    outs = []
    for batch in (1, 3):
        out = torch.full((3, 362, 634), -1.0)

        def emit(r0: int, rows: torch.Tensor, out: torch.Tensor = out) -> None:
            out[:, r0 : r0 + rows.shape[1]] = rows

        tiled_apply(fn, x, scale=2, multiple=8, emit=emit, tile=40, overlap=16, batch=batch)
        outs.append(out)
    assert shapes == {(3, 72, 72)}
    torch.testing.assert_close(outs[0], F.interpolate(x[None], scale_factor=2)[0])
    torch.testing.assert_close(outs[1], outs[0])


def test_unsupported_models_run_plain() -> None:
    ablation = SAFMN(upscaling_factor=2, pool="avg")
    assert fast_unsupported_reason(ablation) is not None
    up = Upscaler(ablation, scale=2, name="avg", arch="safmn", config={}, device="cpu")
    assert not up.fast
    assert fast_unsupported_reason(torch.nn.Conv2d(3, 3, 1)) is not None
    with pytest.raises(ValueError, match="FastSAFMN"):
        FastSAFMN(ablation)
    with pytest.raises(ValueError, match="multiples of 8"):
        FastSAFMN(SAFMN(upscaling_factor=2, n_blocks=1))(torch.rand(1, 3, 12, 16))


def test_compile_failure_falls_back_once(
    plain: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(torch, "compile", broken)
    runner = FastRunner(FastSAFMN(plain), torch.device("cpu"), compile="on")
    x = set5_lr("bird")[..., :48, :40]
    with torch.inference_mode():
        with pytest.warns(RuntimeWarning, match="no compiler here"):
            y = runner(x)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once, not again
            y2 = runner(x)
        want = plain(x)
    assert runner.compile_failed and runner.compiled_shapes == []
    assert (y - want).abs().max() <= 1e-4 and torch.equal(y, y2)


def test_auto_compiles_a_shape_after_it_cost_more_than_compiling(
    plain: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[object] = []

    def fake_compile(module: torch.nn.Module, **kwargs: object) -> torch.nn.Module:
        compiled.append(kwargs)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(fast_mod, "AUTO_COMPILE_SECONDS", 0.0)
    small = SAFMN(upscaling_factor=2, n_blocks=1).eval()
    x = torch.rand(1, 3, 16, 24)
    with torch.inference_mode():
        off = FastRunner(FastSAFMN(small), torch.device("cpu"), compile="off")
        off(x), off(x)
        assert off.compiled_shapes == [] and compiled == []
        auto = FastRunner(FastSAFMN(small), torch.device("cpu"), compile="auto")
        auto(x)  # first call: eager, its time counted
        assert auto.compiled_shapes == []
        auto(x)  # eager time >= the (patched) compile cost: compile this shape
        assert auto.compiled_shapes == [(1, 3, 16, 24)]
        assert compiled == [{"dynamic": False}]
        auto(x)  # reused, not compiled again
        assert len(compiled) == 1


@pytest.mark.slow
def test_compiled_fp32_matches_plain_and_is_reused(plain: torch.nn.Module) -> None:
    """One real inductor compilation (tens of seconds on 2 cores)."""
    runner = FastRunner(FastSAFMN(plain), torch.device("cpu"), compile="on")
    x = set5_lr("head")[..., :64, :96]
    with torch.inference_mode(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        y = runner(x)
        want = plain(x)
    if runner.compile_failed:
        pytest.skip(f"torch.compile does not work here: {caught[0].message}")
    assert runner.compiled_shapes == [(1, 3, 64, 96)]
    assert (y - want).abs().max() <= 1e-4
    with torch.inference_mode():
        y2 = runner(set5_lr("bird")[..., :64, :96])
    assert runner.compiled_shapes == [(1, 3, 64, 96)]  # same shape: same graph
    assert y2.shape == (1, 3, 128, 192)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "fp16", "bf16"])
def test_cuda_fast_path(precision: str) -> None:
    up = load_model(weights(), device="cuda", precision=precision, compile="on")
    ref = load_model(weights(), device="cpu", fast=False)
    img = read_image(need_shared("datasets", "Set5", "LR_bicubic", "X2", "birdx2.png"))
    x = img.astype(np.float32) / 255
    a, b = up.upscale(x, tile=64), ref.upscale(x, tile=64)
    assert up.runner is not None and up.runner.compiled_shapes  # CUDA graphs
    # fp32 convolutions may run in TF32 on the GPU (torch's default for cuDNN)
    assert 10 * np.log10(1 / np.mean((a - b) ** 2)) >= (50 if precision == "fp32" else 45)


def test_available_cpus_respects_a_cgroup_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    files = {"/sys/fs/cgroup/cpu.max": "150000 100000\n"}

    class FakePath:
        def __init__(self, path: str) -> None:
            self.path = str(path)

        def read_text(self) -> str:
            if self.path not in files:
                raise OSError(self.path)
            return files[self.path]

    monkeypatch.setattr(runtime, "Path", FakePath)
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(64)))
    assert runtime.available_cpus() == 2  # 1.5 CPUs of quota: 2 threads
    files["/sys/fs/cgroup/cpu.max"] = "max 100000\n"
    assert runtime.available_cpus() == 64


@pytest.mark.parametrize("native", [False, None])
def test_scale1_restoration_safmn_matches_plain(native: bool | None) -> None:
    """The scale-1 (restoration) SAFMN adds its input image: the fast path does too."""
    from lightsr.models.registry import build_arch

    torch.manual_seed(0)
    net = build_arch("safmn", scale=1, dim=16, n_blocks=2).eval()
    x = torch.rand(1, 3, 24, 40)
    with torch.no_grad():
        ref = net(x)
        out = FastSAFMN(net, native=native)(x)
    assert out.shape == ref.shape == x.shape
    assert (out - ref).abs().max() < 1e-4
