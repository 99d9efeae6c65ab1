"""SwinIR (lightweight configuration): the window-attention baseline of UPS.

Paper: J. Liang, J. Cao, G. Sun, K. Zhang, L. Van Gool, R. Timofte, "SwinIR: Image Restoration
Using Swin Transformer", ICCV Workshops 2021. SwinIR-light: ``embed_dim`` 60, 4 residual Swin
Transformer blocks (RSTB) of 6 layers, 6 heads, window 8, MLP ratio 2, one-step pixel-shuffle
upsampler.

Module and buffer names follow the official implementation (``conv_first``, ``patch_embed.norm``,
``layers.{i}.residual_group.blocks.{j}.{norm1,attn,norm2,mlp}``, ``attn.relative_position_index``,
``attn_mask``, ``layers.{i}.conv``, ``norm``, ``conv_after_body``, ``upsample.0``), so official
lightweight checkpoints load with ``strict=True``. The skeleton (:class:`SwinIRSkeleton`) takes an
attention factory, which is how UPS (:mod:`lightsr.models.archs.ups`) reuses it.

Inputs are RGB in [0, 1], (B, 3, H, W); sides are padded by reflection to a multiple of the window
inside ``forward`` (as the official code does) and the output is cropped back.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models.base import ArchDescriptor, Detected, StateDict, has_keys, pixelshuffle_scale

__all__ = [
    "ARCH",
    "Mlp",
    "SwinIR",
    "SwinIRSkeleton",
    "SwinLayer",
    "WindowAttention",
    "detect",
    "relative_position_index",
    "shifted_window_mask",
    "swin_skeleton_config",
    "window_partition",
    "window_reverse",
]

RGB_MEAN = (0.4488, 0.4371, 0.4040)  # DIV2K mean, subtracted at the input (official code)


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * H/ws * W/ws, ws * ws, C): non-overlapping windows as token sets."""
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)


def window_reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B * nW, ws * ws, C) -> (B, H, W, C)."""
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def relative_position_index(ws: int) -> torch.Tensor:
    """(ws*ws, ws*ws) index into a ((2ws-1)^2, heads) relative position bias table (Swin)."""
    coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij"))
    flat = coords.flatten(1)  # (2, N)
    rel = (flat[:, :, None] - flat[:, None, :]).permute(1, 2, 0)  # (N, N, 2)
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


def shifted_window_mask(h: int, w: int, ws: int, shift: int, device=None) -> torch.Tensor:
    """(nW, N, N) additive mask for shifted windows: 0 within a region, -100 across regions.

    After the cyclic shift, a window at the bottom/right border holds pixels from opposite sides
    of the image; pairs from different regions must not attend to each other. The regions are the
    official ones (rows/columns ``[0, -ws)``, ``[-ws, -shift)``, ``[-shift, end)``), computed with
    tensor operations only, so that a traced export (ONNX) keeps ``h`` and ``w`` dynamic.
    """
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    region_h = (rows >= h - ws).long() + (rows >= h - shift).long()
    region_w = (cols >= w - ws).long() + (cols >= w - shift).long()
    img = (region_h[:, None] * 3 + region_w[None, :]).to(torch.float32)[None, :, :, None]
    ids = window_partition(img, ws).squeeze(-1)  # (nW, N)
    diff = ids[:, None, :] - ids[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


class Mlp(nn.Module):
    """Transformer MLP: Linear(C, hidden), GELU, Linear(hidden, C)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttention(nn.Module):
    """Swin window multi-head self-attention with a per-layer relative position bias.

    Args:
        dim: channels C.
        window_size: window side ws (N = ws * ws tokens).
        num_heads: heads (C divisible by it).
    """

    def __init__(self, dim: int, *, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads)
        )
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self) -> torch.Tensor:
        n = self.relative_position_index.shape[0]
        table = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return table.view(n, n, -1).permute(2, 0, 1)  # (heads, N, N)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, shared: torch.Tensor | None = None
    ) -> torch.Tensor:
        bw, n, c = x.shape  # bw = batch * windows
        qkv = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (bw, heads, N, C/heads)
        attn = (q * self.scale) @ k.transpose(-2, -1) + self.position_bias()
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(bw // nw, nw, self.num_heads, n, n) + mask[None, :, None]
            attn = attn.view(bw, self.num_heads, n, n)
        y = attn.softmax(-1) @ v  # (bw, heads, N, C/heads)
        return self.proj(y.transpose(1, 2).reshape(bw, n, c))


class DropPath(nn.Module):
    """Stochastic depth (training only): drops the residual branch per sample."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


AttentionFactory = Callable[[int], nn.Module]  # layer index -> attention module


class SwinLayer(nn.Module):
    """One Swin Transformer layer: (shifted) window attention and an MLP, pre-norm residuals.

    Official name: ``SwinTransformerBlock``. ``attn_mask`` is a buffer for the training size
    (``img_size``) as in the official code; other sizes get a mask computed (and cached) on the fly.
    """

    def __init__(
        self,
        dim: int,
        *,
        attn: nn.Module,
        window_size: int,
        shift_size: int,
        mlp_ratio: float,
        img_size: int,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = attn
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.img_size = img_size
        mask = (
            shifted_window_mask(img_size, img_size, window_size, shift_size)
            if shift_size > 0
            else None
        )
        self.register_buffer("attn_mask", mask)
        self._mask_cache: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def mask_for(self, h: int, w: int, device: torch.device) -> torch.Tensor | None:
        if self.shift_size == 0:
            return None
        if torch.jit.is_tracing():  # export: sizes are traced values, keep them dynamic
            return shifted_window_mask(h, w, self.window_size, self.shift_size, device)
        if (h, w) == (self.img_size, self.img_size) and self.attn_mask is not None:
            return self.attn_mask
        key = (h, w, device)
        if key not in self._mask_cache:
            self._mask_cache[key] = shifted_window_mask(h, w, self.window_size, self.shift_size).to(
                device
            )
        return self._mask_cache[key]

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], shared: torch.Tensor | None = None
    ) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        y = self.norm1(x).view(b, h, w, c)
        if s:
            y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
        y = self.attn(window_partition(y, ws), self.mask_for(h, w, x.device), shared)
        y = window_reverse(y, ws, h, w)
        if s:
            y = torch.roll(y, shifts=(s, s), dims=(1, 2))
        x = x + self.drop_path(y.reshape(b, h * w, c))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class _Layers(nn.Module):
    """Official ``BasicLayer``: holds ``blocks``."""

    def __init__(self, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)


class RSTB(nn.Module):
    """Residual Swin Transformer block: ``depth`` layers, a 3x3 conv, and a residual."""

    def __init__(self, dim: int, blocks: Sequence[nn.Module]) -> None:
        super().__init__()
        self.residual_group = _Layers(blocks)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], shared: torch.Tensor | None = None
    ) -> torch.Tensor:
        y = x
        for blk in self.residual_group.blocks:
            y = blk(y, size, shared)
        b, _, c = y.shape
        y = self.conv(y.transpose(1, 2).reshape(b, c, *size))
        return y.flatten(2).transpose(1, 2) + x


class _PatchEmbed(nn.Module):
    """Official ``PatchEmbed`` with patch size 1: (B, C, H, W) -> (B, HW, C) + LayerNorm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.flatten(2).transpose(1, 2))


class SwinIRSkeleton(nn.Module):
    """SwinIR with the one-step upsampler (``pixelshuffledirect``) and a pluggable attention.

    Args:
        embed_dim: channels C.
        depths: layers per residual group.
        window_size: attention window side.
        mlp_ratio: MLP hidden size / C.
        upscaling_factor: output scale.
        make_attention: builds the attention module of layer ``l`` (0-based, over all groups).
        img_size: training patch size; sizes the ``attn_mask`` buffers (official: 64).
        drop_path_rate: stochastic depth, linearly increasing over layers (official: 0.1).
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        depths: Sequence[int],
        window_size: int,
        mlp_ratio: float,
        upscaling_factor: int,
        make_attention: AttentionFactory,
        img_size: int = 64,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__()
        self.scale = upscaling_factor
        self.window_size = window_size
        self.size_multiple = window_size
        self.register_buffer("mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        self.conv_first = nn.Conv2d(3, embed_dim, 3, 1, 1)
        self.patch_embed = _PatchEmbed(embed_dim)
        total = sum(depths)
        rates = torch.linspace(0, drop_path_rate, total).tolist()
        layers, idx = [], 0
        for depth in depths:
            blocks = []
            for j in range(depth):
                blocks.append(
                    SwinLayer(
                        embed_dim,
                        attn=make_attention(idx),
                        window_size=window_size,
                        shift_size=0 if j % 2 == 0 else window_size // 2,
                        mlp_ratio=mlp_ratio,
                        img_size=img_size,
                        drop_path=rates[idx],
                    )
                )
                idx += 1
            layers.append(RSTB(embed_dim, blocks))
        self.layers = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(embed_dim)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.upsample = nn.Sequential(
            nn.Conv2d(embed_dim, 3 * upscaling_factor**2, 3, 1, 1),
            nn.PixelShuffle(upscaling_factor),
        )
        self.apply(_init_weights)

    def shared_projection(self) -> torch.Tensor | None:
        """The tensor handed to every attention layer (None for SwinIR)."""
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ws = self.window_size
        x = F.pad(x, (0, -w % ws, 0, -h % ws), mode="reflect") if (h % ws or w % ws) else x
        return self.forward_multiple(x)[..., : h * self.scale, : w * self.scale]

    def forward_multiple(self, x: torch.Tensor) -> torch.Tensor:
        """The network on an input whose sides are multiples of the window (no padding; the
        form that ONNX export traces, with dynamic height and width)."""
        hp, wp = x.shape[-2:]
        x = x - self.mean
        feat = self.conv_first(x)
        tokens = self.patch_embed(feat)  # (B, HW, C)
        shared = self.shared_projection()
        for layer in self.layers:
            tokens = layer(tokens, (hp, wp), shared)
        tokens = self.norm(tokens)
        body = tokens.transpose(1, 2).reshape(feat.shape)
        return self.upsample(self.conv_after_body(body) + feat) + self.mean


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


class SwinIR(SwinIRSkeleton):
    """SwinIR-light (SwinIR paper, lightweight SR): the unmodified UPS baseline.

    Args:
        embed_dim: channels (60).
        depths: layers per group ((6, 6, 6, 6)).
        num_heads: heads per layer (6).
        window_size: window side (8).
        mlp_ratio: MLP ratio (2.0).
        upscaling_factor: 2, 3 or 4.
        img_size: training patch size (64), sizes the stored masks only.
        drop_path_rate: stochastic depth during training (0.1, as the official code).
    """

    def __init__(
        self,
        *,
        embed_dim: int = 60,
        depths: Sequence[int] = (6, 6, 6, 6),
        num_heads: int = 6,
        window_size: int = 8,
        mlp_ratio: float = 2.0,
        upscaling_factor: int = 2,
        img_size: int = 64,
        drop_path_rate: float = 0.1,
    ) -> None:
        super().__init__(
            embed_dim=embed_dim,
            depths=depths,
            window_size=window_size,
            mlp_ratio=mlp_ratio,
            upscaling_factor=upscaling_factor,
            img_size=img_size,
            drop_path_rate=drop_path_rate,
            make_attention=lambda _: WindowAttention(
                embed_dim, window_size=window_size, num_heads=num_heads
            ),
        )


#: The first attention layer's prefix in SwinIR's (and UPS's) official parameter names.
FIRST_LAYER = "layers.0.residual_group.blocks.0."


def swin_skeleton_config(sd: StateDict) -> tuple[dict[str, Any], int] | None:
    """The config and scale of a :class:`SwinIRSkeleton` state dict (what SwinIR and UPS share):
    ``conv_first``, ``conv_after_body``, a one-step ``upsample.0`` and window attention with a
    relative position bias. None when the tensors are not such a network."""
    needed = ("conv_first.weight", "conv_after_body.weight", "upsample.0.weight")
    table_key = FIRST_LAYER + "attn.relative_position_bias_table"
    if not has_keys(sd, *needed, table_key, FIRST_LAYER + "mlp.fc1.weight"):
        return None
    scale = pixelshuffle_scale(sd["upsample.0.weight"].shape[0])
    if scale is None:
        return None
    dim = sd["conv_first.weight"].shape[0]
    groups = {int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k))}
    depths = [
        len(
            {
                int(m.group(1))
                for k in sd
                if (m := re.match(rf"layers\.{g}\.residual_group\.blocks\.(\d+)\.", k))
            }
        )
        for g in sorted(groups)
    ]
    table = sd[table_key]
    ws = (math.isqrt(table.shape[0]) + 1) // 2
    config: dict[str, Any] = {
        "embed_dim": dim,
        "depths": depths,
        "num_heads": table.shape[1],
        "window_size": ws,
        "mlp_ratio": sd[FIRST_LAYER + "mlp.fc1.weight"].shape[0] / dim,
    }
    masks = [v for k, v in sd.items() if k.endswith(".attn_mask")]
    if masks:  # sized for the training patch: (img_size / ws)^2 windows
        config["img_size"] = math.isqrt(masks[0].shape[0]) * ws
    return config, scale


def detect(sd: StateDict) -> Detected | None:
    """SwinIR-light (official names): the skeleton with a fused ``attn.qkv`` projection per
    layer. UPS has the same skeleton but no ``qkv`` (a shared or per-layer ``qk``)."""
    if FIRST_LAYER + "attn.qkv.weight" not in sd:
        return None
    found = swin_skeleton_config(sd)
    return None if found is None else Detected("swinir", *found)


#: size_multiple: the named models' window (8); an instance sets its own ``window_size``.
#: fp16 (autocast): no known problem (checked on random weights; no reference weights here).
#: ONNX export in float16 is a different matter (see lightsr.inference.onnx).
ARCH = ArchDescriptor(name="swinir", build=SwinIR, detect=detect, size_multiple=8)
