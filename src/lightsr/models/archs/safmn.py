"""SAFMN: Spatially-Adaptive Feature Modulation Network.

Paper: L. Sun, J. Dong, J. Tang, J. Pan, "Spatially-Adaptive Feature Modulation for Efficient
Image Super-Resolution", ICCV 2023. Section numbers and equations below refer to it.

The module reproduces the official implementation numerically: sub-module names match the
official checkpoints (``to_feat``, ``feats.{i}.norm1/norm2/safm/ccm``, ``to_img.0``), so they load
with ``strict=True``. Inputs are RGB in [0, 1], shape (B, 3, H, W) with H and W multiples of
:data:`SIZE_MULTIPLE` (the caller pads; see :mod:`lightsr.inference`).

Keyword-only options reproduce the paper's ablations (Table 3; Table 4 is ``n_blocks``). Their
defaults are the paper's model; only a non-default option changes the module tree. The exact
structures below are the ones that reproduce the paper's parameter counts:

- ``safm=False`` ("SAFM -> None"): the block keeps only ``Z = CCM(LN(X)) + X``; ``norm1`` goes
  with the SAFM (225,408 params at x4; keeping ``norm1`` would give 225,984, not 225.41K).
- ``ccm="none"`` ("CCM -> None"): only ``Y = SAFM(LN(X)) + X``; ``norm2`` goes too (30,720).
- ``modulation=False`` (w/o FM): the SAFM returns ``act(aggr(...))`` instead of multiplying it
  with its input. ``multi_scale=False`` (w/o MR): every chunk gets a full-resolution 3x3
  depth-wise conv (no pooling, no upsampling). ``aggregation=False`` (w/o FA): no 1x1 ``aggr``.
- ``pool``: ``"max"`` (adaptive max pooling), ``"avg"`` (adaptive average pooling) or
  ``"nearest"`` (nearest-neighbour downsampling) for the multi-scale branches.
- ``safm_act``: the SAFM's ``"gelu"``, ``"sigmoid"`` or ``"none"`` (Eq. 4).
- ``ccm``: ``"ccm"``; ``"ccm-se"`` (a squeeze-excitation block with reduction 4 on the 2*dim
  hidden features, after the GELU); ``"channel-mlp"`` (1x1 convs instead of the 3x3);
  ``"inverted-residual"`` (the CCM's 3x3 expansion, a 3x3 depth-wise conv on the hidden
  features, 1x1 projection, GELU after the first two).
- ``norm``: ``"ln"`` (channel LayerNorm), ``"none"``, ``"bn"`` (BatchNorm2d), ``"frozen-bn"``
  (BatchNorm with fixed statistics and affine, all buffers) or ``"l2"`` (L2 normalisation over
  the channels, no parameters).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models import base
from lightsr.models.base import ArchDescriptor, Detected, StateDict

from ._blocks import pixelshuffle_upsampler, safmn_layout_config

__all__ = [
    "ARCH",
    "CCM",
    "SAFM",
    "SAFMN",
    "SIZE_MULTIPLE",
    "ChannelL2Norm",
    "ChannelLayerNorm",
    "FeatureMixingModule",
    "FrozenBatchNorm2d",
    "SqueezeExcitation",
    "grow_blocks",
]

NormKind = Literal["ln", "none", "bn", "frozen-bn", "l2"]
CCMKind = Literal["ccm", "ccm-se", "channel-mlp", "inverted-residual", "none"]
PoolKind = Literal["max", "avg", "nearest"]
ActKind = Literal["gelu", "sigmoid", "none"]

_NORMS: tuple[str, ...] = ("ln", "none", "bn", "frozen-bn", "l2")
_CCMS: tuple[str, ...] = ("ccm", "ccm-se", "channel-mlp", "inverted-residual", "none")
_POOLS: tuple[str, ...] = ("max", "avg", "nearest")
_ACTS: tuple[str, ...] = ("gelu", "sigmoid", "none")

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


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters (all buffers, nothing trains).

    Computes ``(x - running_mean) / sqrt(running_var + eps) * weight + bias`` per channel, as
    torchvision's ``FrozenBatchNorm2d``; freshly built it is the identity.

    Args:
        dim: number of channels.
        eps: added to the running variance.
    """

    def __init__(self, dim: int, *, eps: float = 1e-5) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(dim))
        self.register_buffer("bias", torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[:, None, None] + shift[:, None, None]


class ChannelL2Norm(nn.Module):
    """L2 normalisation over the channels of each pixel (no parameters).

    Args:
        eps: lower bound of the norm (avoids division by zero).
    """

    def __init__(self, *, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2.0, dim=1, eps=self.eps)


def _check_choice(arg: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"SAFMN: {arg}={value!r} is not one of {', '.join(choices)}")


def _make_norm(kind: str, dim: int) -> nn.Module:
    _check_choice("norm", kind, _NORMS)
    if kind == "ln":
        return ChannelLayerNorm(dim)
    if kind == "bn":
        return nn.BatchNorm2d(dim)
    if kind == "frozen-bn":
        return FrozenBatchNorm2d(dim)
    if kind == "l2":
        return ChannelL2Norm()
    return nn.Identity()


def _make_act(kind: str) -> nn.Module:
    _check_choice("safm_act", kind, _ACTS)
    if kind == "gelu":
        return nn.GELU()
    if kind == "sigmoid":
        return nn.Sigmoid()
    return nn.Identity()


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
        modulation: multiply the input by the map (FM, Eq. 4); False returns the map itself.
        multi_scale: pool chunks 1.. before their depth-wise conv (MR, Eq. 2); False convolves
            every chunk at full resolution.
        aggregation: mix the chunks with the 1x1 ``aggr`` conv (FA, Eq. 3).
        pool: downsampling of the multi-scale branches: ``"max"`` (adaptive max pooling),
            ``"avg"`` (adaptive average pooling) or ``"nearest"`` (nearest interpolation).
        act: non-linearity of the map: ``"gelu"``, ``"sigmoid"`` or ``"none"``.
    """

    def __init__(
        self,
        dim: int,
        *,
        n_levels: int = 4,
        modulation: bool = True,
        multi_scale: bool = True,
        aggregation: bool = True,
        pool: PoolKind = "max",
        act: ActKind = "gelu",
    ) -> None:
        super().__init__()
        if dim % n_levels:
            raise ValueError(f"SAFM: dim={dim} must be divisible by n_levels={n_levels}")
        _check_choice("pool", pool, _POOLS)
        self.n_levels = n_levels
        self.modulation = modulation
        self.multi_scale = multi_scale
        self.pool = pool
        chunk = dim // n_levels
        self.mfr = nn.ModuleList(
            nn.Conv2d(chunk, chunk, 3, 1, 1, groups=chunk) for _ in range(n_levels)
        )
        self.aggr = nn.Conv2d(dim, dim, 1, 1, 0) if aggregation else nn.Identity()
        self.act = _make_act(act)

    def _down(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if self.pool == "max":
            return F.adaptive_max_pool2d(x, size)
        if self.pool == "avg":
            return F.adaptive_avg_pool2d(x, size)
        return F.interpolate(x, size=size, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        chunks = x.chunk(self.n_levels, dim=1)
        out = [self.mfr[0](chunks[0])]
        for i in range(1, self.n_levels):
            if not self.multi_scale:  # ablation "w/o MR"
                out.append(self.mfr[i](chunks[i]))
                continue
            s = self._down(chunks[i], (h // 2**i, w // 2**i))
            s = self.mfr[i](s)
            out.append(F.interpolate(s, size=(h, w), mode="nearest"))
        y = self.aggr(torch.cat(out, dim=1))
        return self.act(y) * x if self.modulation else self.act(y)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation channel attention (Hu et al., CVPR 2018) with 1x1 convs.

    Args:
        dim: channels.
        reduction: the bottleneck has ``dim // reduction`` channels.
    """

    def __init__(self, dim: int, *, reduction: int = 4) -> None:
        super().__init__()
        self.se = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(dim, dim // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(dim // reduction, dim, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.se(x)


class CCM(nn.Module):
    """Convolutional channel mixer (Sec. 3.3): 3x3 conv to ``ffn_scale * dim``, GELU, 1x1 back.

    Args:
        dim: channels.
        ffn_scale: expansion ratio of the hidden layer (2.0 in the paper).
        kind: ``"ccm"`` (the paper's); the Table 3 alternatives ``"ccm-se"`` (SE block on the
            hidden features), ``"channel-mlp"`` (1x1 instead of 3x3) or ``"inverted-residual"``
            (3x3 depth-wise conv added on the hidden features).
        se_reduction: SE bottleneck ratio for ``"ccm-se"`` (4 reproduces the paper's count).
    """

    def __init__(
        self,
        dim: int,
        *,
        ffn_scale: float = 2.0,
        kind: CCMKind = "ccm",
        se_reduction: int = 4,
    ) -> None:
        super().__init__()
        if kind not in _CCMS or kind == "none":
            raise ValueError(f"CCM: kind={kind!r} is not one of {', '.join(_CCMS[:-1])}")
        hidden = int(dim * ffn_scale)
        k = 1 if kind == "channel-mlp" else 3
        layers: list[nn.Module] = [nn.Conv2d(dim, hidden, k, 1, k // 2), nn.GELU()]
        if kind == "ccm-se":
            layers.append(SqueezeExcitation(hidden, reduction=se_reduction))
        elif kind == "inverted-residual":
            layers += [nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden), nn.GELU()]
        layers.append(nn.Conv2d(hidden, dim, 1, 1, 0))
        self.ccm = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ccm(x)


class FeatureMixingModule(nn.Module):
    """One feature mixing module (Sec. 3.1, Eq. 1): ``Y = SAFM(LN(X)) + X; Z = CCM(LN(Y)) + Y``.

    Args:
        dim: channels.
        safm: the SAFM half (None drops it with ``norm1``: ablation "SAFM -> None").
        ccm: the CCM half (None drops it with ``norm2``: ablation "CCM -> None").
        norm: normalisation before each half (see :class:`SAFMN`).
    """

    def __init__(
        self, dim: int, *, safm: SAFM | None, ccm: CCM | None, norm: NormKind = "ln"
    ) -> None:
        super().__init__()
        self.has_safm = safm is not None
        self.has_ccm = ccm is not None
        if self.has_safm:
            self.norm1 = _make_norm(norm, dim)
        if self.has_ccm:
            self.norm2 = _make_norm(norm, dim)
        if safm is not None:  # after the norms: the official order of the keys
            self.safm = safm
        if ccm is not None:
            self.ccm = ccm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_safm:
            x = self.safm(self.norm1(x)) + x
        if self.has_ccm:
            x = self.ccm(self.norm2(x)) + x
        return x


class SAFMN(nn.Module):
    """The SAFMN network (Fig. 2): shallow 3x3 conv, ``n_blocks`` feature mixing modules with a
    global residual, and a 3x3 conv to ``3 * scale**2`` channels followed by PixelShuffle.

    ``upscaling_factor=1`` is the restoration variant (denoising, JPEG artifact removal; see
    :mod:`lightsr.restoration`): the last conv maps to 3 channels (no upsampling) and the input
    image is added to its output, as SwinIR's denoising and JPEG models do, so the network
    learns the residual ``clean - degraded``. Same tensors, so a scale-1 file is detected as
    such from the shape of ``to_img.0``.

    Args:
        dim: feature channels (36 for SAFMN, 128 for SAFMN-L).
        n_blocks: number of feature mixing modules (8 for SAFMN, 16 for SAFMN-L; Table 4
            ablates 4, 6 and 12).
        ffn_scale: CCM expansion ratio (2.0).
        upscaling_factor: output scale (2, 3 or 4 in the paper; any integer >= 1 works; 1 is
            the restoration variant with the image residual).
        safm: keep the SAFM (Table 3, "SAFM -> None" when False).
        ccm: ``"ccm"`` (paper), ``"ccm-se"``, ``"channel-mlp"``, ``"inverted-residual"`` or
            ``"none"`` (Table 3).
        norm: ``"ln"`` (paper), ``"none"``, ``"bn"``, ``"frozen-bn"`` or ``"l2"`` (Table 3).
        modulation: feature modulation, FM (Table 3, "w/o FM" when False).
        multi_scale: multi-scale representation, MR (Table 3, "w/o MR" when False).
        aggregation: feature aggregation, FA (Table 3, "w/o FA" when False).
        pool: ``"max"`` (paper), ``"avg"`` or ``"nearest"`` downsampling in the SAFM.
        safm_act: ``"gelu"`` (paper), ``"sigmoid"`` or ``"none"`` on the modulation map.
        se_reduction: SE bottleneck ratio for ``ccm="ccm-se"`` (4).
    """

    size_multiple = SIZE_MULTIPLE

    def __init__(
        self,
        *,
        dim: int = 36,
        n_blocks: int = 8,
        ffn_scale: float = 2.0,
        upscaling_factor: int = 4,
        safm: bool = True,
        ccm: CCMKind = "ccm",
        norm: NormKind = "ln",
        modulation: bool = True,
        multi_scale: bool = True,
        aggregation: bool = True,
        pool: PoolKind = "max",
        safm_act: ActKind = "gelu",
        se_reduction: int = 4,
    ) -> None:
        super().__init__()
        if upscaling_factor < 1:
            raise ValueError(f"SAFMN: upscaling_factor must be >= 1, got {upscaling_factor}")
        if n_blocks < 0:
            raise ValueError(f"SAFMN: n_blocks must be >= 0, got {n_blocks}")
        if not safm and ccm == "none":
            raise ValueError("SAFMN: safm=False with ccm='none' leaves empty blocks; keep one")
        self.scale = upscaling_factor

        def block() -> FeatureMixingModule:
            _check_choice("ccm", ccm, _CCMS)
            _check_choice("norm", norm, _NORMS)
            safm_half = None
            if safm:
                safm_half = SAFM(
                    dim,
                    modulation=modulation,
                    multi_scale=multi_scale,
                    aggregation=aggregation,
                    pool=pool,
                    act=safm_act,
                )
            ccm_half = None
            if ccm != "none":
                ccm_half = CCM(dim, ffn_scale=ffn_scale, kind=ccm, se_reduction=se_reduction)
            return FeatureMixingModule(dim, safm=safm_half, ccm=ccm_half, norm=norm)

        self.to_feat = nn.Conv2d(3, dim, 3, 1, 1)
        self.feats = nn.Sequential(*(block() for _ in range(n_blocks)))
        self.to_img = pixelshuffle_upsampler(dim, upscaling_factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image = x
        x = self.to_feat(x)
        x = self.feats(x) + x  # global residual around the body
        if self.scale == 1:  # restoration: predict the correction of the input image
            return self.to_img(x) + image
        return self.to_img(x)


def grow_blocks(model: SAFMN, source: StateDict) -> StateDict:
    """A state dict for ``model`` that computes exactly what ``source`` (a shallower SAFMN of
    the same width) computes, with the extra blocks as identities: deepening a trained model
    (net2net-style growth) so that training continues from its function with more capacity.

    ``model`` must have ``k`` times as many blocks as ``source`` (``k >= 1``); source block
    ``i`` becomes block ``k * i`` and the ``k - 1`` blocks after it keep ``model``'s own
    (random) weights except the last layer of each half, the SAFM's aggregation and the CCM's
    output convolution, which are zeroed: a zero aggregation gives a zero modulation map
    (GELU(0) = 0), a zero output convolution a zero CCM, so both residual halves add nothing
    until training moves those weights (their gradients are not zero). The tensors outside the
    body (``to_feat``, ``to_img``) are the source's.

    Raises:
        ValueError: block counts that are not multiples, a source or model that is not a
            SAFMN body of the same shapes, or blocks that a zero layer does not silence (no
            aggregation, a modulation map whose activation is not zero at zero).
    """
    own = model.state_dict()
    n_new = len(model.feats)
    blocks = {int(k.split(".")[1]) for k in source if k.startswith("feats.")}
    n_old = len(blocks)
    if n_old == 0 or blocks != set(range(n_old)) or n_new % n_old:
        raise ValueError(
            f"grow: the model has {n_new} blocks and the source {n_old}; the model's count "
            "must be a multiple of the source's (e.g. 8 -> 16)"
        )
    step = n_new // n_old
    zeroed = set()
    for j, block in enumerate(model.feats):
        if j % step == 0:
            continue
        if block.has_safm:
            if not isinstance(block.safm.aggr, nn.Conv2d) or block.safm.act(torch.zeros(1)).item():
                raise ValueError(
                    "grow: a new block's SAFM cannot start as an identity (it needs the "
                    "aggregation conv and a modulation activation that is 0 at 0)"
                )
            zeroed.add(f"feats.{j}.safm.aggr.")
        if block.has_ccm:
            last = max(i for i, m in enumerate(block.ccm.ccm) if isinstance(m, nn.Conv2d))
            zeroed.add(f"feats.{j}.ccm.ccm.{last}.")
    out: StateDict = {}
    for key, value in own.items():
        if key.startswith("feats."):
            _, j, rest = key.split(".", 2)
            if int(j) % step == 0:
                src = f"feats.{int(j) // step}.{rest}"
            elif any(key.startswith(z) for z in zeroed):
                out[key] = torch.zeros_like(value)
                continue
            else:
                out[key] = value.clone()
                continue
        else:
            src = key
        if src not in source or source[src].shape != value.shape:
            raise ValueError(f"grow: the source has no tensor {src} of shape {tuple(value.shape)}")
        out[key] = source[src].to(value.dtype).clone()
    return out


def detect(sd: StateDict) -> Detected | None:
    """The paper's SAFMN and SAFMN-L (official names): channel LayerNorms (``norm1``), a SAFM
    with aggregation, the CCM. Not the NTIRE 2023 entry (a GRN ``norm.gamma``, no LayerNorm)
    nor SAFMN++ (``feats.N.conv1.proj``). Ablation variants are not recognised from shapes;
    lightsr's own files name them in their metadata."""
    needed = (
        "to_feat.weight",
        "to_img.0.weight",
        "feats.0.norm1.weight",
        "feats.0.safm.aggr.weight",
        "feats.0.ccm.ccm.0.weight",
    )
    if not base.has_keys(sd, *needed) or "norm.gamma" in sd or "feats.0.conv1.proj.weight" in sd:
        return None
    found = safmn_layout_config(sd, "feats.0.ccm.ccm.0.weight")
    return None if found is None else Detected("safmn", *found)


ARCH = ArchDescriptor(
    name="safmn",
    build=SAFMN,
    detect=detect,
    scales=(2, 3, 4),
    size_multiple=SIZE_MULTIPLE,
    supports_fp16=True,
)
