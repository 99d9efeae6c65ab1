"""Inference: golden outputs, padding, tiling, image kinds, precision."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightsr.errors import LightSRError
from lightsr.inference.io import read_image
from lightsr.inference.tiling import pad_to_multiple, tiled_apply
from lightsr.inference.upscaler import Upscaler, load_model

from conftest import need_shared


@pytest.fixture(scope="module")
def x2() -> Upscaler:
    return load_model(need_shared("weights", "safmn", "SAFMN_DF2K_x2.pth"), device="cpu")


@pytest.mark.parametrize("size", ["16x16", "32x32", "64x64"])
def test_golden_outputs(x2: Upscaler, size: str) -> None:
    img = read_image(need_shared("golden", "inputs", f"{size}.png"))
    ref = read_image(need_shared("golden", "outputs", size, "SAFMN_DF2K_x2.png"))
    out = x2.upscale(img)
    assert out.shape == ref.shape and out.dtype == np.uint8
    # The checkpoint was stored in fp16: at most one level off, on few pixels.
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.1


@pytest.mark.parametrize(("h", "w"), [(1, 1), (37, 53), (7, 100), (8, 8), (2, 9)])
def test_pad_to_multiple(h: int, w: int) -> None:
    x = torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)
    y = pad_to_multiple(x, 8)
    assert y.shape[-2] % 8 == 0 and y.shape[-1] % 8 == 0
    assert y.shape[-2] - h < 8 and y.shape[-1] - w < 8
    torch.testing.assert_close(y[..., :h, :w], x)
    if h > 1 and y.shape[-2] > h:  # reflection, not edge repetition
        assert y[0, 0, h, 0] == x[0, 0, h - 2, 0]


def test_tiled_apply_covers_every_row_once() -> None:
    rows: list[tuple[int, int]] = []

    def fn(t: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(t, scale_factor=3, mode="nearest")

    x = torch.rand(3, 45, 70)
    out = torch.full((3, 135, 210), -1.0)

    def emit(r0: int, r: torch.Tensor) -> None:
        rows.append((r0, r.shape[1]))
        out[:, r0 : r0 + r.shape[1]] = r

    tiled_apply(fn, x, scale=3, multiple=8, emit=emit, tile=16, overlap=8)
    assert rows[0][0] == 0 and sum(n for _, n in rows) == 135
    assert all(a + n == b for (a, n), (b, _) in itertools.pairwise(rows))
    # a pointwise "network": tiling must be exact
    torch.testing.assert_close(out, fn(x[None])[0])


@pytest.mark.parametrize(("tile", "overlap"), [(8, 32), (24, 32), (40, 32), (200, 32)])
def test_tiled_equals_untiled_odd_size(x2: Upscaler, tile: int, overlap: int) -> None:
    hr = read_image(need_shared("datasets", "Set5", "HR", "butterfly.png"))
    img = hr[:37, :53].astype(np.float32) / 255.0
    full = x2.upscale(img)
    tiled = x2.upscale(img, tile=tile, tile_overlap=overlap)
    assert np.abs(tiled - full).max() <= 1 / 255


@pytest.mark.slow
def test_tiled_equals_untiled_large(x2: Upscaler) -> None:
    import cv2

    hr = read_image(need_shared("datasets", "B100", "HR", "img_001.png"))
    img = cv2.resize(hr, (703, 1001), interpolation=cv2.INTER_AREA)  # 1001 x 703 (H x W)
    full = x2.upscale(img)
    tiled = x2.upscale(img, tile=192)
    assert tiled.shape == (2002, 1406, 3)
    assert np.abs(tiled.astype(int) - full.astype(int)).max() <= 1


def test_grayscale_in_grayscale_out(x2: Upscaler) -> None:
    g = read_image(need_shared("golden", "inputs", "32x32.png"))[..., 1]
    out = x2.upscale(g)
    assert out.shape == (64, 64) and out.dtype == np.uint8
    rgb = x2.upscale(np.dstack([g, g, g]))
    assert np.abs(out.astype(int) - rgb.mean(2)).max() <= 1


def test_rgba_keeps_alpha(x2: Upscaler) -> None:
    rgb = read_image(need_shared("golden", "inputs", "32x32.png"))
    alpha = np.zeros((32, 32), np.uint8)
    alpha[:, 16:] = 255
    out = x2.upscale(np.dstack([rgb, alpha]))
    assert out.shape == (64, 64, 4)
    np.testing.assert_array_equal(out[..., :3], x2.upscale(rgb))
    # a hard edge rings a little in SR; away from it alpha stays at its value
    assert (out[:, :28, 3] <= 4).all() and (out[:, 40:, 3] >= 250).all()


def test_16_bit_keeps_precision(x2: Upscaler) -> None:
    rgb = read_image(need_shared("golden", "inputs", "32x32.png")).astype(np.uint16) * 257
    fine = rgb + np.random.default_rng(0).integers(0, 256, rgb.shape).astype(np.uint16)
    out = x2.upscale(fine)
    assert out.dtype == np.uint16 and out.shape == (64, 64, 3)
    assert (out % 257 != 0).mean() > 0.9  # not an 8-bit result scaled up
    # the low byte reached the model: the output differs from the 8-bit-quantised input's
    assert not np.array_equal(out, x2.upscale(rgb))


def test_pil_kinds(x2: Upscaler) -> None:
    rgb = read_image(need_shared("golden", "inputs", "16x16.png"))
    pal = Image.fromarray(rgb).quantize(16)
    out = x2.upscale(pal)
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (32, 32)
    g16 = Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
    out16 = x2.upscale(g16)
    assert out16.mode == "I;16" and out16.size == (32, 32)
    assert x2.upscale(Image.fromarray(rgb).convert("RGBA")).mode == "RGBA"


def test_tensor_in_tensor_out(x2: Upscaler) -> None:
    t = torch.rand(2, 3, 16, 24)
    out = x2.upscale(t)
    assert out.shape == (2, 3, 32, 48) and out.dtype == torch.float32
    torch.testing.assert_close(out[1], x2.upscale(t[1]))
    assert 0 <= out.min() and out.max() <= 1


def test_float_numpy_and_bad_arrays(x2: Upscaler) -> None:
    out = x2.upscale(np.random.default_rng(0).random((9, 11, 3)).astype(np.float32))
    assert out.dtype == np.float32 and out.shape == (18, 22, 3)
    with pytest.raises(LightSRError, match="HxW"):
        x2.upscale(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(LightSRError, match="dtype int32"):
        x2.upscale(np.zeros((4, 4, 3), np.int32))


def test_precision_choices(x2: Upscaler) -> None:
    path = need_shared("weights", "safmn", "SAFMN_DF2K_x2.pth")
    with pytest.raises(LightSRError, match="fp16 needs a CUDA GPU"):
        load_model(path, device="cpu", precision="fp16")
    with pytest.raises(LightSRError, match="precision"):
        load_model(path, device="cpu", precision="int8")
    bf16 = load_model(path, device="cpu", precision="bf16")
    img = read_image(need_shared("golden", "inputs", "64x64.png")).astype(np.float32) / 255
    a, b = x2.upscale(img), bf16.upscale(img)
    psnr = 10 * np.log10(1 / np.mean((a - b) ** 2))
    assert psnr > 40


def test_named_model_without_weights_says_what_to_do() -> None:
    with pytest.raises(LightSRError, match="--weights"):
        load_model("safmn-l-x4")
    with pytest.raises(LightSRError, match="unknown model"):
        load_model("esrgan")


def test_scale_mismatch(tmp_path: Path) -> None:
    with pytest.raises(LightSRError, match="x2, but scale 4"):
        load_model(need_shared("weights", "safmn", "SAFMN_DF2K_x2.pth"), scale=4)
