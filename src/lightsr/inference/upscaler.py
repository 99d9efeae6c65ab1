"""Inference: padding, seamless tiling, devices and precision, and every kind of image.

The public entry point is :func:`load_model`, which returns an :class:`Upscaler`:

>>> import lightsr
>>> model = lightsr.load_model("path/to/SAFMN_DF2K_x2.pth")   # doctest: +SKIP
>>> sr = model.upscale(image, tile=256)                        # doctest: +SKIP

Padding and tiling live in :mod:`lightsr.inference.tiling`; names are resolved to models by
:func:`lightsr.models.resolve.resolve_model`; devices and precisions by :mod:`lightsr.runtime`.
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightsr.errors import LightSRError
from lightsr.inference.colorfix import wavelet_color_fix
from lightsr.inference.tiling import DEFAULT_TILE_OVERLAP, Emit, check_tiling, tiled_apply
from lightsr.models.registry import size_multiple
from lightsr.models.resolve import resolve_model
from lightsr.native.fast import CompileMode, FastRunner, FastSAFMN, fast_unsupported_reason
from lightsr.runtime import (
    PRECISIONS,
    configure_threads,
    cpu_supports_bf16,
    resolve_device,
    resolve_precision,
)

__all__ = [
    "Upscaler",
    "load_model",
]

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


@dataclass(frozen=True)
class _Options:
    """How :meth:`Upscaler.upscale` was asked to run, passed on to the per-kind helpers."""

    tile: int | None
    overlap: int
    color_fix: bool

    def kwargs(self) -> dict[str, Any]:
        return {"tile": self.tile, "tile_overlap": self.overlap, "color_fix": self.color_fix}


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
        fast: True when the fast path (:mod:`lightsr.native.fast`) runs the model.
        runner: the fast path's :class:`~lightsr.native.fast.FastRunner` (None on the plain path).

    Args:
        fast: use the fast path where the model has one (SAFMN in the paper's configuration):
            the same function, computed faster (:mod:`lightsr.native.fast`); False runs ``model``
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
        self.precision = resolve_precision(precision, self.device)
        self.model = model.eval().to(self.device)
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.scale = scale
        self.name = name
        self.arch = arch
        self.config = config
        self.size_multiple = size_multiple(model)
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
        color_fix: bool = False,
    ) -> Any:
        """Upscale an image; the result is the same kind of object as the input.

        Args:
            image: a numpy array HxW / HxWx3 / HxWx4 (uint8, uint16, or float in [0, 1]); a PIL
                image (palette images are expanded; 16-bit grayscale ``I;16`` stays 16-bit); or a
                float torch tensor (3, H, W) / (B, 3, H, W) in [0, 1] (1 or 4 channels also work).
            tile: tile size in LR pixels (None: whole image). Tiled output equals untiled output
                to within 1/255 with the default overlap; memory grows with the tile size.
            tile_overlap: context in LR pixels around each tile.
            color_fix: keep the network's detail but take the colours and low frequencies from
                a plain bicubic upscale (wavelet colour correction,
                :mod:`lightsr.inference.colorfix`), against the colour shifts of models trained
                on degraded images. The alpha channel is not corrected.

        Grayscale images run as RGB with equal channels and the output's channel mean is kept;
        an alpha channel is upscaled by the same network (as a gray image) and re-attached.
        Output is clamped to [0, 1] and rounded to the input's bit depth.
        """
        check_tiling(tile, tile_overlap)
        opts = _Options(tile, tile_overlap, color_fix)
        if isinstance(image, torch.Tensor):
            return self._upscale_tensor(image, opts)
        try:
            from PIL import Image
        except ImportError:  # pragma: no cover - pillow is a dependency
            Image = None
        if Image is not None and isinstance(image, Image.Image):
            return self._upscale_pil(image, opts)
        if isinstance(image, np.ndarray):
            rgb, alpha, layout = _from_numpy(image)
            return self._upscale_planes(rgb, alpha, layout, opts)
        raise LightSRError(
            f"image: expected a numpy array, PIL image or torch tensor, got {type(image).__name__}"
        )

    __call__ = upscale

    def _upscale_planes(
        self,
        rgb: torch.Tensor,
        alpha: torch.Tensor | None,
        layout: _Layout,
        opts: _Options,
    ) -> np.ndarray:
        h, w = rgb.shape[-2:]
        tile, overlap = opts.tile, opts.overlap
        out = _to_output_array((h * self.scale, w * self.scale), layout)
        dtype = out.dtype
        nc = 1 if layout.gray else 3

        def emit_rgb(row0: int, rows: torch.Tensor) -> None:
            rows = rows.mean(0, keepdim=True) if layout.gray else rows
            out[row0 : row0 + rows.shape[1], :, :nc] = _quantise(rows, dtype)

        if opts.color_fix:  # the float output is kept whole: the correction needs its rows
            sr = torch.empty(3, h * self.scale, w * self.scale)

            def emit_float(row0: int, rows: torch.Tensor) -> None:
                sr[:, row0 : row0 + rows.shape[1]] = rows

            self._run(rgb, emit_float, tile, overlap)
            emit_rgb(0, wavelet_color_fix(sr, rgb))
        else:
            self._run(rgb, emit_rgb, tile, overlap)
        if alpha is not None:

            def emit_alpha(row0: int, rows: torch.Tensor) -> None:
                rows = rows.mean(0, keepdim=True)
                out[row0 : row0 + rows.shape[1], :, nc:] = _quantise(rows, dtype)

            self._run(alpha.expand(3, -1, -1).contiguous(), emit_alpha, tile, overlap)
        return out[:, :, 0] if out.shape[2] == 1 else out

    @torch.inference_mode()
    def _run(self, x: torch.Tensor, emit: Emit, tile: int | None, overlap: int) -> None:
        tile = _fit_tile(self, x.shape[-2:], tile, overlap)
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

    def _upscale_pil(self, image: Any, opts: _Options) -> Any:
        from PIL import Image

        mode = image.mode
        if mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif mode in ("I;16", "I;16B", "I;16L", "I"):
            arr = np.asarray(image).astype(np.uint16)
            out = self.upscale(arr, **opts.kwargs())
            return Image.fromarray(out)
        elif mode == "LA":
            image = image.convert("RGBA")
        elif mode not in ("L", "RGB", "RGBA"):
            image = image.convert("RGB")
        arr = np.asarray(image)
        out = self.upscale(arr, **opts.kwargs())
        if mode == "LA":
            return Image.fromarray(out).convert("LA")
        return Image.fromarray(out)

    def _upscale_tensor(self, x: torch.Tensor, opts: _Options) -> torch.Tensor:
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

                self._run(plane.contiguous(), emit, opts.tile, opts.overlap)
            if opts.color_fix:
                lr = xb[i, :3] if c >= 3 else xb[i, :1].expand(3, -1, -1)
                sr = out[i, :3] if c >= 3 else out[i, :1].expand(3, -1, -1)
                fixed = wavelet_color_fix(sr, lr)
                out[i, : min(c, 3)] = fixed if c >= 3 else fixed.mean(0, keepdim=True)
        out = out.to(device=x.device, dtype=x.dtype)
        return out if batched else out[0]


def memory_available(device: torch.device) -> int | None:
    """Bytes this process may still allocate on ``device`` (None: unknown). CUDA: the free
    device memory. CPU: the least of the system's available memory, the cgroup's remaining
    limit and the address-space limit (``ulimit -v``) left above the current size."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    import resource

    def kib(text: str, key: str) -> int:
        return int(text.split(key)[1].split()[0]) * 1024

    found: list[int] = []
    cgroup = Path("/sys/fs/cgroup")
    try:
        found.append(kib(Path("/proc/meminfo").read_text(), "MemAvailable:"))
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int((cgroup / "memory.current").read_text()))
    except (OSError, IndexError, ValueError):  # not Linux, or no cgroup v2 limit
        pass
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    if soft != resource.RLIM_INFINITY:
        try:
            found.append(soft - kib(Path("/proc/self/status").read_text(), "VmSize:"))
        except (OSError, IndexError, ValueError):
            found.append(soft)
    return max(0, min(found)) if found else None


def _fit_tile(up: Upscaler, hw: Any, tile: int | None, overlap: int) -> int | None:
    """``tile``, or for an untiled run that would not fit in the memory available, the largest
    tile that does (a one-line notice on the ``lightsr`` logger); refuses an image whose output
    alone does not fit. The cost per LR pixel is an estimate from the widest layer (activations
    kept by the network) and the output planes, measured within 2x for SAFMN."""
    h, w = int(hw[0]), int(hw[1])
    if tile is not None or h * w < 256 * 256:
        return tile
    avail = memory_available(up.device)
    if avail is None:
        return tile
    convs = [m.out_channels for m in up.model.modules() if isinstance(m, nn.Conv2d)]
    width = max(convs, default=64)
    per_px = 4 * (8 * width + 12 * up.scale**2)  # float32 activations + output planes
    budget = avail // 2  # headroom for the allocator, other planes and the caller's arrays
    if per_px * h * w <= budget:
        return tile
    fixed = 4 * 3 * up.scale**2 * h * w  # the float output rows and the result, whole image
    side = int(math.sqrt(max(budget - fixed, 0) / per_px)) - 2 * overlap
    side -= side % 8
    if side < 32:
        gib = (per_px * h * w) / 2**30
        raise LightSRError(
            f"image: {w}x{h} at x{up.scale} needs about {gib:.1f} GiB untiled and "
            f"{avail / 2**30:.1f} GiB is available, too little even for tiles; upscale a "
            "smaller image (crop or split it) or free memory"
        )
    logging.getLogger("lightsr").warning(
        "lightsr: a %dx%d image untiled needs about %.1f GiB, more than half the %.1f GiB "
        "available: tiled automatically with --tile %d (pass --tile to choose)",
        w, h, per_px * h * w / 2**30, avail / 2**30, side,
    )  # fmt: skip
    return side


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
            default model (:data:`~lightsr.models.resolve.DEFAULT_MODEL`) at ``scale``
            (default 4). Resolved by :func:`lightsr.models.resolve.resolve_model`.
        scale: the wanted scale; for a checkpoint it must match the detected one.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"fp32"`` (default), ``"bf16"`` (CPU and CUDA) or ``"fp16"`` (CUDA only).
        fast: the fast path where the model has one (default; the same outputs to 1e-4 in fp32,
            see :mod:`lightsr.native.fast`); False selects the plain eager model.
        compile: when the fast path compiles: ``"auto"``, ``"on"`` or ``"off"`` (see
            :class:`Upscaler`).

    Raises:
        LightSRError: unknown name, unreadable checkpoint, scale mismatch, or a named model for
            which lightsr ships no weights.
    """
    found = resolve_model(name_or_path, scale=scale)
    return Upscaler(
        found.model,
        scale=found.scale,
        name=found.name,
        arch=found.arch,
        config=found.config,
        device=device,
        precision=precision,
        fast=fast,
        compile=compile,
    )
