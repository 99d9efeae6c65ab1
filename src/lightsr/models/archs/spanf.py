"""SPAN-F: a SPAN without the first conv and with a learned nearest-neighbour skip (NTIRE 2025).

Challenge report: B. Ren, H. Guo, L. Sun, Z. Wu, R. Timofte, Y. Li et al., "The Tenth NTIRE 2025
Efficient Super-Resolution Challenge Report", CVPR 2025 Workshops (SPAN-F, second place). At
inference every 3x3 conv is one re-parameterised ``eval_conv`` (:class:`~.span.Conv3XC`); the
public checkpoint holds that form only (its training branches are not published).

What differs from SPAN (:mod:`lightsr.models.archs.span`):

- no mean shift and no x255 scaling: the network works on [0, 1] directly;
- no first conv: block 1 takes the image (3 -> ``feature_channels``) and, as its width
  changes, has no parameter-free attention; blocks 2-5 are SPAN's SPABs (five blocks in all);
- ``conv_near``: a depth-wise 3x3 conv (groups 3, no bias) from each colour to ``scale**2``
  channels, initialised to copy the centre pixel (nearest-neighbour upsampling after the
  PixelShuffle) and then learned;
- a 1x1 conv of [conv_near's output, block 5, block 1] (``2 * feature_channels + 3 * s**2``
  channels), then a 3x3 ``conv_2`` straight to ``3 * s**2`` channels and the PixelShuffle.

Sub-module names follow the checkpoint (``conv_near``, ``block_{i}.c{1,2,3}_r.eval_conv``,
``conv_cat``, ``conv_2.eval_conv``).
"""

from __future__ import annotations

import torch
from torch import nn

from lightsr.models import base
from lightsr.models.archs.span import SPAB, Conv3XC
from lightsr.models.base import ArchDescriptor, Detected, StateDict

__all__ = ["ARCH", "SPANF"]


class SPANF(nn.Module):
    """The SPAN-F network (inference form).

    Args:
        feature_channels: width (32 in the NTIRE 2025 entry).
        n_blocks: SPABs (5).
        upscaling_factor: output scale.
    """

    #: Its forward exports to ONNX exactly with dynamic shapes, at any size.
    onnx_size_multiple = 1

    def __init__(
        self, *, feature_channels: int = 32, n_blocks: int = 5, upscaling_factor: int = 4
    ) -> None:
        super().__init__()
        if upscaling_factor < 1 or n_blocks < 2:
            raise ValueError("SPAN-F: upscaling_factor must be >= 1 and n_blocks >= 2")
        self.scale = upscaling_factor
        self.n_blocks = n_blocks
        c, s2 = feature_channels, upscaling_factor**2
        self.conv_near = nn.Conv2d(3, 3 * s2, 3, padding=1, groups=3, bias=False)
        with torch.no_grad():  # nearest-neighbour start: every output copies the centre pixel
            self.conv_near.weight.zero_()
            self.conv_near.weight[:, 0, 1, 1] = 1.0
        self.block_1 = SPAB(3, c, attention=False)
        for i in range(2, n_blocks + 1):
            self.add_module(f"block_{i}", SPAB(c, c))
        self.conv_cat = nn.Conv2d(2 * c + 3 * s2, c, 1)
        self.conv_2 = Conv3XC(c, 3 * s2)
        self.depth_to_space = nn.PixelShuffle(upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        near = self.conv_near(x)
        out_b1, _ = self.block_1(x)
        out = out_b1
        for i in range(2, self.n_blocks + 1):
            out, _ = getattr(self, f"block_{i}")(out)
        out = self.conv_cat(torch.cat([near, out, out_b1], dim=1))
        return self.depth_to_space(self.conv_2(out))


def detect(sd: StateDict) -> Detected | None:
    """SPAN-F: ``conv_near`` (depth-wise, 3 groups) and a first block that takes the image."""
    needed = ("conv_near.weight", "block_1.c1_r.eval_conv.weight", "conv_cat.weight")
    if not base.has_keys(sd, *needed, "conv_2.eval_conv.weight"):
        return None
    near = sd["conv_near.weight"]
    if near.shape[1] != 1 or sd["block_1.c1_r.eval_conv.weight"].shape[1] != 3:
        return None
    scale = base.pixelshuffle_scale(near.shape[0])
    if scale is None:
        return None
    config = {
        "feature_channels": sd["block_1.c1_r.eval_conv.weight"].shape[0],
        "n_blocks": base.count_indices(sd, r"block_(\d+)\."),
    }
    return Detected("spanf", config, scale)


ARCH = ArchDescriptor(name="spanf", build=SPANF, detect=detect, scales=(4,))
