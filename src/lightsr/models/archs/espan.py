"""ESPAN: a SPAN with a 9x9 first conv and a distilled tail (NTIRE 2025 efficient SR entry).

Challenge report: B. Ren, H. Guo, L. Sun, Z. Wu, R. Timofte, Y. Li et al., "The Tenth NTIRE 2025
Efficient Super-Resolution Challenge Report", CVPR 2025 Workshops (team 36, ESPAN). A SPAN
student distilled from a teacher whose tail it keeps (the ``tea_`` / ``teacher_`` names of the
checkpoint). Only the re-parameterised inference form is public: every conv is one
``eval_conv`` (:class:`~.span.Conv3XC`), the first one 9x9.

Structure (read off the checkpoint and the official inference code): no mean shift (inputs in
[0, 1]); a 9x9 conv to ``feature_channels``; five SPABs; a sixth, shorter block
(``teacher_block_seq``: two 3x3 convs with SiLU between, then the parameter-free attention
``(o + x) * (sigmoid(o) - 0.5)``); a 3x3 conv of its output; a 1x1 conv of [first features,
that conv, block 1, block 6]; a 3x3 conv + PixelShuffle.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.archs.span import SPAB, Conv3XC
from lightsr.models.base import ArchDescriptor, Detected, StateDict

__all__ = ["ARCH", "ESPAN"]


class _ShortSPAB(nn.Module):
    """Two 3x3 convs (SiLU between) and the parameter-free attention."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.c1_r = Conv3XC(channels, channels)
        self.c2_r = Conv3XC(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out2 = self.c2_r(F.silu(self.c1_r(x)))
        return (out2 + x) * (torch.sigmoid(out2) - 0.5)


class ESPAN(nn.Module):
    """The ESPAN network (inference form).

    Args:
        feature_channels: width (32).
        first_kernel: kernel of the first conv (9).
        n_blocks: full SPABs before the short block (5).
        upscaling_factor: output scale.
    """

    #: Its forward exports to ONNX exactly with dynamic shapes, at any size.
    onnx_size_multiple = 1

    def __init__(
        self,
        *,
        feature_channels: int = 32,
        first_kernel: int = 9,
        n_blocks: int = 5,
        upscaling_factor: int = 4,
    ) -> None:
        super().__init__()
        if upscaling_factor < 1 or n_blocks < 1 or first_kernel % 2 == 0:
            raise ValueError("ESPAN: upscaling_factor, n_blocks >= 1 and an odd first_kernel")
        self.scale = upscaling_factor
        self.n_blocks = n_blocks
        c = feature_channels
        self.conv_1 = Conv3XC(3, c, kernel_size=first_kernel)
        for i in range(1, n_blocks + 1):
            self.add_module(f"block_{i}", SPAB(c, c))
        self.teacher_block_seq = _ShortSPAB(c)
        self.tea_conv_cat = nn.Conv2d(4 * c, c, 1)
        self.tea_conv_2 = Conv3XC(c, c)
        self.tea_upsampler = nn.Sequential(
            Conv3XC(c, 3 * upscaling_factor**2), nn.PixelShuffle(upscaling_factor)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_1(x)
        out_b1, _ = self.block_1(feat)
        out = out_b1
        for i in range(2, self.n_blocks + 1):
            out, _ = getattr(self, f"block_{i}")(out)
        out_b6 = self.teacher_block_seq(out)
        out = self.tea_conv_cat(torch.cat([feat, self.tea_conv_2(out_b6), out_b1, out_b6], dim=1))
        return self.tea_upsampler(out)


def detect(sd: StateDict) -> Detected | None:
    """ESPAN: ``tea_conv_cat`` and ``teacher_block_seq`` after SPAN-style blocks."""
    needed = ("conv_1.eval_conv.weight", "block_1.c1_r.eval_conv.weight", "tea_conv_cat.weight")
    if not base.has_keys(sd, *needed, "teacher_block_seq.c1_r.eval_conv.weight"):
        return None
    scale = base.pixelshuffle_scale(sd["tea_upsampler.0.eval_conv.weight"].shape[0])
    if scale is None:
        return None
    first = sd["conv_1.eval_conv.weight"]
    config = {
        "feature_channels": first.shape[0],
        "first_kernel": first.shape[-1],
        "n_blocks": base.count_indices(sd, r"block_(\d+)\."),
    }
    return Detected("espan", config, scale)


ARCH = ArchDescriptor(name="espan", build=ESPAN, detect=detect, scales=(4,), supports_fp16=False)
