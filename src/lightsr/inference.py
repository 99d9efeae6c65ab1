"""Inference: padding, seamless tiling, devices and precision, and every kind of image.

The public entry point is :func:`load_model`, which returns an :class:`Upscaler`:

>>> import lightsr
>>> model = lightsr.load_model("path/to/SAFMN_DF2K_x2.pth")   # doctest: +SKIP
>>> sr = model.upscale(image, tile=256)                        # doctest: +SKIP

Padding and tiling are pure functions (:func:`pad_to_multiple`, :func:`tiled_apply`) that work
for any network ``fn`` mapping a (1, C, h, w) tensor with h and w multiples of ``multiple`` to
(1, C, h * scale, w * scale).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .archs import MODELS, get_spec
from .checkpoint import Detected, load_checkpoint
from .errors import CheckpointError, LightSRError
from .fast import (
    CompileMode,
    FastRunner,
    FastSAFMN,
    configure_threads,
    cpu_supports_bf16,
    fast_unsupported_reason,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_TILE_OVERLAP",
    "PRECISIONS",
    "Upscaler",
    "load_model",
    "pad_to_multiple",
    "pad_to_size",
    "resolve_device",
    "tiled_apply",
]

#: The model used when none is named (the bundled default once lightsr ships weights).
DEFAULT_MODEL = "safmn"
DEFAULT_SCALE = 4
#: Context (LR pixels) given to each tile on every side. SAFMN's receptive field is wide (its
#: 8x-pooled branch sees +-16 px per block), but the influence decays fast: 32 px keeps tiled
#: output within 1/255 of the untiled one (see tests/test_inference.py).
DEFAULT_TILE_OVERLAP = 32
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
_PRECISION_ALIASES = {
    "float32": "fp32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
}

Emit = Callable[[int, torch.Tensor], None]


# --------------------------------------------------------------------------------------------
# Pure helpers


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
    :class:`lightsr.fast.FastRunner`). Output is produced one row of tiles at a time, so memory
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
    _, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        emit(0, _run_padded(fn, x[None], multiple, scale)[0])
        return
    if tile < 1 or overlap < 0:
        raise LightSRError(f"--tile must be >= 1 and --tile-overlap >= 0 (got {tile}, {overlap})")
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


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` picks CUDA when available, else the CPU; other values are checked."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise LightSRError(f"--device: {device!r} is not a device; use auto, cpu or cuda") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LightSRError("--device cuda: no CUDA GPU is available here; use --device cpu")
    return dev


def _resolve_precision(precision: str, device: torch.device) -> str:
    p = _PRECISION_ALIASES.get(precision.lower(), precision.lower())
    if p not in PRECISIONS:
        raise LightSRError(f"--precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if p == "fp16" and device.type == "cpu":
        raise LightSRError(
            "--precision fp16 needs a CUDA GPU (CPU float16 kernels are slow and inexact); "
            "use --precision bf16 or fp32 on the CPU"
        )
    return p


# --------------------------------------------------------------------------------------------
# Image kinds <-> (C, H, W) float tensors


@dataclass
class _Layout:
    """How to turn the model's float output back into the caller's kind of image."""

    kind: str  # "numpy" | "pil" | "torch"
    dtype: Any
    gray: bool
    alpha: bool
    batched: bool = False
    pil_mode: str | None = None
    device: torch.device | None = None


def _from_numpy(arr: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None, _Layout]:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)):
        raise LightSRError(
            f"image: expected an HxW, HxWx3 or HxWx4 array, got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise LightSRError(f"image: empty array of shape {tuple(arr.shape)}")
    if arr.dtype == np.uint8:
        f = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        f = arr.astype(np.float32) / 65535.0  # all 16 bits reach the model
    elif arr.dtype.kind == "f":
        f = arr.astype(np.float32)
    else:
        raise LightSRError(f"image: dtype {arr.dtype} not supported; use uint8, uint16 or float")
    t = torch.from_numpy(np.ascontiguousarray(f))
    gray = t.ndim == 2
    t = t[None] if gray else t.permute(2, 0, 1)
    alpha = t[3:4] if t.shape[0] == 4 else None
    rgb = t[:1].expand(3, -1, -1) if gray else t[:3]
    return rgb.contiguous(), alpha, _Layout("numpy", arr.dtype, gray, alpha is not None)


def _to_output_array(shape: tuple[int, int], layout: _Layout) -> np.ndarray:
    c = (1 if layout.gray else 3) + (1 if layout.alpha else 0)
    dtype = layout.dtype if layout.kind == "numpy" else np.uint8
    if np.dtype(dtype).kind == "f":
        dtype = np.float32
    return np.empty((*shape, c), dtype=dtype)


def _quantise(rows: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """(c, n, w) float in [0, 1] -> (n, w, c) array of ``dtype`` (round half up)."""
    a = rows.permute(1, 2, 0).numpy()
    if dtype == np.uint8:
        return (a * 255.0 + 0.5).astype(np.uint8)
    if dtype == np.uint16:
        return (a * 65535.0 + 0.5).astype(np.uint16)
    return a.astype(np.float32)


# --------------------------------------------------------------------------------------------
# The model wrapper


class Upscaler:
    """A loaded super-resolution network with padding, tiling, device and precision handled.

    Attributes:
        model: the underlying ``nn.Module`` (eval mode, on ``device``).
        scale: upscaling factor.
        name: the model name or checkpoint file name.
        arch: architecture name; ``config``: its constructor arguments.
        device: where it runs; ``precision``: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        size_multiple: input sides are padded to a multiple of this.
        fast: True when the fast path (:mod:`lightsr.fast`) runs the model.
        runner: the fast path's :class:`~lightsr.fast.FastRunner` (None on the plain path).

    Args:
        fast: use the fast path where the model has one (SAFMN in the paper's configuration):
            the same function, computed faster (see :mod:`lightsr.fast`); False runs ``model``
            as it is (eager; autocast for bf16/fp16). The fast path copies the weights here:
            a ``model`` changed afterwards (e.g. while training) needs a new Upscaler.
        compile: the fast path's use of ``torch.compile``/CUDA graphs: ``"auto"`` (once a shape
            has cost more eager time than a compilation), ``"on"`` or ``"off"``.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        scale: int,
        name: str,
        arch: str,
        config: dict[str, Any],
        device: str | torch.device = "auto",
        precision: str = "fp32",
        fast: bool = True,
        compile: CompileMode = "auto",
    ) -> None:
        self.device = resolve_device(device)
        self.precision = _resolve_precision(precision, self.device)
        self.model = model.eval().to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.scale = scale
        self.name = name
        self.arch = arch
        self.config = config
        self.size_multiple = int(getattr(model, "size_multiple", 1))
        if compile not in ("auto", "on", "off"):
            raise LightSRError(f"--compile: {compile!r} is not one of auto, on, off")
        self.runner: FastRunner | None = None
        if fast and fast_unsupported_reason(self.model) is None:
            self.runner = _make_runner(self.model, self.device, self.precision, compile)
            self.size_multiple = max(self.size_multiple, self.runner.module.size_multiple)
        self.fast = self.runner is not None

    def __repr__(self) -> str:
        return (
            f"Upscaler({self.name!r}, arch={self.arch}, scale={self.scale}, "
            f"device={self.device}, precision={self.precision}, fast={self.fast})"
        )

    @torch.inference_mode()
    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Run the network on a (B, 3, h, w) float tensor whose sides are size multiples.

        Returns a float32 tensor on the input's device.
        """
        src = x.device
        x = x.to(self.device, torch.float32)
        if self.runner is not None:
            return self.runner(x).to(src)
        dtype = PRECISIONS[self.precision]
        ctx = (
            torch.autocast(self.device.type, dtype=dtype)
            if self.precision != "fp32"
            else nullcontext()
        )
        with ctx:
            y = self.model(x)
        return y.float().to(src)

    def upscale(
        self,
        image: Any,
        *,
        tile: int | None = None,
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
    ) -> Any:
        """Upscale an image; the result is the same kind of object as the input.

        Args:
            image: a numpy array HxW / HxWx3 / HxWx4 (uint8, uint16, or float in [0, 1]); a PIL
                image (palette images are expanded; 16-bit grayscale ``I;16`` stays 16-bit); or a
                float torch tensor (3, H, W) / (B, 3, H, W) in [0, 1] (1 or 4 channels also work).
            tile: tile size in LR pixels (None: whole image). Tiled output equals untiled output
                to within 1/255 with the default overlap; memory grows with the tile size.
            tile_overlap: context in LR pixels around each tile.

        Grayscale images run as RGB with equal channels and the output's channel mean is kept;
        an alpha channel is upscaled by the same network (as a gray image) and re-attached.
        Output is clamped to [0, 1] and rounded to the input's bit depth.
        """
        if isinstance(image, torch.Tensor):
            return self._upscale_tensor(image, tile, tile_overlap)
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - pillow is a dependency
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            return self._upscale_pil(image, tile, tile_overlap)
        if isinstance(image, np.ndarray):
            rgb, alpha, layout = _from_numpy(image)
            return self._upscale_planes(rgb, alpha, layout, tile, tile_overlap)
        raise LightSRError(
            f"image: expected a numpy array, PIL image or torch tensor, got {type(image).__name__}"
        )

    __call__ = upscale

    def _upscale_planes(
        self,
        rgb: torch.Tensor,
        alpha: torch.Tensor | None,
        layout: _Layout,
        tile: int | None,
        overlap: int,
    ) -> np.ndarray:
        h, w = rgb.shape[-2:]
        out = _to_output_array((h * self.scale, w * self.scale), layout)
        dtype = out.dtype
        nc = 1 if layout.gray else 3

        def emit_rgb(row0: int, rows: torch.Tensor) -> None:
            rows = rows.mean(0, keepdim=True) if layout.gray else rows
            out[row0 : row0 + rows.shape[1], :, :nc] = _quantise(rows, dtype)

        self._run(rgb, emit_rgb, tile, overlap)
        if alpha is not None:

            def emit_alpha(row0: int, rows: torch.Tensor) -> None:
                rows = rows.mean(0, keepdim=True)
                out[row0 : row0 + rows.shape[1], :, nc:] = _quantise(rows, dtype)

            self._run(alpha.expand(3, -1, -1).contiguous(), emit_alpha, tile, overlap)
        return out[:, :, 0] if out.shape[2] == 1 else out

    @torch.inference_mode()
    def _run(self, x: torch.Tensor, emit: Emit, tile: int | None, overlap: int) -> None:
        tiled_apply(
            self.forward_tensor,
            x,
            scale=self.scale,
            multiple=self.size_multiple,
            emit=emit,
            tile=tile,
            overlap=overlap,
            batch=self._tile_batch,
        )

    @property
    def _tile_batch(self) -> int:
        """Equally shaped tiles per network call: several on CUDA, one on the CPU."""
        return 8 if self.device.type == "cuda" else 1

    def _upscale_pil(self, image: Any, tile: int | None, overlap: int) -> Any:
        from PIL import Image

        mode = image.mode
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(image).astype(np.uint16)
            out = self.upscale(arr, tile=tile, tile_overlap=overlap)
            return Image.fromarray(out)
        elif mode == "LA":
            image = image.convert("RGBA")
        elif mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGB")
        arr = np.asarray(image)
        out = self.upscale(arr, tile=tile, tile_overlap=overlap)
        if mode == "LA":
            return Image.fromarray(out).convert("LA")
        return Image.fromarray(out)

    def _upscale_tensor(self, x: torch.Tensor, tile: int | None, overlap: int) -> torch.Tensor:
        if x.ndim not in (3, 4) or x.shape[-3] not in (1, 3, 4):
            raise LightSRError(
                f"image: expected a (C, H, W) or (B, C, H, W) tensor with C in 1, 3, 4; "
                f"got shape {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise LightSRError(f"image: expected a float tensor in [0, 1], got {x.dtype}")
        batched = x.ndim == 4
        xb = (x if batched else x[None]).detach().float().cpu()
        b, c, h, w = xb.shape
        s = self.scale
        out = torch.empty(b, c, h * s, w * s)
        for i in range(b):
            planes = [xb[i, :3]] if c >= 3 else [xb[i, :1].expand(3, -1, -1)]
            if c == 4:
                planes.append(xb[i, 3:4].expand(3, -1, -1))
            dst = [slice(0, 3) if c >= 3 else slice(0, 1), slice(3, 4)][: len(planes)]
            for plane, sl in zip(planes, dst, strict=True):
                target = out[i, sl]

                def emit(row0: int, rows: torch.Tensor, target: torch.Tensor = target) -> None:
                    if target.shape[0] == 1:
                        rows = rows.mean(0, keepdim=True)
                    target[:, row0 : row0 + rows.shape[1]] = rows

                self._run(plane.contiguous(), emit, tile, overlap)
        out = out.to(device=x.device, dtype=x.dtype)
        return out if batched else out[0]


def _make_runner(
    model: nn.Module, device: torch.device, precision: str, compile: CompileMode
) -> FastRunner:
    if device.type == "cpu":
        configure_threads()
        if precision == "bf16" and not cpu_supports_bf16():
            warnings.warn(
                "this CPU has no native bfloat16 (AVX512-BF16/AMX): --precision bf16 is "
                "emulated and slower than fp32",
                RuntimeWarning,
                stacklevel=3,
            )
    module = FastSAFMN(model, dtype=PRECISIONS[precision]).to(device)
    return FastRunner(module, device, compile=compile)


# --------------------------------------------------------------------------------------------


def _bundled_weights_path(filename: str) -> Path:
    return Path(__file__).resolve().parent / "weights" / filename


def load_model(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    scale: int | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    fast: bool = True,
    compile: CompileMode = "auto",
) -> Upscaler:
    """Load a model for inference: a checkpoint file, or a named model with bundled weights.

    Args:
        name_or_path: a checkpoint (``.pth``, ``.pt``, ``.ckpt``, ``.safetensors``; the
            architecture and scale are detected from its tensors), or a model name from
            ``lightsr models`` (``safmn-x4``, or ``safmn`` with ``scale``). None means the
            default model (:data:`DEFAULT_MODEL`) at ``scale`` (default 4).
        scale: the wanted scale; for a checkpoint it must match the detected one.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"fp32"`` (default), ``"bf16"`` (CPU and CUDA) or ``"fp16"`` (CUDA only).
        fast: the fast path where the model has one (default; the same outputs to 1e-4 in fp32,
            see :mod:`lightsr.fast`); False selects the plain eager model.
        compile: when the fast path compiles: ``"auto"``, ``"on"`` or ``"off"`` (see
            :class:`Upscaler`).

    Raises:
        LightSRError: unknown name, unreadable checkpoint, scale mismatch, or a named model for
            which lightsr ships no weights.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
        scale = scale or DEFAULT_SCALE
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.suffix.lower() in (".pth", ".pt", ".ckpt", ".safetensors", ".bin") or path.exists():
        model, found = load_checkpoint(path, scale=scale)
        if scale is not None and found.scale != scale:
            raise CheckpointError(
                f"{path}: the checkpoint is x{found.scale}, but scale {scale} was asked for"
            )
        return Upscaler(
            model,
            scale=found.scale,
            name=path.name,
            arch=found.arch,
            config=found.config,
            device=device,
            precision=precision,
            fast=fast,
            compile=compile,
        )
    try:
        spec = get_spec(text, scale)
    except KeyError as exc:
        raise LightSRError(str(exc.args[0])) from exc
    if spec.weights is None or not _bundled_weights_path(spec.weights).is_file():
        with_weights = sorted(
            n for n, s in MODELS.items() if s.weights and _bundled_weights_path(s.weights).is_file()
        )
        hint = f" (bundled: {', '.join(with_weights)})" if with_weights else ""
        raise LightSRError(
            f"model {spec.name!r}: lightsr ships no weights for it{hint}; pass a checkpoint "
            "with --weights PATH (Python: load_model('path/to/weights.pth'))"
        )
    model, found = load_checkpoint(_bundled_weights_path(spec.weights))
    _check_bundled(spec.name, found, spec.arch, spec.scale)
    return Upscaler(
        model,
        scale=spec.scale,
        name=spec.name,
        arch=spec.arch,
        config=dict(spec.config),
        device=device,
        precision=precision,
        fast=fast,
        compile=compile,
    )


def _check_bundled(name: str, found: Detected, arch: str, scale: int) -> None:
    if found.arch != arch or found.scale != scale:
        raise CheckpointError(
            f"bundled weights of {name!r} are {found.arch} x{found.scale}, expected {arch} "
            f"x{scale}; reinstall lightsr"
        )
