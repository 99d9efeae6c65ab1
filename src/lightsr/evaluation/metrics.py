"""PSNR and SSIM with the conventions of the SR papers, and the no-reference NIQE.

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

NIQE (:func:`niqe`, Mittal et al., "Making a 'completely blind' image quality analyzer", IEEE
SPL 2013) follows the authors' MATLAB release (``computequality.m`` with its
``modelparameters.mat``) on the Y channel, as BasicSR's ``calculate_niqe(convert_to='y')`` does
(Set14 ``baboon``: 5.72957 in MATLAB R2021a):

1. Y = MATLAB ``rgb2ycbcr`` luma rounded to 8-bit levels (gray images are used directly);
   ``crop_border`` pixels removed from each side; the top-left multiple of 96x96 kept.
2. Two scales: the image, then MATLAB ``imresize(Y, 0.5)`` (bicubic, antialiased, float64).
3. MSCN coefficients ``(Y - mu) / (sigma + 1)``, mu and sigma from a 7x7 Gaussian window
   (sigma 7/6, sum 1) with replicated borders (MATLAB ``imfilter(..., 'replicate')``).
4. Per 96x96 block (48x48 at the second scale) 18 features: an asymmetric generalized Gaussian
   (AGGD) fit of the MSCN coefficients (shape, mean of the left and right scales), and AGGD fits
   of the products with the block circularly shifted horizontally, vertically and along both
   diagonals (shape, mean, left scale, right scale). Shapes come from the moment-ratio lookup
   over ``0.2:0.001:10``, as in ``estimateaggdparam.m``.
5. The 36 features of all blocks give mu (NaN-ignoring mean) and covariance (over the blocks
   without NaN, MATLAB ``nancov``); NIQE ``= sqrt((mu_p - mu)^T pinv((C_p + C) / 2) (mu_p -
   mu))`` with the pristine model (mu_p, C_p) of the release, shipped in
   ``niqe_pris_params.npz`` (provenance in ``niqe_pris_params.md``). Lower is better. As in
   MATLAB, no block is dropped at test time (the sharpness selection is for model fitting).
"""

from __future__ import annotations

import functools
import math
from importlib import resources

import numpy as np

from lightsr.errors import LightSRError

__all__ = ["niqe", "psnr", "rgb_to_y", "ssim"]

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


# --- NIQE -------------------------------------------------------------------------------------

_NIQE_BLOCK = 96
_NIQE_WINDOW = 7
_NIQE_SIGMA = 7.0 / 6.0
_NIQE_PARAMS = "niqe_pris_params.npz"
# Circular shifts of the paired products (rows, columns): horizontal, vertical, both diagonals
_NIQE_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


@functools.lru_cache(maxsize=1)
def _niqe_model() -> tuple[np.ndarray, np.ndarray]:
    """The pristine model of the NIQE release: mu (36,) and covariance (36, 36), read-only."""
    with resources.files(__package__).joinpath(_NIQE_PARAMS).open("rb") as f:
        with np.load(f) as data:
            mu = np.asarray(data["mu_prisparam"], dtype=np.float64).reshape(-1)
            cov = np.asarray(data["cov_prisparam"], dtype=np.float64)
    mu.setflags(write=False)
    cov.setflags(write=False)
    return mu, cov


@functools.lru_cache(maxsize=1)
def _aggd_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lookup over the shapes ``0.2:0.001:10`` of ``estimateaggdparam.m``.

    Returns (shapes, ``gamma(2/g)^2 / (gamma(1/g) gamma(3/g))``, the scale factor
    ``sqrt(gamma(1/g) / gamma(3/g))``, the mean factor ``gamma(2/g) / gamma(1/g)``).
    """
    gam = (200 + np.arange(9801)) / 1000.0  # each the double nearest to 0.2 + 0.001 k
    g1 = np.array([math.gamma(1.0 / g) for g in gam])
    g2 = np.array([math.gamma(2.0 / g) for g in gam])
    g3 = np.array([math.gamma(3.0 / g) for g in gam])
    out = (gam, g2 * g2 / (g1 * g3), np.sqrt(g1 / g3), g2 / g1)
    for a in out:
        a.setflags(write=False)
    return out


def _aggd_fit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """AGGD fits of the rows of ``v`` (m, n), as ``estimateaggdparam.m`` plus the mean.

    Returns (shape alpha, left scale, right scale, mean ``(br - bl) gamma(2/a) / gamma(1/a)``),
    each of shape (m,). A row without negative (positive) values has a NaN left (right) scale,
    as in MATLAB; a row of zeros gets the first shape, 0.2, as MATLAB's ``min`` returns.
    """
    gam, r_gam, scale_factor, mean_factor = _aggd_table()
    sq = v * v
    neg, pos = v < 0, v > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt(np.where(neg, sq, 0.0).sum(axis=1) / neg.sum(axis=1))
        right = np.sqrt(np.where(pos, sq, 0.0).sum(axis=1) / pos.sum(axis=1))
        gammahat = left / right
        rhat = np.abs(v).mean(axis=1) ** 2 / sq.mean(axis=1)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / ((gammahat**2 + 1) ** 2)
    idx = np.empty(len(v), dtype=np.intp)
    for i in range(0, len(v), 64):  # the first minimum of the squared difference, as min()
        d = r_gam[None, :] - rhatnorm[i : i + 64, None]
        idx[i : i + 64] = np.argmin(d * d, axis=1)  # an all-NaN row gives 0, as in MATLAB
    bl = left * scale_factor[idx]
    br = right * scale_factor[idx]
    return gam[idx], bl, br, (br - bl) * mean_factor[idx]


@functools.lru_cache(maxsize=1)
def _niqe_window() -> np.ndarray:
    """1-D Gaussian of NIQE (size 7, sigma 7/6, sum 1); ``fspecial('gaussian', 7, 7/6)``."""
    t = np.arange(_NIQE_WINDOW, dtype=np.float64) - (_NIQE_WINDOW - 1) / 2
    g = np.exp(-(t * t) / (2 * _NIQE_SIGMA**2))
    g /= g.sum()
    g.setflags(write=False)
    return g


def _mscn(img: np.ndarray) -> np.ndarray:
    """MSCN coefficients ``(img - mu) / (sigma + 1)`` with replicated borders (float64 HxW)."""
    g = _niqe_window()
    r = len(g) // 2
    mu = _filter_valid(np.pad(img, r, mode="edge"), g)
    mu_sq = _filter_valid(np.pad(img * img, r, mode="edge"), g)
    sigma = np.sqrt(np.abs(mu_sq - mu * mu))
    return (img - mu) / (sigma + 1.0)


def _niqe_block_features(mscn: np.ndarray, block: int) -> np.ndarray:
    """The 18 features of each ``block`` x ``block`` block, blocks in MATLAB's column order."""
    h, w = mscn.shape
    blocks = mscn.reshape(h // block, block, w // block, block).transpose(2, 0, 1, 3)
    blocks = blocks.reshape(-1, block, block)
    n = len(blocks)
    products = [blocks * np.roll(blocks, s, axis=(1, 2)) for s in _NIQE_SHIFTS]
    alpha, bl, br, mean = _aggd_fit(np.concatenate([blocks, *products]).reshape(5 * n, -1))
    feats = [alpha[:n], (bl[:n] + br[:n]) / 2]
    for k in range(1, 5):
        part = slice(k * n, (k + 1) * n)
        feats += [alpha[part], mean[part], bl[part], br[part]]
    return np.stack(feats, axis=1)


def _niqe_distance(feats: np.ndarray) -> float:
    """NIQE of a (blocks, 36) feature matrix against the pristine model (NaN-aware, as MATLAB)."""
    complete = feats[~np.isnan(feats).any(axis=1)]
    if len(complete) == 0:
        raise LightSRError(
            f"niqe: the features of all {len(feats)} blocks are undefined (NaN), as for a flat "
            "image; NIQE needs texture in at least one 96x96 block"
        )
    mu = np.nanmean(feats, axis=0)
    # MATLAB's cov normalises a single observation by 1, giving zeros
    cov = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros((36, 36))
    mu_p, cov_p = _niqe_model()
    # pinv with MATLAB's tolerance: max(size) * eps * the largest singular value
    u, s, vt = np.linalg.svd((cov_p + cov) / 2)
    keep = s > max(cov.shape) * np.finfo(np.float64).eps * s[0]
    inv = (vt[keep].T / s[keep]) @ u[:, keep].T
    d = mu_p - mu
    return float(math.sqrt(max(float(d @ inv @ d), 0.0)))


def _half_size(img: np.ndarray) -> np.ndarray:
    """``imresize(img, 0.5)`` of current MATLAB (R2017a and later) for an even-sized image.

    MATLAB's ``imresize`` now mirrors the image at its borders (``aux = [1:n, n:-1:1]`` in
    ``contributions``), where :func:`~lightsr.evaluation.resize.imresize` repeats the edge pixel
    as the older versions that made the benchmark LR sets did. The reference NIQE values (MATLAB
    R2021a) need the mirror: the image is padded symmetrically by 4 pixels (more than the 3
    pixels the 8-tap kernel reaches past the border), resized, and the 2 outer output pixels of
    each side dropped; the sampling grid stays aligned since the pad is even.
    """
    from lightsr.evaluation.resize import imresize  # imports torch: only when needed

    pad = 4
    out = imresize(np.pad(img, pad, mode="symmetric"), 0.5)
    return np.ascontiguousarray(out[pad // 2 : -pad // 2, pad // 2 : -pad // 2])


def _niqe_luma(image: np.ndarray) -> np.ndarray:
    """The float64 HxW Y (or gray) image of NIQE on 8-bit levels 0..255 (see :func:`niqe`)."""
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"niqe: expected a numpy array, found {type(image).__name__}; "
            "convert tensors with .cpu().numpy() and CHW to HWC"
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
        raise LightSRError(
            f"niqe: expected an HxW gray or HxWx3 RGB image, found shape {image.shape}; "
            "drop the alpha channel first (img[..., :3])"
        )
    if image.dtype == np.uint8:
        img = image.astype(np.float64)
    elif image.dtype == np.uint16:  # to 8-bit levels
        img = np.floor(image.astype(np.float64) / 257.0 + 0.5)
    elif image.dtype.kind == "f":
        if image.size and not np.isfinite(image).all():
            raise LightSRError("niqe: the image contains NaN or infinite values")
        lo, hi = (float(image.min()), float(image.max())) if image.size else (0.0, 0.0)
        if lo < -1.0 or hi > 2.0:
            raise LightSRError(
                f"niqe: expected a float image in [0, 1], found values in [{lo:g}, {hi:g}]; "
                "divide 0-255 data by 255 or pass a uint8 array"
            )
        img = _quantize(image)
    else:
        raise LightSRError(
            f"niqe: expected dtype uint8, uint16 or float (in [0, 1]), found {image.dtype}"
        )
    if img.ndim == 3:  # MATLAB rgb2ycbcr on uint8: Y rounded half away from zero
        img = np.floor(_luma(img, 255.0) + 0.5)
    return img


def niqe(image: np.ndarray, *, crop_border: int = 0) -> float:
    """NIQE, the no-reference "naturalness" score of Mittal et al. (lower is better).

    Reproduces the authors' MATLAB release on the Y channel (see the module docstring), as
    BasicSR's ``calculate_niqe(img, crop_border, convert_to='y')``: Set14 ``baboon`` reads
    5.7296.

    Args:
        image: ``HxWx3`` RGB (not BGR) or ``HxW`` / ``HxWx1`` gray image, uint8; uint16 and
            float (``[0, 1]``) images are first reduced to 8-bit levels. RGB images are
            measured on their MATLAB ``rgb2ycbcr`` Y, rounded to 8-bit levels, so a uint8 gray
            image holding that Y gives the same score.
        crop_border: pixels removed from each side first (the SR scale, to match PSNR/SSIM).

    Returns:
        The NIQE score as a float.

    Raises:
        LightSRError: an image smaller than 96x96 after cropping (NIQE works on whole 96x96
            blocks; the image is cut to a multiple of 96 from the top left), a bad shape, dtype
            or value range, or an image whose every block is flat (the features are undefined).
    """
    if isinstance(crop_border, bool) or not isinstance(crop_border, (int, np.integer)):
        raise TypeError(f"niqe: expected an integer crop_border, found {crop_border!r}")
    y = _niqe_luma(image)
    h, w = y.shape
    if crop_border < 0 or 2 * crop_border >= min(h, w):
        raise LightSRError(
            f"niqe: expected 0 <= crop_border < {(min(h, w) + 1) // 2} for a {h}x{w} image, "
            f"found {crop_border}"
        )
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    b = _NIQE_BLOCK
    rows, cols = y.shape[0] // b, y.shape[1] // b
    if rows == 0 or cols == 0:
        raise LightSRError(
            f"niqe: the image is {y.shape[1]}x{y.shape[0]} pixels after cropping "
            f"{crop_border} from each border; NIQE needs at least {b}x{b} (it works on "
            f"{b}x{b} blocks)"
        )
    y = np.ascontiguousarray(y[: rows * b, : cols * b])
    fine = _niqe_block_features(_mscn(y), b)
    coarse = _niqe_block_features(_mscn(_half_size(y)), b // 2)
    return _niqe_distance(np.concatenate([fine, coarse], axis=1))
