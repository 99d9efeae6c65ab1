"""Padding and seamless tiling for any network that upscales by a fixed factor.

The functions here are pure: they work for any ``fn`` mapping a (1, C, h, w) tensor with h and w
multiples of ``multiple`` to (1, C, h * scale, w * scale). ``Upscaler``,
the ONNX backend and training's validation all pad and tile through them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from lightsr.errors import LightSRError
from lightsr.inference import DEFAULT_TILE_OVERLAP

__all__ = [
    "DEFAULT_TILE_OVERLAP",
    "check_tiling",
    "pad_to_multiple",
    "pad_to_size",
    "tiled_apply",
]


Emit = Callable[[int, torch.Tensor], None]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad the last two dims of ``x`` at the bottom/right up to multiples of ``multiple``.

    Reflection padding (no edge duplication, as the official test code and most SR toolkits do);
    for sides too short to reflect (e.g. 1 pixel) the remainder is replicated. The caller crops
    the output back.
    """
    h, w = x.shape[-2:]
    return pad_to_size(x, h + -h % multiple, w + -w % multiple)


def pad_to_size(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pad the last two dims of ``x`` at the bottom/right up to ``height`` x ``width``.

    The padding of :func:`pad_to_multiple` (reflection, repeated for long pads, replication for
    1-pixel sides); sides already as large are left alone.
    """
    h, w = x.shape[-2:]
    ph, pw = max(0, height - h), max(0, width - w)
    while ph or pw:
        h, w = x.shape[-2:]
        rh, rw = min(ph, h - 1), min(pw, w - 1)
        if rh == 0 and rw == 0:  # 1-pixel side: nothing to reflect
            return F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = F.pad(x, (0, rw, 0, rh), mode="reflect")
        ph, pw = ph - rh, pw - rw
    return x


def _round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def _axis_weights(w0: int, w1: int, image_len: int, overlap: int, scale: int) -> torch.Tensor:
    """Blending weights along one axis for a window [w0, w1) of an axis of ``image_len``.

    In output pixels, weight 0 over the outer half of the overlap at a window side that is inside
    the image (those pixels saw too little context), then a linear ramp to 1 over the inner half;
    sides on the image border get weight 1. Neighbouring windows cross-fade across each core
    boundary, and every pixel keeps weight 1 in the tile whose core contains it.
    """
    n = (w1 - w0) * scale
    pos = torch.arange(n, dtype=torch.float32) + 0.5
    half = overlap * scale / 2
    wt = torch.ones(n)
    if half > 0:
        if w0 > 0:
            wt = torch.minimum(wt, ((pos - half) / half).clamp(0, 1))
        if w1 < image_len:
            wt = torch.minimum(wt, ((n - pos - half) / half).clamp(0, 1))
    return wt


def _windows(n: int, tile: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """Windows ``[a, b)`` along an axis of length ``n`` covering the cores ``[c0, c0 + tile)``.

    Each window holds its core(s) plus at least ``overlap`` pixels of context on each side inside
    the image, starts on the ``multiple`` grid and pads to the same length: ``tile + 2 * overlap``
    (all multiples of ``multiple``), or ``n`` padded when the axis is shorter. The last window
    ends at ``n``, and its padded end is the untiled run's, ``ceil(n / multiple) * multiple``.
    Starts and ends never decrease, which the row-by-row output of :func:`tiled_apply` relies on.
    """
    win = tile + 2 * overlap
    if n <= win:
        return [(0, n)]
    last = _round_up(n - win, multiple)
    starts = [min(max(0, c0 - overlap), last) for c0 in range(0, n, tile)]
    return list(dict.fromkeys((a, min(a + win, n)) for a in starts))  # drop repeated windows


def check_tiling(tile: int | None, overlap: int) -> None:
    """Refuse a tile size below 1 or a negative overlap (None means "no tiling").

    Raises:
        LightSRError: naming ``tile`` or ``tile_overlap`` and the value given.
    """
    if tile is not None and (isinstance(tile, bool) or int(tile) != tile or tile < 1):
        raise LightSRError(f"tile: expected a whole number >= 1 (LR pixels) or None, got {tile!r}")
    if isinstance(overlap, bool) or int(overlap) != overlap or overlap < 0:
        raise LightSRError(
            f"tile_overlap: expected a whole number >= 0 (LR pixels), got {overlap!r}"
        )


def _run_padded(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, multiple: int, scale: int
) -> torch.Tensor:
    h, w = x.shape[-2:]
    y = fn(pad_to_multiple(x, multiple))
    return y[..., : h * scale, : w * scale].clamp(0.0, 1.0)


def tiled_apply(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    scale: int,
    multiple: int,
    emit: Emit,
    tile: int | None = None,
    overlap: int = DEFAULT_TILE_OVERLAP,
    batch: int = 1,
) -> None:
    """Run ``fn`` over ``x`` (C, H, W), untiled or in tiles, and hand finished output rows on.

    Tiles have cores of ``tile`` x ``tile`` LR pixels that partition the image; each is run with
    at least ``overlap`` pixels of context on every side (clipped at the image border) and the
    windows are cross-faded (see :func:`_axis_weights`). ``tile`` and ``overlap`` are rounded up
    to ``multiple`` so every window starts on the model's pooling grid, exactly as the untiled
    run. Every window has the same padded shape, ``tile + 2 * overlap`` (or the whole padded side
    when the image is smaller): windows at the image border extend inward for more context
    instead of shrinking, and the last one ends where the untiled run's padded image ends. One
    shape per image size is what lets a compiled graph serve every tile (see
    ``FastRunner``). Output is produced one row of tiles at a time, so memory
    grows with the tile and the image width, not with the image height.

    Args:
        fn: the network on a (1, C, h, w) float tensor; returns (1, C, h*scale, w*scale).
        x: (C, H, W) float tensor in [0, 1].
        scale: the network's upscaling factor.
        multiple: the network's size multiple (inputs are padded to it).
        emit: called as ``emit(row0, rows)`` with finished output rows (C, n, W*scale) in
            [0, 1], in order, covering the whole output once.
        tile: core size in LR pixels; None runs the whole image at once.
        overlap: context in LR pixels on each side of a tile.
        batch: run up to this many windows of a row of tiles in one call of ``fn`` (they all
            have the same shape); 1 bounds memory best, a GPU prefers more.
    """
    check_tiling(tile, overlap)
    _, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        emit(0, _run_padded(fn, x[None], multiple, scale)[0])
        return
    tile = _round_up(tile, multiple)
    overlap = _round_up(overlap, multiple)
    s = scale
    col_windows = _windows(w, tile, overlap, multiple)
    col_weights = [_axis_weights(a, b, w, overlap, s) for a, b in col_windows]
    pending: tuple[int, torch.Tensor, torch.Tensor] | None = None  # (row0, acc, wsum)
    for a, b in _windows(h, tile, overlap, multiple):
        row_wt = _axis_weights(a, b, h, overlap, s)
        acc = torch.zeros(x.shape[0], (b - a) * s, w * s)
        wsum = torch.zeros(1, (b - a) * s, w * s)
        for i in range(0, len(col_windows), max(1, batch)):
            group = col_windows[i : i + max(1, batch)]
            # Windows pad to one shape (see _windows), so a group stacks into one batch.
            tiles = torch.cat(
                [pad_to_multiple(x[None, :, a:b, c0:c1], multiple) for c0, c1 in group]
            )
            ys = fn(tiles)
            for j, (c0, c1) in enumerate(group):
                y = ys[j, :, : (b - a) * s, : (c1 - c0) * s].clamp(0.0, 1.0)
                wmap = row_wt[:, None] * col_weights[i + j][None, :]
                acc[:, :, c0 * s : c1 * s].addcmul_(y, wmap)
                wsum[:, :, c0 * s : c1 * s] += wmap
        if pending is not None:
            p0, pacc, pw = pending
            done = a * s - p0  # rows of the previous strip no later window touches
            emit(p0, pacc[:, :done] / pw[:, :done])
            acc[:, : pacc.shape[1] - done] += pacc[:, done:]
            wsum[:, : pw.shape[1] - done] += pw[:, done:]
        pending = (a * s, acc, wsum)
    assert pending is not None
    emit(pending[0], pending[1] / pending[2])
