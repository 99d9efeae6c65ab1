"""Wavelet colour correction (``--color-fix``): its definition, banding, and the Upscaler/CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import lightsr.inference.colorfix as cf
from lightsr.cli import main
from lightsr.inference.colorfix import wavelet_blur, wavelet_color_fix


def _reference(sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """The two-sided definition: the SR's detail plus the bicubic upscale's low frequencies."""
    ref = F.interpolate(lr, size=sr.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    return ((sr - wavelet_blur(sr)) + wavelet_blur(ref)).clamp(0, 1)


def test_wavelet_blur_keeps_constants_and_removes_fine_detail() -> None:
    const = torch.full((1, 3, 40, 50), 0.3)
    assert torch.allclose(wavelet_blur(const), const, atol=1e-6)
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None]) % 2
    x = checker.float().expand(1, 1, 64, 64)
    low = wavelet_blur(x)
    assert (low - 0.5).abs().max() < 0.02  # a 1-pixel checkerboard is pure detail


def test_matches_the_two_sided_definition() -> None:
    g = torch.Generator().manual_seed(0)
    lr = torch.rand(2, 3, 23, 31, generator=g)
    sr = torch.rand(2, 3, 92, 124, generator=g)
    torch.testing.assert_close(wavelet_color_fix(sr, lr), _reference(sr, lr), atol=1e-5, rtol=0)


def test_bands_equal_one_whole_image_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(1)
    lr = torch.rand(1, 3, 50, 20, generator=g)
    sr = torch.rand(1, 3, 200, 80, generator=g)
    whole = wavelet_color_fix(sr, lr)
    monkeypatch.setattr(cf, "_BAND_ROWS", 37)  # bands shorter than the halo, and a remainder
    torch.testing.assert_close(wavelet_color_fix(sr, lr), whole, atol=1e-6, rtol=0)


def test_removes_a_colour_shift_and_keeps_detail() -> None:
    g = torch.Generator().manual_seed(2)
    lr = 0.2 + 0.6 * torch.rand(1, 3, 32, 32, generator=g)
    ref = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)
    detail = 0.05 * ((torch.arange(128)[:, None] + torch.arange(128)[None]) % 2 * 2 - 1).float()
    shifted = (ref + torch.tensor([0.1, -0.05, 0.0])[None, :, None, None] + detail).clamp(0, 1)
    fixed = wavelet_color_fix(shifted, lr)
    # The channel means come back to the plain upscale's; the detail stays.
    shift_before = (shifted - ref).mean((0, 2, 3)).abs().max()
    shift_after = (fixed - ref).mean((0, 2, 3)).abs().max()
    assert shift_before > 0.04 and shift_after < 0.005
    kept = ((fixed - wavelet_blur(fixed)) * detail).mean() / (detail * detail).mean()
    assert kept > 0.8


def test_unbatched_and_mismatched_inputs() -> None:
    lr = torch.rand(3, 8, 8)
    out = wavelet_color_fix(torch.rand(3, 16, 16), lr)
    assert out.shape == (3, 16, 16)
    with pytest.raises(ValueError, match="color fix"):
        wavelet_color_fix(torch.rand(1, 3, 16, 16), torch.rand(1, 1, 8, 8))


class _Shift(torch.nn.Module):
    """A x2 'network' that upscales by nearest neighbour and adds a colour cast."""

    scale = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cast = torch.tensor([0.15, 0.0, -0.1], dtype=x.dtype)[None, :, None, None]
        return F.interpolate(x, scale_factor=2, mode="nearest") + cast


@pytest.fixture
def cast_upscaler():
    from lightsr.inference.upscaler import Upscaler

    return Upscaler(_Shift(), scale=2, name="cast", arch="cast", config={}, fast=False)


def test_upscaler_color_fix_on_every_kind_of_image(cast_upscaler) -> None:
    rng = np.random.default_rng(0)
    img = (64 + rng.integers(0, 128, (21, 17, 3))).astype(np.uint8)
    plain = cast_upscaler.upscale(img).astype(np.float64)
    fixed = cast_upscaler.upscale(img, color_fix=True).astype(np.float64)
    ref = np.asarray(Image.fromarray(img).resize((34, 42), Image.BICUBIC), dtype=np.float64)
    cast_plain = np.abs((plain - ref).mean((0, 1))).max()
    cast_fixed = np.abs((fixed - ref).mean((0, 1))).max()
    assert cast_plain > 20 and cast_fixed < 3
    # Tiled equals untiled with the fix (the fix runs on the whole float output).
    tiled = cast_upscaler.upscale(img, color_fix=True, tile=8, tile_overlap=2)
    assert np.array_equal(tiled, fixed.astype(np.uint8))
    # RGBA keeps its alpha; gray stays gray; tensors and PIL images work.
    rgba = np.dstack([img, np.full(img.shape[:2], 200, np.uint8)])
    out = cast_upscaler.upscale(rgba, color_fix=True)
    assert out.shape == (42, 34, 4) and np.array_equal(out[..., :3], fixed.astype(np.uint8))
    gray = cast_upscaler.upscale(img[..., 0], color_fix=True)
    assert gray.shape == (42, 34)
    t = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    out_t = cast_upscaler.upscale(t, color_fix=True)
    assert out_t.shape == (3, 42, 34)
    assert np.abs(out_t.permute(1, 2, 0).numpy() * 255 - fixed).max() <= 1.0
    out_pil = cast_upscaler.upscale(Image.fromarray(img), color_fix=True)
    assert np.array_equal(np.asarray(out_pil), fixed.astype(np.uint8))


def test_cli_color_fix_flag(tmp_path) -> None:
    rng = np.random.default_rng(1)
    src = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(src)
    plain, fixed = tmp_path / "plain.png", tmp_path / "fixed.png"
    assert main(["upscale", str(src), "-o", str(plain), "--model", "safmn-x2", "-q"]) == 0
    assert (
        main(["upscale", str(src), "-o", str(fixed), "--model", "safmn-x2", "--color-fix", "-q"])
        == 0
    )
    a, b = np.asarray(Image.open(plain)), np.asarray(Image.open(fixed))
    assert a.shape == b.shape == (48, 40, 3)
    assert not np.array_equal(a, b)
