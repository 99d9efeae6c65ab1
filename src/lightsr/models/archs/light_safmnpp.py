"""Light SAFMN++: the SAFMN authors' entry to the AIS 2024 real-time SR challenge.

Challenge report: M. V. Conde et al., "Real-Time 4K Super-Resolution of Compressed AVIF
Images. AIS 2024 Challenge Survey", CVPR 2024 Workshops. Trained to upscale AVIF-compressed
images x4 in real time.

Compared with SAFMN++ (:mod:`lightsr.models.archs.safmnpp`):

- the simplified SAFM (SAFMN++'s, with ``ratio=2``) splits the ``proj`` output in two halves:
  the first half is pooled by 8, convolved depth-wise, upsampled bilinearly and modulates itself
  through GELU; concatenated with the second half, GELU, 1x1 ``out``;
- a block is ``CCM(SimpleSAFM(X))`` with no residual inside; a residual goes around the whole
  body instead (as in the paper's SAFMN), and there is no bilinear skip from the input;
- the CCM's convs are ``conv.0``/``conv.2`` (a Sequential with GELU between).

dim 32, 2 blocks, ffn 1.5 at x4: 66,176 parameters, no biases. Inputs are RGB in [0, 1], of any
size: like the official inference script the module does not pad (adaptive pooling floors sides
that are not multiples of 8); inputs smaller than 8 pixels are padded by edge replication
inside.
"""

from __future__ import annotations

import torch
from torch import nn

from lightsr.models.base import ArchDescriptor, Detected, StateDict

from ._blocks import ccm_layers, pad_to_min_size, pixelshuffle_upsampler
from .safmnpp import MIN_SIZE, SimpleSAFM, simple_safm_config

__all__ = ["ARCH", "MIN_SIZE", "LightSAFMNPP"]


class _CCM(nn.Module):
    def __init__(self, dim: int, *, ffn_scale: float) -> None:
        super().__init__()
        self.conv = ccm_layers(dim, ffn_scale=ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Block(nn.Module):
    def __init__(self, dim: int, *, ffn_scale: float) -> None:
        super().__init__()
        self.conv1 = SimpleSAFM(dim, ratio=2)
        self.conv2 = _CCM(dim, ffn_scale=ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))


class LightSAFMNPP(nn.Module):
    """Light SAFMN++ (AIS 2024).

    Args:
        dim: feature channels (32).
        n_blocks: blocks (2).
        ffn_scale: CCM expansion ratio (1.5).
        upscaling_factor: output scale (4 in the challenge).
    """

    def __init__(
        self,
        *,
        dim: int = 32,
        n_blocks: int = 2,
        ffn_scale: float = 1.5,
        upscaling_factor: int = 4,
    ) -> None:
        super().__init__()
        if upscaling_factor < 1:
            raise ValueError(
                f"light SAFMN++: upscaling_factor must be >= 1, got {upscaling_factor}"
            )
        self.scale = upscaling_factor
        self.to_feat = nn.Conv2d(3, dim, 3, padding=1, bias=False)
        self.feats = nn.Sequential(*(_Block(dim, ffn_scale=ffn_scale) for _ in range(n_blocks)))
        self.to_img = pixelshuffle_upsampler(dim, upscaling_factor, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = pad_to_min_size(x, MIN_SIZE)  # else the pooled branch would be empty
        x = self.to_feat(x)
        x = self.feats(x) + x  # residual around the body
        return self.to_img(x)[..., : h * self.scale, : w * self.scale]


def detect(sd: StateDict) -> Detected | None:
    """Light SAFMN++ (AIS 2024): ``feats.N.conv1.proj`` with a depth-wise conv on half the
    channels and a CCM ``conv2.conv.{0,2}``. SAFMN++ has ``conv2.conv1`` and a third."""
    if "feats.0.conv2.conv1.weight" in sd:
        return None
    found = simple_safm_config(sd, hidden_key="feats.0.conv2.conv.0.weight", ratio=2)
    return None if found is None else Detected("light_safmnpp", *found)


#: fp16: the AIS 2024 weights' activations reach 2e4 in float32; float16 autocast drifts by
#: whole levels (max error 5.8 on [0, 1] outputs), so it is not offered.
ARCH = ArchDescriptor(
    name="light_safmnpp", build=LightSAFMNPP, detect=detect, scales=(4,), supports_fp16=False
)
