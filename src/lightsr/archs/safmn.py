"""SAFMN: Spatially-Adaptive Feature Modulation Network.

Paper: L. Sun, J. Dong, J. Tang, J. Pan, "Spatially-Adaptive Feature Modulation for Efficient
Image Super-Resolution", ICCV 2023. Section numbers and equations below refer to it.

The module reproduces the official implementation numerically: sub-module names match the
official checkpoints (``to_feat``, ``feats.{i}.norm1/norm2/safm/ccm``, ``to_img.0``), so they load
with ``strict=True``. Inputs are RGB in [0, 1], shape (B, 3, H, W) with H and W multiples of
:data:`SIZE_MULTIPLE` (the caller pads; see :mod:`lightsr.inference`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SAFMN", "SIZE_MULTIPLE", "CCM", "SAFM", "ChannelLayerNorm", "FeatureMixingModule"]

#: The deepest SAFM level pools by 2**3; inputs must be divisible by it for the pooled grids
#: to tile the image exactly (the official code silently floors otherwise).
SIZE_MULTIPLE = 8


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel dimension of a (B, C, H, W) tensor, for each pixel.

    Args:
        dim: number of channels C.
        eps: added to the variance (the official code uses 1e-6).
    """

    def __init__(self, dim: int, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Biased variance, as torch.nn.LayerNorm and the official "channels_first" branch.
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class SAFM(nn.Module):
    """Spatially-adaptive feature modulation (Sec. 3.2, Eq. 2-4).

    The channels are split into ``n_levels`` chunks. Chunk 0 goes through a 3x3 depth-wise
    convolution at full resolution; chunk i > 0 is adaptive-max-pooled to (h / 2**i, w / 2**i),
    convolved depth-wise and upsampled back with nearest neighbour (the multi-scale
    representation, Eq. 2). The chunks are concatenated and mixed by a 1x1 convolution (Eq. 3);
    GELU of the result modulates the input element-wise (Eq. 4).

    Args:
        dim: channels; must be divisible by ``n_levels``.
        n_levels: number of chunks / scales (4 in the paper).
    """

    def __init__(self, dim: int, *, n_levels: int = 4) -> None:
        super().__init__()
        if dim % n_levels:
            raise ValueError(f"SAFM: dim={dim} must be divisible by n_levels={n_levels}")
        self.n_levels = n_levels
        chunk = dim // n_levels
        self.mfr = nn.ModuleList(
            nn.Conv2d(chunk, chunk, 3, 1, 1, groups=chunk) for _ in range(n_levels)
        )
        self.aggr = nn.Conv2d(dim, dim, 1, 1, 0)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        chunks = x.chunk(self.n_levels, dim=1)
        out = [self.mfr[0](chunks[0])]
        for i in range(1, self.n_levels):
            s = F.adaptive_max_pool2d(chunks[i], (h // 2**i, w // 2**i))
            s = self.mfr[i](s)
            out.append(F.interpolate(s, size=(h, w), mode="nearest"))
        y = self.aggr(torch.cat(out, dim=1))
        return self.act(y) * x


class CCM(nn.Module):
    """Convolutional channel mixer (Sec. 3.3): 3x3 conv to ``ffn_scale * dim``, GELU, 1x1 back.

    Args:
        dim: channels.
        ffn_scale: expansion ratio of the hidden layer (2.0 in the paper).
    """

    def __init__(self, dim: int, *, ffn_scale: float = 2.0) -> None:
        super().__init__()
        hidden = int(dim * ffn_scale)
        self.ccm = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, 1, 1),
            nn.GELU(),
            nn.Conv2d(hidden, dim, 1, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ccm(x)


class FeatureMixingModule(nn.Module):
    """One feature mixing module (Sec. 3.1, Eq. 1): ``Y = SAFM(LN(X)) + X; Z = CCM(LN(Y)) + Y``.

    Args:
        dim: channels.
        ffn_scale: CCM expansion ratio.
    """

    def __init__(self, dim: int, *, ffn_scale: float = 2.0) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(dim)
        self.norm2 = ChannelLayerNorm(dim)
        self.safm = SAFM(dim)
        self.ccm = CCM(dim, ffn_scale=ffn_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.safm(self.norm1(x)) + x
        return self.ccm(self.norm2(x)) + x


class SAFMN(nn.Module):
    """The SAFMN network (Fig. 2): shallow 3x3 conv, ``n_blocks`` feature mixing modules with a
    global residual, and a 3x3 conv to ``3 * scale**2`` channels followed by PixelShuffle.

    Args:
        dim: feature channels (36 for SAFMN, 128 for SAFMN-L).
        n_blocks: number of feature mixing modules (8 for SAFMN, 16 for SAFMN-L).
        ffn_scale: CCM expansion ratio (2.0).
        upscaling_factor: output scale (2, 3 or 4 in the paper; any integer >= 1 works).
    """

    size_multiple = SIZE_MULTIPLE

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
            raise ValueError(f"SAFMN: upscaling_factor must be >= 1, got {upscaling_factor}")
        self.scale = upscaling_factor
        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(
            *(FeatureMixingModule(dim, ffn_scale=ffn_scale) for _ in range(n_blocks))
        )
        self.to_img = nn.Sequential(
            nn.Conv2d(dim, 3 * upscaling_factor**2, 3, 1, 1),
            nn.PixelShuffle(upscaling_factor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.to_feat(x)
        x = self.feats(x) + x  # global residual around the body
        return self.to_img(x)
