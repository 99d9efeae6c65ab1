"""RFDN: Residual Feature Distillation Network.

Paper: J. Liu, J. Tang, G. Wu, "Residual Feature Distillation Network for Lightweight Image
Super-Resolution", ECCV 2020 Workshops (AIM 2020 efficient SR challenge winner).

Sec. 3 (Fig. 2-3): a 3x3 conv to ``nf`` features; ``num_modules`` residual feature distillation
blocks (RFDB): three stages, each a 1x1 "distillation" conv (kept, half the width) and a 3x3
conv with a shallow residual (refined further), then a 3x3 conv on the last refined features;
the four parts are concatenated, fused by a 1x1 conv and weighted by enhanced spatial attention
(ESA, from RFANet: 1x1 reduction, strided 3x3 conv, 7x7/3 max pooling, three 3x3 convs,
bilinear upsampling, 1x1 expansion, sigmoid). The block outputs are concatenated, fused by
1x1 conv + LeakyReLU, a 3x3 conv adds the global residual, and a 3x3 conv + PixelShuffle
upsamples. LeakyReLU slope 0.05 throughout.

The AIM 2020 checkpoint was trained on inputs in [0, 255] (``img_range=255``); the module
scales internally, so its interface is RGB in [0, 1]. The ESA's strided conv and 7x7/3 max
pooling need maps of at least 15x15 pixels (the official code raises below that): smaller
inputs are padded by edge replication inside and the output cropped (see
:meth:`RFDN.forward`). Sub-module names follow the official checkpoint (``fea_conv``,
``B1``..``B4`` with ``c1_d``..``c5`` and ``esa.*``, ``c.0``, ``LR_conv``, ``upsampler.0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

from ._blocks import pad_to_min_size
from .imdn import DistillationTrunk

__all__ = ["ARCH", "MIN_SIZE", "RFDB", "RFDN", "ESAFull"]

_SLOPE = 0.05

#: The smallest side the ESA runs on: a 3x3 conv with stride 2 and no padding, then a 7x7 max
#: pooling with stride 3, need (side - 3) // 2 + 1 >= 7.
MIN_SIZE = 15


class ESAFull(nn.Module):
    """Enhanced spatial attention of RFANet as used by RFDN (with ``conv_max`` and ``conv3_``).

    Args:
        esa_channels: reduced width (``nf // 4``).
        n_feats: input/output channels.
    """

    def __init__(self, esa_channels: int, n_feats: int) -> None:
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        v_max = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        v_range = F.relu(self.conv_max(v_max))
        c3 = self.conv3_(F.relu(self.conv3(v_range)))
        c3 = F.interpolate(c3, x.shape[-2:], mode="bilinear", align_corners=False)
        m = torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))
        return x * m


class RFDB(nn.Module):
    """Residual feature distillation block (Fig. 3).

    Args:
        channels: block width ``nf``; the distilled parts have ``channels // 2``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        dc = channels // 2
        self.c1_d = nn.Conv2d(channels, dc, 1)
        self.c1_r = nn.Conv2d(channels, channels, 3, padding=1)
        self.c2_d = nn.Conv2d(channels, dc, 1)
        self.c2_r = nn.Conv2d(channels, channels, 3, padding=1)
        self.c3_d = nn.Conv2d(channels, dc, 1)
        self.c3_r = nn.Conv2d(channels, channels, 3, padding=1)
        self.c4 = nn.Conv2d(channels, dc, 3, padding=1)
        self.c5 = nn.Conv2d(dc * 4, channels, 1)
        self.esa = ESAFull(channels // 4, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = F.leaky_relu(self.c1_d(x), _SLOPE)
        r1 = F.leaky_relu(self.c1_r(x) + x, _SLOPE)  # shallow residual (SRB)
        d2 = F.leaky_relu(self.c2_d(r1), _SLOPE)
        r2 = F.leaky_relu(self.c2_r(r1) + r1, _SLOPE)
        d3 = F.leaky_relu(self.c3_d(r2), _SLOPE)
        r3 = F.leaky_relu(self.c3_r(r2) + r2, _SLOPE)
        r4 = F.leaky_relu(self.c4(r3), _SLOPE)
        return self.esa(self.c5(torch.cat([d1, d2, d3, r4], dim=1)))


class RFDN(DistillationTrunk):
    """The RFDN network: IMDN's :class:`~lightsr.models.archs.imdn.DistillationTrunk` with
    RFDBs, on inputs scaled to ``img_range``.

    Args:
        nf: feature channels (50 in the AIM 2020 model).
        num_modules: number of RFDBs (4 in the AIM 2020 model).
        upscaling_factor: output scale.
        img_range: the pixel range the weights were trained in (255 for the AIM checkpoint).
    """

    block = RFDB
    block_prefix = "B"

    def __init__(
        self,
        *,
        nf: int = 50,
        num_modules: int = 4,
        upscaling_factor: int = 4,
        img_range: float = 255.0,
    ) -> None:
        if upscaling_factor < 1:
            raise ValueError(f"RFDN: upscaling_factor must be >= 1, got {upscaling_factor}")
        super().__init__(nf=nf, num_modules=num_modules, upscaling_factor=upscaling_factor)
        self.img_range = img_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # The official code raises below MIN_SIZE (the ESA's pooled map would be empty).
        x = pad_to_min_size(x, MIN_SIZE)
        y = super().forward(x * self.img_range) / self.img_range
        return y[..., : h * self.scale, : w * self.scale]


def detect(sd: StateDict) -> Detected | None:
    """RFDN (official names ``fea_conv``, ``B{n}.c1_d``, ``B{n}.esa.conv_max``). IMDN shares
    the stem and tail names; its blocks are ``IMDB{n}``, which an RFDN file never has. RLFN's
    ESA lives in ``block_{n}``, under a ``conv_1`` stem."""
    needed = ("fea_conv.weight", "B1.c1_d.weight", "B1.esa.conv_max.weight", "upsampler.0.weight")
    if not base.has_keys(sd, *needed) or any(k.startswith("IMDB1.") for k in sd):
        return None
    scale = base.pixelshuffle_scale(sd["upsampler.0.weight"].shape[0])
    if scale is None:
        return None
    config = {
        "nf": sd["fea_conv.weight"].shape[0],
        "num_modules": base.count_indices(sd, r"B(\d+)\."),
    }
    return Detected("rfdn", config, scale)


ARCH = ArchDescriptor(name="rfdn", build=RFDN, detect=detect, scales=(2, 3, 4))
