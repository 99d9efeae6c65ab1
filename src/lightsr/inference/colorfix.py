"""Wavelet colour correction: the output's detail on a plain upscale's colours (``--color-fix``).

Models trained on degraded images (real-world SR, GAN-trained models) can shift colours and
brightness. The real-world inference scripts of SAFMN and StableSR correct this with a
wavelet decomposition: the image is split into a low-frequency part and the detail above it by
a stack of ``LEVELS`` dilated 3x3 binomial blurs (dilations 1, 2, 4, 8, 16, replicate padding
at every level); the corrected output keeps the network's detail and takes the low frequencies
from a plain bicubic upscale of the input::

    fixed = (SR - L(SR)) + L(bicubic(LR))  =  SR + L(bicubic(LR) - SR)

where ``L`` is the five-level blur. ``L`` is linear, so the second form (one blur of the
difference) gives the same result with half the work; it is what :func:`wavelet_color_fix`
computes. Its reach is 1 + 2 + 4 + 8 + 16 = 31 pixels on each side, so the image is processed
in bands of rows with a 31-row halo (memory stays bounded for large images, and the bands give
exactly the result of one whole-image pass).

The reference upscale is PyTorch's bicubic interpolation (``align_corners=False``, a = -0.75,
clamped to [0, 1]), as those scripts use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["LEVELS", "REACH", "wavelet_blur", "wavelet_color_fix"]

#: Number of dilated blur levels (dilations 1, 2, ..., 2**(LEVELS - 1)).
LEVELS = 5
#: Pixels of context each side that the blur stack reads.
REACH = sum(2**i for i in range(LEVELS))

_BAND_ROWS = 512


def _binomial_kernel(channels: int) -> torch.Tensor:
    k1 = torch.tensor([0.25, 0.5, 0.25])
    return torch.outer(k1, k1).expand(channels, 1, 3, 3).contiguous()


def wavelet_blur(x: torch.Tensor, levels: int = LEVELS) -> torch.Tensor:
    """The low-frequency part of ``x`` (B, C, H, W): ``levels`` dilated 3x3 binomial blurs,
    dilation ``2**i`` at level ``i``, each with replicate padding."""
    kernel = _binomial_kernel(x.shape[1]).to(x)
    for i in range(levels):
        d = 2**i
        x = F.conv2d(
            F.pad(x, (d, d, d, d), mode="replicate"), kernel, dilation=d, groups=x.shape[1]
        )
    return x


def _bicubic(lr: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(lr, size=size, mode="bicubic", align_corners=False).clamp_(0, 1)


def wavelet_color_fix(sr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
    """``sr`` with the low frequencies of a bicubic upscale of ``lr`` (see the module doc).

    Args:
        sr: (B, C, H, W) or (C, H, W) float output of a model, in [0, 1].
        lr: the input, same layout, (H / s, W / s) for an integer or fractional scale ``s``.

    Returns: a new float tensor like ``sr``, clamped to [0, 1].
    """
    batched = sr.ndim == 4
    s = sr if batched else sr[None]
    x = lr if batched else lr[None]
    if s.shape[:2] != x.shape[:2]:
        raise ValueError(f"color fix: sr {tuple(sr.shape)} and lr {tuple(lr.shape)} differ")
    s, x = s.float(), x.float()
    h, w = s.shape[-2:]
    ref = _bicubic(x, (h, w))
    out = torch.empty_like(s)
    for top in range(0, h, _BAND_ROWS):
        bottom = min(top + _BAND_ROWS, h)
        a, b = max(top - REACH, 0), min(bottom + REACH, h)
        # A kept row reads rows within REACH of it: all real rows of the band (the halo), so
        # the blur's padding at a band edge inside the image never reaches the kept rows and
        # bands equal one whole-image pass.
        low = wavelet_blur(ref[:, :, a:b] - s[:, :, a:b])
        out[:, :, top:bottom] = s[:, :, top:bottom] + low[:, :, top - a : top - a + bottom - top]
    out.clamp_(0, 1)
    return out if batched else out[0]
