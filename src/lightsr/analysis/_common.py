"""What the analysis tools share: the network wrapper, layer probes (forward hooks), channel
reduction, and writing figures and JSON.

A *probe* names what to record at one module: ``NAME`` (the module's output), ``NAME@in`` (its
first input), and for a window-attention module (``...attn`` of SwinIR or UPS) ``NAME@q`` /
``NAME@k`` (the query / key projections: SwinIR's ``qkv`` slices; for UPS both are the tokens in
the unified projection space, ``x @ W_u``, before normalisation) and ``NAME@attn`` (the attention
weights, recomputed from the module's inputs by the architecture's own functions). ``NAME`` may be
a glob: ``*`` and ``?`` match within one dotted component, ``**`` across components
(``layers.*.residual_group.blocks.*.attn@q``, ``**.attn@q``); :func:`module_names` lists them.

Window attention runs a chunked fast path in inference, which calls no forward
hooks on the attention modules; every analysis runs inside :func:`reference_path`, which makes the
Swin layers take their batched formulation (the same function; the tests check that hooks agree).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lightsr.errors import ImageError, LightSRError
from lightsr.files import atomic_path
from lightsr.inference.io import read_image
from lightsr.inference.tiling import pad_to_multiple
from lightsr.models.registry import descriptor_of, size_multiple
from lightsr.models.resolve import ResolvedModel, resolve_model
from lightsr.runtime import configure_threads, resolve_device

__all__ = [
    "MAX_SIDE",
    "PARTS",
    "Network",
    "Probe",
    "capture",
    "load_images",
    "load_network",
    "module_names",
    "parse_probes",
    "reduce_channels",
    "reference_path",
    "save_figure",
    "to_spatial",
    "window_layer",
    "write_json",
]

#: The longest input side the analyses accept (no tiling: autograd runs over the whole image).
MAX_SIDE = 256
#: What a probe can record at a module (see the module docstring).
PARTS = ("out", "in", "q", "k", "attn")


@dataclass
class Network:
    """A loaded network prepared for analysis.

    Attributes:
        resolved: what :func:`lightsr.models.resolve.resolve_model` returned.
        device: where it runs.
        multiple: input sides are padded to a multiple of this (reflection, cropped back).
        low, high: the architecture's input range; images are given in [0, 1].
        padded: the (H, W) of the last padded input (set by :meth:`__call__`).
    """

    resolved: ResolvedModel
    device: torch.device
    multiple: int
    low: float
    high: float
    padded: tuple[int, int] = (0, 0)

    @property
    def model(self) -> nn.Module:
        return self.resolved.model

    @property
    def scale(self) -> int:
        return self.resolved.scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [0, 1] -> (B, 3, sH, sW) in [0, 1]: pad, map to the input range, run,
        map back, crop. Differentiable."""
        h, w = x.shape[-2:]
        xp = pad_to_multiple(x, self.multiple)
        self.padded = (int(xp.shape[-2]), int(xp.shape[-1]))
        y = self.model(xp * (self.high - self.low) + self.low)
        y = (y - self.low) / (self.high - self.low)
        return y[..., : h * self.scale, : w * self.scale]


def load_network(
    name_or_path: str | os.PathLike[str], *, scale: int | None = None, device: str = "cpu"
) -> Network:
    """A named model (bundled weights) or a checkpoint, ready for :class:`Network` calls.

    Raises:
        LightSRError: unknown name, unreadable checkpoint, or a model that does not take RGB.
    """
    resolved = resolve_model(name_or_path, scale=scale)
    descriptor = descriptor_of(resolved.model)
    low, high = descriptor.input_range if descriptor else (0.0, 1.0)
    channels = (descriptor.in_channels, descriptor.out_channels) if descriptor else (3, 3)
    if channels != (3, 3):
        raise LightSRError(
            f"{resolved.name}: the analyses need an RGB-in, RGB-out model, this one has "
            f"{channels[0]} input and {channels[1]} output channels; pick an RGB model"
        )
    dev = resolve_device(device)
    configure_threads()
    model = resolved.model.to(dev).eval()  # .to() moves in place: the same module
    return Network(resolved, dev, size_multiple(model), float(low), float(high))


def load_images(
    paths: Sequence[str | os.PathLike[str]],
    *,
    downscale: int = 1,
    max_side: int = MAX_SIDE,
    device: torch.device | None = None,
) -> list[torch.Tensor]:
    """Image files as (1, 3, H, W) float tensors in [0, 1] (gray to RGB, alpha dropped).

    ``downscale`` > 1 treats the files as HR images and makes the benchmark LR input from each
    (``imresize(modcrop(hr, s), 1/s)``, MATLAB bicubic), as LAM's demo does.

    Raises:
        ImageError: unreadable file, or a (downscaled) side longer than ``max_side``.
    """
    if not paths:
        raise LightSRError("no input images: name one or more image files")
    out = []
    for path in paths:
        img = read_image(path)
        if downscale > 1:
            from lightsr.evaluation.resize import imresize, modcrop

            img = imresize(modcrop(img, downscale), 1 / downscale)
        if img.shape[0] > max_side or img.shape[1] > max_side:
            what = (
                f"its LR version ({img.shape[1]}x{img.shape[0]})"
                if downscale > 1
                else (f"{img.shape[1]}x{img.shape[0]}")
            )
            raise ImageError(
                f"{path}: {what} is larger than {max_side}x{max_side}, the most the analyses "
                "take (no tiling); crop or downscale it first"
            )
        scale = 65535.0 if img.dtype == np.uint16 else 255.0 if img.dtype == np.uint8 else 1.0
        arr = img.astype(np.float32) / scale
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        arr = np.clip(arr[:, :, :3], 0.0, 1.0)
        out.append(torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))[None].to(device))
    return out


@contextmanager
def reference_path(model: nn.Module) -> Iterator[None]:
    """Run ``model`` with every attention module's forward called (no fused fast path).

    lightsr's Swin layers (SwinIR, UPS) take a chunked path in inference that
    calls the attention's ``windows`` directly, so forward hooks on ``attn`` (and its children)
    would not fire. Inside this block every module with a window order (``order_for``: the Swin
    layers) has its own ``training`` flag set, which selects the batched formulation (the same
    function); only that flag changes: norms, MLP, drop-path and every other module keep their
    mode, so the outputs are the inference outputs. Works with and without autograd.
    """
    layers = [m for m in model.modules() if hasattr(m, "order_for") and not m.training]
    for m in layers:
        m.training = True
    try:
        yield
    finally:
        for m in layers:
            m.training = False


def module_names(model: nn.Module) -> list[str]:
    """Every sub-module's name (``model.named_modules()`` without the root)."""
    return [name for name, _ in model.named_modules() if name]


@dataclass(frozen=True)
class Probe:
    """One thing to record: ``part`` (one of :data:`PARTS`) of the module called ``module``."""

    module: str
    part: str = "out"

    @property
    def label(self) -> str:
        return self.module if self.part == "out" else f"{self.module}@{self.part}"


def _is_attention(module: nn.Module) -> bool:
    return hasattr(module, "relative_position_bias_table") and (
        hasattr(module, "qkv") or hasattr(module, "attention_map")
    )


def _glob(pattern: str) -> re.Pattern[str]:
    """A module-name glob: ``*`` and ``?`` stay within one dotted component, ``**`` spans any."""
    parts = re.split(r"(\*\*|\*|\?)", pattern)
    spans = {"**": ".*", "*": "[^.]*", "?": "[^.]"}
    return re.compile("".join(spans.get(p, re.escape(p)) for p in parts))


def parse_probes(model: nn.Module, specs: Sequence[str]) -> list[Probe]:
    """``NAME[@PART]`` texts (``NAME`` may be a glob, see the module docstring) -> probes, in the
    order of the texts, each glob's matches in the model's module order.

    Raises:
        LightSRError: an unknown part, a pattern that matches no module, or an attention part
            asked of a module that is not window attention.
    """
    modules = dict(model.named_modules())
    names = module_names(model)
    probes: list[Probe] = []
    for spec in specs:
        pattern, _, part = spec.partition("@")
        part = part or "out"
        if part not in PARTS:
            raise LightSRError(f"layer {spec!r}: unknown part @{part}; use one of {PARTS}")
        regex = _glob(pattern)
        found = [n for n in names if regex.fullmatch(n)]
        if not found:
            raise LightSRError(
                f"layer {spec!r} matches no module of this model; list them with --list-layers"
            )
        for name in found:
            if part in ("q", "k", "attn") and not _is_attention(modules[name]):
                raise LightSRError(
                    f"layer {spec!r}: {name} is not a window-attention module (@{part} needs "
                    "one, e.g. 'layers.0.residual_group.blocks.0.attn')"
                )
            probe = Probe(name, part)
            if probe not in probes:
                probes.append(probe)
    return probes


def _attention_parts(module: nn.Module, args: tuple[Any, ...], part: str) -> torch.Tensor:
    """q or k projections (B*nW, N, C') or the attention weights (B*nW, heads, N, N) of a
    window-attention module, from the arguments of its forward ``(x, mask, shared)``."""
    x, mask = args[0], args[1] if len(args) > 1 else None
    shared = args[2] if len(args) > 2 else None
    if hasattr(module, "attention_map"):  # UPS: one projection into the shared space
        if part == "attn":
            return module.attention_map(x, mask, shared)
        w_u = module.qk if module.qk is not None else shared
        return x @ w_u
    bw, n, c = x.shape  # SwinIR: the fused qkv projection
    qkv = module.qkv(x).view(bw, n, 3, module.num_heads, c // module.num_heads)
    if part in ("q", "k"):
        return qkv[:, :, 0 if part == "q" else 1].reshape(bw, n, c)
    from lightsr.models.archs.swinir import excluding_mask, window_attention

    q, k = (qkv[:, :, i].transpose(1, 2) for i in (0, 1))  # (bw, heads, N, d)
    eye = torch.eye(n, dtype=x.dtype, device=x.device).expand(bw, module.num_heads, n, n)
    prepared = None if mask is None else excluding_mask(mask)
    return window_attention(
        q * module.scale, k, eye, module.position_bias(), prepared, batched=True
    )


Transform = Callable[[Probe, torch.Tensor], torch.Tensor]


@contextmanager
def capture(
    model: nn.Module, probes: Sequence[Probe], transform: Transform | None = None
) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the probes during the forwards run inside the block.

    Yields ``{probe.label: [tensor per call]}`` (detached; ``transform(probe, tensor)`` applied
    first when given, e.g. to keep only what an analysis needs). Use inside
    :func:`reference_path` so that attention modules are called.
    """
    modules = dict(model.named_modules())
    store: dict[str, list[torch.Tensor]] = {p.label: [] for p in probes}
    handles = []

    def keep(probe: Probe, value: Any) -> None:
        t = value[0] if isinstance(value, (tuple, list)) else value
        t = t.detach()
        store[probe.label].append(transform(probe, t) if transform else t)

    for probe in probes:
        module = modules[probe.module]
        if probe.part == "out":
            hook = module.register_forward_hook(lambda m, a, o, p=probe: keep(p, o))
        elif probe.part == "in":
            hook = module.register_forward_pre_hook(lambda m, a, p=probe: keep(p, a[0]))
        else:
            hook = module.register_forward_pre_hook(
                lambda m, a, p=probe: keep(p, _attention_parts(m, a, p.part))
            )
        handles.append(hook)
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def window_layer(model: nn.Module, name: str) -> tuple[nn.Module, bool] | None:
    """The Swin layer holding module ``name`` and whether ``name`` sees windowed tokens (the
    attention module and its children do; the layer's norms and MLP see row-major tokens)."""
    parts = name.split(".")
    modules = dict(model.named_modules())
    for i in range(len(parts) - 1, 0, -1):
        parent = modules.get(".".join(parts[:i]))
        if parent is not None and hasattr(parent, "order_for"):
            return parent, parts[i] == "attn"
    return None


def to_spatial(
    model: nn.Module, probe: Probe, t: torch.Tensor, padded: tuple[int, int]
) -> torch.Tensor | None:
    """A recorded (non-attention-map) tensor as (B, C, H, W) on the padded input grid, or None
    when it is not a per-pixel map of that grid (e.g. a pooled SAFM level, the output image).

    Token tensors (B, H*W, C) are row-major; windowed ones (B*nW, N, C), inside a Swin layer's
    attention, are put back from (shifted) window order with the layer's own index.
    """
    hp, wp = padded
    if t.ndim == 4:
        return t if tuple(t.shape[-2:]) == (hp, wp) else None
    if t.ndim != 3:
        return None
    found = window_layer(model, probe.module)
    if found is not None and found[1] and probe.part != "attn":
        layer = found[0]
        _, inverse, _ = layer.order_for(hp, wp, t.device)
        t = t.reshape(-1, hp * wp, t.shape[-1]).index_select(1, inverse)
    if t.shape[1] != hp * wp:
        return None
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], hp, wp)


def reduce_channels(x: torch.Tensor, how: str = "mean") -> np.ndarray:
    """(C, H, W) -> (H, W): the channel mean, or the first principal component (pixels as
    samples, channels centred; its sign chosen to correlate positively with the mean)."""
    if how == "mean":
        return x.mean(0).double().cpu().numpy()
    if how != "pca":
        raise LightSRError(f"--reduce {how!r}: use mean or pca")
    c, h, w = x.shape
    flat = x.reshape(c, -1).double()
    centred = flat - flat.mean(1, keepdim=True)
    _, _, vh = torch.linalg.svd(centred.T, full_matrices=False)
    pc = centred.T @ vh[0]
    mean = flat.mean(0)
    if torch.dot(pc - pc.mean(), mean - mean.mean()) < 0:
        pc = -pc
    return pc.reshape(h, w).cpu().numpy()


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display).

    Raises:
        LightSRError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - matplotlib is in the analysis extra
        raise LightSRError(
            "the analysis figures need matplotlib: pip install matplotlib "
            "(or pip install 'lightsr[analysis]')"
        ) from exc
    return plt


def save_figure(fig: Any, path: Path, *, dpi: int = 100) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    plt = pyplot()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def write_json(data: dict[str, Any], path: Path) -> Path:
    """Write ``data`` as indented JSON atomically."""
    with atomic_path(path, suffix=".json") as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return path


def image_array(x: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) in [0, 1] -> (H, W, 3) float array for display."""
    return x[0].detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy()


def upsample_nearest(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of a (B, C, H, W) tensor (display only)."""
    return F.interpolate(x, size=size, mode="nearest")
