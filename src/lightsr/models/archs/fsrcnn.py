"""FSRCNN: Fast Super-Resolution Convolutional Neural Network (luma only).

Paper: C. Dong, C. C. Loy, X. Tang, "Accelerating the Super-Resolution Convolutional Neural
Network", ECCV 2016. The network (Sec. 3.1, Fig. 2) works on the LR image directly: feature
extraction (5x5 conv to ``d`` maps), shrinking (1x1 conv to ``s``), ``m`` 3x3 mapping layers,
expanding (1x1 back to ``d``), all followed by PReLU, and a 9x9 transposed convolution with
stride ``scale`` (the deconvolution layer) that produces the HR image.

Like the paper, the network sees only the Y channel of YCbCr. The module hides that: it takes
RGB in [0, 1], converts it to YCbCr (BT.601, MATLAB ``rgb2ycbcr``), runs the network on Y,
upscales Cb and Cr bicubically and converts back, so its interface is the same as every other
lightsr model (RGB in [0, 1] in and out). The Y plane is in [16, 235] / 255, as the public
PyTorch re-implementation trained on T91 expects.

Sub-module names follow that re-implementation (``first_part.0``/``.1``, ``mid_part.{i}``,
``last_part``), so its checkpoints load with ``strict=True``. The tensors do not depend on the
scale (the transposed conv's stride does): a checkpoint alone cannot tell x2 from x3 or x4.
"""

from __future__ import annotations

import torch
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

from ._ycbcr import run_on_y

__all__ = ["ARCH", "FSRCNN"]


class FSRCNN(nn.Module):
    """FSRCNN(d, s, m) on the Y channel, with an RGB [0, 1] interface.

    Args:
        d: feature maps of the extraction and expanding layers (56 in the paper).
        s: feature maps of the shrinking and mapping layers (12).
        m: number of 3x3 mapping layers (4).
        upscaling_factor: the transposed convolution's stride.
    """

    def __init__(self, *, d: int = 56, s: int = 12, m: int = 4, upscaling_factor: int = 3) -> None:
        super().__init__()
        if upscaling_factor < 1:
            raise ValueError(f"FSRCNN: upscaling_factor must be >= 1, got {upscaling_factor}")
        self.scale = upscaling_factor
        # Feature extraction: conv(5, d, 1) + PReLU.
        self.first_part = nn.Sequential(nn.Conv2d(1, d, 5, padding=2), nn.PReLU(d))
        # Shrinking conv(1, s, d), m mappings conv(3, s, s), expanding conv(1, d, s); PReLU each.
        mid: list[nn.Module] = [nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            mid += [nn.Conv2d(s, s, 3, padding=1), nn.PReLU(s)]
        mid += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.mid_part = nn.Sequential(*mid)
        # Deconvolution deconv(9, 1, d) with stride = scale: output exactly scale x the input.
        self.last_part = nn.ConvTranspose2d(
            d, 1, 9, stride=upscaling_factor, padding=4, output_padding=upscaling_factor - 1
        )

    def forward_y(self, y: torch.Tensor) -> torch.Tensor:
        """The network itself: (B, 1, H, W) Y in [0, 1] -> (B, 1, sH, sW)."""
        return self.last_part(self.mid_part(self.first_part(y)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 3, sH, sW) RGB (Y from the net, CbCr bicubic)."""
        return run_on_y(self.forward_y, x, self.scale)


def detect(sd: StateDict) -> Detected | None:
    """FSRCNN (``first_part``, ``mid_part``, a transposed-conv ``last_part``). ESPCN shares
    ``first_part.0`` but ends in a conv ``last_part.0`` and has no ``mid_part``."""
    if not base.has_keys(sd, "first_part.0.weight", "mid_part.0.weight", "last_part.weight"):
        return None
    config = {
        "d": sd["first_part.0.weight"].shape[0],
        "s": sd["mid_part.0.weight"].shape[0],
        "m": base.count_indices(sd, r"mid_part\.(\d+)\.bias") - 2,
    }
    # The transposed conv's stride is the scale: the tensors fit x2, x3 and x4 alike.
    return Detected("fsrcnn", config, 2, scales=(2, 3, 4))


#: RGB in and out; the network itself sees the Y channel (CbCr are upscaled bicubically).
ARCH = ArchDescriptor(name="fsrcnn", build=FSRCNN, detect=detect, scales=(2, 3, 4))
