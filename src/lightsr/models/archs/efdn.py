"""EFDN: Edge-enhanced Feature Distillation Network (the NTIRE 2025 efficient-SR baseline).

Paper: Y. Wang, "Edge-enhanced Feature Distillation Network for Efficient Super-Resolution",
CVPR 2022 Workshops (NTIRE 2022 efficient SR challenge); the NTIRE 2025 challenge used it as its
baseline. Only the deployed (re-parameterised) form is loaded here: each edge-enhanced diverse
branch block (EDBB: 3x3, 1x1, 1x1-3x3, Sobel-x/y and Laplacian branches, Sec. 3.2) is stored as
the one 3x3 conv ``rep_conv`` it collapses to, followed by its PReLU.

Structure (Sec. 3, Fig. 2): a 3x3 conv to ``n_feats``; four edge-enhanced feature distillation
blocks (EFDB, ``cells``): a 1x1 conv + PReLU, two EDBBs, four 1x1 "distillation" convs (to
``n_feats / 2``) of the block input and of the three intermediate outputs, a 1x1 fusion of
their concatenation, an enhanced spatial attention (ESA, with RFANet's ``conv_max`` and
``conv3_`` and ReLUs) and a residual; the blocks are chained with 1x1 fusions of pairs of block
outputs (``local_fuse``: [1, 2] -> 3, [2, 3] -> 4, [2, 4] -> out); a global residual; a 3x3
conv + PixelShuffle; the output is clamped to [0, 1] inside the network.

The ESA's strided conv and 7x7/3 max pooling need inputs of at least 15x15 pixels: smaller
inputs are padded by edge replication inside and the output cropped. Sub-module names follow
the checkpoint (``head``, ``cells.{i}.conv1.conv1x1/act``, ``cells.{i}.conv{2,3}.rep_conv/act``,
``cells.{i}.branch.{j}``, ``cells.{i}.fuse``, ``cells.{i}.att.*``, ``local_fuse.{j}``,
``tail.0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

__all__ = ["ARCH", "EFDN", "MIN_SIZE"]

#: The smallest side the ESA runs on (a 3x3/2 conv, then a 7x7/3 max pooling).
MIN_SIZE = 15


class _ESA(nn.Module):
    """Enhanced spatial attention (RFANet's, as EFDN uses it): reduction to ``n_feats / 4``."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        f = n_feats // 4
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2)
        self.conv_max = nn.Conv2d(f, f, 3, padding=1)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv3_ = nn.Conv2d(f, f, 3, padding=1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        v = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        c3 = self.conv3_(F.relu(self.conv3(F.relu(self.conv_max(v)))))
        c3 = F.interpolate(c3, x.shape[-2:], mode="bilinear", align_corners=False)
        return x * torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))


class _Conv1x1(nn.Module):
    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv2d(n_feats, n_feats, 1)
        self.act = nn.PReLU(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv1x1(x))


class _EDBB(nn.Module):
    """A deployed EDBB: its branches collapsed into one 3x3 conv, then PReLU."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.rep_conv = nn.Conv2d(n_feats, n_feats, 3, padding=1)
        self.act = nn.PReLU(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.rep_conv(x))


class _EFDB(nn.Module):
    """Edge-enhanced feature distillation block (Fig. 2)."""

    def __init__(self, n_feats: int) -> None:
        super().__init__()
        self.conv1 = _Conv1x1(n_feats)
        self.conv2 = _EDBB(n_feats)
        self.conv3 = _EDBB(n_feats)
        self.branch = nn.ModuleList(nn.Conv2d(n_feats, n_feats // 2, 1) for _ in range(4))
        self.fuse = nn.Conv2d(2 * n_feats, n_feats, 1)
        self.att = _ESA(n_feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.conv1(x)
        out2 = self.conv2(out1)
        out3 = self.conv3(out2)
        taps = [b(t) for b, t in zip(self.branch, (x, out1, out2, out3), strict=True)]
        return self.att(self.fuse(torch.cat(taps, dim=1))) + x


class EFDN(nn.Module):
    """The EFDN network (deployed form).

    Args:
        n_feats: width (48).
        upscaling_factor: output scale.
    """

    #: Its forward exports to ONNX exactly with dynamic shapes, at any size of at least
    #: :data:`MIN_SIZE` (the graph has no inner padding).
    onnx_size_multiple = 1

    def __init__(self, *, n_feats: int = 48, upscaling_factor: int = 4) -> None:
        super().__init__()
        if upscaling_factor < 1 or n_feats % 4:
            raise ValueError("EFDN: upscaling_factor must be >= 1 and n_feats a multiple of 4")
        self.scale = upscaling_factor
        self.head = nn.Conv2d(3, n_feats, 3, padding=1)
        self.cells = nn.ModuleList(_EFDB(n_feats) for _ in range(4))
        self.local_fuse = nn.ModuleList(nn.Conv2d(2 * n_feats, n_feats, 1) for _ in range(3))
        self.tail = nn.Sequential(
            nn.Conv2d(n_feats, 3 * upscaling_factor**2, 3, padding=1),
            nn.PixelShuffle(upscaling_factor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h < MIN_SIZE or w < MIN_SIZE:  # the ESA's pooling would be empty
            x = F.pad(x, (0, max(0, MIN_SIZE - w), 0, max(0, MIN_SIZE - h)), mode="replicate")
        out0 = self.head(x)
        out1 = self.cells[0](out0)
        out2 = self.cells[1](out1)
        out3 = self.cells[2](self.local_fuse[0](torch.cat([out1, out2], dim=1)))
        out4 = self.cells[3](self.local_fuse[1](torch.cat([out2, out3], dim=1)))
        out = self.local_fuse[2](torch.cat([out2, out4], dim=1)) + out0
        y = self.tail(out).clamp(0, 1)
        return y[..., : h * self.scale, : w * self.scale]


def detect(sd: StateDict) -> Detected | None:
    """EFDN (deployed): ``cells.N.conv2.rep_conv`` EDBBs, ``local_fuse`` and a ``tail``."""
    needed = ("head.weight", "cells.0.conv2.rep_conv.weight", "local_fuse.0.weight")
    if not base.has_keys(sd, *needed, "tail.0.weight", "cells.0.att.conv_max.weight"):
        return None
    if base.count_indices(sd, r"cells\.(\d+)\.") != 4:
        return None
    scale = base.pixelshuffle_scale(sd["tail.0.weight"].shape[0])
    if scale is None:
        return None
    return Detected("efdn", {"n_feats": sd["head.weight"].shape[0]}, scale)


ARCH = ArchDescriptor(name="efdn", build=EFDN, detect=detect, scales=(2, 3, 4))
