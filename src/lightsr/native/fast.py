"""A fast inference path for SAFMN that computes the same function as the plain model.

:class:`FastSAFMN` takes a loaded :class:`~lightsr.models.archs.safmn.SAFMN` (the paper's design)
and copies its weights into a formulation that is cheaper to run:

- **Channel LayerNorm in one kernel.** In the channels-last layout a (B, C, H, W) tensor is
  stored as (B, H, W, C), so the paper's per-pixel LayerNorm over C is ``F.layer_norm`` on a
  permuted *view*: one fused native (or compiled) kernel instead of the nine element-wise ops of
  the official formulation. Its affine stays inside that kernel, where it costs nothing. Folding
  ``norm2``'s affine into the CCM's 3x3 convolution would be exact for the scale but not for the
  shift, which the convolution's zero padding would drop at the image border (and ``norm1``'s
  output is needed explicitly anyway: the SAFM multiplies its result by its own input).
- **Exact fixed-size pooling.** On inputs whose sides are multiples of 8 (the caller pads),
  adaptive max pooling to ``(h // 2**i, w // 2**i)`` is ``max_pool2d`` with kernel = stride =
  ``2**i``, and the nearest upsample back is a fixed factor ``2**i``. These have fast kernels,
  compile to simple loops and export to ONNX with dynamic shapes (:mod:`lightsr.inference.onnx`).
  (Adaptive pooling's window j spans ``[floor(j * h / n), ceil((j + 1) * h / n))`` with
  ``n = h // k``; when k divides h that is ``[j * k, (j + 1) * k)``, the fixed window.)
- **Channels-last convolutions** (oneDNN's fast path on the CPU, tensor cores on the GPU), with
  the CCM's GELU fused into its 3x3 convolution (a oneDNN post-op) in eager CPU runs; this is
  the path for bfloat16, GPUs, ONNX export and CPUs without the native kernels.
- **Native kernels for float32 on x86-64 CPUs with AVX2** (:mod:`lightsr.native.ops`, built when
  lightsr is installed, or on first use in a checkout; ``native=False`` or ``LIGHTSR_NATIVE=0``
  turns them off).
  Each block after its first LayerNorm is one streamed pass: the SAFM (full-resolution
  depth-wise convolution, nearest upsampling as an index lookup, aggregation, GELU,
  modulation, residual) and the CCM's LayerNorm row by row into per-thread ring buffers, from
  which the CCM's tiles are taken at once; the CCM's 3x3 convolution by Winograd's F(4x4, 3x3)
  (a quarter of the direct convolution's multiplications), its GELU, 1x1 projection, residual
  and the next block's first LayerNorm in the same pass. PyTorch pools the small levels (one
  native pass) and runs their depth-wise convolutions; the tail's 3x3 convolution is Winograd
  too. On an AVX2 CPU the direct convolutions alone cost more than the official model's
  2.3-2.5x speed-up allows for 3x; the native path does fewer multiplications instead.
- **Precision:** ``dtype`` is the dtype of the convolutions and activations (bfloat16 on CPUs with
  AVX512-BF16/AMX and on GPUs, float16 on GPUs). The residual stream (``residual_dtype``) and the
  LayerNorm statistics stay in float32 by default: on random weights that keeps bfloat16 outputs
  at 50-52 dB PSNR from float32 ones, against 46-48 dB with a bfloat16 residual stream.

:class:`FastRunner` runs a :class:`FastSAFMN` with ``torch.compile`` (inductor, ``dynamic=False``,
frozen weights) per input shape, reusing compiled graphs for every tile or image of that shape,
and falls back to eager execution, once and with a warning, if compilation fails. On CUDA it
replays a CUDA graph per shape instead.

Measured accuracy and speed, with the commands and machines: ``docs/performance.md``.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "AUTO_COMPILE_SECONDS",
    "CompileMode",
    "FastRunner",
    "FastSAFMN",
    "fast_unsupported_reason",
]

CompileMode = Literal["auto", "on", "off"]

#: ``compile="auto"`` compiles an input shape once the eager time spent on it exceeds this
#: estimate of one compilation (the ski-rental rule: never worse than twice the better of
#: "always eager" and "compile at once", whatever the number of calls turns out to be). Measured
#: on 2 CPU cores: 20-45 s for SAFMN with a cold inductor cache, 10-20 s with a warm one.
AUTO_COMPILE_SECONDS = 30.0

#: At most this many input shapes are compiled per runner; other shapes run eagerly. Tiling with
#: a fixed tile size needs one shape per image size (:func:`lightsr.inference.tiling.tiled_apply`).
MAX_COMPILED_SHAPES = 4


def fast_unsupported_reason(model: nn.Module) -> str | None:
    """Why :class:`FastSAFMN` cannot reproduce ``model``, or None when it can.

    Supported: SAFMN in the paper's configuration (any ``dim``, ``n_blocks``, ``ffn_scale`` and
    scale): channel LayerNorms, a SAFM with adaptive max pooling, feature modulation and
    aggregation and GELU, and the 3x3-GELU-1x1 CCM. Ablation variants run on the plain model.
    """
    from lightsr.models.archs.safmn import SAFM, SAFMN, ChannelLayerNorm

    if not isinstance(model, SAFMN):
        return f"no fast path for {type(model).__name__}"
    for i, blk in enumerate(model.feats):
        where = f"block {i}"
        norms = [getattr(blk, "norm1", None), getattr(blk, "norm2", None)]
        if not all(type(n) is ChannelLayerNorm for n in norms):
            return f"{where}: only channel LayerNorms are supported"
        safm = getattr(blk, "safm", None)
        if not isinstance(safm, SAFM):
            return f"{where}: no SAFM"
        if (
            getattr(safm, "pool", "max") != "max"
            or not getattr(safm, "modulation", True)
            or not getattr(safm, "multi_scale", True)
            or type(safm.aggr) is not nn.Conv2d
            or type(safm.act) is not nn.GELU
            or safm.act.approximate != "none"
        ):
            return f"{where}: SAFM ablation options are not supported"
        ccm = getattr(getattr(blk, "ccm", None), "ccm", None)
        if not (
            isinstance(ccm, nn.Sequential)
            and len(ccm) == 3
            and type(ccm[0]) is nn.Conv2d
            and ccm[0].kernel_size == (3, 3)
            and type(ccm[1]) is nn.GELU
            and ccm[1].approximate == "none"
            and type(ccm[2]) is nn.Conv2d
            and ccm[2].kernel_size == (1, 1)
        ):
            return f"{where}: only the paper's CCM (3x3 conv, GELU, 1x1 conv) is supported"
    return None


# --------------------------------------------------------------------------------------------
# The module


def _channel_layer_norm(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, dim: int
) -> torch.Tensor:
    """The paper's LayerNorm over C of a (B, C, H, W) tensor: ``F.layer_norm`` on an NHWC view.

    For a channels-last ``x`` the permutes are free views and the norm is one kernel; the result
    is channels-last again.
    """
    return F.layer_norm(x.permute(0, 2, 3, 1), (dim,), weight, bias, eps).permute(0, 3, 1, 2)


def _eager_mkldnn(x: torch.Tensor) -> bool:
    """Whether to call oneDNN's fused convolution directly (eager CPU runs only).

    Compiled graphs get the same fusions from inductor (with prepacked weights), and exported
    graphs need plain operators.
    """
    return (
        x.device.type == "cpu"
        and (x.dtype == torch.float32 or (x.dtype == torch.bfloat16 and _MKLDNN_BF16))
        and _MKLDNN_CONV is not None
        and not torch.compiler.is_compiling()
        and not torch.jit.is_tracing()
        and not torch.onnx.is_in_onnx_export()
    )


_MKLDNN_CONV = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)
if not torch.backends.mkldnn.is_available():  # pragma: no cover - torch built without oneDNN
    _MKLDNN_CONV = None
# oneDNN's fused bf16 convolution needs AVX512BW/VL/DQ or AVX-NE-CONVERT and raises elsewhere
# (seen on an AVX2-only EPYC); the plain bf16 convolution works everywhere, so use that there.
_MKLDNN_BF16 = bool(
    getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", lambda: False)()
)


def _conv_gelu(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, padding: int, *, fuse: bool = True
) -> torch.Tensor:
    """``gelu(conv2d(x, w, b))`` (exact erf GELU): one oneDNN call with a GELU post-op in eager
    CPU runs (``fuse``), which halves the cost of the CCM's 3x3 expansion, the largest layer.
    (Measured on Zen 4: oneDNN's float32 1x1 convolutions are slower than torch's own, so the
    caller leaves those unfused.)"""
    if fuse and _eager_mkldnn(x):
        assert _MKLDNN_CONV is not None
        p = [padding, padding]
        return _MKLDNN_CONV(x, w, b, p, [1, 1], [1, 1], 1, "gelu", [None], "none")
    return F.gelu(F.conv2d(x, w, b, padding=padding))


def _native_ok(x: torch.Tensor) -> bool:
    """Whether the native kernels may run on ``x`` (float32 CPU, not traced for export)."""
    return (
        x.device.type == "cpu"
        and x.dtype == torch.float32
        and not torch.jit.is_tracing()
        and not torch.onnx.is_in_onnx_export()
    )


def _frozen(t: torch.Tensor, dtype: torch.dtype) -> nn.Parameter:
    """A copy of ``t`` as a parameter without gradient (inductor's freezing folds parameters)."""
    t = t.detach().to(dtype).clone()
    t = t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t.contiguous()
    return nn.Parameter(t, requires_grad=False)


class _FastBlock(nn.Module):
    """One feature mixing module, ``Y = SAFM(LN(X)) + X; Z = CCM(LN(Y)) + Y`` (Eq. 1)."""

    def __init__(
        self, blk: nn.Module, dtype: torch.dtype, residual_dtype: torch.dtype, native: bool
    ) -> None:
        super().__init__()
        safm = blk.safm
        self.n_levels: int = safm.n_levels
        self.chunk: int = safm.mfr[0].in_channels
        self.eps: float = blk.norm1.eps
        self.dim: int = blk.norm1.weight.numel()  # a Python int: constant in exported graphs
        self.dtype = dtype
        self.residual_dtype = residual_dtype
        rd = residual_dtype
        self.register_parameter("n1w", _frozen(blk.norm1.weight, rd))
        self.register_parameter("n1b", _frozen(blk.norm1.bias, rd))
        self.register_parameter("n2w", _frozen(blk.norm2.weight, rd))
        self.register_parameter("n2b", _frozen(blk.norm2.bias, rd))
        for i, conv in enumerate(safm.mfr):
            self.register_parameter(f"dw{i}_w", _frozen(conv.weight, dtype))
            self.register_parameter(f"dw{i}_b", _frozen(conv.bias, dtype))
        self.register_parameter("aggr_w", _frozen(safm.aggr.weight, dtype))
        self.register_parameter("aggr_b", _frozen(safm.aggr.bias, dtype))
        conv1, conv2 = blk.ccm.ccm[0], blk.ccm.ccm[2]
        self.register_parameter("c1_w", _frozen(conv1.weight, dtype))
        self.register_parameter("c1_b", _frozen(conv1.bias, dtype))
        self.register_parameter("c2_w", _frozen(conv2.weight, dtype))
        self.register_parameter("c2_b", _frozen(conv2.bias, dtype))
        # The native kernels' weights (float32 only): in their layouts, derived, never saved.
        if native:
            from lightsr.native.ops import pack_ccm, pack_norm, pack_safm

            packed = (
                *pack_ccm(conv1.weight, conv1.bias, conv2.weight, conv2.bias),
                *pack_safm(safm.mfr[0].weight, safm.mfr[0].bias, safm.aggr.weight, safm.aggr.bias),
                *pack_norm(blk.norm1.weight, blk.norm1.bias),
                *pack_norm(blk.norm2.weight, blk.norm2.bias),
            )
            for name, t in zip(_NATIVE_BUFFERS, packed, strict=True):
                self.register_buffer(name, t, persistent=False)

    def _dw(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return getattr(self, f"dw{i}_w"), getattr(self, f"dw{i}_b")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, rd = self.chunk, self.residual_dtype
        # --- SAFM (Sec. 3.2): Y = SAFM(LN(X)) + X
        y = _channel_layer_norm(x, self.n1w, self.n1b, self.eps, self.dim).to(self.dtype)
        w0, b0 = self._dw(0)
        parts = [F.conv2d(y[:, :c], w0, b0, padding=1, groups=c)]
        for i in range(1, self.n_levels):
            k = 2**i
            # == adaptive_max_pool2d(., (h // k, w // k)) when k divides h and w (Eq. 2)
            s = F.max_pool2d(y[:, i * c : (i + 1) * c], k, k)
            wi, bi = self._dw(i)
            s = F.conv2d(s, wi, bi, padding=1, groups=c)
            parts.append(F.interpolate(s, scale_factor=float(k), mode="nearest"))
        cat = torch.cat(parts, dim=1)
        # Eq. 3 (aggregation) and Eq. 4 (GELU, modulation of the SAFM input), plus the residual
        g = _conv_gelu(cat, self.aggr_w, self.aggr_b, 0, fuse=self.dtype != torch.float32)
        x = torch.addcmul(x, g.to(rd), y.to(rd))
        # --- CCM (Sec. 3.3): Z = CCM(LN(Y)) + Y
        y = _channel_layer_norm(x, self.n2w, self.n2b, self.eps, self.dim).to(self.dtype)
        h = _conv_gelu(y, self.c1_w, self.c1_b, 1)
        return F.conv2d(h, self.c2_w, self.c2_b).to(rd) + x

    def forward_native(
        self, x: torch.Tensor, y: torch.Tensor, nxt: _FastBlock | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The block with lightsr's native kernel (float32 CPU, :mod:`lightsr.native.ops`), from the
        residual stream ``x`` and ``y = LN1(x)``; returns ``(out, nxt's LN1(out))`` (the second
        empty when ``nxt`` is None).

        ``pool_levels`` pools the levels 1.., PyTorch runs their depth-wise convolutions (small
        tensors), and ``safmn_block`` does the rest in one streamed pass: the full-resolution
        depth-wise convolution, the levels' nearest upsampling (an index lookup), aggregation,
        GELU, modulation, residual, the second LayerNorm, the CCM (Winograd 3x3, GELU, 1x1,
        residual) and the next block's first LayerNorm.
        """
        from lightsr.native.ops import pool_levels, safmn_block

        c = self.chunk
        levels = []
        for i, s in enumerate(pool_levels(y, self.n_levels), start=1):
            wi, bi = self._dw(i)
            levels.append(F.conv2d(s, wi, bi, padding=1, groups=c))
        safm = [self.nat_w0, self.nat_b0, self.nat_wa, self.nat_ba, self.nat_n2w, self.nat_n2b]
        ccm = [self.nat_u, self.nat_b1, self.nat_w2, self.nat_b2]
        norm = [] if nxt is None else [nxt.nat_n1w, nxt.nat_n1b]
        eps = self.eps if nxt is None else nxt.eps
        return safmn_block(x, y, levels, safm, self.eps, ccm, norm, eps)


_NATIVE_BUFFERS = (
    "nat_u", "nat_b1", "nat_w2", "nat_b2", "nat_w0", "nat_b0", "nat_wa", "nat_ba", "nat_n1w",
    "nat_n1b", "nat_n2w", "nat_n2b",
)  # fmt: skip


class FastSAFMN(nn.Module):
    """Inference-only SAFMN with the weights of ``model`` and the same outputs, computed faster.

    Input: (B, 3, H, W) float in [0, 1] with H and W multiples of :attr:`size_multiple` (the
    caller pads; :class:`lightsr.inference.upscaler.Upscaler` does). Output: (B, 3, H*s, W*s) in the
    residual dtype (float32 by default), not clamped.

    Args:
        model: a SAFMN in the paper's configuration (see :func:`fast_unsupported_reason`).
        dtype: dtype of the convolutions and activations (float32, bfloat16, float16).
        residual_dtype: dtype of the residual stream, LayerNorm, GELU and modulation product;
            float32 (default) keeps low-precision outputs close to float32 ones.
        native: run the blocks and the tail through lightsr's native kernels
            (:mod:`lightsr.native.ops`) on float32 CPU inputs. None (default): when they are
            available on this machine and the model fits them (dim <= 512, levels of at most
            64 channels); False: always the PyTorch formulation (oneDNN's convolutions).

    Raises:
        ValueError: when ``model`` is not supported.
    """

    size_multiple = 8

    def __init__(
        self,
        model: nn.Module,
        *,
        dtype: torch.dtype = torch.float32,
        residual_dtype: torch.dtype = torch.float32,
        native: bool | None = None,
    ) -> None:
        super().__init__()
        reason = fast_unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"FastSAFMN: {reason}")
        self.scale: int = model.scale
        self.dtype = dtype
        self.residual_dtype = residual_dtype
        self.n_levels: int = model.feats[0].safm.n_levels if len(model.feats) else 4
        to_img = model.to_img[0]
        self.register_parameter("feat_w", _frozen(model.to_feat.weight, dtype))
        self.register_parameter("feat_b", _frozen(model.to_feat.bias, dtype))
        self.native: bool = False
        if native is not False and dtype == torch.float32 and residual_dtype == torch.float32:
            from lightsr.native.ops import fits, notice_fallback, unavailable_reason

            fit = fits(model.to_feat.out_channels, self.n_levels)
            self.native = fit and unavailable_reason() is None
            if fit and native is None and model.to_feat.weight.device.type == "cpu":
                notice_fallback()  # one line, once per process, if the kernels are missing
        self.blocks = nn.ModuleList(
            _FastBlock(blk, dtype, residual_dtype, self.native) for blk in model.feats
        )
        self.register_parameter("img_w", _frozen(to_img.weight, dtype))
        self.register_parameter("img_b", _frozen(to_img.bias, dtype))
        if self.native:
            from lightsr.native.ops import pack_conv3x3

            u, b = pack_conv3x3(to_img.weight, to_img.bias)
            self.register_buffer("nat_img_u", u, persistent=False)
            self.register_buffer("nat_img_b", b, persistent=False)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = 2 ** (self.n_levels - 1)
        if not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()):
            if x.shape[-2] % m or x.shape[-1] % m:
                raise ValueError(
                    f"FastSAFMN: input sides must be multiples of {m}, got {tuple(x.shape)}; "
                    "pad with lightsr.inference.upscaler.pad_to_multiple"
                )
        x = x.to(self.dtype).contiguous(memory_format=torch.channels_last)
        if self.native and _native_ok(x):
            out = self._forward_native(x)
        else:
            feat = F.conv2d(x, self.feat_w, self.feat_b, padding=1).to(self.residual_dtype)
            y = feat
            for blk in self.blocks:
                y = blk(y)
            y = (y + feat).to(self.dtype)  # global residual around the body
            y = F.conv2d(y, self.img_w, self.img_b, padding=1)
            out = F.pixel_shuffle(y, self.scale).to(self.residual_dtype)
        if self.scale == 1:  # the restoration variant adds its input image (SAFMN.forward)
            out = out + x.to(out.dtype)
        return out

    def _forward_native(self, x: torch.Tensor) -> torch.Tensor:
        """The same network with lightsr's native kernels (float32 CPU).

        Per block :meth:`_FastBlock.forward_native`, which also computes the next block's
        first LayerNorm while its output is in cache; the tail's 3x3 convolution is native
        too (Winograd F(4x4, 3x3)), writing its pixel shuffle directly.
        """
        from lightsr.native.ops import conv3x3_f43

        feat = F.conv2d(x, self.feat_w, self.feat_b, padding=1)
        h = feat
        blocks = list(self.blocks)
        if blocks:
            b0 = blocks[0]
            y = _channel_layer_norm(h, b0.n1w, b0.n1b, b0.eps, b0.dim)
        for i, blk in enumerate(blocks):
            h, y = blk.forward_native(h, y, blocks[i + 1] if i + 1 < len(blocks) else None)
        e = self.img_w.shape[0]
        return conv3x3_f43(h + feat, self.nat_img_u, self.nat_img_b, e, self.scale)


# --------------------------------------------------------------------------------------------
# Running it: compile per shape with a fallback, CUDA graphs


class FastRunner:
    """Calls a :class:`FastSAFMN` on (B, 3, h, w) float32 tensors; returns float32 outputs.

    Compiled graphs (CPU: ``torch.compile`` with inductor, ``dynamic=False`` and frozen weights;
    CUDA: a captured CUDA graph) are kept per input shape, so every tile or image of one shape
    reuses one graph. If compiling fails (no C++ compiler, an unsupported platform, a torch
    bug), a warning is issued once and the runner stays eager from then on.

    Args:
        module: the fast module, already on ``device``.
        device: where it runs.
        compile: ``"on"`` compiles each new shape at its first call (up to
            :data:`MAX_COMPILED_SHAPES`); ``"off"`` never compiles; ``"auto"`` compiles a shape
            once the eager time spent on it exceeds :data:`AUTO_COMPILE_SECONDS` (CPU), or
            captures a CUDA graph at its second call (CUDA).
    """

    def __init__(
        self, module: FastSAFMN, device: torch.device, *, compile: CompileMode = "auto"
    ) -> None:
        if compile not in ("auto", "on", "off"):
            raise ValueError(f"compile must be 'auto', 'on' or 'off', got {compile!r}")
        self.module = module
        self.device = device
        self.compile = compile
        self._compiled: Callable[[torch.Tensor], torch.Tensor] | None = None
        self._graphs: dict[tuple[int, ...], Callable[[torch.Tensor], torch.Tensor]] = {}
        self._eager_seconds: dict[tuple[int, ...], float] = {}
        self._failed = False

    @property
    def compiled_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes that run through a compiled graph."""
        return list(self._graphs)

    @property
    def compile_failed(self) -> bool:
        """True once compilation has failed and the runner fell back to eager execution."""
        return self._failed

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape)
        fn = self._graphs.get(key)
        if fn is None and self._want_compiled(key):
            fn = self._build(key, x)
        if fn is not None:
            return fn(x)
        t0 = time.perf_counter()
        y = self.module(x)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._eager_seconds[key] = self._eager_seconds.get(key, 0.0) + time.perf_counter() - t0
        return y.float()

    def _want_compiled(self, key: tuple[int, ...]) -> bool:
        if self._failed or self.compile == "off" or len(self._graphs) >= MAX_COMPILED_SHAPES:
            return False
        if self.compile == "on":
            return True
        if key not in self._eager_seconds:  # "auto": never at a shape's first call
            return False
        # A CUDA graph costs a capture of one call: worth it at a shape's second call.
        return self.device.type == "cuda" or self._eager_seconds[key] >= AUTO_COMPILE_SECONDS

    def _build(
        self, key: tuple[int, ...], x: torch.Tensor
    ) -> Callable[[torch.Tensor], torch.Tensor] | None:
        try:
            if self.device.type == "cuda":
                fn = self._cuda_graph(x)
            else:
                fn = self._inductor(x)
        except Exception as exc:  # any failure: stay correct, just slower
            self._failed = True
            line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            warnings.warn(
                f"lightsr: compiling the fast path failed ({type(exc).__name__}: {line}); "
                "running it eagerly instead",
                RuntimeWarning,
                stacklevel=3,
            )
            return None
        self._graphs[key] = fn
        return fn

    def _inductor(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        import torch._dynamo

        if self._compiled is None:
            # Our shape table bounds the number of graphs; make room for several runners (e.g.
            # float32 and bfloat16) whose graphs share one code object in dynamo's cache.
            cfg = torch._dynamo.config
            limit = "recompile_limit" if hasattr(cfg, "recompile_limit") else "cache_size_limit"
            setattr(cfg, limit, max(getattr(cfg, limit), 8 * MAX_COMPILED_SHAPES))
            self._compiled = torch.compile(self.module, dynamic=False)
        compiled = self._compiled
        # Compile now, so that failures surface here. Freezing folds the weights into the graph
        # as constants (prepacked oneDNN weights, conv+GELU and conv+add fused); it is read when
        # a graph is compiled (``options=`` of torch.compile does not reach it).
        from torch._inductor import config as inductor_config

        with inductor_config.patch(freezing=True):
            compiled(x)

        def run(t: torch.Tensor) -> torch.Tensor:
            return compiled(t).float()

        return run

    def _cuda_graph(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        static_in = x.clone()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up outside the graph (cuDNN picks its algorithms)
                self.module(static_in)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self.module(static_in).float()

        def run(t: torch.Tensor) -> torch.Tensor:
            static_in.copy_(t)
            graph.replay()
            return static_out.clone()

        return run
