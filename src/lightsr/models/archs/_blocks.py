"""Pieces that several architectures share, each with one home here.

Not an architecture (the registry skips modules whose names start with ``_``). Each piece builds
exactly the modules, in the same order, that its users built themselves before, so their
official checkpoints keep their key names and seeded initialisations stay the same:

- :func:`pad_to_min_size`: edge replication up to the smallest side that a network with pooling
  runs on (SAFMN++, Light SAFMN++, SAFMNv3, the NTIRE 2023 SAFMN, and the ESA networks RFDN,
  RLFN and EFDN); the networks crop their outputs back;
- :func:`pixelshuffle_upsampler`: the one-step upsampler, a 3x3 conv to ``3 * scale**2``
  channels and PixelShuffle, as index 0 of a Sequential (the checkpoints' ``to_img.0``,
  ``upsampler.0``, ``tail.0``, ``upsample.0``);
- :func:`ccm_layers` and :class:`ConvFFN`: the bias-free feed-forward parts of the SAFMN
  challenge entries (conv to ``int(dim * ffn_scale)`` channels, GELU, 1x1 conv back);
- :func:`safmn_layout_config`: what a SAFMN-family state dict (``to_feat``, ``feats.{i}``,
  ``to_img.0``) says about dim, depth, expansion and scale.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import StateDict

__all__ = [
    "ConvFFN",
    "ccm_layers",
    "pad_to_min_size",
    "pixelshuffle_upsampler",
    "safmn_layout_config",
]


def pad_to_min_size(x: torch.Tensor, min_size: int) -> torch.Tensor:
    """``x`` (B, C, H, W) with its bottom and right edges replicated until both sides are at
    least ``min_size`` pixels; ``x`` itself when they already are.

    The pooled branches of these networks (or their official code) have no output below that
    size; replicating the edge and cropping the output defines them there, and at ``min_size``
    and above nothing changes, so those outputs stay the official ones bit for bit.
    """
    h, w = x.shape[-2:]
    if h >= min_size and w >= min_size:
        return x
    return F.pad(x, (0, max(0, min_size - w), 0, max(0, min_size - h)), mode="replicate")


def pixelshuffle_upsampler(channels: int, scale: int, *, bias: bool = True) -> nn.Sequential:
    """A 3x3 conv from ``channels`` to ``3 * scale**2`` and PixelShuffle(``scale``): RGB at
    ``scale`` times the size.

    Args:
        channels: input channels.
        scale: upscaling factor.
        bias: whether the conv has a bias (the SAFMN challenge entries' have none).
    """
    return nn.Sequential(
        nn.Conv2d(channels, 3 * scale**2, 3, padding=1, bias=bias),
        nn.PixelShuffle(scale),
    )


def ccm_layers(dim: int, *, ffn_scale: float) -> nn.Sequential:
    """The bias-free CCM of the NTIRE 2023 SAFMN and Light SAFMN++ as one Sequential: 3x3 conv
    to ``int(dim * ffn_scale)`` channels (index 0), GELU, 1x1 conv back (index 2)."""
    hidden = int(dim * ffn_scale)
    return nn.Sequential(
        nn.Conv2d(dim, hidden, 3, padding=1, bias=False),
        nn.GELU(),
        nn.Conv2d(hidden, dim, 1, bias=False),
    )


class ConvFFN(nn.Module):
    """Bias-free two-conv feed-forward part: ``conv1`` to ``int(dim * ffn_scale)`` channels,
    GELU, 1x1 ``conv2`` back. SAFMN++'s CCM has a 3x3 ``conv1``, SAFMNv3's FFN a 1x1.

    Args:
        dim: channels in and out.
        ffn_scale: expansion of the hidden layer.
        kernel_size: ``conv1``'s kernel side (odd; zero padding keeps the size).
    """

    def __init__(self, dim: int, *, ffn_scale: float, kernel_size: int) -> None:
        super().__init__()
        hidden = int(dim * ffn_scale)
        self.conv1 = nn.Conv2d(dim, hidden, kernel_size, padding=kernel_size // 2, bias=False)
        self.conv2 = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.gelu(self.conv1(x)))


def safmn_layout_config(sd: StateDict, hidden_key: str) -> tuple[dict[str, Any], int] | None:
    """``dim`` (``to_feat``), ``n_blocks`` (``feats.{i}``) and ``ffn_scale`` (the first
    feed-forward conv ``hidden_key`` over ``dim``) of a SAFMN-family state dict, and its scale
    (from the PixelShuffle conv ``to_img.0``). None when ``to_img.0`` fits no scale.

    The caller first checks the keys that tell its own architecture apart (and that these are
    present)."""
    scale = base.pixelshuffle_scale(sd["to_img.0.weight"].shape[0])
    if scale is None:
        return None
    dim = sd["to_feat.weight"].shape[0]
    config: dict[str, Any] = {
        "dim": dim,
        "n_blocks": base.count_indices(sd, r"feats\.(\d+)\."),
        "ffn_scale": sd[hidden_key].shape[0] / dim,
    }
    return config, scale
