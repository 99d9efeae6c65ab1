"""IMDN: Information Multi-Distillation Network.

Paper: Z. Hui, X. Gao, Y. Yang, X. Wang, "Lightweight Image Super-Resolution with Information
Multi-distillation Network", ACM MM 2019 (AIM 2019 constrained SR challenge winner).

Sec. 3: a 3x3 conv to ``nf`` features, ``num_modules`` information multi-distillation blocks
(IMDB), a 1x1 conv + LeakyReLU fusing the concatenated block outputs, a 3x3 conv with a global
residual, and a 3x3 conv + PixelShuffle upsampler. An IMDB (Fig. 3) splits each 3x3 conv's
output into a distilled quarter (kept) and the rest (refined further), four times; the four
distilled parts are concatenated, weighted by contrast-aware channel attention (CCA: mean +
standard deviation of each channel, 1x1 bottleneck, sigmoid), fused by a 1x1 conv, and added to
the block input.

Inputs are RGB in [0, 1]. Sub-module names follow the official checkpoints (``fea_conv``,
``IMDB1``..``IMDB6`` with ``c1``..``c5`` and ``cca.conv_du``, ``c.0``, ``LR_conv``,
``upsampler.0``); their ``module.`` prefix is stripped by the checkpoint loader. The attention
uses statistics of the whole image, so tiled inference differs slightly from a full pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

from ._blocks import pixelshuffle_upsampler

__all__ = ["ARCH", "IMDB", "IMDN", "CCALayer", "DistillationTrunk"]

_SLOPE = 0.05  # LeakyReLU slope of the official code


def _conv(cin: int, cout: int, k: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class CCALayer(nn.Module):
    """Contrast-aware channel attention (Sec. 3.2): ``x * sigmoid(W(std(x) + mean(x)))``.

    Args:
        channels: input channels.
        reduction: bottleneck ratio of the 1x1 convs (16).
    """

    def __init__(self, channels: int, *, reduction: int = 16) -> None:
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(2, 3), keepdim=True)
        std = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).sqrt()  # biased, per channel
        return x * self.conv_du(std + mean)


class IMDB(nn.Module):
    """Information multi-distillation block (Fig. 3).

    Args:
        channels: block width (64).
        distillation_rate: share of each conv's output that is kept (0.25).
    """

    def __init__(self, channels: int, *, distillation_rate: float = 0.25) -> None:
        super().__init__()
        self.distilled = int(channels * distillation_rate)
        self.remaining = channels - self.distilled
        self.c1 = _conv(channels, channels, 3)
        self.c2 = _conv(self.remaining, channels, 3)
        self.c3 = _conv(self.remaining, channels, 3)
        self.c4 = _conv(self.remaining, self.distilled, 3)
        self.c5 = _conv(self.distilled * 4, channels, 1)
        self.cca = CCALayer(self.distilled * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        split = (self.distilled, self.remaining)
        d1, r1 = F.leaky_relu(self.c1(x), _SLOPE).split(split, dim=1)
        d2, r2 = F.leaky_relu(self.c2(r1), _SLOPE).split(split, dim=1)
        d3, r3 = F.leaky_relu(self.c3(r2), _SLOPE).split(split, dim=1)
        d4 = self.c4(r3)
        out = torch.cat([d1, d2, d3, d4], dim=1)
        return self.c5(self.cca(out)) + x


class DistillationTrunk(nn.Module):
    """IMDN's network around its blocks (Sec. 3), which RFDN keeps: a 3x3 conv ``fea_conv`` to
    ``nf`` features; the blocks, chained; all their outputs concatenated and fused by a 1x1 conv
    + LeakyReLU (``c``); a 3x3 ``LR_conv`` plus ``fea_conv``'s output (the global residual); a
    3x3 conv + PixelShuffle ``upsampler``. A subclass names its blocks.

    Args:
        nf: feature channels.
        num_modules: number of blocks.
        upscaling_factor: output scale.
    """

    #: Builds one block of width ``nf``.
    block: ClassVar[Callable[[int], nn.Module]]
    #: The blocks' names without their index from 1 (official: ``IMDB1``.. in IMDN, ``B1``.. in
    #: RFDN).
    block_prefix: ClassVar[str]

    def __init__(self, *, nf: int, num_modules: int, upscaling_factor: int) -> None:
        super().__init__()
        self.scale = upscaling_factor
        self.num_modules = num_modules
        self.fea_conv = _conv(3, nf, 3)
        for i in range(num_modules):
            self.add_module(f"{self.block_prefix}{i + 1}", self.block(nf))
        self.c = nn.Sequential(_conv(nf * num_modules, nf, 1), nn.LeakyReLU(_SLOPE, inplace=True))
        self.LR_conv = _conv(nf, nf, 3)
        self.upsampler = pixelshuffle_upsampler(nf, upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fea = self.fea_conv(x)
        outs = []
        out = fea
        for i in range(self.num_modules):
            out = getattr(self, f"{self.block_prefix}{i + 1}")(out)
            outs.append(out)
        body = self.LR_conv(self.c(torch.cat(outs, dim=1))) + fea  # global residual
        return self.upsampler(body)


class IMDN(DistillationTrunk):
    """The IMDN network: :class:`DistillationTrunk` with IMDBs.

    Args:
        nf: feature channels (64).
        num_modules: number of IMDBs (6).
        upscaling_factor: output scale.
    """

    block = IMDB
    block_prefix = "IMDB"

    def __init__(self, *, nf: int = 64, num_modules: int = 6, upscaling_factor: int = 4) -> None:
        if upscaling_factor < 1:
            raise ValueError(f"IMDN: upscaling_factor must be >= 1, got {upscaling_factor}")
        super().__init__(nf=nf, num_modules=num_modules, upscaling_factor=upscaling_factor)


def detect(sd: StateDict) -> Detected | None:
    """IMDN (official names ``fea_conv``, ``IMDB{n}``, ``upsampler.0``). RFDN shares the
    stem and tail names; its blocks are ``B{n}``, which an IMDN file never has."""
    if not base.has_keys(sd, "fea_conv.weight", "IMDB1.c1.weight", "upsampler.0.weight"):
        return None
    if any(k.startswith("B1.") for k in sd):
        return None
    scale = base.pixelshuffle_scale(sd["upsampler.0.weight"].shape[0])
    if scale is None:
        return None
    n_modules = base.count_indices(sd, r"IMDB(\d+)\.")
    config = {"nf": sd["fea_conv.weight"].shape[0], "num_modules": n_modules}
    return Detected("imdn", config, scale)


ARCH = ArchDescriptor(name="imdn", build=IMDN, detect=detect, scales=(2, 3, 4))
