"""PSNR and SSIM with the conventions of the SR papers.

The de-facto reference is BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with
``test_y_channel=True``, which follow the MATLAB evaluation scripts of the SR literature:

1. The SR output is quantised to the image's bit depth first (float ``[0, 1]`` images become
   8-bit levels ``round(clip(x, 0, 1) * 255)``; pass ``quantize=False`` to keep them as is).
2. ``crop_border`` pixels are removed from every side (papers use ``crop_border = scale``).
3. RGB images are reduced to the luma Y of ITU-R BT.601 "studio swing" YCbCr (MATLAB's
   ``rgb2ycbcr``): ``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in ``[0, 1]``, i.e.
   ``[16, 235]`` on the 0-255 scale. Y is *not* rounded (as in BasicSR). Grayscale images
   (``HxW`` or ``HxWx1``) are used directly.
4. Everything is computed in float64 on the image's own scale: ``L = 255`` for uint8 and for
   float images (which are mapped to 0-255 in step 1), ``L = 65535`` for uint16. For uint16 the
   Y formula is scaled by 257 (``65535 / 255``), so 16-bit PSNR/SSIM equal the 8-bit ones of
   the same picture up to quantisation.
5. PSNR ``= 10 log10(L^2 / MSE)``, MSE over all pixels (and channels); identical images give
   ``float('inf')``.
6. SSIM (Wang et al. 2004): 11x11 Gaussian window with sigma 1.5 (normalised to sum 1),
   ``C1 = (0.01 L)^2``, ``C2 = (0.03 L)^2``, only the 'valid' region where the window fits
   (MATLAB ``filter2(..., 'valid')``), mean of the SSIM map; multi-channel images
   (``y_channel=False``) average the per-channel SSIM.

Images are numpy arrays, ``HxW`` or ``HxWxC`` with channels in **RGB** order (convert OpenCV's
BGR first: ``img[..., ::-1]``). Only numpy is used.

Note: pyiqa's default "PSNR-Y" uses another luma formula and reads about 1.3 dB lower; these
functions reproduce the numbers printed in the papers.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = ["psnr", "rgb_to_y", "ssim"]

# BT.601 luma coefficients for RGB in [0, 1] giving Y on the 0-255 scale (MATLAB rgb2ycbcr)
_Y_OFFSET = 16.0
_Y_WEIGHTS = (65.481, 128.553, 24.966)
_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1 = 0.01
_SSIM_K2 = 0.03


def _scale_of(dtype: np.dtype) -> float:
    """Full-scale value L of an image dtype (float images are evaluated on the 8-bit scale)."""
    if dtype == np.uint8 or dtype.kind == "f":
        return 255.0
    if dtype == np.uint16:
        return 65535.0
    raise ValueError(
        f"expected an image of dtype uint8, uint16 or float (in [0, 1]), found {dtype}; "
        "convert it first"
    )


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Luma Y of BT.601 studio-swing YCbCr (MATLAB ``rgb2ycbcr(img)(:, :, 1)``), unrounded.

    Args:
        img: ``HxWx3`` image in **RGB** order (not BGR): uint8 (0-255), uint16 (0-65535) or
            float (``[0, 1]``).

    Returns:
        ``HxW`` float64 Y on the input's own scale: ``16 + (65.481 R + 128.553 G + 24.966 B)``
        with RGB in ``[0, 1]``, i.e. ``[16, 235]`` for uint8, ``257 * [16, 235]`` for uint16
        and ``[16, 235] / 255`` for float input (as MATLAB returns for double images).
    """
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", None)
        raise ValueError(
            f"rgb_to_y: expected an HxWx3 RGB array, found shape {shape}; "
            "grayscale images need no conversion"
        )
    full = 1.0 if img.dtype.kind == "f" else _scale_of(img.dtype)
    return _luma(img.astype(np.float64), full)


def _luma(rgb: np.ndarray, full: float) -> np.ndarray:
    """Y of a float64 HxWx3 RGB array on the scale 0-``full``: ``(16 full + w . rgb) / 255``."""
    wr, wg, wb = _Y_WEIGHTS
    y = (wr * rgb[..., 0] + wg * rgb[..., 1] + wb * rgb[..., 2]) / 255.0
    return y + _Y_OFFSET * full / 255.0


def _quantize(img: np.ndarray) -> np.ndarray:
    """Float ``[0, 1]`` -> 8-bit levels 0..255 (clip, round half away from zero), as float64."""
    v = np.clip(img.astype(np.float64) * 255.0, 0.0, 255.0)
    f = np.floor(v)
    return f + ((v - f) >= 0.5)


def _prepare(
    a: np.ndarray, b: np.ndarray, crop_border: int, y_channel: bool, quantize: bool, name: str
) -> tuple[np.ndarray, np.ndarray, float]:
    """Check, quantise, crop and convert two images; returns float64 ``HxW[xC]`` arrays and L."""
    for label, img in (("a", a), ("b", b)):
        if not isinstance(img, np.ndarray):
            raise TypeError(
                f"{name}: expected numpy arrays, found {type(img).__name__} for `{label}`; "
                "convert tensors with .cpu().numpy() and CHW to HWC"
            )
    if a.shape != b.shape:
        raise ValueError(
            f"{name}: expected two images of the same shape, found {a.shape} and {b.shape}; "
            "crop the HR image to a multiple of the scale (modcrop) or check the SR output size"
        )
    if a.dtype != b.dtype:
        raise ValueError(
            f"{name}: expected two images of the same dtype, found {a.dtype} and {b.dtype}; "
            "convert both to uint8 (or both to float in [0, 1]) first"
        )
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] < 1):
        raise ValueError(f"{name}: expected HxW or HxWxC images, found shape {a.shape}")
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer crop_border, found {crop_border!r}")
    h, w = a.shape[:2]
    if crop_border < 0 or 2 * crop_border >= min(h, w):
        raise ValueError(
            f"{name}: expected 0 <= crop_border < {(min(h, w) + 1) // 2} for a {h}x{w} image, "
            f"found {crop_border}"
        )
    scale = _scale_of(a.dtype)
    channels = 1 if a.ndim == 2 else a.shape[2]
    if y_channel and channels not in (1, 3):
        raise ValueError(
            f"{name}: expected 1 (gray) or 3 (RGB) channels for y_channel=True, found {channels}; "
            "drop the alpha channel (img[..., :3]) or pass y_channel=False"
        )

    out = []
    for img in (a, b):
        if crop_border:
            img = img[crop_border:-crop_border, crop_border:-crop_border]
        if img.dtype.kind == "f":  # -> 0-255 scale
            lo, hi = float(img.min()), float(img.max())
            if lo < -1.0 or hi > 2.0:
                raise ValueError(
                    f"{name}: expected float images in [0, 1], found values in [{lo:g}, {hi:g}]; "
                    "divide 0-255 data by 255 or pass uint8 arrays"
                )
            img = _quantize(img) if quantize else img.astype(np.float64) * 255.0
        else:
            img = img.astype(np.float64)
        if channels == 3 and y_channel:
            img = _luma(img, scale)
        elif img.ndim == 3 and channels == 1:
            img = img[..., 0]
        out.append(img)
    return out[0], out[1], scale


def psnr(
    a: np.ndarray,
    b: np.ndarray,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    max_value: float | None = None,
    quantize: bool = True,
) -> float:
    """Peak signal-to-noise ratio in dB, SR-paper convention (see the module docstring).

    Args:
        a, b: images of the same shape and dtype, ``HxW`` or ``HxWxC`` (RGB order):
            uint8, uint16, or float in ``[0, 1]``. The order of ``a`` and ``b`` does not matter.
        crop_border: pixels removed from each side before measuring (papers: the SR scale).
        y_channel: measure on BT.601 luma Y for 3-channel images; else on all channels.
            1-channel images are always used directly.
        max_value: peak value L; default 255 for uint8 and float, 65535 for uint16.
        quantize: round float images to 8-bit levels first (``round(clip(x, 0, 1) * 255)``).

    Returns:
        ``10 * log10(L**2 / MSE)``; ``float('inf')`` for identical images.
    """
    x, y, scale = _prepare(a, b, crop_border, y_channel, quantize, "psnr")
    peak = scale if max_value is None else float(max_value)
    mse = float(np.mean((x - y) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(peak * peak / mse)


@functools.lru_cache(maxsize=1)
def _gaussian_window() -> np.ndarray:
    """1-D Gaussian of SSIM (size 11, sigma 1.5, sum 1); the 2-D window is its outer product."""
    t = np.arange(_SSIM_WINDOW, dtype=np.float64) - (_SSIM_WINDOW - 1) / 2
    g = np.exp(-(t * t) / (2 * _SSIM_SIGMA**2))
    g /= g.sum()
    g.setflags(write=False)
    return g


def _filter_valid(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of an HxW array with the window ``outer(g, g)``."""
    n = len(g)
    h, w = img.shape
    rows = g[0] * img[: h - n + 1]
    for k in range(1, n):
        rows += g[k] * img[k : h - n + 1 + k]
    out = g[0] * rows[:, : w - n + 1]
    for k in range(1, n):
        out += g[k] * rows[:, k : w - n + 1 + k]
    return out


def _ssim_2d(x: np.ndarray, y: np.ndarray, scale: float) -> float:
    """Mean SSIM of two float64 HxW arrays on the 0-``scale`` range."""
    c1 = (_SSIM_K1 * scale) ** 2
    c2 = (_SSIM_K2 * scale) ** 2
    g = _gaussian_window()
    mu_x = _filter_valid(x, g)
    mu_y = _filter_valid(y, g)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    var_x = _filter_valid(x * x, g) - mu_xx
    var_y = _filter_valid(y * y, g) - mu_yy
    cov = _filter_valid(x * y, g) - mu_xy
    ssim_map = ((2 * mu_xy + c1) * (2 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2))
    return float(ssim_map.mean())


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    *,
    crop_border: int = 0,
    y_channel: bool = True,
    quantize: bool = True,
) -> float:
    """Structural similarity, SR-paper convention (see the module docstring).

    Args:
        a, b: images of the same shape and dtype, ``HxW`` or ``HxWxC`` (RGB order):
            uint8, uint16, or float in ``[0, 1]``; at least 11x11 after cropping.
        crop_border: pixels removed from each side before measuring (papers: the SR scale).
        y_channel: measure on BT.601 luma Y for 3-channel images; else average the SSIM of
            the channels. 1-channel images are always used directly.
        quantize: round float images to 8-bit levels first (``round(clip(x, 0, 1) * 255)``).

    Returns:
        Mean SSIM over the 'valid' window positions (1.0 for identical images).
    """
    x, y, scale = _prepare(a, b, crop_border, y_channel, quantize, "ssim")
    if min(x.shape[:2]) < _SSIM_WINDOW:
        raise ValueError(
            f"ssim: expected at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after cropping "
            f"{crop_border} from each border, found {x.shape[0]}x{x.shape[1]}"
        )
    if x.ndim == 2:
        return _ssim_2d(x, y, scale)
    return float(np.mean([_ssim_2d(x[..., c], y[..., c], scale) for c in range(x.shape[2])]))
