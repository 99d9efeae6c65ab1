"""CARN-M: the mobile Cascading Residual Network.

Paper: N. Ahn, B. Kang, K.-A. Sohn, "Fast, Accurate, and Lightweight Super-Resolution with
Cascading Residual Network", ECCV 2018. CARN-M is the paper's light variant (Sec. 3.3).

Sec. 3: the input minus the DIV2K mean goes through a 3x3 conv to 64 channels and three
cascading blocks, each followed by a 1x1 conv + ReLU over the concatenation of everything before
it (cascading at the global level, Fig. 2). CARN-M's cascading block applies one efficient
residual block (Fig. 3c: group conv 3x3, ReLU, group conv 3x3, ReLU, 1x1 conv, residual, ReLU)
three times, shared (recursive), with the same local cascading of 1x1 convs. The upsampler is
a group conv + ReLU + PixelShuffle per x2 step (one x3 step at x3); a 3x3 conv maps to RGB and
the mean is added back.

The public model is *multi-scale*: one network with three upsamplers (``upsample.up2/up3/up4``)
trained jointly for x2, x3 and x4. This module holds all three when ``multi_scale=True`` (so
that checkpoint loads with ``strict=True``): ``upscaling_factor`` picks the branch that
``forward`` uses by default, and ``forward(x, scale=3)`` picks another per call. With
``multi_scale=False`` it holds only ``upsample.body`` for ``upscaling_factor``, like the
single-scale models of the official code.

Inputs are RGB in [0, 1]; the mean shift is inside (``sub_mean``/``add_mean``, fixed 1x1 convs
stored in the checkpoint). Sub-module names follow the official checkpoint.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

__all__ = ["ARCH", "CARNM", "EResidualBlock", "MeanShift"]

_DIV2K_MEAN = (0.4488, 0.4371, 0.4040)
_SCALES = (2, 3, 4)


class MeanShift(nn.Module):
    """Adds (``sign=+1``) or subtracts (``-1``) the RGB mean with a fixed 1x1 conv ``shifter``."""

    def __init__(self, mean: tuple[float, float, float], *, sign: int) -> None:
        super().__init__()
        self.shifter = nn.Conv2d(3, 3, 1)
        with torch.no_grad():
            self.shifter.weight.copy_(torch.eye(3).view(3, 3, 1, 1))
            self.shifter.bias.copy_(sign * torch.tensor(mean))
        for p in self.shifter.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shifter(x)


class EResidualBlock(nn.Module):
    """Efficient residual block (Fig. 3c): ``relu(x + conv1x1(relu(gconv(relu(gconv(x))))))``."""

    def __init__(self, channels: int, *, group: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, padding=1, groups=group),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + x)


class _BasicBlock(nn.Module):
    """1x1 conv + ReLU (the cascading fusion)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _CascadingBlock(nn.Module):
    """CARN-M's local cascading block: one shared efficient residual block applied 3 times."""

    def __init__(self, channels: int, *, group: int) -> None:
        super().__init__()
        self.b1 = EResidualBlock(channels, group=group)
        self.c1 = _BasicBlock(channels * 2, channels)
        self.c2 = _BasicBlock(channels * 3, channels)
        self.c3 = _BasicBlock(channels * 4, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c0 = x
        c1 = torch.cat([c0, self.b1(x)], dim=1)
        o1 = self.c1(c1)
        c2 = torch.cat([c1, self.b1(o1)], dim=1)
        o2 = self.c2(c2)
        c3 = torch.cat([c2, self.b1(o2)], dim=1)
        return self.c3(c3)


class _Upsample(nn.Module):
    """Group conv (to ``r^2`` times the channels) + ReLU + PixelShuffle(r), per x2 step / x3."""

    def __init__(self, channels: int, *, scale: int, group: int) -> None:
        super().__init__()
        steps = {2: [2], 3: [3], 4: [2, 2]}[scale]
        layers: list[nn.Module] = []
        for r in steps:
            layers += [
                nn.Conv2d(channels, channels * r * r, 3, padding=1, groups=group),
                nn.ReLU(inplace=True),
                nn.PixelShuffle(r),
            ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _MultiScaleUpsample(nn.Module):
    """One upsampler per scale (``up2``, ``up3``, ``up4``)."""

    def __init__(self, channels: int, *, group: int) -> None:
        super().__init__()
        self.up2 = _Upsample(channels, scale=2, group=group)
        self.up3 = _Upsample(channels, scale=3, group=group)
        self.up4 = _Upsample(channels, scale=4, group=group)

    def forward(self, x: torch.Tensor, scale: int) -> torch.Tensor:
        return getattr(self, f"up{scale}")(x)


class CARNM(nn.Module):
    """The CARN-M network.

    Args:
        n_feats: channels (64).
        group: groups of the efficient residual blocks' and upsamplers' convs (4).
        upscaling_factor: 2, 3 or 4; the default branch of a multi-scale model.
        multi_scale: hold the x2, x3 and x4 upsamplers (the public model) instead of one.
    """

    def __init__(
        self,
        *,
        n_feats: int = 64,
        group: int = 4,
        upscaling_factor: int = 4,
        multi_scale: bool = True,
    ) -> None:
        super().__init__()
        if upscaling_factor not in _SCALES:
            raise ValueError(f"CARN-M: upscaling_factor must be 2, 3 or 4, got {upscaling_factor}")
        self.scale = upscaling_factor
        self.multi_scale = multi_scale
        self.sub_mean = MeanShift(_DIV2K_MEAN, sign=-1)
        self.add_mean = MeanShift(_DIV2K_MEAN, sign=1)
        self.entry = nn.Conv2d(3, n_feats, 3, padding=1)
        self.b1 = _CascadingBlock(n_feats, group=group)
        self.b2 = _CascadingBlock(n_feats, group=group)
        self.b3 = _CascadingBlock(n_feats, group=group)
        self.c1 = _BasicBlock(n_feats * 2, n_feats)
        self.c2 = _BasicBlock(n_feats * 3, n_feats)
        self.c3 = _BasicBlock(n_feats * 4, n_feats)
        self.upsample: nn.Module
        if multi_scale:
            self.upsample = _MultiScaleUpsample(n_feats, group=group)
        else:
            self.upsample = _Upsample(n_feats, scale=upscaling_factor, group=group)
        self.exit = nn.Conv2d(n_feats, 3, 3, padding=1)

    def forward(self, x: torch.Tensor, scale: int | None = None) -> torch.Tensor:
        """(B, 3, H, W) RGB in [0, 1] -> (B, 3, sH, sW); ``scale`` (multi-scale models only)
        overrides ``upscaling_factor`` for this call."""
        scale = self.scale if scale is None else scale
        if scale != self.scale and not self.multi_scale:
            raise ValueError(f"CARN-M: this single-scale model is x{self.scale}, not x{scale}")
        if scale not in _SCALES:
            raise ValueError(f"CARN-M: scale must be 2, 3 or 4, got {scale}")
        x = self.entry(self.sub_mean(x))
        c0 = x
        c1 = torch.cat([c0, self.b1(x)], dim=1)
        o1 = self.c1(c1)
        c2 = torch.cat([c1, self.b2(o1)], dim=1)
        o2 = self.c2(c2)
        c3 = torch.cat([c2, self.b3(o2)], dim=1)
        o3 = self.c3(c3)
        out = self.upsample(o3, scale) if self.multi_scale else self.upsample(o3)
        return self.add_mean(self.exit(out))


def detect(sd: StateDict) -> Detected | None:
    """CARN-M (official names ``sub_mean.shifter``, ``entry``, ``b{n}.b{m}.body``): the public
    multi-scale file (``upsample.up{2,3,4}``) or a single-scale one (``upsample.body``). EDSR's
    mean shift is ``sub_mean`` itself, without ``shifter``."""
    block = "b1.b1.body."
    if not base.has_keys(sd, "sub_mean.shifter.weight", "entry.weight", block + "4.weight"):
        return None
    n_feats = sd["entry.weight"].shape[0]
    config: dict[str, Any] = {
        "n_feats": n_feats,
        "group": n_feats // sd[block + "0.weight"].shape[1],
    }
    if "upsample.up2.body.0.weight" in sd:  # the public multi-scale model: x4 unless asked
        return Detected("carn_m", {**config, "multi_scale": True}, 4, scales=(2, 3, 4))
    first = sd["upsample.body.0.weight"].shape[0] // n_feats
    scale = 4 if "upsample.body.3.weight" in sd else {4: 2, 9: 3}.get(first)
    if scale is None:
        return None
    return Detected("carn_m", {**config, "multi_scale": False}, scale)


ARCH = ArchDescriptor(name="carn_m", build=CARNM, detect=detect, scales=(2, 3, 4))
