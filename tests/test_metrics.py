"""Tests of lightsr.evaluation.metrics: PSNR/SSIM with the SR papers' (BasicSR/MATLAB) conventions.

Reference values are hand-computed on tiny arrays, or come from an independent
implementation written here with scipy (``scipy.signal.correlate2d`` with a 2-D window).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lightsr.evaluation.metrics import psnr, rgb_to_y, ssim

from conftest import need_shared

PSNR_ONE_LEVEL = 20 * math.log10(255)  # MSE of 1 on the 8-bit scale: 48.1308...


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth-ish uint8 image and a noisy, slightly blurred copy of it."""
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    base = 128 + 80 * np.sin(xx / 5.0) * np.cos(yy / 7.0)
    if len(shape) == 3:
        base = np.stack([base * (0.6 + 0.2 * c) + 20 * c for c in range(shape[2])], axis=-1)
    a = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).round().astype(np.uint8)
    b = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).round().astype(np.uint8)
    return a, b


# --- independent reference implementation (scipy, BasicSR's formulas) ------------------------


def _ref_y(img: np.ndarray) -> np.ndarray:
    """BT.601 Y of an RGB uint8 image on the 0-255 scale, as BasicSR's to_y_channel."""
    rgb01 = img.astype(np.float64) / 255.0
    return (rgb01 @ np.array([65.481, 128.553, 24.966]) + 16.0) / 255.0 * 255.0


def _ref_ssim_2d(x: np.ndarray, y: np.ndarray, peak: float = 255.0) -> float:
    signal = pytest.importorskip("scipy.signal")
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def filt(img: np.ndarray) -> np.ndarray:
        return signal.correlate2d(img, window, mode="valid")

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu1, mu2 = filt(x), filt(y)
    s11 = filt(x * x) - mu1**2
    s22 = filt(y * y) - mu2**2
    s12 = filt(x * y) - mu1 * mu2
    num = (2 * mu1 * mu2 + c1) * (2 * s12 + c2)
    den = (mu1**2 + mu2**2 + c1) * (s11 + s22 + c2)
    return float(np.mean(num / den))


def _ref_psnr(x: np.ndarray, y: np.ndarray, peak: float = 255.0) -> float:
    return float(10 * np.log10(peak**2 / np.mean((x - y) ** 2)))


# --- rgb_to_y ---------------------------------------------------------------------------------


def test_rgb_to_y_bt601_studio_swing() -> None:
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]])
    y = rgb_to_y(img.astype(np.uint8))
    np.testing.assert_allclose(y[0], [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-12)
    assert y.dtype == np.float64 and y.shape == (1, 5)
    np.testing.assert_allclose(rgb_to_y(img / 255.0), y / 255.0, atol=1e-14)
    np.testing.assert_allclose(rgb_to_y((img * 257).astype(np.uint16)), y * 257, atol=1e-9)


def test_rgb_to_y_matches_reference_and_rejects_gray() -> None:
    a, _ = _pair((20, 30, 3))
    np.testing.assert_allclose(rgb_to_y(a), _ref_y(a), atol=1e-10)
    with pytest.raises(ValueError, match="HxWx3 RGB"):
        rgb_to_y(a[..., 0])


# --- PSNR ---------------------------------------------------------------------------------------


def test_psnr_one_level_offset_is_20_log10_255() -> None:
    a = np.full((8, 8), 100, dtype=np.uint8)
    assert psnr(a, a + 1) == pytest.approx(PSNR_ONE_LEVEL, abs=1e-12)
    assert PSNR_ONE_LEVEL == pytest.approx(48.1308036, abs=1e-7)
    rgb = np.full((8, 8, 3), 100, dtype=np.uint8)
    assert psnr(rgb, rgb + 1, y_channel=False) == pytest.approx(PSNR_ONE_LEVEL, abs=1e-12)
    # on Y a one-level RGB offset is (65.481 + 128.553 + 24.966) / 255 = 219 / 255 levels
    assert psnr(rgb, rgb + 1) == pytest.approx(20 * math.log10(255 * 255 / 219), abs=1e-9)


def test_psnr_16_bit_and_max_value() -> None:
    a = np.full((8, 8), 30000, dtype=np.uint16)
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(65535), abs=1e-9)
    assert psnr(a, a + 257) == pytest.approx(PSNR_ONE_LEVEL, abs=1e-9)  # 1 level of 8 bits
    b = np.full((8, 8), 100, dtype=np.uint8)
    assert psnr(b, b + 2, max_value=1023) == pytest.approx(20 * math.log10(1023 / 2), abs=1e-9)


def test_psnr_identical_is_inf_and_symmetric() -> None:
    a, b = _pair((16, 16, 3))
    assert psnr(a, a) == float("inf")
    assert psnr(a, b) == psnr(b, a)


def test_psnr_matches_reference_on_y_and_rgb() -> None:
    a, b = _pair((40, 50, 3), seed=1)
    ref_y = _ref_psnr(_ref_y(a)[3:-3, 3:-3], _ref_y(b)[3:-3, 3:-3])
    assert psnr(a, b, crop_border=3) == pytest.approx(ref_y, abs=1e-10)
    ref_rgb = _ref_psnr(a[3:-3, 3:-3].astype(float), b[3:-3, 3:-3].astype(float))
    assert psnr(a, b, crop_border=3, y_channel=False) == pytest.approx(ref_rgb, abs=1e-10)


def test_float_input_is_rounded_to_8_bit_levels() -> None:
    a, b = _pair((20, 20, 3), seed=2)
    rng = np.random.default_rng(3)
    # float images within +-0.49 of a level round back to it
    fa = (a + rng.uniform(-0.49, 0.49, a.shape)) / 255.0
    fb = (b + rng.uniform(-0.49, 0.49, b.shape)) / 255.0
    assert psnr(fa, fb) == pytest.approx(psnr(a, b), abs=1e-12)
    assert ssim(fa, fb) == pytest.approx(ssim(a, b), abs=1e-12)
    assert psnr(fa, fb, quantize=False) != pytest.approx(psnr(a, b), abs=1e-6)
    # values outside [0, 1] are clipped like a uint8 conversion would
    over = np.full((16, 16), 1.2)
    assert psnr(over, np.ones((16, 16))) == float("inf")
    # round half away from zero: 0.5 / 255 -> level 1
    half = np.full((16, 16), 0.5 / 255)
    assert psnr(half, np.full((16, 16), 1 / 255)) == float("inf")


def test_crop_border_removes_each_side() -> None:
    a = np.full((20, 24), 50, dtype=np.uint8)
    b = a.copy()
    b[:2], b[-2:], b[:, :2], b[:, -2:] = 0, 0, 0, 0
    assert psnr(a, b, crop_border=2) == float("inf")
    assert psnr(a, b, crop_border=1) < 30
    assert ssim(a, b, crop_border=2) == pytest.approx(1.0)


def test_grayscale_2d_and_1_channel_agree() -> None:
    a, b = _pair((30, 30), seed=4)
    assert psnr(a, b) == psnr(a[..., None], b[..., None])
    assert ssim(a, b) == ssim(a[..., None], b[..., None])
    assert ssim(a, b) == ssim(a, b, y_channel=False)


# --- SSIM ---------------------------------------------------------------------------------------


def test_ssim_constant_images_hand_computed() -> None:
    # no variance: SSIM = (2 m1 m2 + C1) / (m1^2 + m2^2 + C1) with C1 = (0.01 * 255)^2
    a = np.full((20, 20), 100, dtype=np.uint8)
    b = np.full((20, 20), 110, dtype=np.uint8)
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert ssim(a, b) == pytest.approx(expected, abs=1e-12)
    assert ssim(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim_matches_scipy_reference_on_y() -> None:
    a, b = _pair((48, 64, 3), seed=5)
    ref = _ref_ssim_2d(_ref_y(a)[4:-4, 4:-4], _ref_y(b)[4:-4, 4:-4])
    assert ssim(a, b, crop_border=4) == pytest.approx(ref, abs=1e-10)
    assert 0.3 < ref < 0.99  # a meaningful, non-trivial value


def test_ssim_rgb_averages_channels() -> None:
    a, b = _pair((32, 40, 3), seed=6)
    ref = np.mean(
        [_ref_ssim_2d(a[..., c].astype(float), b[..., c].astype(float)) for c in range(3)]
    )
    assert ssim(a, b, y_channel=False) == pytest.approx(ref, abs=1e-10)


def test_ssim_16_bit_uses_its_own_range() -> None:
    a, b = _pair((32, 32), seed=7)
    a16, b16 = a.astype(np.uint16) * 257, b.astype(np.uint16) * 257
    assert ssim(a16, b16) == pytest.approx(ssim(a, b), abs=1e-10)
    ref = _ref_ssim_2d(a16.astype(float), b16.astype(float), peak=65535.0)
    assert ssim(a16, b16) == pytest.approx(ref, abs=1e-10)


def test_ssim_on_a_real_image_pair() -> None:
    cv2 = pytest.importorskip("cv2")
    hr = cv2.imread(str(need_shared("datasets", "Set5", "HR", "butterfly.png")))[..., ::-1]
    lr = cv2.imread(str(need_shared("datasets", "Set5", "LR_bicubic", "X2", "butterflyx2.png")))
    up = cv2.resize(lr[..., ::-1], hr.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    ref = _ref_ssim_2d(_ref_y(hr)[2:-2, 2:-2], _ref_y(up)[2:-2, 2:-2])
    assert ssim(up, hr, crop_border=2) == pytest.approx(ref, abs=1e-10)
    ref_psnr = _ref_psnr(_ref_y(hr)[2:-2, 2:-2], _ref_y(up)[2:-2, 2:-2])
    assert psnr(up, hr, crop_border=2) == pytest.approx(ref_psnr, abs=1e-10)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_errors_say_what_was_expected(metric) -> None:
    a = np.zeros((16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"same shape, found \(16, 16, 3\) and \(16, 15, 3\)"):
        metric(a, a[:, :15])
    with pytest.raises(ValueError, match="same dtype, found uint8 and float32"):
        metric(a, a.astype(np.float32))
    with pytest.raises(ValueError, match="1 \\(gray\\) or 3 \\(RGB\\) channels"):
        metric(np.zeros((16, 16, 4), np.uint8), np.zeros((16, 16, 4), np.uint8))
    with pytest.raises(ValueError, match="dtype uint8, uint16 or float"):
        metric(a.astype(np.int32), a.astype(np.int32))
    with pytest.raises(ValueError, match="float images in \\[0, 1\\]"):
        metric(np.full((16, 16), 200.0), np.zeros((16, 16)))
    with pytest.raises(ValueError, match="crop_border"):
        metric(a, a, crop_border=8)
    with pytest.raises(TypeError, match="numpy arrays"):
        metric(a.tolist(), a)


def test_ssim_needs_an_11x11_window() -> None:
    a = np.zeros((14, 14), dtype=np.uint8)
    assert ssim(a, a, crop_border=1) == pytest.approx(1.0)  # 12x12 is enough
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(a, a, crop_border=2)


def test_rgba_is_allowed_without_y() -> None:
    a, b = _pair((16, 16, 4), seed=8)
    ref = _ref_psnr(a.astype(float), b.astype(float))
    assert psnr(a, b, y_channel=False) == pytest.approx(ref, abs=1e-10)
