"""RLFN: Residual Local Feature Network (and RLFN-S).

Paper: F. Kong, M. Li, S. Liu, D. Liu, J. He, Y. Bai, F. Chen, L. Fu, "Residual Local Feature
Network for Efficient Super-Resolution", CVPR 2022 Workshops (NTIRE 2022 efficient SR
challenge, runtime track winner).

Sec. 3.1 (Fig. 2): a 3x3 conv to ``feature_channels``; six residual local feature blocks
(RLFB, Fig. 3): three 3x3 conv + LeakyReLU(0.05) layers with a local residual, a 1x1 conv and
an enhanced spatial attention (ESA) block; a 3x3 conv with a global residual; a 3x3 conv +
PixelShuffle. The ESA (Sec. 3.2, simplified from RFANet: no ``conv_max``/``conv3_``): 1x1 conv
to ``esa_channels``, a strided 3x3 conv, 7x7 max pooling with stride 3, a 3x3 conv, bilinear
upsampling back, plus a 1x1 conv of the reduced features, 1x1 conv, sigmoid mask on the input.
RLFN uses 52 channels, RLFN-S 48.

The public checkpoints were trained on inputs in [0, 255] (``img_range=255``): the module
scales its [0, 1] input up and its output back down, so its interface is RGB in [0, 1]. The
ESA's strided conv and 7x7/3 max pooling need maps of at least 15x15 pixels (the official code
raises below that): smaller inputs are padded by edge replication inside and the output
cropped (see :meth:`RLFN.forward`). Sub-module names follow the official checkpoints
(``conv_1``, ``block_{i}.c1_r/c2_r/c3_r/c5/esa.*``, ``conv_2``, ``upsampler.0``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

from ._blocks import pad_to_min_size, pixelshuffle_upsampler

__all__ = ["ARCH", "ESA", "MIN_SIZE", "RLFB", "RLFN"]

_SLOPE = 0.05

#: The smallest side the ESA runs on: a 3x3 conv with stride 2 and no padding, then a 7x7 max
#: pooling with stride 3, need (side - 3) // 2 + 1 >= 7.
MIN_SIZE = 15


class ESA(nn.Module):
    """Enhanced spatial attention as simplified in RLFN (Sec. 3.2, Fig. 3).

    Args:
        esa_channels: reduced width ``f`` (16).
        n_feats: input/output channels.
    """

    def __init__(self, esa_channels: int, n_feats: int) -> None:
        super().__init__()
        f = esa_channels
        self.conv1 = nn.Conv2d(n_feats, f, 1)
        self.conv_f = nn.Conv2d(f, f, 1)
        self.conv2 = nn.Conv2d(f, f, 3, stride=2, padding=0)
        self.conv3 = nn.Conv2d(f, f, 3, padding=1)
        self.conv4 = nn.Conv2d(f, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1_ = self.conv1(x)
        c1 = F.max_pool2d(self.conv2(c1_), kernel_size=7, stride=3)
        c3 = F.interpolate(self.conv3(c1), x.shape[-2:], mode="bilinear", align_corners=False)
        m = torch.sigmoid(self.conv4(c3 + self.conv_f(c1_)))
        return x * m


class RLFB(nn.Module):
    """Residual local feature block (Fig. 3).

    Args:
        channels: block width.
        mid_channels: width of the three 3x3 convs (the block width in RLFN and RLFN-S).
        esa_channels: ESA reduced width.
    """

    def __init__(self, channels: int, *, mid_channels: int, esa_channels: int = 16) -> None:
        super().__init__()
        self.c1_r = nn.Conv2d(channels, mid_channels, 3, padding=1)
        self.c2_r = nn.Conv2d(mid_channels, mid_channels, 3, padding=1)
        self.c3_r = nn.Conv2d(mid_channels, channels, 3, padding=1)
        self.c5 = nn.Conv2d(channels, channels, 1)
        self.esa = ESA(esa_channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.c1_r(x), _SLOPE)
        out = F.leaky_relu(self.c2_r(out), _SLOPE)
        out = F.leaky_relu(self.c3_r(out), _SLOPE)
        return self.esa(self.c5(out + x))


class RLFN(nn.Module):
    """The RLFN network.

    Args:
        feature_channels: trunk width (52 for RLFN, 48 for RLFN-S).
        mid_channels: width inside the blocks (None: ``feature_channels``).
        esa_channels: ESA reduced width (16).
        n_blocks: number of RLFBs (6).
        upscaling_factor: output scale.
        img_range: the pixel range the weights were trained in (255 for the public
            checkpoints; 1 for models trained on [0, 1]).
    """

    def __init__(
        self,
        *,
        feature_channels: int = 52,
        mid_channels: int | None = None,
        esa_channels: int = 16,
        n_blocks: int = 6,
        upscaling_factor: int = 4,
        img_range: float = 255.0,
    ) -> None:
        super().__init__()
        if upscaling_factor < 1:
            raise ValueError(f"RLFN: upscaling_factor must be >= 1, got {upscaling_factor}")
        self.scale = upscaling_factor
        self.img_range = img_range
        self.n_blocks = n_blocks
        mid = feature_channels if mid_channels is None else mid_channels
        self.conv_1 = nn.Conv2d(3, feature_channels, 3, padding=1)
        for i in range(n_blocks):  # official names block_1..block_n
            self.add_module(
                f"block_{i + 1}",
                RLFB(feature_channels, mid_channels=mid, esa_channels=esa_channels),
            )
        self.conv_2 = nn.Conv2d(feature_channels, feature_channels, 3, padding=1)
        self.upsampler = pixelshuffle_upsampler(feature_channels, upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # The official code raises below MIN_SIZE (the ESA's pooled map would be empty).
        x = pad_to_min_size(x, MIN_SIZE)
        fea = self.conv_1(x * self.img_range)
        out = fea
        for i in range(self.n_blocks):
            out = getattr(self, f"block_{i + 1}")(out)
        out = self.conv_2(out) + fea  # global residual
        y = self.upsampler(out) / self.img_range
        return y[..., : h * self.scale, : w * self.scale]


def detect(sd: StateDict) -> Detected | None:
    """RLFN and RLFN-S (official names ``conv_1``, ``block_{n}.c1_r``, ``block_{n}.esa``).
    Never an IMDN/RFDN file (their stem is ``fea_conv``), nor SPAN's re-parameterised
    ``conv_1.eval_conv``."""
    needed = ("conv_1.weight", "block_1.c1_r.weight", "block_1.esa.conv1.weight")
    if not base.has_keys(sd, *needed, "upsampler.0.weight") or "fea_conv.weight" in sd:
        return None
    scale = base.pixelshuffle_scale(sd["upsampler.0.weight"].shape[0])
    if scale is None:
        return None
    config = {
        "feature_channels": sd["conv_1.weight"].shape[0],
        "mid_channels": sd["block_1.c1_r.weight"].shape[0],
        "esa_channels": sd["block_1.esa.conv1.weight"].shape[0],
        "n_blocks": base.count_indices(sd, r"block_(\d+)\."),
    }
    return Detected("rlfn", config, scale)


ARCH = ArchDescriptor(name="rlfn", build=RLFN, detect=detect, scales=(2, 3, 4))
