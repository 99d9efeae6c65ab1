"""Restoration tasks and their seeded degradations, shared by training and evaluation.

A task says how a clean image becomes the network's input:

- ``denoise``: additive white Gaussian noise on every colour channel. Levels ``sigma`` are on
  the 8-bit scale (0-255) and the noise is added to the image scaled to [0, 1] as
  ``x + N(0, (sigma / 255)^2)``, neither clipped nor rounded: the convention of the colour
  denoising literature (DnCNN, FFDNet, SwinIR test CBSD68 this way). Training draws ``sigma``
  uniformly from a range for each patch, so one *blind* model covers every level in it.
- ``jpeg``: a real JPEG round trip through Pillow (libjpeg, the standard IJG quantisation
  tables scaled by ``quality``, 4:2:0 chroma subsampling for colour), 8-bit in and out.
  Training draws an integer quality uniformly from a range (one blind model).
- ``depth``: super-resolution of single-channel depth or disparity maps (8 or 16 bit): the
  input is MATLAB's bicubic ``imresize(map, 1/scale)`` of the (mod-cropped) map, kept in
  floating point, the degradation of the depth-SR literature. Scores are in the map's own
  units (RMSE of disparity levels for Middlebury's 8-bit maps). There is no depth training set
  here: :func:`synthetic_depth` draws piecewise-smooth maps (see ``docs/restoration.md`` for
  how they generalise).
- ``sr``: bicubic super-resolution, the rest of lightsr; no restoration degradation.

Everything random takes a :class:`numpy.random.Generator`; :func:`image_rng` derives one from
a seed and an image name, so an evaluation degrades each image the same way whatever the order
or the subset. This module imports numpy and Pillow (and :mod:`lightsr.evaluation.resize` for
depth), never torch.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from typing import Literal

import numpy as np

from lightsr.errors import LightSRError

__all__ = [
    "DEFAULT_QUALITY_RANGE",
    "DEFAULT_SIGMA_RANGE",
    "DEPTH_SCALES",
    "JPEG_GRID",
    "RESTORE_TASKS",
    "TASKS",
    "TaskSpec",
    "add_gaussian_noise",
    "depth_lr",
    "image_rng",
    "jpeg_bytes",
    "jpeg_roundtrip",
    "synthetic_depth",
    "to_unit",
]

TaskName = Literal["sr", "denoise", "jpeg", "depth"]
#: Every task name; ``sr`` is plain bicubic super-resolution.
TASKS: tuple[str, ...] = ("sr", "denoise", "jpeg", "depth")
#: Tasks whose models keep the image size (scale-1 networks), run by ``lightsr restore``.
RESTORE_TASKS: tuple[str, ...] = ("denoise", "jpeg")
#: Depth-SR factors of the literature.
DEPTH_SCALES: tuple[int, ...] = (4, 8)
#: Training ranges of the blind models: every test level (15, 25, 50; q 10-40) inside, and a
#: clean-ish lower end so that little or no degradation is left alone.
DEFAULT_SIGMA_RANGE: tuple[float, float] = (0.0, 55.0)
DEFAULT_QUALITY_RANGE: tuple[int, int] = (10, 50)


@dataclass(frozen=True)
class TaskSpec:
    """A task and the levels of its degradation.

    Attributes:
        name: ``sr``, ``denoise``, ``jpeg`` or ``depth``.
        sigma: denoise: noise level range ``(low, high)`` on the 0-255 scale, drawn uniformly
            per sample; ``low == high`` is a fixed level (evaluation, per-sigma models).
        quality: jpeg: quality range ``(low, high)``, integers in 1..100 drawn uniformly;
            equal ends for a fixed quality.
    """

    name: str = "sr"
    sigma: tuple[float, float] = DEFAULT_SIGMA_RANGE
    quality: tuple[int, int] = DEFAULT_QUALITY_RANGE

    def __post_init__(self) -> None:
        if self.name not in TASKS:
            raise LightSRError(f"task {self.name!r}: expected one of {', '.join(TASKS)}")
        lo, hi = self.sigma
        if not 0 <= lo <= hi <= 255:
            raise LightSRError(
                f"sigma {list(self.sigma)}: expected 0 <= low <= high <= 255 (8-bit levels)"
            )
        qlo, qhi = self.quality
        if int(qlo) != qlo or int(qhi) != qhi or not 1 <= qlo <= qhi <= 100:
            raise LightSRError(
                f"quality {list(self.quality)}: expected integers 1 <= low <= high <= 100"
            )

    @property
    def level(self) -> str:
        """The degradation level as printed in tables: ``sigma 25``, ``q 10-50``, ``""``."""
        if self.name == "denoise":
            lo, hi = self.sigma
            return f"sigma {lo:g}" if lo == hi else f"sigma {lo:g}-{hi:g}"
        if self.name == "jpeg":
            lo, hi = self.quality
            return f"q {lo}" if lo == hi else f"q {lo}-{hi}"
        return ""

    def for_validation(self) -> TaskSpec:
        """The fixed level that validation during training measures: sigma 25 or quality 20
        (the benchmarks' middle levels), moved into the trained range when outside it."""
        sigma = float(np.clip(25.0, *self.sigma))
        quality = int(np.clip(20, *self.quality))
        return TaskSpec(self.name, sigma=(sigma, sigma), quality=(quality, quality))

    def draw_sigma(self, rng: np.random.Generator) -> float:
        """A noise level from the range (the fixed level when both ends are equal)."""
        lo, hi = self.sigma
        return float(lo) if lo == hi else float(rng.uniform(lo, hi))

    def draw_quality(self, rng: np.random.Generator) -> int:
        """A JPEG quality from the range, ends included."""
        lo, hi = self.quality
        return int(rng.integers(int(lo), int(hi) + 1))

    def degrade(self, clean: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The network input for a clean HxWx3 image (same size; for ``denoise`` and ``jpeg``).

        Returns float32 in the [0, 1] scale: noisy (unclipped) for ``denoise``, the decoded
        8-bit JPEG for ``jpeg``. ``clean`` is uint8 (uint16 and float inputs are rounded to
        8 bits for JPEG, which has 8-bit samples).
        """
        if self.name == "denoise":
            return add_gaussian_noise(to_unit(clean), self.draw_sigma(rng), rng)
        if self.name == "jpeg":
            return to_unit(jpeg_roundtrip(_to_uint8(clean), self.draw_quality(rng)))
        raise LightSRError(f"task {self.name!r} has no same-size degradation")


def to_unit(img: np.ndarray) -> np.ndarray:
    """uint8 (/255), uint16 (/65535) or float (as is) -> float32 on the [0, 1] scale."""
    if img.dtype == np.uint8:
        return img.astype(np.float32) / np.float32(255.0)
    if img.dtype == np.uint16:
        return img.astype(np.float32) / np.float32(65535.0)
    if img.dtype.kind == "f":
        return img.astype(np.float32)
    raise LightSRError(f"image: dtype {img.dtype} not supported; use uint8, uint16 or float")


def _to_uint8(img: np.ndarray) -> np.ndarray:
    if img.dtype == np.uint8:
        return img
    return np.clip(np.round(to_unit(img) * 255.0), 0, 255).astype(np.uint8)


def image_rng(seed: int, name: str) -> np.random.Generator:
    """The generator that degrades image ``name`` (a file stem) under ``seed``: independent of
    the order and of the other images, so a subset or a rerun sees the same degradations."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])


def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``img + N(0, (sigma/255)^2)`` per pixel and channel, float32, not clipped.

    Args:
        img: float image on the [0, 1] scale (any shape).
        sigma: standard deviation on the 0-255 scale (25 means 25/255).
        rng: the source of the noise (float64 normals, so a seed fixes every value).
    """
    noise = rng.standard_normal(img.shape) * (float(sigma) / 255.0)
    return (img.astype(np.float64) + noise).astype(np.float32)


#: The period of a colour JPEG's block grid in pixels: 8x8 DCT blocks, and with 4:2:0 chroma
#: 16x16 macroblocks (what a self-ensemble keeps aligned: ``geometric_ensemble(period=...)``).
JPEG_GRID = 16


def jpeg_bytes(img: np.ndarray, quality: int) -> bytes:
    """A JPEG file of a uint8 HxW or HxWx3 image at ``quality`` (Pillow/libjpeg, baseline,
    standard tables scaled by the quality, 4:2:0 for colour)."""
    from PIL import Image

    if img.dtype != np.uint8 or not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise LightSRError(
            f"jpeg: expected a uint8 HxW or HxWx3 image, got {img.dtype} {tuple(img.shape)}"
        )
    if not 1 <= int(quality) <= 100:
        raise LightSRError(f"jpeg quality {quality}: expected an integer in 1..100")
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(img)).save(
        buf, format="JPEG", quality=int(quality), subsampling="4:2:0" if img.ndim == 3 else 0
    )
    return buf.getvalue()


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode a uint8 image as JPEG at ``quality`` and decode it again (uint8, same shape)."""
    from PIL import Image

    with Image.open(io.BytesIO(jpeg_bytes(img, quality))) as im:
        return np.asarray(im.convert("RGB" if img.ndim == 3 else "L")).copy()


def depth_lr(depth: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB bicubic ``imresize(depth, 1/scale)`` of a single-channel map, float64 in the
    map's units (not rounded). ``depth`` must have sides that are multiples of ``scale``."""
    from lightsr.evaluation.resize import imresize

    if depth.ndim != 2:
        raise LightSRError(f"depth map: expected one channel (HxW), got shape {depth.shape}")
    if depth.shape[0] % scale or depth.shape[1] % scale:
        raise LightSRError(
            f"depth map {depth.shape[1]}x{depth.shape[0]}: sides must be multiples of {scale} "
            "(mod-crop it first)"
        )
    return np.asarray(imresize(depth.astype(np.float64), 1.0 / scale), dtype=np.float64)


def synthetic_depth(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A piecewise-smooth depth map in [0, 1] (float32, HxW), drawn from ``rng``.

    A scene is a slanted background plane with a gentle low-frequency bend, then 4-12 objects
    painted far to near (nearer objects occlude): ellipses, rotated rectangles and random
    convex polygons, each with its own slanted plane of depth in front of what it covers.
    Inside a region the depth is smooth (planar or a shallow bulge); across region borders it
    jumps: the two properties of real depth and disparity maps that depth SR must respect
    (sharp, aligned discontinuities; smooth surfaces without texture).
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = xx / max(width - 1, 1) - 0.5, yy / max(height - 1, 1) - 0.5
    gx, gy = rng.uniform(-0.3, 0.3, size=2)
    fx, fy, ph = rng.uniform(0.5, 2.0), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * np.pi)
    depth = 0.2 + gx * u + gy * v + 0.05 * np.sin(2 * np.pi * (fx * u + fy * v) + ph)
    near = float(depth.max())
    for _ in range(int(rng.integers(4, 13))):
        mask = _random_shape(rng, u, v)
        if not mask.any():
            continue
        base = near + rng.uniform(0.02, 0.15)  # in front of everything painted so far
        sx, sy = rng.uniform(-0.4, 0.4, size=2)
        cx, cy = float(u[mask].mean()), float(v[mask].mean())
        plane = base + sx * (u - cx) + sy * (v - cy)
        if rng.random() < 0.3:  # a rounded object: a shallow bulge towards the camera
            r2 = ((u - cx) ** 2 + (v - cy) ** 2) / max(float(mask.mean()), 1e-3)
            plane = plane + rng.uniform(0.02, 0.08) * np.exp(-r2 * 2.0)
        depth = np.where(mask, plane, depth)
        near = max(near, float(plane[mask].max()))
    lo, hi = float(depth.min()), float(depth.max())
    return ((depth - lo) / max(hi - lo, 1e-6)).astype(np.float32)


def _random_shape(rng: np.random.Generator, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A boolean mask: an ellipse, a rotated rectangle or a convex polygon of random size."""
    cx, cy = rng.uniform(-0.5, 0.5, size=2)
    size = rng.uniform(0.06, 0.35)
    kind = int(rng.integers(0, 3))
    angle = rng.uniform(0, np.pi)
    c, s = np.cos(angle), np.sin(angle)
    du, dv = u - cx, v - cy
    ru, rv = c * du + s * dv, -s * du + c * dv
    aspect = rng.uniform(0.3, 1.0)
    if kind == 0:
        return (ru / size) ** 2 + (rv / (size * aspect)) ** 2 <= 1.0
    if kind == 1:
        return (np.abs(ru) <= size) & (np.abs(rv) <= size * aspect)
    n = int(rng.integers(3, 8))
    angles = np.sort(rng.uniform(0, 2 * np.pi, size=n))
    px, py = size * np.cos(angles), size * np.sin(angles)
    inside = np.ones(u.shape, dtype=bool)
    for i in range(n):  # convex polygon: on the inner side of every edge (counter-clockwise)
        x0, y0, x1, y1 = px[i], py[i], px[(i + 1) % n], py[(i + 1) % n]
        inside &= (x1 - x0) * (dv - y0) - (y1 - y0) * (du - x0) >= 0
    return inside
