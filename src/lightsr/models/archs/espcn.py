"""ESPCN: Efficient Sub-Pixel Convolutional Neural Network (luma only).

Paper: W. Shi, J. Caballero, F. Huszar, J. Totz, A. P. Aitken, R. Bishop, D. Rueckert, Z. Wang,
"Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional
Neural Network", CVPR 2016. Sec. 3 and 4.2: three layers on the LR image, (f1, n1) = (5, 64),
(f2, n2) = (3, 32), f3 = 3, tanh after the first two, and the efficient sub-pixel convolution
layer: the last conv outputs ``scale**2`` channels that a periodic shuffle (PixelShuffle)
rearranges into the HR image.

As in the paper the network sees the Y channel of YCbCr only; the module takes RGB in [0, 1]
(BT.601 conversion as MATLAB, bicubic Cb/Cr) like :class:`~lightsr.models.archs.fsrcnn.FSRCNN`.
No public weights exist for it here: it is built and counted. Sub-module names
(``first_part.0/2``, ``last_part.0``) follow the common PyTorch re-implementation.
"""

from __future__ import annotations

import torch
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

from ._ycbcr import run_on_y

__all__ = ["ARCH", "ESPCN"]


class ESPCN(nn.Module):
    """ESPCN on the Y channel, with an RGB [0, 1] interface.

    Args:
        n1: feature maps of the 5x5 first layer (64).
        n2: feature maps of the 3x3 second layer (32).
        upscaling_factor: the sub-pixel layer's factor r.
    """

    def __init__(self, *, n1: int = 64, n2: int = 32, upscaling_factor: int = 3) -> None:
        super().__init__()
        if upscaling_factor < 1:
            raise ValueError(f"ESPCN: upscaling_factor must be >= 1, got {upscaling_factor}")
        self.scale = upscaling_factor
        self.first_part = nn.Sequential(
            nn.Conv2d(1, n1, 5, padding=2),
            nn.Tanh(),
            nn.Conv2d(n1, n2, 3, padding=1),
            nn.Tanh(),
        )
        # Sub-pixel convolution: r^2 channels, then the periodic shuffle PS (Eq. 4).
        self.last_part = nn.Sequential(
            nn.Conv2d(n2, upscaling_factor**2, 3, padding=1),
            nn.PixelShuffle(upscaling_factor),
        )

    def forward_y(self, y: torch.Tensor) -> torch.Tensor:
        """The network itself: (B, 1, H, W) Y in [0, 1] -> (B, 1, rH, rW)."""
        return self.last_part(self.first_part(y))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 3, rH, rW) RGB (Y from the net, CbCr bicubic)."""
        return run_on_y(self.forward_y, x, self.scale)


def detect(sd: StateDict) -> Detected | None:
    """ESPCN (``first_part.{0,2}``, a sub-pixel conv ``last_part.0`` with r*r channels). FSRCNN
    shares ``first_part.0`` but has a ``mid_part`` and a transposed-conv ``last_part``."""
    needed = ("first_part.0.weight", "first_part.2.weight", "last_part.0.weight")
    if not base.has_keys(sd, *needed) or any(k.startswith("mid_part.") for k in sd):
        return None
    scale = base.pixelshuffle_scale(sd["last_part.0.weight"].shape[0], ch=1)
    if scale is None:
        return None
    config = {"n1": sd["first_part.0.weight"].shape[0], "n2": sd["first_part.2.weight"].shape[0]}
    return Detected("espcn", config, scale)


#: RGB in and out; the network itself sees the Y channel (CbCr are upscaled bicubically).
ARCH = ArchDescriptor(name="espcn", build=ESPCN, detect=detect, scales=(2, 3, 4))
