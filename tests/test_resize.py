"""Tests of lightsr.evaluation.resize: MATLAB-exact bicubic imresize (numpy and torch) and modcrop.

The ground truth is the MATLAB-made LR files of Set5, Set14 and B100 in ``shared/datasets``
(``imresize(modcrop(HR, s), 1/s, 'bicubic')``, x2/x3/x4: 357 files), which must be reproduced
bit for bit, and the Bicubic rows of the SAFMN paper's Table 1.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from lightsr.evaluation.metrics import psnr, rgb_to_y, ssim
from lightsr.evaluation.resize import (
    _contributions,
    _weight_blocks,
    imresize,
    imresize_output_size,
    imresize_torch,
    modcrop,
)

from conftest import need_shared

SCALES = (2, 3, 4)
N_IMAGES = {"Set5": 5, "Set14": 14, "B100": 100}


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The torch tests are small; one thread avoids oversubscribing a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.cache
def _read_rgb(path: Path) -> np.ndarray:
    """Read a PNG as RGB (or 2-D grayscale, kept 2-D)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert img is not None, f"cannot read {path}"
    return np.ascontiguousarray(img[..., ::-1]) if img.ndim == 3 else img


@functools.cache
def _benchmark_pairs(root: Path, scale: int) -> tuple[tuple[str, np.ndarray, np.ndarray], ...]:
    """(name, modcrop(HR), numpy imresize(HR, 1/scale)) for every HR image of a dataset."""
    pairs = []
    for path in sorted((root / "HR").glob("*.png")):
        hr = modcrop(_read_rgb(path), scale)
        pairs.append((path.stem, hr, imresize(hr, 1 / scale)))
    return tuple(pairs)


def _reference_lr(root: Path, name: str, scale: int) -> np.ndarray:
    return _read_rgb(root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png")


def _dataset(name: str) -> Path:
    return need_shared("datasets", name)


# --- bit-exact reproduction of the MATLAB reference LR files -------------------------------


@pytest.mark.parametrize("dataset", ["Set5", "Set14", pytest.param("B100", marks=pytest.mark.slow)])
def test_numpy_reproduces_matlab_lr_files(dataset: str) -> None:
    root = _dataset(dataset)
    checked, mismatches = 0, []
    for scale in SCALES:
        for name, _, lr in _benchmark_pairs(root, scale):
            ref = _reference_lr(root, name, scale)
            checked += 1
            if lr.shape != ref.shape or lr.dtype != ref.dtype:
                mismatches.append(
                    f"{name} x{scale}: {lr.shape} {lr.dtype} vs {ref.shape} {ref.dtype}"
                )
            elif not np.array_equal(lr, ref):
                diff = np.abs(lr.astype(int) - ref.astype(int)).max()
                mismatches.append(f"{name} x{scale}: max difference {diff} levels")
    assert checked == 3 * N_IMAGES[dataset]
    assert not mismatches, mismatches


def test_grayscale_reference_stays_2d() -> None:
    root = _dataset("Set14")
    assert _read_rgb(root / "HR" / "bridge.png").ndim == 2
    for scale in SCALES:
        ref = _reference_lr(root, "bridge", scale)
        assert ref.ndim == 2 and ref.dtype == np.uint8


@pytest.mark.parametrize("dataset", ["Set5", "Set14", pytest.param("B100", marks=pytest.mark.slow)])
def test_torch_uint8_reproduces_matlab_lr_files(dataset: str) -> None:
    """Batched uint8 tensors (images of one shape stacked) give the MATLAB bytes too."""
    root = _dataset(dataset)
    checked, mismatches = 0, []
    for scale in SCALES:
        groups: dict[tuple[int, ...], list[str]] = {}
        hrs = {}
        for name, hr, _ in _benchmark_pairs(root, scale):
            groups.setdefault(hr.shape, []).append(name)
            hrs[name] = hr
        chunks = [names[i : i + 16] for names in groups.values() for i in range(0, len(names), 16)]
        for names in chunks:
            batch = np.stack([hrs[n] for n in names])  # (N, H, W[, C])
            x = torch.from_numpy(batch)
            x = x.permute(0, 3, 1, 2) if x.ndim == 4 else x  # (N, [C,] H, W)
            y = imresize_torch(x, 1 / scale)
            assert y.dtype == torch.uint8
            y = y.permute(0, 2, 3, 1) if y.ndim == 4 else y
            for name, lr in zip(names, y.numpy(), strict=True):
                checked += 1
                if not np.array_equal(lr, _reference_lr(root, name, scale)):
                    mismatches.append(f"{name} x{scale}")
    assert checked == 3 * N_IMAGES[dataset]
    assert not mismatches, mismatches


# --- hand-computed values and MATLAB behaviours ----------------------------------------------


def test_upscale_x2_border_repeats_edge_pixel() -> None:
    # x2 upscaling: first output pixel samples u = 0.75, taps at -1, 0, 1, 2 (1-based) with
    # weights (-3, 29, 111, -9) / 128; clamping maps -1 and 0 to 1, so the result is
    # (137 a1 - 9 a2) / 128. (MATLAB's newer symmetric padding would give 1.09375 a1 - 0.09375 a2.)
    row = np.array([[0.0, 64.0, 128.0, 192.0]])
    out = imresize(row, 2)
    assert out.shape == (2, 8)
    assert out[0, 0] == (137 * 0.0 - 9 * 64.0) / 128  # -4.5
    # pixel 3 (1-based): u = 1.75, taps 0..3 -> (-3 a1 + 29 a1 + 111 a2 - 9 a3) / 128
    assert out[0, 2] == (26 * 0.0 + 111 * 64.0 - 9 * 128.0) / 128  # 46.5
    # pixel 5: u = 2.75, taps 1..4, all inside the image
    assert out[0, 4] == (-3 * 0.0 + 29 * 64.0 + 111 * 128.0 - 9 * 192.0) / 128  # 112
    assert np.array_equal(out[0], out[1])


def test_uint8_rounds_half_away_from_zero_and_saturates() -> None:
    row = np.array([[102, 201, 81, 61]], dtype=np.uint8)
    exact = imresize(row.astype(np.float64), 2)[0]
    assert exact[5] == 68.5  # an exact tie: MATLAB gives 69, numpy's half-to-even 68
    assert imresize(row, 2)[0, 5] == 69
    expected = np.floor(exact + 0.5)
    assert np.array_equal(imresize(row, 2)[0], expected.astype(np.uint8))
    edge = np.array([[0, 0, 255, 255]], dtype=np.uint8)  # overshoots below 0 and above 255
    exact_edge = imresize(edge.astype(np.float64), 2)[0]
    assert exact_edge.min() < 0 and exact_edge.max() > 255
    assert np.array_equal(imresize(edge, 2)[0], np.clip(np.floor(exact_edge + 0.5), 0, 255))
    t = imresize_torch(torch.from_numpy(row), 2)
    assert np.array_equal(t.numpy(), imresize(row, 2))


def test_uint16_saturates_and_stays_uint16() -> None:
    edge = np.array([[0, 0, 65535, 65535]] * 3, dtype=np.uint16)
    out = imresize(edge, 2)
    assert out.dtype == np.uint16
    exact = imresize(edge.astype(np.float64), 2)
    assert np.array_equal(out, np.clip(np.floor(exact + 0.5), 0, 65535))


def test_constant_image_is_preserved() -> None:
    for dtype, value in ((np.uint8, 77), (np.uint16, 40000), (np.float32, 0.3)):
        img = np.full((17, 23, 3), value, dtype=dtype)
        for scale in (1 / 4, 1 / 3, 0.7, 1.3, 2, 3):
            out = imresize(img, scale)
            assert out.dtype == dtype
            np.testing.assert_allclose(out, value, rtol=1e-6)


def test_scale_one_is_identity() -> None:
    img = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    assert np.array_equal(imresize(img, 1), img)
    assert np.array_equal(imresize(img, size=(9, 13)), img)


@pytest.mark.parametrize(
    ("in_size", "scale", "expected"),
    [
        ((256, 256), 1 / 4, (64, 64)),
        ((321, 480), 1 / 3, (107, 160)),  # 321 / 3 in floating point stays 107
        ((10, 7), 1 / 4, (3, 2)),  # ceil(2.5), ceil(1.75)
        ((64, 48), 2, (128, 96)),
        ((64, 48), 3, (192, 144)),
        ((7, 5), 1.5, (11, 8)),  # ceil(10.5), ceil(7.5)
        ((20, 30), 2.5, (50, 75)),
        ((20, 30), 0.55, (11, 17)),  # ceil(16.5)
    ],
)
def test_output_size_is_matlab_ceil(
    in_size: tuple[int, int], scale: float, expected: tuple[int, int]
) -> None:
    assert imresize_output_size(in_size, scale)[0] == expected
    assert expected == tuple(math.ceil(s * scale) for s in in_size)
    img = np.zeros((*in_size, 3), dtype=np.uint8)
    assert imresize(img, scale).shape == (*expected, 3)
    assert imresize(img[..., 0], scale).shape == expected
    x = torch.zeros(2, 3, *in_size)
    assert imresize_torch(x, scale).shape == (2, 3, *expected)


def test_explicit_size_and_axis_order() -> None:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)
    # height scale 0.5 < width scale 1.5: the height pass comes first
    out = imresize(img, size=(20, 45))
    assert out.shape == (20, 45, 3)
    # height scale 2 > width scale 0.5: MATLAB resizes the width first (sort(scale))
    out = imresize(img, size=(80, 15))
    assert out.shape == (80, 15, 3)
    # float passes commute; with uint8 the rounding between passes reveals the order
    width_first = imresize(imresize(img, size=(40, 15)), size=(80, 15))
    height_first = imresize(imresize(img, size=(80, 30)), size=(80, 15))
    assert np.array_equal(out, width_first)
    assert not np.array_equal(out, height_first)
    x = torch.from_numpy(img).permute(2, 0, 1)
    y = imresize_torch(x, size=(80, 15)).permute(1, 2, 0).numpy()
    assert np.array_equal(y, imresize(img, size=(80, 15)))


def test_numpy_layouts_agree() -> None:
    img = np.random.default_rng(2).random((31, 22, 3))
    out = imresize(img, 1 / 3)
    for c in range(3):
        np.testing.assert_array_equal(imresize(img[..., c], 1 / 3), out[..., c])
    assert imresize(img.astype(np.float32), 1 / 3).dtype == np.float32


# --- torch path -------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 1 / 2, 0.37, 1.5, 2, 2.5, 3, 4])
def test_torch_float_matches_numpy(scale: float) -> None:
    rng = np.random.default_rng(3)
    img = rng.random((2, 3, 37, 53))
    ref = np.stack([np.moveaxis(imresize(np.moveaxis(i, 0, -1), scale), -1, 0) for i in img])
    out32 = imresize_torch(torch.from_numpy(img).float(), scale)
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), ref, atol=1e-5)
    out64 = imresize_torch(torch.from_numpy(img), scale)
    np.testing.assert_allclose(out64.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 0.37, 1.5, 2.5, 4])
def test_torch_banded_blocks_match_numpy(scale: float) -> None:
    """Long axes are split into blocks of the band of the weight matrix; same result."""
    img = np.random.default_rng(4).random((150, 700))
    assert (
        len(_weight_blocks(700, math.ceil(700 * scale), scale, torch.float64, torch.device("cpu")))
        > 1
    )
    ref = imresize(img, scale)
    out = imresize_torch(torch.from_numpy(img), scale)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12)
    u8 = (img * 255).round().astype(np.uint8)
    assert np.array_equal(imresize_torch(torch.from_numpy(u8), scale).numpy(), imresize(u8, scale))


def test_torch_half_precision_input_keeps_dtype() -> None:
    x = torch.rand(1, 3, 16, 16)
    for dtype in (torch.float16, torch.bfloat16):
        y = imresize_torch(x.to(dtype), 1 / 2)
        assert y.dtype == dtype and y.shape == (1, 3, 8, 8)
        torch.testing.assert_close(y.float(), imresize_torch(x, 1 / 2), atol=2e-2, rtol=0)


def test_torch_gradients_flow() -> None:
    x = torch.rand(2, 3, 24, 20, requires_grad=True)
    y = imresize_torch(x, 1 / 4)
    assert y.shape == (2, 3, 6, 5) and y.requires_grad
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    small = torch.rand(1, 1, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: imresize_torch(t, 0.5), (small,))
    assert torch.autograd.gradcheck(lambda t: imresize_torch(t, 1.5), (small,))
    row = torch.rand(1, 130, dtype=torch.float64, requires_grad=True)  # banded blocks
    assert len(_weight_blocks(130, 260, 2.0, torch.float64, torch.device("cpu"))) > 1
    assert torch.autograd.gradcheck(lambda t: imresize_torch(t, 2), (row,))


def test_weights_are_cached() -> None:
    x = torch.rand(2, 3, 48, 40)
    imresize_torch(x, 1 / 4)
    hits = _weight_blocks.cache_info().hits
    imresize_torch(x, 1 / 4)
    assert _weight_blocks.cache_info().hits == hits + 2  # one per axis
    indices, weights = _contributions(48, 12, 0.25)
    assert _contributions(48, 12, 0.25)[0] is indices
    assert not indices.flags.writeable and not weights.flags.writeable
    assert indices.shape == weights.shape == (12, 16)  # 4 / scale + 2 candidates, 2 all-zero
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-15)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_numpy() -> None:
    img = np.random.default_rng(5).integers(0, 256, (2, 3, 300, 260), dtype=np.uint8)
    x = torch.from_numpy(img).cuda()
    for scale in (1 / 4, 1 / 3, 1.5, 2):
        ref = np.stack([np.moveaxis(imresize(np.moveaxis(i, 0, -1), scale), -1, 0) for i in img])
        assert np.array_equal(imresize_torch(x, scale).cpu().numpy(), ref)
        out = imresize_torch(x.float() / 255, scale).cpu().numpy()
        ref_f = imresize_torch(torch.from_numpy(img).float() / 255, scale).numpy()
        np.testing.assert_allclose(out, ref_f, atol=1e-5)


def test_torch_accepts_plain_2d_and_5d() -> None:
    x = torch.rand(12, 8)
    assert imresize_torch(x, 1 / 2).shape == (6, 4)
    assert imresize_torch(torch.rand(2, 2, 3, 12, 8), 2).shape == (2, 2, 3, 24, 16)


# --- modcrop and errors -----------------------------------------------------------------------


def test_modcrop_keeps_top_left() -> None:
    img = np.arange(7 * 10 * 3).reshape(7, 10, 3)
    out = modcrop(img, 3)
    assert out.shape == (6, 9, 3)
    assert np.array_equal(out, img[:6, :9])
    assert modcrop(img[..., 0], 4).shape == (4, 8)
    assert modcrop(img, 1).shape == img.shape
    with pytest.raises(ValueError, match="positive integer scale"):
        modcrop(img, 0)
    with pytest.raises(ValueError, match="positive integer scale"):
        modcrop(img, 2.0)  # type: ignore[arg-type]


def test_errors_say_what_was_expected() -> None:
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="exactly one of"):
        imresize(img)
    with pytest.raises(ValueError, match="exactly one of"):
        imresize(img, 2, size=(4, 4))
    with pytest.raises(ValueError, match="positive finite"):
        imresize(img, -2)
    with pytest.raises(ValueError, match="two positive integers"):
        imresize(img, size=(0, 4))
    with pytest.raises(ValueError, match="expected dtype uint8, uint16"):
        imresize(img.astype(np.int32), 2)
    with pytest.raises(ValueError, match="HxW or HxWxC"):
        imresize(np.zeros((2, 8, 8, 3), dtype=np.uint8), 2)
    with pytest.raises(TypeError, match="imresize_torch"):
        imresize(torch.zeros(8, 8), 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="floating-point or uint8"):
        imresize_torch(torch.zeros(8, 8, dtype=torch.int32), 2)
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
        imresize_torch(torch.zeros(8), 2)


# --- the Bicubic rows of the SAFMN paper (Table 1) -------------------------------------------

# (PSNR, SSIM) printed in the paper (design.md), per dataset and scale
PAPER_BICUBIC = {
    "Set5": {2: (33.66, 0.9299), 3: (30.39, 0.8682), 4: (28.42, 0.8104)},
    "Set14": {2: (30.24, 0.8688), 3: (27.55, 0.7742), 4: (26.00, 0.7027)},
    "B100": {2: (29.56, 0.8431), 3: (27.21, 0.7385), 4: (25.96, 0.6675)},
}

# Our measurement with the evaluation convention of design.md (LR = imresize of the RGB HR,
# SR = imresize(LR, s) as uint8 RGB, PSNR/SSIM on unrounded Y, crop s): a regression pin.
MEASURED_RGB_BICUBIC = {
    "Set5": {2: (33.6741, 0.93029), 3: (30.4047, 0.86891), 4: (28.4302, 0.81114)},
    "Set14": {2: (30.2319, 0.86905), 3: (27.5391, 0.77447), 4: (25.9970, 0.70292)},
    "B100": {2: (29.5605, 0.84340), 3: (27.2097, 0.73907), 4: (25.9620, 0.66807)},
}


@pytest.mark.parametrize("dataset", ["Set5", "Set14", pytest.param("B100", marks=pytest.mark.slow)])
def test_bicubic_rgb_protocol(dataset: str) -> None:
    """design.md's convention: within 0.02 dB / 0.001 of the paper, pinned to our measurement.

    The paper's rows were made with the older VDSR protocol (next test); on RGB images the
    Set5 PSNR reads 0.010-0.015 dB higher, so 0.01 dB cannot hold here for Set5.
    """
    root = _dataset(dataset)
    for scale in SCALES:
        scores = []
        for _, hr, lr in _benchmark_pairs(root, scale):
            sr = imresize(lr, scale)
            assert sr.shape == hr.shape and sr.dtype == np.uint8
            scores.append((psnr(sr, hr, crop_border=scale), ssim(sr, hr, crop_border=scale)))
        mean_psnr, mean_ssim = np.mean(scores, axis=0)
        pinned_psnr, pinned_ssim = MEASURED_RGB_BICUBIC[dataset][scale]
        assert abs(mean_psnr - pinned_psnr) < 1e-3, (dataset, scale, mean_psnr)
        assert abs(mean_ssim - pinned_ssim) < 1e-4, (dataset, scale, mean_ssim)
        if dataset != "Set14":  # Set14 versions differ between papers; not compared
            paper_psnr, paper_ssim = PAPER_BICUBIC[dataset][scale]
            assert abs(mean_psnr - paper_psnr) < 0.02, (dataset, scale, mean_psnr)
            assert abs(mean_ssim - paper_ssim) < 1e-3, (dataset, scale, mean_ssim)


@pytest.mark.parametrize("dataset", ["Set5", pytest.param("B100", marks=pytest.mark.slow)])
def test_bicubic_paper_rows(dataset: str) -> None:
    """The paper's Bicubic rows, reproduced to the printed digits (0.01 dB / 0.001).

    They follow the protocol of VDSR's MATLAB script, inherited by later papers: HR -> uint8 Y
    (MATLAB ``rgb2ycbcr`` on uint8, rounded); LR and SR made by imresize of that Y in double
    precision; SR rounded to uint8; PSNR/SSIM on it with crop s.
    """
    root = _dataset(dataset)
    for scale in SCALES:
        scores = []
        for _, hr, _ in _benchmark_pairs(root, scale):
            y = hr if hr.ndim == 2 else np.floor(rgb_to_y(hr) + 0.5).astype(np.uint8)
            sr = imresize(imresize(y.astype(np.float64), 1 / scale), scale)
            sr = np.clip(np.floor(sr + 0.5), 0, 255).astype(np.uint8)
            scores.append((psnr(sr, y, crop_border=scale), ssim(sr, y, crop_border=scale)))
        mean_psnr, mean_ssim = np.mean(scores, axis=0)
        paper_psnr, paper_ssim = PAPER_BICUBIC[dataset][scale]
        assert abs(mean_psnr - paper_psnr) < 0.01, (dataset, scale, mean_psnr)
        assert abs(mean_ssim - paper_ssim) < 1e-3, (dataset, scale, mean_ssim)
