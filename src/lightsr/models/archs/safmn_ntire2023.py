"""SAFMN as entered in the NTIRE 2023 efficient super-resolution challenge.

Challenge report: Y. Li et al., "NTIRE 2023 Challenge on Efficient Super-Resolution: Methods
and Results", CVPR 2023 Workshops (team of L. Sun, J. Dong, J. Tang, J. Pan). The paper's SAFMN
(:mod:`lightsr.models.archs.safmn`, ICCV 2023) differs from this challenge entry in five ways, all
visible in the public checkpoint:

- no LayerNorm in the blocks: ``Y = SAFM(X) + X; Z = CCM(Y) + Y``;
- the convolutions inside the blocks (SAFM depth-wise/aggregation, CCM) have no bias;
- a GRN (global response normalisation, from ConvNeXt V2) follows the first conv:
  ``x + gamma * (x * N(x)) + beta``, with ``N(x) = ||x||_2 / mean_c(||x||_2)`` from each
  channel's L2 norm over the image;
- the multi-scale SAFM branch ``i`` (1..3) pools to ``(h // 2**(i+1), w // 2**(i+1))`` (one
  level coarser than the paper);
- no residual around the body; instead the bilinearly upsampled input is added to the output.

dim 36, 8 blocks, CCM expansion 2.0 at x4: 237,000 parameters. Inputs are RGB in [0, 1], of
any size: like the official test code the module does not pad, and adaptive pooling floors
sides that are not multiples of 16. That reproduces the reference Set5 x4 PSNR (32.17 dB);
padding to multiples of 16 would give 32.155 dB (three of the five Set5 LR images are not
multiples of 16). Inputs smaller than 16 pixels (where a pooled side would be 0) are padded by
edge replication inside and the output cropped. Sub-module names follow the checkpoint
(``norm.gamma/beta``, ``to_feat``, ``feats.{i}.safm.mfr.{j}/aggr``, ``feats.{i}.ccm.ccm.0/2``,
``to_img.0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

from ._blocks import ccm_layers, pad_to_min_size, pixelshuffle_upsampler, safmn_layout_config

__all__ = ["ARCH", "GRN", "MIN_SIZE", "SAFMNNTIRE2023"]

#: Deepest pooling is by 2**4 (branch 3 at level i + 1): the smallest side that runs as is.
MIN_SIZE = 16


class GRN(nn.Module):
    """Global response normalisation (ConvNeXt V2, Eq. 1-3) for (B, C, H, W) tensors.

    Args:
        dim: channels.
        eps: added to the mean norm.
    """

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gx = torch.linalg.vector_norm(x, ord=2, dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
        nx = gx / (gx.mean(dim=1, keepdim=True) + self.eps)
        return self.gamma * (x * nx) + self.beta + x


class _SAFM(nn.Module):
    """SAFM without biases, multi-scale branch ``i`` pooled by ``2**(i+1)``."""

    def __init__(self, dim: int, *, n_levels: int = 4) -> None:
        super().__init__()
        self.n_levels = n_levels
        chunk = dim // n_levels
        self.mfr = nn.ModuleList(
            nn.Conv2d(chunk, chunk, 3, padding=1, groups=chunk, bias=False) for _ in range(n_levels)
        )
        self.aggr = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        chunks = x.chunk(self.n_levels, dim=1)
        out = [self.mfr[0](chunks[0])]
        for i in range(1, self.n_levels):
            s = F.adaptive_max_pool2d(chunks[i], (h // 2 ** (i + 1), w // 2 ** (i + 1)))
            s = self.mfr[i](s)
            out.append(F.interpolate(s, size=(h, w), mode="nearest"))
        return F.gelu(self.aggr(torch.cat(out, dim=1))) * x


class _CCM(nn.Module):
    """Bias-free CCM: 3x3 conv to ``ffn_scale * dim``, GELU, 1x1 back."""

    def __init__(self, dim: int, *, ffn_scale: float) -> None:
        super().__init__()
        self.ccm = ccm_layers(dim, ffn_scale=ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ccm(x)


class _Block(nn.Module):
    def __init__(self, dim: int, *, ffn_scale: float) -> None:
        super().__init__()
        self.safm = _SAFM(dim)
        self.ccm = _CCM(dim, ffn_scale=ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.safm(x) + x
        return self.ccm(x) + x


class SAFMNNTIRE2023(nn.Module):
    """The NTIRE 2023 SAFMN entry.

    Args:
        dim: feature channels (36).
        n_blocks: feature mixing blocks (8).
        ffn_scale: CCM expansion ratio (2.0).
        upscaling_factor: output scale (4 in the challenge).
    """

    def __init__(
        self,
        *,
        dim: int = 36,
        n_blocks: int = 8,
        ffn_scale: float = 2.0,
        upscaling_factor: int = 4,
    ) -> None:
        super().__init__()
        if upscaling_factor < 1:
            raise ValueError(
                f"SAFMN-NTIRE2023: upscaling_factor must be >= 1, got {upscaling_factor}"
            )
        self.scale = upscaling_factor
        self.norm = GRN(dim)
        self.to_feat = nn.Conv2d(3, dim, 3, padding=1)
        self.feats = nn.Sequential(*(_Block(dim, ffn_scale=ffn_scale) for _ in range(n_blocks)))
        self.to_img = pixelshuffle_upsampler(dim, upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_min_size(x, MIN_SIZE)  # else a pooled side would be empty
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        y = self.to_img(self.feats(self.norm(self.to_feat(x)))) + base
        return y[..., : h * self.scale, : w * self.scale]


def detect(sd: StateDict) -> Detected | None:
    """SAFMN's NTIRE 2023 entry: a GRN (``norm.gamma``) before the blocks and no LayerNorm in
    them (the paper's SAFMN has ``feats.N.norm1``)."""
    needed = ("norm.gamma", "to_feat.weight", "feats.0.safm.aggr.weight", "to_img.0.weight")
    if not base.has_keys(sd, *needed) or "feats.0.norm1.weight" in sd:
        return None
    found = safmn_layout_config(sd, "feats.0.ccm.ccm.0.weight")
    return None if found is None else Detected("safmn_ntire2023", *found)


ARCH = ArchDescriptor(name="safmn_ntire2023", build=SAFMNNTIRE2023, detect=detect, scales=(4,))
