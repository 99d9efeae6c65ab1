"""ONNX export with dynamic batch, height and width, and an onnxruntime backend.

The official SAFMN export works at one fixed size because adaptive max pooling to a size taken
from the input cannot be exported with dynamic height and width. lightsr exports
:class:`~lightsr.native.fast.FastSAFMN` instead, which computes the same function with fixed-size
operations: on inputs whose sides are multiples of 8, adaptive max pooling to
``(h // 2**i, w // 2**i)`` is ``MaxPool`` with kernel = stride = ``2**i`` and the nearest upsample
is a ``Resize`` by the fixed factor ``2**i``. The graph is therefore exact at every size that is a
multiple of 8. SwinIR-light and UPS are exported from their ``forward_multiple`` (no padding; the
shifted-window masks are built in the graph from the input's size), exact at every multiple of
the window (8).

Padding is the runtime wrapper's job, not the graph's: :class:`OnnxRuntimeModel` (and so
``lightsr upscale --backend onnxruntime``) pads with the same reflection as the PyTorch path,
which keeps every backend's output identical for every size (reflection is undefined for sides
shorter than the padding; lightsr then replicates). Other programs feeding the graph directly must
pad H and W to multiples of 8 and crop the output; the model's metadata says so
(``lightsr_size_multiple``, ``lightsr_scale``, ``lightsr_padding``).

onnx and onnxruntime are the optional ``onnx`` extra: ``pip install 'lightsr[onnx]'``.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lightsr.errors import LightSRError
from lightsr.native.fast import FastSAFMN, fast_unsupported_reason

__all__ = [
    "DEFAULT_OPSET",
    "ExportResult",
    "OnnxRuntimeModel",
    "export_onnx",
    "load_onnx",
    "parse_static",
]

#: Opset 17 has ``LayerNormalization``; older opsets get it decomposed by the exporter.
DEFAULT_OPSET = 17
_MIN_OPSET = 11


def _require(module: str) -> Any:
    """Import ``onnx`` or ``onnxruntime``, or say how to install them."""
    try:
        return __import__(module)
    except ImportError as exc:
        raise LightSRError(
            f"{module} is not installed; install the ONNX extra: pip install 'lightsr[onnx]'"
        ) from exc


def parse_static(text: str) -> tuple[int, int]:
    """Parse ``--static WxH`` into (height, width); both must be positive multiples of 8."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise LightSRError(f"--static: expected WxH such as 320x184, got {text!r}") from None
    if w <= 0 or h <= 0 or w % 8 or h % 8:
        raise LightSRError(
            f"--static {text}: width and height must be positive multiples of 8 "
            f"(e.g. {max(8, -(-w // 8) * 8)}x{max(8, -(-h // 8) * 8)})"
        )
    return h, w


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ONNX file.
        opset: its opset.
        dtype: ``"float32"`` or ``"float16"`` (weights and compute; I/O stays float32).
        dynamic: True for dynamic batch/height/width, False for ``static`` exports.
        scale: the model's upscaling factor.
        max_abs_diff: onnxruntime vs PyTorch on a test input (None when not verified).
    """

    path: Path
    opset: int
    dtype: str
    dynamic: bool
    scale: int
    max_abs_diff: float | None


def _load_for_export(model: Any) -> tuple[nn.Module, str, dict[str, Any], int]:
    from lightsr.inference.upscaler import Upscaler
    from lightsr.models.resolve import resolve_model

    if isinstance(model, (str, os.PathLike)):
        found = resolve_model(model)
        return found.model, found.arch, found.config, found.scale
    if isinstance(model, Upscaler):
        return model.model, model.arch, model.config, model.scale
    if isinstance(model, nn.Module):
        scale = int(getattr(model, "scale", 0) or getattr(model, "upscale", 0) or 0)
        return model, type(model).__name__.lower(), {}, scale
    raise LightSRError(f"export: expected a model, checkpoint or name, got {type(model).__name__}")


def export_onnx(
    model: Any,
    output: str | os.PathLike[str],
    *,
    opset: int = DEFAULT_OPSET,
    fp16: bool = False,
    static: tuple[int, int] | None = None,
    verify: bool = True,
) -> ExportResult:
    """Export a model to ONNX with dynamic batch, height and width (or a static size).

    Args:
        model: a checkpoint path, a model name with bundled weights, an
            :class:`~lightsr.inference.upscaler.Upscaler` or an ``nn.Module``.
        output: the ``.onnx`` file to write.
        opset: ONNX opset (>= 11; default :data:`DEFAULT_OPSET`).
        fp16: float16 weights and compute (for GPU runtimes); inputs and outputs stay float32,
            and the residual stream and LayerNorms stay float32 for accuracy.
        static: (height, width), multiples of 8, for a graph of fixed shape (1, 3, H, W).
        verify: run the graph in onnxruntime (when installed) on a small input and compare it
            with PyTorch; float32 exports must match to 1e-4.

    Returns:
        an :class:`ExportResult`.

    Raises:
        LightSRError: missing onnx, an unsupported model, a bad opset or size, or a verification
            failure.
    """
    onnx = _require("onnx")
    if opset < _MIN_OPSET:
        raise LightSRError(f"--opset {opset}: lightsr exports need opset {_MIN_OPSET} or newer")
    if static is not None and (static[0] % 8 or static[1] % 8 or min(static) <= 0):
        raise LightSRError(f"--static: sides must be positive multiples of 8, got {static}")
    net, arch, config, scale = _load_for_export(model)
    module: nn.Module
    if hasattr(net, "forward_multiple"):  # SwinIR-light, UPS: window attention
        if fp16:
            raise LightSRError(
                f"--fp16: lightsr exports {arch} in float32 only (its attention sums are not "
                "checked in float16); export without --fp16"
            )
        module = _WindowMultiple(net).eval()  # eval: the exporter restores this mode
    elif getattr(net, "onnx_size_multiple", None) is not None:  # plain conv nets (SPAN, EFDN)
        module = _Plain(net, torch.float16 if fp16 else torch.float32).eval()
    else:
        reason = fast_unsupported_reason(net)
        if reason is not None:
            raise LightSRError(
                f"export: {reason}; lightsr exports SAFMN in the paper's configuration, "
                "SwinIR-light and UPS (adaptive pooling of other SAFMN variants has no exact "
                "dynamic-shape ONNX form)"
            )
        dtype = torch.float16 if fp16 else torch.float32
        module = FastSAFMN(net, dtype=dtype).cpu().eval()  # a copy: ``net`` stays where it is
    h, w = static if static is not None else (32, 48)
    example = _Plain.example(h, w) if isinstance(module, _Plain) else torch.rand(1, 3, h, w)
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {0: "batch", 2: "height", 3: "width"}
    dynamic_axes = None if static is not None else {"input": axes, "output": axes}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        try:
            # The TorchScript-based exporter: it ships with torch (the dynamo-based one needs
            # onnxscript) and handles dynamic_axes for this graph exactly.
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
        except Exception as exc:
            line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            hint = f"; try --opset {DEFAULT_OPSET}" if opset != DEFAULT_OPSET else ""
            raise LightSRError(
                f"export failed at opset {opset} ({type(exc).__name__}: {line}){hint}"
            ) from exc
    proto = onnx.load(str(path))
    meta = {
        "lightsr_arch": arch,
        "lightsr_config": json.dumps(config, sort_keys=True),
        "lightsr_scale": str(scale),
        "lightsr_size_multiple": str(module.size_multiple),
        "lightsr_dtype": "float16" if fp16 else "float32",
        "lightsr_padding": (
            "pad H and W at the bottom/right to multiples of lightsr_size_multiple "
            "(lightsr reflects), run, crop the output to (H * scale, W * scale)"
        ),
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.doc_string = f"lightsr {arch} x{scale}: RGB in [0, 1], NCHW float32"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    diff = _verify(path, module, example, fp16) if verify else None
    return ExportResult(path, opset, meta["lightsr_dtype"], static is None, scale, diff)


class _WindowMultiple(nn.Module):
    """A window-attention network (SwinIR's skeleton) on inputs whose
    sides are multiples of its window: the traced graph has no padding, so its height and width
    stay dynamic (the shifted-window masks are computed in the graph from the input's size).
    A CPU float32 copy in eval mode; the caller's model stays where it is."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = copy.deepcopy(net).float().cpu().eval()
        from lightsr.models.registry import size_multiple

        self.size_multiple = size_multiple(net)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.forward_multiple(x)


class _Plain(nn.Module):
    """A network whose own forward exports exactly with dynamic shapes: the convolutional NTIRE
    entries (SPAN, SPAN-F, ESPAN, EFDN: any size; SAFMNv3: multiples of 8, where its adaptive
    pooling is a plain 8x8 max pooling). They declare it with a class attribute
    ``onnx_size_multiple``. A CPU copy in eval mode (float16 weights with ``fp16``; inputs and
    outputs stay float32); the caller's model stays where it is."""

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = copy.deepcopy(net).to(dtype=dtype).cpu().eval()
        self.size_multiple = int(net.onnx_size_multiple)  # type: ignore[arg-type]
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).float()

    @staticmethod
    def example(h: int, w: int) -> torch.Tensor:
        """A smooth random image (bilinear from 1/4 size) for the parity check: these networks
        are ill-conditioned on white noise (SAFMNv3's features overflow float32, DSCF's
        float32 output is 1e-3 off float64), unlike on natural images (~1e-6)."""
        low = torch.rand(
            1, 3, max(1, h // 4), max(1, w // 4), generator=torch.Generator().manual_seed(0)
        )
        return torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear")


def _verify(path: Path, module: nn.Module, example: torch.Tensor, fp16: bool) -> float | None:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return None
    try:
        session = OnnxRuntimeModel(path)
        got = session(example)
    except LightSRError:
        raise
    except Exception as exc:  # e.g. no float16 kernels in this onnxruntime's CPU provider
        if fp16:
            return None
        raise LightSRError(f"onnxruntime cannot run the exported graph: {exc}") from exc
    with torch.no_grad():
        want = module(example).float()
    diff = float((got - want).abs().max())
    if not fp16 and not diff <= 1e-4:  # also refuses NaN
        raise LightSRError(f"export: onnxruntime differs from PyTorch by {diff:.2e} (> 1e-4)")
    return diff


# --------------------------------------------------------------------------------------------
# onnxruntime backend


class OnnxRuntimeModel(nn.Module):
    """An exported model run by onnxruntime, shaped like a PyTorch SR network.

    Called on a (B, 3, h, w) float32 tensor (h, w multiples of :attr:`size_multiple`), it
    returns (B, 3, h * scale, w * scale) float32, so ``Upscaler`` uses it
    with the same padding, tiling and image I/O as any model. A static-shape graph gets inputs
    padded up to its size, and larger inputs tiled into windows of exactly its size.

    Args:
        path: the ``.onnx`` file.
        threads: intra-op threads (default: torch's).
        providers: onnxruntime execution providers (default: CPU).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        threads: int | None = None,
        providers: list[str] | None = None,
    ) -> None:
        super().__init__()
        ort = _require("onnxruntime")
        path = Path(path)
        if not path.is_file():
            raise LightSRError(f"--onnx {path}: no such file; create it with `lightsr export`")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise LightSRError(f"--onnx {path}: onnxruntime cannot load it ({exc})") from exc
        inp = self.session.get_inputs()[0]
        self.input_name: str = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        meta = self.session.get_modelmeta().custom_metadata_map
        self.size_multiple = int(meta.get("lightsr_size_multiple", 8))
        dims = inp.shape[2:]
        self.static_hw: tuple[int, int] | None = (
            (int(dims[0]), int(dims[1])) if all(isinstance(d, int) for d in dims) else None
        )
        self.scale = int(meta.get("lightsr_scale", 0)) or self._probe_scale()
        self.path = path

    def _probe_scale(self) -> int:
        h, w = self.static_hw or (self.size_multiple, self.size_multiple)
        y = self._run(torch.zeros(1, 3, h, w))
        return int(y.shape[-1] // w)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        feed = {self.input_name: x.detach().cpu().numpy().astype(self.input_dtype)}
        y = self.session.run(None, feed)[0]
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.static_hw is None:
            return self._run(x)
        from lightsr.inference.tiling import pad_to_size, tiled_apply

        hs, ws = self.static_hw
        h, w = x.shape[-2:]
        s = self.scale
        if h <= hs and w <= ws:
            return self._run(pad_to_size(x, hs, ws))[..., : h * s, : w * s]
        # Larger than the graph: tile into windows of exactly its size, per image.
        side = min(hs, ws)
        overlap = min(32, (side // 4) // self.size_multiple * self.size_multiple)
        out = torch.empty(x.shape[0], 3, h * s, w * s)
        for i in range(x.shape[0]):

            def emit(row0: int, rows: torch.Tensor, i: int = i) -> None:
                out[i, :, row0 : row0 + rows.shape[1]] = rows

            tiled_apply(
                self.forward,
                x[i],
                scale=s,
                multiple=self.size_multiple,
                emit=emit,
                tile=side - 2 * overlap,
                overlap=overlap,
            )
        return out


def load_onnx(
    path: str | os.PathLike[str],
    *,
    threads: int | None = None,
    providers: list[str] | None = None,
) -> Any:
    """An :class:`~lightsr.inference.upscaler.Upscaler` backed by an onnxruntime session.

    Args:
        path: an ONNX file written by :func:`export_onnx` (others work when they map
            (B, 3, h, w) to (B, 3, h*s, w*s) for sides that are multiples of 8).
        threads: intra-op threads (default: torch's).
        providers: onnxruntime execution providers (default: CPU).
    """
    from lightsr.inference.upscaler import Upscaler

    net = OnnxRuntimeModel(path, threads=threads, providers=providers)
    return Upscaler(
        net,
        scale=net.scale,
        name=Path(path).name,
        arch="onnx",
        config={},
        device="cpu",
        precision="fp32",
        fast=False,
    )
