"""The window-attention models as lightsr ran them before the fast path (commit f29ad94): the
official formulation, batched over all windows, eager float32, for benchmarks and tests.

:func:`reference_forward` runs a :class:`lightsr.models.archs.swinir.SwinIRSkeleton` (SwinIR-light
or UPS) with its own parameters through these functions: cyclic shift with ``torch.roll``, window
partition by reshape and permute, the relative position bias gathered in every layer, the
(B*nW, heads, N, N) scores and weights formed for all windows at once, ReLU attention rows divided
before the product with the values. Its outputs equal the official SwinIR module's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["reference_forward"]


def _partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    b, h, w, c = x.shape
    x = x.view(b, h // ws, ws, w // ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)


def _reverse(windows: torch.Tensor, ws: int, h: int, w: int) -> torch.Tensor:
    c = windows.shape[-1]
    x = windows.view(-1, h // ws, w // ws, ws, ws, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h, w, c)


def _mask(h: int, w: int, ws: int, shift: int) -> torch.Tensor:
    rows, cols = torch.arange(h), torch.arange(w)
    region_h = (rows >= h - ws).long() + (rows >= h - shift).long()
    region_w = (cols >= w - ws).long() + (cols >= w - shift).long()
    img = (region_h[:, None] * 3 + region_w[None, :]).to(torch.float32)[None, :, :, None]
    ids = _partition(img, ws).squeeze(-1)
    diff = ids[:, None, :] - ids[:, :, None]
    return diff.masked_fill(diff != 0, -100.0).masked_fill(diff == 0, 0.0)


def _position_bias(attn: nn.Module) -> torch.Tensor:
    index = attn.relative_position_index
    n = index.shape[0]
    table = attn.relative_position_bias_table[index.view(-1)]
    return table.view(n, n, -1).permute(2, 0, 1)


def _swin_attention(attn: nn.Module, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    bw, n, c = x.shape
    heads = attn.num_heads
    qkv = attn.qkv(x).view(bw, n, 3, heads, c // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    a = (q * attn.scale) @ k.transpose(-2, -1) + _position_bias(attn)
    if mask is not None:
        nw = mask.shape[0]
        a = (a.view(bw // nw, nw, heads, n, n) + mask[None, :, None]).view(bw, heads, n, n)
    y = a.softmax(-1) @ v
    return attn.proj(y.transpose(1, 2).reshape(bw, n, c))


def _ups_attention(
    attn: nn.Module, x: torch.Tensor, mask: torch.Tensor | None, shared: torch.Tensor | None
) -> torch.Tensor:
    w_u = attn.qk if attn.qk is not None else shared
    bw, n, c = x.shape
    heads = attn.num_heads
    p = (x @ w_u).view(bw, n, heads, -1).transpose(1, 2)
    if attn.similarity.startswith("cosine"):
        p = F.normalize(p, dim=-1)
        s = p @ p.transpose(-2, -1)
    else:
        s = (p @ p.transpose(-2, -1)) * p.shape[-1] ** -0.5
    if attn.similarity == "cosine-softmax":
        s = s * attn.logit_scale.clamp(max=math.log(100.0)).exp()
    s = s + _position_bias(attn)
    keep, nw = None, 1
    if mask is not None:
        nw = mask.shape[0]
        keep = (mask == 0).to(s.dtype)[None, :, None]
    if attn.similarity.endswith("softmax"):
        if keep is not None:
            s = s.view(bw // nw, nw, heads, n, n).masked_fill(keep == 0, float("-inf"))
            s = s.view(bw, heads, n, n)
        a = s.softmax(-1)
    else:
        a = F.relu(s)
        if keep is not None:
            a = (a.view(bw // nw, nw, heads, n, n) * keep).view(bw, heads, n, n)
        a = a / (a.sum(-1, keepdim=True) + attn.eps)
    v = (attn.v(x) if attn.v is not None else x).view(bw, n, heads, -1)
    y = a @ v.transpose(1, 2)
    return attn.proj(y.transpose(1, 2).reshape(bw, n, c))


def _layer(layer: nn.Module, x: torch.Tensor, h: int, w: int, shared, masks: dict) -> torch.Tensor:
    b, _, c = x.shape
    ws, s = layer.window_size, layer.shift_size
    mask = None
    if s:
        if (h, w, s) not in masks:
            masks[(h, w, s)] = _mask(h, w, ws, s).to(x.device)
        mask = masks[(h, w, s)]
    y = layer.norm1(x).view(b, h, w, c)
    if s:
        y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
    windows = _partition(y, ws)
    if hasattr(layer.attn, "qkv"):
        out = _swin_attention(layer.attn, windows, mask)
    else:
        out = _ups_attention(layer.attn, windows, mask, shared)
    y = _reverse(out, ws, h, w)
    if s:
        y = torch.roll(y, shifts=(s, s), dims=(1, 2))
    x = x + y.reshape(b, h * w, c)
    return x + layer.mlp(layer.norm2(x))


def reference_forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` in eval mode, the pre-fast-path formulation (reflection padding included)."""
    h, w = x.shape[-2:]
    ws = model.window_size
    if h % ws or w % ws:
        x = F.pad(x, (0, -w % ws, 0, -h % ws), mode="reflect")
    hp, wp = x.shape[-2:]
    masks: dict = {}
    shared = model.shared_projection()
    feat = model.conv_first(x - model.mean)
    tokens = model.patch_embed(feat)
    for group in model.layers:
        y = tokens
        for blk in group.residual_group.blocks:
            y = _layer(blk, y, hp, wp, shared, masks)
        b, _, c = y.shape
        y = group.conv(y.transpose(1, 2).reshape(b, c, hp, wp))
        tokens = y.flatten(2).transpose(1, 2) + tokens
    tokens = model.norm(tokens)
    body = tokens.transpose(1, 2).reshape(feat.shape)
    out = model.upsample(model.conv_after_body(body) + feat) + model.mean
    return out[..., : h * model.scale, : w * model.scale]
