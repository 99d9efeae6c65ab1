"""MATLAB-exact bicubic resizing (``imresize(A, scale)`` / ``imresize(A, [rows cols])``).

Every SR paper makes its low-resolution (LR) inputs with MATLAB's
``imresize(modcrop(HR, s), 1/s, 'bicubic')`` and its "Bicubic" baseline with
``imresize(LR, s, 'bicubic')``. This module reproduces that function bit for bit; it is checked
against all MATLAB-made reference LR files of Set5, Set14 and B100 (x2, x3, x4).

What is reproduced (MATLAB's ``imresize`` with its default ``'bicubic'`` method):

- Kernel: Keys' cubic convolution with ``a = -0.5``, support ``[-2, 2]``.
- Coordinates: output pixel ``x`` (1-based) samples the input at
  ``u = x / scale + 0.5 * (1 - 1 / scale)`` (pixel centres aligned, "half-pixel" convention).
- Antialiasing when shrinking (``scale < 1``): the kernel is stretched to
  ``h(t) = scale * cubic(scale * t)`` and its width to ``4 / scale`` (16 taps at 1/4).
  Upscaling uses the plain kernel (4 taps).
- The weights of each output pixel are normalised to sum to 1.
- Border: out-of-range input indices are clamped, i.e. the edge pixel is repeated (MATLAB's
  ``contributions`` of the Image Processing Toolbox versions used to make the benchmark LR
  sets). Implementations that mirror the image at the border differ by up to ten levels.
- Separable: one 1-D pass per axis, the axis with the smaller scale factor first, the height
  first when they are equal (MATLAB's ``dimensionOrder``: ``sort(scale)``, which is stable).
  Each output sample is accumulated in float64 in tap order (a product, then a sum, per tap),
  which reproduces every reference file.
- Integer images (uint8, uint16) are rounded back to their dtype after *each* pass, with round
  half away from zero (MATLAB ``round``, not numpy's half-to-even) and saturation to the dtype
  range. Float images are not rounded or clipped.
- Output size from a scale factor: ``ceil(scale * in)`` per axis (MATLAB's
  ``deriveSizeFromScale``, no tolerance: pass ``size=`` for an exact size). With an explicit
  ``size`` the per-axis scale is ``out / in`` (MATLAB's ``deriveScaleFromSize``).

Not reproduced: other kernels, ``'Antialiasing', false``, ``NaN`` in the output size, indexed
or logical images.

Two entry points share the same weights: :func:`imresize` (numpy, HxW[xC] images) and
:func:`imresize_torch` (torch, batched ``(..., H, W)`` tensors on any device, differentiable for
float tensors; a uint8 tensor gives the same bytes as :func:`imresize`, so training LR patches
can be made on the fly). The weights are cached per ``(in_len, out_len, scale)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = ["imresize", "imresize_output_size", "imresize_torch", "modcrop"]

_KERNEL_WIDTH = 4.0  # support of the bicubic kernel, in input pixels (before antialiasing)
_NUMPY_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)
_TORCH_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    absx = np.abs(x)
    absx2 = absx * absx
    absx3 = absx2 * absx
    return (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1) + (
        -0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0
    ) * ((absx > 1) & (absx <= 2))


@functools.lru_cache(maxsize=256)
def _contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights of the input pixels contributing to each output pixel.

    Mirrors MATLAB's ``contributions`` (bicubic, antialiasing on). Returns ``(indices,
    weights)``, both shaped ``(out_len, taps)``: 0-based indices, clamped to
    ``[0, in_len - 1]``, and float64 weights whose rows sum to 1. Taps whose weight is zero
    for every output pixel are dropped. The arrays are cached and read-only.
    """
    if scale < 1:  # antialiasing: stretch the kernel by 1/scale
        kernel_width = _KERNEL_WIDTH / scale

        def kernel(t: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * t)
    else:
        kernel_width = _KERNEL_WIDTH
        kernel = _cubic

    x = np.arange(1, out_len + 1, dtype=np.float64)  # 1-based output coordinates
    u = x / scale + 0.5 * (1 - 1 / scale)  # matching 1-based input coordinates
    left = np.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2  # one spare tap each side; zero columns dropped below
    indices = left[:, None] + np.arange(taps, dtype=np.float64)  # (out_len, taps)
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    indices = np.clip(indices, 1, in_len).astype(np.int64) - 1  # repeat the edge pixel
    keep = np.any(weights != 0, axis=0)
    indices = np.ascontiguousarray(indices[:, keep])
    weights = np.ascontiguousarray(weights[:, keep])
    indices.setflags(write=False)
    weights.setflags(write=False)
    return indices, weights


_MIN_BLOCK_SPAN = 64  # input pixels per block of the banded torch product, at least


@functools.lru_cache(maxsize=256)
def _weight_blocks(
    in_len: int, out_len: int, scale: float, dtype: torch.dtype, device: torch.device
) -> tuple[tuple[int, int, int, int, torch.Tensor], ...]:
    """The resampling matrix for torch, as dense blocks of its band.

    The dense ``(out_len, in_len)`` matrix (clamped taps summed) has only ``taps`` non-zeros
    per row, along a band. Long axes are cut into blocks of output rows, each kept with the
    contiguous range of input pixels it reads, so large images cost a few small matrix
    products instead of one mostly-zero one. Returns ``(row0, row1, col0, col1, matrix)``
    tuples covering all output rows; short axes give a single full block.
    """
    indices, weights = _contributions(in_len, out_len, scale)
    span = max(_MIN_BLOCK_SPAN, 8 * indices.shape[1])  # input pixels read by one block
    rows_per_block = max(1, math.ceil(span * scale))
    if in_len < 2 * span or out_len <= rows_per_block:
        bounds = [(0, out_len, 0, in_len)]
    else:
        bounds = []
        for row0 in range(0, out_len, rows_per_block):
            row1 = min(out_len, row0 + rows_per_block)
            block_indices = indices[row0:row1]
            bounds.append((row0, row1, int(block_indices.min()), int(block_indices.max()) + 1))

    blocks = []
    for row0, row1, col0, col1 in bounds:
        matrix = np.zeros((row1 - row0, col1 - col0), dtype=np.float64)
        rows = np.broadcast_to(np.arange(row1 - row0)[:, None], (row1 - row0, indices.shape[1]))
        np.add.at(matrix, (rows, indices[row0:row1] - col0), weights[row0:row1])
        blocks.append((row0, row1, col0, col1, torch.from_numpy(matrix).to(device, dtype)))
    return tuple(blocks)


@functools.lru_cache(maxsize=256)
def _taps_torch(
    in_len: int, out_len: int, scale: float, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_contributions` as torch tensors: indices ``(taps, out)``, weights
    ``(taps, out, 1)``."""
    indices, weights = _contributions(in_len, out_len, scale)
    return (
        torch.from_numpy(indices.T.copy()).to(device),
        torch.from_numpy(weights.T.copy()).unsqueeze(-1).to(device, dtype),
    )


def _resize_second_last_axis_exact(y: torch.Tensor, out_len: int, scale: float) -> torch.Tensor:
    """Like :func:`_resize_first_axis` on axis -2 of a tensor: same operations in the same
    order (a product, then a sum, per tap), hence in float64 the same bits as the numpy path."""
    indices, weights = _taps_torch(y.shape[-2], out_len, scale, y.dtype, y.device)
    out = y.index_select(-2, indices[0]).mul_(weights[0])
    tap = torch.empty_like(out)
    for k in range(1, indices.shape[0]):
        torch.index_select(y, -2, indices[k], out=tap)
        out.add_(tap.mul_(weights[k]))
    return out


def _resize_last_axis_torch(y: torch.Tensor, out_len: int, scale: float) -> torch.Tensor:
    """Resample the last axis of ``y``: ``(..., in_len) -> (..., out_len)``."""
    blocks = _weight_blocks(y.shape[-1], out_len, scale, y.dtype, y.device)
    parts = [torch.matmul(y[..., c0:c1], m.mT) for _, _, c0, c1, m in blocks]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def _resize_second_last_axis_torch(y: torch.Tensor, out_len: int, scale: float) -> torch.Tensor:
    """Resample the second-last axis of ``y``: ``(..., in_len, W) -> (..., out_len, W)``."""
    blocks = _weight_blocks(y.shape[-2], out_len, scale, y.dtype, y.device)
    parts = [torch.matmul(m, y[..., c0:c1, :]) for _, _, c0, c1, m in blocks]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-2)


def imresize_output_size(
    in_size: tuple[int, int],
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
) -> tuple[tuple[int, int], tuple[float, float]]:
    """Output size and per-axis scale factors, as MATLAB's ``imresize`` derives them.

    Args:
        in_size: input ``(height, width)``.
        scale: one positive factor for both axes; output side ``ceil(scale * in)``.
        size: explicit output ``(height, width)``; the scales are then ``out / in`` per axis.
            Give exactly one of ``scale`` and ``size``.

    Returns:
        ``((out_height, out_width), (scale_height, scale_width))``.
    """
    in_h, in_w = in_size
    if (scale is None) == (size is None):
        raise ValueError(
            "imresize: expected exactly one of `scale` (a positive factor) or `size` "
            f"(height, width), found scale={scale!r}, size={size!r}; pass one of them"
        )
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float, np.number)):
            raise TypeError(
                f"imresize: expected `scale` to be a number, found {type(scale).__name__}; "
                "pass e.g. 0.25 or 1/3"
            )
        scale = float(scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(
                f"imresize: expected a positive finite `scale`, found {scale!r}; "
                "use e.g. 1/4 to shrink by 4 or 2 to enlarge by 2"
            )
        out_h, out_w = math.ceil(scale * in_h), math.ceil(scale * in_w)
        return (out_h, out_w), (scale, scale)
    assert size is not None
    if (
        len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in size)
        or min(size) < 1
    ):
        raise ValueError(
            f"imresize: expected `size` as two positive integers (height, width), found "
            f"{size!r}; pass e.g. size=(128, 96)"
        )
    out_h, out_w = int(size[0]), int(size[1])
    return (out_h, out_w), (out_h / in_h, out_w / in_w)


def _round_half_away(v: np.ndarray, max_value: float) -> np.ndarray:
    """MATLAB's round then saturation to ``[0, max_value]`` (overwrites ``v``).

    ``floor(v) + (v - floor(v) >= 0.5)`` rounds halves up, which equals rounding half away from
    zero for ``v >= 0`` and gives a value ``<= 0`` for ``v < 0``, so after the clip it matches
    MATLAB everywhere (``v - floor(v)`` is exact, unlike ``floor(v + 0.5)``).
    """
    f = np.floor(v)
    v -= f  # exact; v is a temporary of the caller
    f += v >= 0.5
    return np.clip(f, 0.0, max_value, out=f)


def _resize_first_axis(a: np.ndarray, indices: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Resample axis 0 of a float64 array: ``out[i] = sum_k weights[i, k] * a[indices[i, k]]``.

    The sum runs over the taps in order, as MATLAB does, so integer results round identically.
    """
    bshape = (weights.shape[0],) + (1,) * (a.ndim - 1)
    out = np.take(a, indices[:, 0], axis=0, mode="clip")  # indices are in range
    out *= weights[:, 0].reshape(bshape)
    tap = np.empty_like(out)
    for k in range(1, indices.shape[1]):
        np.take(a, indices[:, k], axis=0, out=tap, mode="clip")  # unbuffered
        tap *= weights[:, k].reshape(bshape)
        out += tap
    return out


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Resize an image exactly like MATLAB's ``imresize(img, scale)`` (bicubic, antialiased).

    Args:
        img: ``HxW`` or ``HxWxC`` array (any channel order; channels are resized
            independently) of dtype uint8, uint16 (any range of the dtype), float32 or float64
            (any range; not clipped).
        scale: positive factor for both axes (``1/4`` shrinks by 4, ``3`` enlarges by 3, any
            fractional value works); the output side is ``ceil(scale * in)``.
        size: explicit output ``(height, width)`` instead of ``scale``.

    Returns:
        The resized image, same dtype and number of dimensions as ``img``, computed in float64.
        Integer images are rounded half away from zero and saturated after each pass, as
        MATLAB does.

    Example:
        ``lr = imresize(modcrop(hr, 4), 1 / 4)`` is the benchmark LR image of every SR paper.
    """
    if not isinstance(img, np.ndarray):
        raise TypeError(
            f"imresize: expected a numpy array, found {type(img).__name__}; "
            "use imresize_torch for tensors"
        )
    if img.ndim not in (2, 3) or img.shape[0] < 1 or img.shape[1] < 1:
        raise ValueError(
            f"imresize: expected an HxW or HxWxC image, found shape {img.shape}; "
            "resize batches one image at a time or use imresize_torch"
        )
    if img.dtype not in _NUMPY_DTYPES:
        raise ValueError(
            f"imresize: expected dtype uint8, uint16, float32 or float64, found {img.dtype}; "
            "convert the image first (e.g. img.astype(np.float32))"
        )
    (out_h, out_w), (scale_h, scale_w) = imresize_output_size(img.shape[:2], scale, size=size)
    max_value = float(np.iinfo(img.dtype).max) if img.dtype.kind == "u" else None

    a = img.astype(np.float64)
    in_h, in_w = img.shape[:2]
    for axis in (0, 1) if scale_h <= scale_w else (1, 0):
        if axis == 0:
            a = _resize_first_axis(a, *_contributions(in_h, out_h, scale_h))
        else:  # make the width axis the first, contiguous one for the gathers
            a = np.ascontiguousarray(np.swapaxes(a, 0, 1))
            a = _resize_first_axis(a, *_contributions(in_w, out_w, scale_w))
            a = np.swapaxes(a, 0, 1)
        if max_value is not None:
            a = _round_half_away(a, max_value)
    return np.ascontiguousarray(a.astype(img.dtype, copy=False))


def imresize_torch(
    x: torch.Tensor,
    scale: float | None = None,
    *,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Batched MATLAB-exact bicubic resize of ``(..., H, W)`` tensors (e.g. ``(N, C, H, W)``).

    Same algorithm and output size as :func:`imresize`, on the tensor's device. Float tensors
    use matrix products with cached ``(out, in)`` weight matrices (cut into blocks along their
    band for long axes); uint8 tensors use cached gather indices and weights.

    Args:
        x: float tensor (any range; float16/bfloat16 are computed in float32; differentiable)
            or uint8 tensor in ``[0, 255]`` (computed in float64 tap by tap like the numpy
            path, rounded half away from zero and saturated after each pass: equal bit for
            bit to :func:`imresize`; not differentiable; on Apple MPS, which has no float64,
            computed in float32 and not guaranteed bit-exact).
        scale: positive factor for both spatial axes; output side ``ceil(scale * in)``.
        size: explicit output ``(height, width)`` instead of ``scale``.

    Returns:
        A tensor shaped ``(..., out_h, out_w)`` with the dtype and device of ``x``.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(
            f"imresize_torch: expected a torch.Tensor, found {type(x).__name__}; "
            "use imresize for numpy arrays"
        )
    if x.ndim < 2 or x.shape[-2] < 1 or x.shape[-1] < 1:
        raise ValueError(
            f"imresize_torch: expected a (..., H, W) tensor, found shape {tuple(x.shape)}"
        )
    if x.dtype == torch.uint8:
        # float64 makes the rounding between passes match the numpy path bit for bit
        compute_dtype = torch.float32 if x.device.type == "mps" else torch.float64
    elif x.dtype in _TORCH_FLOAT_DTYPES:
        compute_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
    else:
        raise ValueError(
            f"imresize_torch: expected a floating-point or uint8 tensor, found {x.dtype}; "
            "convert it first (e.g. x.float() / 65535 for 16-bit data)"
        )
    in_h, in_w = x.shape[-2], x.shape[-1]
    (out_h, out_w), (scale_h, scale_w) = imresize_output_size((in_h, in_w), scale, size=size)

    y = x.to(compute_dtype)
    for axis in (0, 1) if scale_h <= scale_w else (1, 0):
        if x.dtype != torch.uint8:  # banded matrix products: fast and differentiable
            if axis == 0:
                y = _resize_second_last_axis_torch(y, out_h, scale_h)  # (..., out_h, W)
            else:
                y = _resize_last_axis_torch(y, out_w, scale_w)  # (..., h, out_w)
            continue
        # uint8: per-tap sums in numpy's (MATLAB's) order, so that values that fall on an
        # exact .5 in rational arithmetic round the same way (a matrix product may not)
        if axis == 0:
            y = _resize_second_last_axis_exact(y, out_h, scale_h)
        else:
            y = _resize_second_last_axis_exact(y.transpose(-1, -2).contiguous(), out_w, scale_w)
            y = y.transpose(-1, -2)
        floor = torch.floor(y)  # round half away from zero and saturate (_round_half_away)
        y = floor.add_(y.sub_(floor).ge_(0.5)).clamp_(0, 255)
    return y.to(x.dtype).contiguous()


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop an ``HxW[xC]`` image so both sides are multiples of ``scale``.

    Keeps the top-left corner: ``img[:h - h % scale, :w - w % scale]`` (the convention of the
    SR benchmark sets). Returns a view of ``img``, not a copy.
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"modcrop: expected a positive integer scale, found {scale!r}")
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        shape = getattr(img, "shape", None)
        raise ValueError(f"modcrop: expected an HxW or HxWxC numpy array, found shape {shape}")
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]
