"""SAFMNv3: the SAFMN authors' NTIRE 2025 efficient-SR entry.

Challenge report: B. Ren, H. Guo, L. Sun, Z. Wu, R. Timofte, Y. Li et al., "The Tenth NTIRE 2025
Efficient Super-Resolution Challenge Report", CVPR 2025 Workshops (team of L. Sun, J. Pan et
al.). A lighter SAFMN (:mod:`lightsr.models.archs.safmn`): no normalisation, bias-free convs,
and a "simple SAFM" with one pooled branch instead of four:

- simple SAFM: a 3x3 conv to ``split_dim`` channels (``x0``) and one to the rest (``x1``);
  ``x0`` is max-pooled to ``(h // 8, w // 8)``, depth-wise 3x3 conv, plus the per-channel
  variance of ``x0`` over the image (unbiased, as ``torch.var``'s default), 1x1 conv,
  bilinear upsampling back, GELU, times ``x0``; then GELU of [x1, that] and a 1x1 conv;
- the feed-forward part is two 1x1 convs (GELU between, ``ffn_scale`` expansion);
- a block is ``x + FFN(SAFM(x))`` (one residual around both);
- a bilinear x``scale`` upsampling of the input is added to the output.

dim 40, 6 blocks, ffn_scale 1.5, x4: 144,672 parameters. Like the official test code the
module does not pad: adaptive pooling floors sides that are not multiples of 8. Inputs smaller
than 8 pixels are padded by edge replication inside and the output cropped. Sub-module names
follow the checkpoint (``to_feat``, ``feats.{i}.conv1.conv1/conv2/conv3/dwconv/out``,
``feats.{i}.conv2.conv1/conv2``, ``to_img.0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

from ._blocks import ConvFFN, pad_to_min_size, pixelshuffle_upsampler, safmn_layout_config

__all__ = ["ARCH", "MIN_SIZE", "SAFMNv3"]

#: The pooling divides the sides by 8: the smallest side that runs as is.
MIN_SIZE = 8


def _pool(x: torch.Tensor) -> torch.Tensor:
    """Adaptive max pooling to (h // 8, w // 8); a plain 8x8 max pooling when both sides are
    multiples of 8 (the same result, and exportable with dynamic shapes)."""
    h, w = x.shape[-2:]
    if not torch.jit.is_tracing() and (h % 8 or w % 8):
        return F.adaptive_max_pool2d(x, (h // 8, w // 8))
    return F.max_pool2d(x, 8)


def _variance(x: torch.Tensor) -> torch.Tensor:
    """Unbiased per-channel variance over the image, (B, C, 1, 1): ``torch.var``'s default, in
    two passes (mean, then squared deviations). The reference weights' features reach 1e15,
    where the one-pass ``E[x^2] - E[x]^2`` the ONNX exporter would emit for ``torch.var``
    cancels catastrophically."""
    h, w = x.shape[-2:]
    d = x - x.mean(dim=(-2, -1), keepdim=True)
    return (d * d).sum(dim=(-2, -1), keepdim=True) / (h * w - 1)


class _SimpleSAFM(nn.Module):
    def __init__(self, dim: int, *, split_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, split_dim, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(dim, dim - split_dim, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(split_dim, split_dim, 1, bias=False)
        self.dwconv = nn.Conv2d(split_dim, split_dim, 3, padding=1, groups=split_dim, bias=False)
        self.out = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0, x1 = self.conv1(x), self.conv2(x)
        s = self.dwconv(_pool(x0))
        s = self.conv3(s + _variance(x0))
        s = F.interpolate(s, size=x0.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(F.gelu(torch.cat([x1, F.gelu(s) * x0], dim=1)))


class _Block(nn.Module):
    def __init__(self, dim: int, *, ffn_scale: float, split_dim: int) -> None:
        super().__init__()
        self.conv1 = _SimpleSAFM(dim, split_dim=split_dim)
        self.conv2 = ConvFFN(dim, ffn_scale=ffn_scale, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x)) + x


class SAFMNv3(nn.Module):
    """The SAFMNv3 network.

    Args:
        dim: feature channels (40).
        n_blocks: blocks (6).
        ffn_scale: expansion of the feed-forward part (1.5).
        split_dim: channels of the pooled (modulation) branch (12).
        upscaling_factor: output scale.
    """

    #: ONNX: exact with dynamic shapes at multiples of 8, where the adaptive pooling is an 8x8
    #: max pooling (the runtime wrapper pads to them).
    onnx_size_multiple = 8

    def __init__(
        self,
        *,
        dim: int = 40,
        n_blocks: int = 6,
        ffn_scale: float = 1.5,
        split_dim: int = 12,
        upscaling_factor: int = 4,
    ) -> None:
        super().__init__()
        if upscaling_factor < 1 or not 0 < split_dim < dim:
            raise ValueError("SAFMNv3: upscaling_factor must be >= 1 and 0 < split_dim < dim")
        self.scale = upscaling_factor
        self.to_feat = nn.Conv2d(3, dim, 3, padding=1, bias=False)
        self.feats = nn.Sequential(
            *(_Block(dim, ffn_scale=ffn_scale, split_dim=split_dim) for _ in range(n_blocks))
        )
        self.to_img = pixelshuffle_upsampler(dim, upscaling_factor, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_min_size(x, MIN_SIZE)  # else a pooled side would be empty
        skip = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        y = self.to_img(self.feats(self.to_feat(x))) + skip
        return y[..., : h * self.scale, : w * self.scale]


def detect(sd: StateDict) -> Detected | None:
    """SAFMNv3: blocks with a simple SAFM (``feats.N.conv1.conv1/conv2/conv3/dwconv``) and no
    norms. Never SAFMN++ (its SAFM has ``conv1.proj``)."""
    needed = ("to_feat.weight", "feats.0.conv1.dwconv.weight", "feats.0.conv1.conv3.weight")
    if not base.has_keys(sd, *needed, "feats.0.conv2.conv1.weight", "to_img.0.weight"):
        return None
    if "feats.0.conv1.proj.weight" in sd:
        return None
    found = safmn_layout_config(sd, "feats.0.conv2.conv1.weight")
    if found is None:
        return None
    config, scale = found
    config["split_dim"] = sd["feats.0.conv1.dwconv.weight"].shape[0]
    return Detected("safmnv3", config, scale)


ARCH = ArchDescriptor(
    name="safmnv3", build=SAFMNv3, detect=detect, scales=(4,), supports_fp16=False
)
