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

One implementation, three ways of running it (:class:`SwinLayer`), all giving the official outputs
(within float rounding): in inference (eval, no autograd) each layer runs window chunk by window
chunk, norms, attention and MLP together on tokens gathered into (shifted) window order by one
precomputed index, with the position bias gathered once and the masks made once per input shape
(:data:`CHUNK_BYTES`; masked pairs get -inf instead of the official -100, which left subnormal
weights that slowed the products; with T torch threads, T worker threads share the chunks,
each on one torch thread: :func:`run_chunks`); with autograd (training) the same gathers and one
batched attention over all windows; while tracing (ONNX export) or compiling, the official roll and
partition with nothing cached, so that shapes stay dynamic. The caches are plain attributes, never
in a state dict, and the bias cache follows in-place updates of its table (version counter).
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import _get_current_dispatch_mode

from lightsr.models.base import ArchDescriptor, Detected, StateDict, has_keys, pixelshuffle_scale

from ._blocks import pixelshuffle_upsampler

__all__ = [
    "ARCH",
    "Mlp",
    "SwinIR",
    "SwinIRSkeleton",
    "SwinLayer",
    "WindowAttention",
    "WindowAttentionBase",
    "detect",
    "excluding_mask",
    "relative_position_index",
    "shifted_window_mask",
    "swin_skeleton_config",
    "window_attention",
    "window_order",
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


#: Bytes of attention weights one chunk of windows holds on the fast path: small enough that the
#: scores stay in the CPU caches from the first product through normalisation to the second.
CHUNK_BYTES = 3 << 20


def plain_mode() -> bool:
    """True while tracing (ONNX export) or compiling: the batched formulation, no shape caches."""
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


def window_order(h: int, w: int, ws: int, shift: int, device=None) -> torch.Tensor:
    """(H*W,) token indices in (shifted) window order: ``tokens[:, order]`` of row-major
    (B, H*W, C) tokens equals :func:`window_partition` of the cyclically shifted image."""
    ids = torch.arange(h * w, device=device).view(1, h, w, 1)
    if shift:
        ids = torch.roll(ids, shifts=(-shift, -shift), dims=(1, 2))
    return window_partition(ids, ws).reshape(-1)


def window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    relu_eps: float | None = None,
    batched: bool = False,
) -> torch.Tensor:
    """Attention inside windows: ``rows(q k^T + bias + mask) v`` for every window and head.

    Args:
        q, k: (B*nW, heads, N, d) queries (scaled by the caller) and keys.
        v: (B*nW, heads, N, dv) values.
        bias: (heads, N, N) relative position bias.
        mask: (nW, N, N) additive mask (0 inside a region) or None.
        relu_eps: None: softmax rows; else ReLU rows divided by their sum + ``relu_eps`` (applied
            to the product with ``v``, which equals normalising the rows first).
        batched: always the batched expression.

    Returns (B*nW, heads, N, dv). While autograd records, tracing or compiling, or with more than
    one torch thread: one batched expression. Otherwise the windows run in chunks of about
    :data:`CHUNK_BYTES` of scores, computed in place and written into one output (with several
    threads, each small operation of a chunk would be one more parallel region: on a loaded
    machine each costs a scheduler slice; measured 8x slower than the batched form).
    """
    bw, h, n, _ = q.shape
    nw = 1 if mask is None else mask.shape[0]
    recording = torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v, bias))
    if batched or recording or plain_mode() or torch.get_num_threads() > 1:
        s = q @ k.transpose(-2, -1) + bias
        if mask is not None:
            s = (s.view(bw // nw, nw, h, n, n) + mask[:, None]).view(bw, h, n, n)
        if relu_eps is None:
            return s.softmax(-1) @ v
        a = F.relu(s)
        return (a @ v) / (a.sum(-1, keepdim=True) + relu_eps)
    out = v.new_empty(bw, h, n, v.shape[-1])
    qf, kf, vf, of = (t.reshape(bw * h, n, t.shape[-1]) for t in (q, k, v, out))
    span = bw if mask is None else nw  # windows sharing no mask row: one image
    chunk = max(1, min(span, CHUNK_BYTES // (h * n * n * q.element_size())))
    for base in range(0, bw, span):
        for w0 in range(0, span, chunk):
            w1 = min(span, w0 + chunk)
            rows = slice((base + w0) * h, (base + w1) * h)
            s = torch.bmm(qf[rows], kf[rows].transpose(1, 2))
            s.view(w1 - w0, h * n * n).add_(bias.reshape(1, h * n * n))
            if mask is not None:
                s.view(w1 - w0, h, n, n).add_(mask[w0:w1, None])
            if relu_eps is None:
                torch.bmm(s.softmax(-1), vf[rows], out=of[rows])
            else:
                total = s.relu_().sum(-1, keepdim=True).add_(relu_eps)
                torch.bmm(s, vf[rows], out=of[rows]).div_(total)
    return out


_POOL_LOCK = threading.Lock()
_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _forget_pool() -> None:  # a forked child has none of the parent's threads
    global _POOL
    _POOL = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def run_chunks(fn: Callable[[int], None], jobs: int) -> None:
    """Run ``fn(0) .. fn(jobs - 1)``, independent pieces of one inference step.

    With one torch thread, or under a Python dispatch mode (a FLOP counter, a tracer: modes
    hold per thread, so work on other threads would escape them): in order, on this thread.
    With T > 1 torch threads: on T worker
    threads that each run their pieces with one torch thread (torch releases the GIL inside
    its operators), so a chunk of windows stays one cache-sized serial piece of work instead of
    becoming many small parallel regions; torch's thread count is restored afterwards. The
    workers take this thread's grad and inference modes. Each piece writes its own part of the
    result, so the outputs equal the one-thread run's bit for bit.
    """
    global _POOL
    threads = torch.get_num_threads()
    if threads <= 1 or jobs <= 1 or _get_current_dispatch_mode() is not None:
        for j in range(jobs):
            fn(j)
        return
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def piece(j: int) -> None:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            fn(j)

    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != threads:
            if _POOL is not None:
                _POOL[1].shutdown(wait=False)
            _POOL = (threads, ThreadPoolExecutor(threads, thread_name_prefix="lightsr-windows"))
        pool = _POOL[1]
    torch.set_num_threads(1)
    try:
        for future in [pool.submit(piece, j) for j in range(jobs)]:
            future.result()
    finally:
        torch.set_num_threads(threads)


def excluding_mask(mask: torch.Tensor) -> torch.Tensor:
    """An additive mask (0 inside a region, -100 across) with -inf across regions."""
    return torch.zeros_like(mask).masked_fill(mask != 0, float("-inf"))


def gathered_bias(attn: nn.Module) -> torch.Tensor:
    """``attn.position_bias()``, gathered once (contiguous) and reused while no gradient is
    recorded and its table and index are unchanged (same storage, same version: an optimizer step
    or ``load_state_dict`` makes a new one). Not a buffer: never in a state dict."""
    table, index = attn.relative_position_bias_table, attn.relative_position_index
    if torch.is_grad_enabled() or plain_mode():
        return attn.position_bias()
    key = (table.data_ptr(), table._version, table.dtype, index.data_ptr(), index._version)
    cached = attn.__dict__.get("_gathered_bias")
    if cached is None or cached[0] != key:
        cached = (key, attn.position_bias().contiguous())
        attn.__dict__["_gathered_bias"] = cached
    return cached[1]


class Mlp(nn.Module):
    """Transformer MLP: Linear(C, hidden), GELU, Linear(hidden, C)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class WindowAttentionBase(nn.Module):
    """What SwinIR's :class:`WindowAttention` and UPS's attention share: a per-layer relative
    position bias (``relative_position_bias_table`` indexed by ``relative_position_index``, both
    made by the subclass), the shifted-window mask as :meth:`windows` takes it, and ``forward``;
    the subclass computes the attention itself in :meth:`windows`."""

    def position_bias(self) -> torch.Tensor:
        n = self.relative_position_index.shape[0]
        table = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return table.view(n, n, -1).permute(2, 0, 1)  # (heads, N, N)

    def prepare_mask(self, mask: torch.Tensor) -> torch.Tensor:
        """The (nW, N, N) shifted-window mask (0 inside a region, -100 across) as :meth:`windows`
        takes it: -inf across regions, so that softmax and ReLU rows give exact zeros there.

        The official -100 leaves weights of about exp(-100), subnormal floats that add nothing
        to a row but slow the product with the values several times over.
        """
        return excluding_mask(mask)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, shared: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.windows(x, None if mask is None else self.prepare_mask(mask), shared)

    def windows(
        self, x: torch.Tensor, mask: torch.Tensor | None, shared: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:meth:`forward` on (B*nW, N, C) tokens with a mask from :meth:`prepare_mask`."""
        raise NotImplementedError(f"{type(self).__name__} does not define windows()")


class WindowAttention(WindowAttentionBase):
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

    def windows(
        self, x: torch.Tensor, mask: torch.Tensor | None, shared: torch.Tensor | None = None
    ) -> torch.Tensor:
        bw, n, c = x.shape  # bw = batch * windows
        qkv = self.qkv(x).view(bw, n, 3, self.num_heads, c // self.num_heads)
        qkv = qkv.permute(2, 0, 3, 1, 4).contiguous()  # (3, bw, heads, N, C/heads)
        y = window_attention(qkv[0] * self.scale, qkv[1], qkv[2], gathered_bias(self), mask)
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
        # per (h, w, device): the mask and the window order (not buffers: never in a state dict)
        self._mask_cache: dict[tuple[int, int, torch.device], torch.Tensor] = {}
        self._order_cache: dict[tuple[int, int, torch.device], tuple[torch.Tensor, ...]] = {}

    def mask_for(self, h: int, w: int, device: torch.device) -> torch.Tensor | None:
        if self.shift_size == 0:
            return None
        if plain_mode():  # export: sizes are traced values, keep them dynamic
            return shifted_window_mask(h, w, self.window_size, self.shift_size, device)
        if (h, w) == (self.img_size, self.img_size) and self.attn_mask is not None:
            return self.attn_mask
        key = (h, w, device)
        if key not in self._mask_cache:
            with torch.inference_mode(False):  # usable by a later training step
                mask = shifted_window_mask(h, w, self.window_size, self.shift_size, device)
            self._mask_cache[key] = mask
        return self._mask_cache[key]

    def order_for(self, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, ...]:
        """(order, inverse, prepared mask) for an (h, w) input: row-major tokens to (shifted)
        window order and back, and the mask as :meth:`attn.prepare_mask` wants it (or None)."""
        key = (h, w, device)
        if key not in self._order_cache:
            ws, shift = self.window_size, self.shift_size
            with torch.inference_mode(False):  # index_select saves them for backward
                mask = shifted_window_mask(h, w, ws, shift, device) if shift else None
                order = window_order(h, w, ws, shift, device)
                inverse = torch.empty_like(order).scatter_(
                    0, order, torch.arange(order.numel(), device=device)
                )
                prepare = getattr(self.attn, "prepare_mask", None)
                if mask is not None and prepare is not None:
                    mask = prepare(mask)
            self._order_cache[key] = (order, inverse, mask)
        return self._order_cache[key]

    def forward(
        self, x: torch.Tensor, size: tuple[int, int], shared: torch.Tensor | None = None
    ) -> torch.Tensor:
        h, w = size
        b, _, c = x.shape
        ws, s = self.window_size, self.shift_size
        if plain_mode():  # traced shapes: roll and partition (the official formulation)
            y = self.norm1(x).view(b, h, w, c)
            if s:
                y = torch.roll(y, shifts=(-s, -s), dims=(1, 2))
            y = self.attn(window_partition(y, ws), self.mask_for(h, w, x.device), shared)
            y = window_reverse(y, ws, h, w)
            if s:
                y = torch.roll(y, shifts=(s, s), dims=(1, 2))
            y = y.reshape(b, h * w, c)
        elif torch.is_grad_enabled() or self.training:
            # one gather into window order and back, all windows in one batch
            order, inverse, _ = self.order_for(h, w, x.device)
            y = self.norm1(x).index_select(1, order).view(-1, ws * ws, c)
            y = self.attn(y, self.mask_for(h, w, x.device), shared)
            y = y.view(b, h * w, c).index_select(1, inverse)
        else:
            return self._forward_chunked(x, size, shared)
        x = x + self.drop_path(y)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def _forward_chunked(
        self, x: torch.Tensor, size: tuple[int, int], shared: torch.Tensor | None
    ) -> torch.Tensor:
        """Inference: the whole layer (norms, attention, MLP, residuals) on chunks of windows
        small enough to stay in the CPU caches, written back into row-major order."""
        b, length, c = x.shape
        n = self.window_size**2
        nw = length // n
        order, inverse, mask = self.order_for(*size, x.device)
        windows = getattr(self.attn, "windows", self.attn)  # takes the prepared mask
        heads = getattr(self.attn, "num_heads", 1)
        chunk = max(1, CHUNK_BYTES // (heads * n * n * x.element_size()))
        starts = range(0, nw, chunk)
        out = torch.empty_like(x)  # in window order

        def piece(j: int) -> None:
            i, w0 = divmod(j, len(starts))
            w0 = starts[w0]
            w1 = min(nw, w0 + chunk)
            t = x[i].index_select(0, order[w0 * n : w1 * n])
            part = None if mask is None else mask[w0:w1]
            t = t + windows(self.norm1(t).view(w1 - w0, n, c), part, shared).view(-1, c)
            torch.add(t, self.mlp(self.norm2(t)), out=out[i, w0 * n : w1 * n])

        run_chunks(piece, b * len(starts))
        return out.index_select(1, inverse)


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

    ``upscaling_factor=1`` builds SwinIR's restoration form (its denoising and JPEG models,
    ``upsampler=''``): no upsampler, a 3x3 ``conv_last`` to 3 channels whose output is added to
    the input image (a global residual). The official names hold, so the official colour
    denoising checkpoints' tensors match this form.

    Args:
        embed_dim: channels C.
        depths: layers per residual group.
        window_size: attention window side.
        mlp_ratio: MLP hidden size / C.
        upscaling_factor: output scale; 1: the restoration form (see above).
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
        if upscaling_factor == 1:  # restoration: the image residual (official ``conv_last``)
            self.conv_last = nn.Conv2d(embed_dim, 3, 3, 1, 1)
        else:
            self.upsample = pixelshuffle_upsampler(embed_dim, upscaling_factor)
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
        image = x
        x = x - self.mean
        feat = self.conv_first(x)
        tokens = self.patch_embed(feat)  # (B, HW, C)
        shared = self.shared_projection()
        for layer in self.layers:
            tokens = layer(tokens, (hp, wp), shared)
        tokens = self.norm(tokens)
        body = tokens.transpose(1, 2).reshape(feat.shape)
        if self.scale == 1:  # restoration: (x - mean) + conv_last(...) + mean
            return image + self.conv_last(self.conv_after_body(body) + feat)
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
        upscaling_factor: 2, 3 or 4; 1 builds the restoration form (see
            :class:`SwinIRSkeleton`).
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
    ``conv_first``, ``conv_after_body``, a one-step ``upsample.0`` (or, at scale 1, the
    restoration form's 3-channel ``conv_last`` and no upsampler) and window attention with a
    relative position bias. None when the tensors are not such a network."""
    needed = ("conv_first.weight", "conv_after_body.weight")
    table_key = FIRST_LAYER + "attn.relative_position_bias_table"
    if not has_keys(sd, *needed, table_key, FIRST_LAYER + "mlp.fc1.weight"):
        return None
    if "upsample.0.weight" in sd:
        scale = pixelshuffle_scale(sd["upsample.0.weight"].shape[0])
    elif "conv_last.weight" in sd and not any(k.startswith(("upsample.", "conv_up")) for k in sd):
        scale = 1 if sd["conv_last.weight"].shape[0] == 3 else None
    else:
        return None
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
