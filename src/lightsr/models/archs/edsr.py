"""EDSR (baseline): Enhanced Deep Super-Resolution network.

Paper: B. Lim, S. Son, H. Kim, S. Nah, K. M. Lee, "Enhanced Deep Residual Networks for Single
Image Super-Resolution", CVPR 2017 Workshops. EDSR-baseline is the paper's small model
(Sec. 3.1, Table 1): 16 residual blocks of 64 channels, residual scaling 1.

Structure (Fig. 3): the input minus the DIV2K mean, a 3x3 head conv, ``n_resblocks`` residual
blocks without batch normalisation (conv-ReLU-conv + identity, scaled by ``res_scale``), a 3x3
conv with a global residual, the upsampler (conv to 4x the channels + PixelShuffle(2) per x2
step, or conv to 9x + PixelShuffle(3) at x3), a 3x3 conv to RGB, and the mean added back.

Sub-module names follow the official code (``sub_mean``/``add_mean`` as fixed 1x1 convs,
``head.0``, ``body.{i}.body.0/2``, ``body.{n}``, ``tail.0.{j}``, ``tail.1``), so its checkpoints
load with ``strict=True``. The official models work in [0, 255] (``rgb_range=255``): the module
scales internally; its interface is RGB in [0, 1]. No public weights are used here: the model is
built and counted.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

__all__ = ["ARCH", "EDSR"]

_DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


class _MeanShift(nn.Conv2d):
    """Fixed 1x1 conv adding (``sign=+1``) or subtracting (``-1``) ``img_range * mean``."""

    def __init__(self, img_range: float, *, sign: int) -> None:
        super().__init__(3, 3, 1)
        with torch.no_grad():
            self.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.bias.copy_(sign * img_range * torch.tensor(_DIV2K_MEAN))
        for p in self.parameters():
            p.requires_grad_(False)


class _ResBlock(nn.Module):
    """conv3x3 - ReLU - conv3x3, times ``res_scale``, plus the input (no batch norm)."""

    def __init__(self, channels: int, *, res_scale: float) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.res_scale + x


def _upsampler(scale: int, channels: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    if scale & (scale - 1) == 0:  # power of 2: x2 steps
        for _ in range(int(math.log2(scale))):
            layers += [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [nn.Conv2d(channels, 9 * channels, 3, padding=1), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"EDSR: upscaling_factor must be a power of 2 or 3, got {scale}")
    return nn.Sequential(*layers)


class EDSR(nn.Module):
    """EDSR; the defaults are EDSR-baseline.

    Args:
        n_resblocks: residual blocks (16 baseline, 32 full EDSR).
        n_feats: channels (64 baseline, 256 full).
        res_scale: residual scaling (1.0 baseline, 0.1 full).
        upscaling_factor: 2, 3, 4 (any power of 2 works).
        img_range: the pixel range the weights work in (255 in the official code).
    """

    def __init__(
        self,
        *,
        n_resblocks: int = 16,
        n_feats: int = 64,
        res_scale: float = 1.0,
        upscaling_factor: int = 4,
        img_range: float = 255.0,
    ) -> None:
        super().__init__()
        self.scale = upscaling_factor
        self.img_range = img_range
        self.sub_mean = _MeanShift(img_range, sign=-1)
        self.add_mean = _MeanShift(img_range, sign=1)
        self.head = nn.Sequential(nn.Conv2d(3, n_feats, 3, padding=1))
        self.body = nn.Sequential(
            *(_ResBlock(n_feats, res_scale=res_scale) for _ in range(n_resblocks)),
            nn.Conv2d(n_feats, n_feats, 3, padding=1),
        )
        self.tail = nn.Sequential(
            _upsampler(upscaling_factor, n_feats), nn.Conv2d(n_feats, 3, 3, padding=1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.sub_mean(x * self.img_range))
        x = self.body(x) + x  # global residual
        return self.add_mean(self.tail(x)) / self.img_range


def detect(sd: StateDict) -> Detected | None:
    """EDSR (official names ``sub_mean``, ``head.0``, ``body.{n}.body``, ``tail``). CARN-M's
    mean shift is ``sub_mean.shifter``; RCAN's residual groups nest one level deeper
    (``body.{n}.body.{m}.body``), so ``body.0.body.0.weight`` is EDSR's alone."""
    needed = ("sub_mean.weight", "head.0.weight", "body.0.body.0.weight", "tail.0.0.weight")
    if not base.has_keys(sd, *needed):
        return None
    n_feats = sd["head.0.weight"].shape[0]
    n_resblocks = base.count_indices(sd, r"body\.(\d+)\.body\.")
    steps = base.count_indices(sd, r"tail\.0\.(\d+)\.weight")
    first = sd["tail.0.0.weight"].shape[0] // n_feats
    scale = 2**steps if first == 4 else 3 if (first, steps) == (9, 1) else None
    if scale is None:
        return None
    config = {
        "n_resblocks": n_resblocks,
        "n_feats": n_feats,
        "res_scale": 0.1 if (n_resblocks, n_feats) == (32, 256) else 1.0,  # the paper's EDSR
        # the mean shift's bias is -img_range * mean: 255-range models have |bias| > 1
        "img_range": 255.0 if float(sd["sub_mean.bias"].abs().max()) > 1.0 else 1.0,
    }
    return Detected("edsr", config, scale)


ARCH = ArchDescriptor(name="edsr", build=EDSR, detect=detect, scales=(2, 3, 4))
