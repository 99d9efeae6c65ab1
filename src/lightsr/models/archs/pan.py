"""PAN: Pixel Attention Network.

Paper: H. Zhao, X. Kong, J. He, Y. Qiao, C. Dong, "Efficient Image Super-Resolution Using Pixel
Attention", ECCV 2020 Workshops (AIM 2020).

Sec. 3: a 3x3 conv to ``nf`` features; ``nb`` self-calibrated blocks with pixel attention
(SC-PA, Fig. 2c): two 1x1 branches of ``nf / 2`` channels, one through a 3x3 conv, the other
through a pixel-attention conv (``k4(k3(x) * sigmoid(k2(x)))``), concatenated, fused by 1x1 and
added to the input; a 3x3 trunk conv with a residual; then the U-PA reconstruction (Fig. 2d):
nearest-neighbour upsampling, a 3x3 conv to ``unf`` channels, pixel attention (PA: ``x *
sigmoid(conv1x1(x))``) and another 3x3 conv, once for x2/x3 and twice (x2 each) for x4; a last
3x3 conv to RGB, added to the bilinear upsampling of the input. LeakyReLU(0.2) throughout.

Inputs are RGB in [0, 1]. Sub-module names follow the official checkpoints (``conv_first``,
``SCPA_trunk.{i}.conv1_a/conv1_b/k1.0/PAConv.k2..k4/conv3``, ``trunk_conv``,
``upconv1``/``att1``/``HRconv1`` (+ ``2`` at x4), ``conv_last``). x2 and x3 checkpoints have the
same tensors (the upsampling factor is not a weight): the scale cannot be read from them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

__all__ = ["ARCH", "PA", "PAN", "SCPA", "PAConv"]

_SLOPE = 0.2


class PA(nn.Module):
    """Pixel attention: ``x * sigmoid(conv1x1(x))`` (Eq. 2)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


class PAConv(nn.Module):
    """Convolution with pixel attention: ``k4(k3(x) * sigmoid(k2(x)))``."""

    def __init__(self, channels: int, *, kernel_size: int = 3) -> None:
        super().__init__()
        p = kernel_size // 2
        self.k2 = nn.Conv2d(channels, channels, 1)
        self.k3 = nn.Conv2d(channels, channels, kernel_size, padding=p, bias=False)
        self.k4 = nn.Conv2d(channels, channels, kernel_size, padding=p, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.k4(self.k3(x) * torch.sigmoid(self.k2(x)))


class SCPA(nn.Module):
    """Self-calibrated convolution block with pixel attention (Fig. 2c).

    Args:
        nf: block width.
        reduction: each branch has ``nf // reduction`` channels (2).
    """

    def __init__(self, nf: int, *, reduction: int = 2) -> None:
        super().__init__()
        gw = nf // reduction
        self.conv1_a = nn.Conv2d(nf, gw, 1, bias=False)
        self.conv1_b = nn.Conv2d(nf, gw, 1, bias=False)
        self.k1 = nn.Sequential(nn.Conv2d(gw, gw, 3, padding=1, bias=False))
        self.PAConv = PAConv(gw)
        self.conv3 = nn.Conv2d(gw * reduction, nf, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.leaky_relu(self.conv1_a(x), _SLOPE)
        b = F.leaky_relu(self.conv1_b(x), _SLOPE)
        a = F.leaky_relu(self.k1(a), _SLOPE)
        b = F.leaky_relu(self.PAConv(b), _SLOPE)
        return self.conv3(torch.cat([a, b], dim=1)) + x


class PAN(nn.Module):
    """The PAN network.

    Args:
        nf: trunk channels (40).
        unf: reconstruction channels (24).
        nb: number of SC-PA blocks (16).
        upscaling_factor: 2, 3 or 4 (the official design; x4 has two x2 upsampling stages).
    """

    def __init__(
        self, *, nf: int = 40, unf: int = 24, nb: int = 16, upscaling_factor: int = 4
    ) -> None:
        super().__init__()
        if upscaling_factor not in (2, 3, 4):
            raise ValueError(f"PAN: upscaling_factor must be 2, 3 or 4, got {upscaling_factor}")
        self.scale = upscaling_factor
        self.conv_first = nn.Conv2d(3, nf, 3, padding=1)
        self.SCPA_trunk = nn.Sequential(*(SCPA(nf) for _ in range(nb)))
        self.trunk_conv = nn.Conv2d(nf, nf, 3, padding=1)
        self.upconv1 = nn.Conv2d(nf, unf, 3, padding=1)
        self.att1 = PA(unf)
        self.HRconv1 = nn.Conv2d(unf, unf, 3, padding=1)
        if upscaling_factor == 4:
            self.upconv2 = nn.Conv2d(unf, unf, 3, padding=1)
            self.att2 = PA(unf)
            self.HRconv2 = nn.Conv2d(unf, unf, 3, padding=1)
        self.conv_last = nn.Conv2d(unf, 3, 3, padding=1)

    @staticmethod
    def _upa(
        fea: torch.Tensor, factor: int, up: nn.Module, att: nn.Module, hr: nn.Module
    ) -> torch.Tensor:
        """One U-PA stage: nearest upsampling, conv, pixel attention, conv (Fig. 2d)."""
        fea = up(F.interpolate(fea, scale_factor=factor, mode="nearest"))
        fea = F.leaky_relu(att(fea), _SLOPE)
        return F.leaky_relu(hr(fea), _SLOPE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.conv_first(x)
        fea = fea + self.trunk_conv(self.SCPA_trunk(fea))
        if self.scale == 4:
            fea = self._upa(fea, 2, self.upconv1, self.att1, self.HRconv1)
            fea = self._upa(fea, 2, self.upconv2, self.att2, self.HRconv2)
        else:
            fea = self._upa(fea, self.scale, self.upconv1, self.att1, self.HRconv1)
        out = self.conv_last(fea)
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out + base


def detect(sd: StateDict) -> Detected | None:
    """PAN (official names ``conv_first``, ``SCPA_trunk.{n}``, ``att1``, ``upconv1``). SwinIR
    also starts with ``conv_first`` but has no SCPA trunk."""
    needed = ("conv_first.weight", "SCPA_trunk.0.conv1_a.weight", "att1.conv.weight")
    if not base.has_keys(sd, *needed, "upconv1.weight"):
        return None
    config = {
        "nf": sd["conv_first.weight"].shape[0],
        "unf": sd["upconv1.weight"].shape[0],
        "nb": base.count_indices(sd, r"SCPA_trunk\.(\d+)\."),
    }
    if "HRconv2.weight" in sd:  # two x2 reconstruction stages
        return Detected("pan", config, 4)
    return Detected("pan", config, 2, scales=(2, 3))  # x2 and x3 have the same tensors


#: fp16: the DF2K weights' activations reach 1e11 in float32 (far past float16's 65504).
ARCH = ArchDescriptor(name="pan", build=PAN, detect=detect, scales=(2, 3, 4), supports_fp16=False)
