"""SAFMN++: the NTIRE 2024 efficient super-resolution entry of the SAFMN authors.

Challenge report: B. Ren et al., "The Ninth NTIRE 2024 Efficient
Super-Resolution Challenge Report", CVPR 2024 Workshops (team of L. Sun, J. Dong, J. Pan et
al.). SAFMN++ simplifies the paper's SAFMN (:mod:`lightsr.models.archs.safmn`) for speed:

- the SAFM becomes a *simplified* SAFM: a 3x3 conv ``proj``; its first ``dim // 3`` channels are
  adaptive-max-pooled by 8, convolved depth-wise (``dwconv``), upsampled back bilinearly and,
  through GELU, modulate themselves; concatenated with the untouched channels, GELU, 1x1 ``out``;
- the CCM is kept (3x3 ``conv1`` to ``ffn_scale * dim``, GELU, 1x1 ``conv2``), without the
  SAFM's own residual: a block is ``X + CCM(SimpleSAFM(X))``;
- no normalisation, and no bias in any conv;
- no residual around the body; the bilinearly upsampled input is added to the output.

dim 36, 6 blocks, ffn 1.5 at x4: 211,572 parameters. Inputs are RGB in [0, 1], of any size: like
the official test code the module does not pad (adaptive pooling floors sides that are not
multiples of 8; Set5 x4 reads 32.019 dB so, 32.017 dB when padded to multiples of 8); inputs
smaller than 8 pixels are padded by edge replication inside. Sub-module names follow the
checkpoint (``to_feat``, ``feats.{i}.conv1.proj/dwconv/out``, ``feats.{i}.conv2.conv1/conv2``,
``to_img.0``); its ``params_ema`` weights are the released ones.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

from ._blocks import ConvFFN, pad_to_min_size, pixelshuffle_upsampler, safmn_layout_config

__all__ = ["ARCH", "MIN_SIZE", "SAFMNPP", "SimpleSAFM", "simple_safm_config"]

#: The pooled branch is pooled by 8: the smallest side that runs as is.
MIN_SIZE = 8


class SimpleSAFM(nn.Module):
    """Simplified SAFM of SAFMN++ (and, with ``ratio=2``, of Light SAFMN++).

    Args:
        dim: channels.
        ratio: the pooled branch has ``dim // ratio`` channels (3 in SAFMN++, 2 in Light
            SAFMN++).
    """

    def __init__(self, dim: int, *, ratio: int = 3) -> None:
        super().__init__()
        self.dim = dim
        self.chunk = dim // ratio
        self.proj = nn.Conv2d(dim, dim, 3, padding=1, bias=False)
        self.dwconv = nn.Conv2d(self.chunk, self.chunk, 3, padding=1, groups=self.chunk, bias=False)
        self.out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x0, x1 = self.proj(x).split([self.chunk, self.dim - self.chunk], dim=1)
        s = self.dwconv(F.adaptive_max_pool2d(x0, (h // 8, w // 8)))
        s = F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)
        x2 = F.gelu(s) * x0  # spatially-adaptive modulation of the pooled channels
        return self.out(F.gelu(torch.cat([x1, x2], dim=1)))


class _Block(nn.Module):
    def __init__(self, dim: int, *, ffn_scale: float) -> None:
        super().__init__()
        self.conv1 = SimpleSAFM(dim, ratio=3)
        self.conv2 = ConvFFN(dim, ffn_scale=ffn_scale, kernel_size=3)  # the CCM

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class SAFMNPP(nn.Module):
    """SAFMN++ (NTIRE 2024).

    Args:
        dim: feature channels (36).
        n_blocks: blocks (6).
        ffn_scale: CCM expansion ratio (1.5).
        upscaling_factor: output scale (4 in the challenge).
    """

    def __init__(
        self,
        *,
        dim: int = 36,
        n_blocks: int = 6,
        ffn_scale: float = 1.5,
        upscaling_factor: int = 4,
    ) -> None:
        super().__init__()
        if upscaling_factor < 1:
            raise ValueError(f"SAFMN++: upscaling_factor must be >= 1, got {upscaling_factor}")
        self.scale = upscaling_factor
        self.to_feat = nn.Conv2d(3, dim, 3, padding=1, bias=False)
        self.feats = nn.Sequential(*(_Block(dim, ffn_scale=ffn_scale) for _ in range(n_blocks)))
        self.to_img = pixelshuffle_upsampler(dim, upscaling_factor, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_min_size(x, MIN_SIZE)  # else the pooled branch would be empty
        base = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        y = self.to_img(self.feats(self.to_feat(x))) + base
        return y[..., : h * self.scale, : w * self.scale]


def simple_safm_config(
    sd: StateDict, *, hidden_key: str, ratio: int
) -> tuple[dict[str, Any], int] | None:
    """The config and scale of a network of :class:`SimpleSAFM` blocks (SAFMN++, Light
    SAFMN++): ``to_feat``, ``feats.N.conv1.proj`` and ``dwconv`` on ``dim // ratio`` channels,
    the first feed-forward conv ``hidden_key``, ``to_img.0``. None when the tensors are not
    such a network."""
    needed = ("to_feat.weight", "feats.0.conv1.proj.weight", hidden_key, "to_img.0.weight")
    if not base.has_keys(sd, *needed):
        return None
    found = safmn_layout_config(sd, hidden_key)
    if found is None or sd["feats.0.conv1.dwconv.weight"].shape[0] != found[0]["dim"] // ratio:
        return None
    return found


def detect(sd: StateDict) -> Detected | None:
    """SAFMN++ (NTIRE 2024): ``feats.N.conv1.proj`` with a depth-wise conv on a third of the
    channels, and a two-conv CCM ``conv2.conv1``/``conv2.conv2``. Light SAFMN++ has
    ``conv2.conv.0`` and a half-width depth-wise conv; SAFMNv3 has no ``conv1.proj``."""
    if "feats.0.conv2.conv.0.weight" in sd:
        return None
    found = simple_safm_config(sd, hidden_key="feats.0.conv2.conv1.weight", ratio=3)
    return None if found is None else Detected("safmnpp", *found)


#: fp16: the NTIRE 2024 weights' activations reach 1e29 in float32.
ARCH = ArchDescriptor(
    name="safmnpp", build=SAFMNPP, detect=detect, scales=(4,), supports_fp16=False
)
