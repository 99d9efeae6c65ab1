"""Native training of SAFMN on x86-64 CPUs: autograd functions over the AVX2 kernels.

A SAFMN training step in plain PyTorch spends most of its time in the 3x3 convolutions (forward,
input gradient and weight gradient: oneDNN's direct algorithms), in the channel LayerNorm, which
the model writes as a dozen element-wise operations (each a pass over memory, forward and
backward), in the residual adds and autograd's sums of their gradients, and in the SAFM's
strided chunks, upsampling and concatenation. Here, for float32 on CPUs with AVX2 and FMA,
with the activations channels-last from the first convolution to the last:

- every 3x3 convolution (stride 1, zero padding 1: the network's first and last, and the CCM's
  expansion) runs all three of its products by Winograd's F(4x4, 3x3), a quarter of the direct
  method's multiplications (:class:`Conv3x3Function`). The forward pass and the input gradient
  (a 3x3 convolution of the output gradient with the flipped, transposed kernel) run
  ``lsr_conv3x3_f43`` of ``kernels/safmn.cpp``; the weight gradient runs
  ``lsr_conv3x3_wgrad_f43`` of ``kernels/safmn_train.cpp``, which sums the 36 Winograd-domain
  products over the batch's tiles, then ``G^T M G`` here in float64. Sizes that are not
  multiples of 4 are zero padded to the tiles;
- the CCM (:class:`CCMFunction`): that convolution with the GELU in its output pass
  (``lsr_conv3x3_gelu_f43``, which also writes the GELU's slope, saved in place of its input
  so that the backward, ``lsr_gelu_backward``, is a product instead of erf and exp again, and
  sums the expansion's bias gradient), and the 1x1 projection as matrix products over the
  pixels;
- the SAFM (:class:`SafmMixFunction`, around PyTorch's depth-wise convolutions): the channel
  split and the levels' max pooling in one native pass each way (:class:`SplitPoolFunction`,
  ``lsr_split_pool``, which records where each maximum came from), nearest upsampling and
  concatenation of the levels in one native pass (``lsr_levels_gather``; backward
  ``lsr_levels_scatter``), the 1x1 aggregation as one matrix product each way, GELU and
  modulation in one native pass each way;
- the channel LayerNorm (:class:`LayerNormFunction`) in one native pass each way
  (``lsr_add_layer_norm``, ``lsr_layer_norm_backward``); in the body (:class:`NativeBody`),
  each residual add and the LayerNorm after it are one pass, and the backward adds the
  gradient that the sum gets from the next residual in the same pass
  (:class:`AddLayerNormFunction`).

Every kernel is checked against autograd in float64 (``tests/test_native_train.py``).

:func:`native_training_model` swaps these modules into a model in place (the parameters are
the same objects and the state dict keys the same, so optimizers, EMA copies and checkpoints are
unaffected); each swapped module runs its PyTorch formulation for inputs the kernels do not
take (not float32, not on the CPU, under autocast). :func:`native_training_available` says
whether the kernels run here.
"""

from __future__ import annotations

import ctypes
import threading

import torch
import torch.nn.functional as F
from torch import nn

from lightsr.models.archs.safmn import CCM, SAFM, SAFMN, ChannelLayerNorm, FeatureMixingModule
from lightsr.native import ops

__all__ = [
    "AddLayerNormFunction",
    "CCMFunction",
    "Conv3x3Function",
    "LayerNormFunction",
    "NativeBody",
    "NativeCCM",
    "NativeConv3x3",
    "NativeLayerNorm",
    "NativeSAFM",
    "SafmMixFunction",
    "SplitPoolFunction",
    "add_layer_norm",
    "conv3x3",
    "conv3x3_weight_grad",
    "gelu_backward",
    "gelu_forward",
    "layer_norm_backward",
    "native_training_available",
    "native_training_model",
    "training_unavailable_reason",
]

#: The training kernels' C functions (``kernels/safmn_train.cpp``), as ops._SIGNATURES.
_SIGNATURES = {
    "lsr_conv3x3_wgrad_f43": "i: pp iiiii p",
    "lsr_gelu_forward": "i: pppppp li",
    "lsr_gelu_backward": "i: ppppppp li",
    "lsr_add_layer_norm": "i: pppppp p lif",
    "lsr_layer_norm_backward": "i: ppppp ppp li",
    "lsr_levels_gather": "i: pip iiii",
    "lsr_levels_scatter": "i: ppi iiii",
    "lsr_split_pool": "i: p iiiii ppp",
    "lsr_split_pool_backward": "i: ppp iiiii p",
}
_CTYPES = {**ops._CTYPES, "l": ctypes.c_long}

_lock = threading.Lock()
_declared: dict[str, object] = {}


def _train_lib() -> ctypes.CDLL | None:
    """The native library with the training kernels declared, or None (:func:`ops.status`)."""
    lib = ops._library()
    if lib is None:
        return None
    with _lock:
        if "ok" not in _declared:
            try:
                for name, sig in _SIGNATURES.items():
                    fn = getattr(lib, name)
                    result, args = sig.split(":")
                    fn.restype = _CTYPES[result]
                    fn.argtypes = [_CTYPES[code] for code in args.replace(" ", "")]
                _declared["ok"] = True
            except AttributeError as exc:
                _declared["ok"] = False
                _declared["why"] = f"{ops.status().library} lacks a training kernel ({exc})"
    return lib if _declared["ok"] else None


def training_unavailable_reason() -> str | None:
    """Why the native training kernels cannot run here, or None when they can."""
    reason = ops.unavailable_reason()
    if reason is not None:
        return reason
    if _train_lib() is None:
        return str(_declared.get("why", "the native library has no training kernels"))
    return None


def native_training_available() -> bool:
    """Whether :func:`native_training_model` swaps native modules in on this machine."""
    return training_unavailable_reason() is None


# ---- the 3x3 convolution ------------------------------------------------------------------------


def _pad4(t: torch.Tensor) -> torch.Tensor:
    """``t`` (B, C, H, W) zero padded at the bottom and right to multiples of 4 (the Winograd
    tiles); the extra zeros act as the convolution's own zero padding."""
    h, w = t.shape[-2:]
    ph, pw = -h % 4, -w % 4
    return F.pad(t, (0, pw, 0, ph)) if ph or pw else t


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) float32 -> contiguous (B, H, W, C) (a view for channels-last tensors)."""
    return t.permute(0, 2, 3, 1).contiguous()


def _kron_g() -> torch.Tensor:
    """``G (x) G`` (36, 9) in float64: ``vec(G w G^T) = (G (x) G) vec(w)`` for a 3x3 ``w``."""
    g = torch.tensor(ops._G, dtype=torch.float64)
    return torch.kron(g, g)


_KRON_G = _kron_g()


def _winograd_weights(
    weight: torch.Tensor, bias: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3x3 convolution's (E, C, 3, 3) weights in the layout of :func:`ops.pack_conv3x3`
    (``U`` (36, C, EP), EP = E rounded up to 24, and a bias of EP: ``bias`` zero-padded, or
    zeros without one), by one float64 matrix product with ``G (x) G`` instead of a per-pair
    ``G w G^T``."""
    e, c = weight.shape[:2]
    ep = -(-e // 24) * 24
    w9 = weight.detach().double().permute(2, 3, 1, 0).reshape(9, c * e)
    u = torch.zeros(36, c, ep)
    u[:, :, :e] = (_KRON_G @ w9).view(36, c, e)
    b = torch.zeros(ep)
    if bias is not None:
        b[:e] = bias.detach()
    return u, b


def _lib() -> ctypes.CDLL:
    lib = _train_lib()
    if lib is None:
        raise RuntimeError(f"lightsr native training kernels unavailable: "
                           f"{training_unavailable_reason()}")  # fmt: skip
    return lib


def _check(code: int, what: str) -> None:
    if code:
        raise RuntimeError(f"lightsr native kernel {what} failed with code {code}")


def _ptr(t: torch.Tensor | None) -> int | None:
    """A contiguous float32 tensor's data pointer for a kernel (None: NULL). The caller keeps
    the tensor alive across the call."""
    if t is None:
        return None
    if not t.is_contiguous() or t.dtype != torch.float32:
        raise ValueError(f"native kernel argument: expected contiguous float32, got {t.dtype} "
                         f"with strides {t.stride()}")  # fmt: skip
    return t.data_ptr()  # type: ignore[no-any-return]


def gelu_forward(
    z: torch.Tensor,
    m: torch.Tensor | None = None,
    slope: bool = False,
    bias: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(gelu(z'), gelu(z') * m, gelu'(z'))`` with ``z' = z + bias`` (exact GELU; the second
    None without ``m``, the third None without ``slope``; ``bias`` None: ``z' = z``) in one
    pass; contiguous float32 CPU tensors of one shape, (rows, C) when ``bias`` (C) is given.
    The backward (:func:`gelu_backward`) takes the slope instead of ``z'``: it is a product,
    not erf and exp again, and saving the slope instead of ``z'`` costs no memory."""
    act = torch.empty_like(z)
    out = None if m is None else torch.empty_like(z)
    der = torch.empty_like(z) if slope else None
    c = z.shape[-1] if bias is not None else 1
    if bias is not None and (z.dim() != 2 or bias.shape != (c,)):
        raise ValueError(f"gelu_forward: bias of shape {tuple(bias.shape)} for z of shape "
                         f"{tuple(z.shape)}: expected (rows, C) and (C,)")  # fmt: skip
    ptrs = [_ptr(t) for t in (z, bias, m, act, out, der)]
    _check(_lib().lsr_gelu_forward(*ptrs, z.numel() // c, c), "gelu_forward")
    return act, out, der


def gelu_backward(
    grad: torch.Tensor,
    slope: torch.Tensor,
    m: torch.Tensor | None = None,
    act: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The backward of ``gelu(z) * m`` (``m`` None: of ``gelu(z)``) for contiguous float32
    (rows, C) tensors, from the forward's ``slope`` = gelu'(z), in one pass: ``(dz, dm, dbias)``
    with ``dz = grad m slope``, ``dm = grad act`` (None unless ``act``, gelu(z), is given) and
    ``dbias`` the column sums of ``dz`` (the gradient of a bias added before the GELU)."""
    rows, c = slope.shape
    dz = torch.empty_like(slope)
    dm = torch.empty_like(slope) if act is not None else None
    dbias = torch.empty(c)
    ptrs = [_ptr(t) for t in (grad, slope, m, act, dz, dm, dbias)]
    code = _lib().lsr_gelu_backward(*ptrs, rows, c)
    _check(code, "gelu_backward")
    return dz, dm, dbias


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> the contiguous (B H W, C) rows of its channels-last layout (a view when
    ``t`` is channels-last)."""
    return _nhwc(t).view(-1, t.shape[1])


def _as_nchw(rows: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B H W, C) rows back to a channels-last (B, C, H, W) view shaped as ``like``."""
    b, c, h, w = like.shape
    return rows.view(b, h, w, c).permute(0, 3, 1, 2)


def add_layer_norm(
    x: torch.Tensor,
    r: torch.Tensor | None,
    weight: torch.Tensor,
    bias: torch.Tensor,
    eps: float,
) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """``y = x + r`` (None when ``r`` is None: the norm's input is ``x``) and the channel
    LayerNorm ``n`` of ``y``, for (B, C, H, W) float32 CPU tensors, in one native pass
    (``lsr_add_layer_norm``); ``y`` and ``n`` channels-last, with the rows' (mean, rstd)
    (B H W, 2) for :func:`layer_norm_backward`. No autograd."""
    xs = _rows(x)
    rs = _rows(r) if r is not None else None
    y = torch.empty_like(xs) if rs is not None else None
    n = torch.empty_like(xs)
    stats = xs.new_empty(xs.shape[0], 2)
    ptrs = [_ptr(t) for t in (xs, rs, weight, bias, y, n, stats)]
    code = _lib().lsr_add_layer_norm(*ptrs, xs.shape[0], xs.shape[1], eps)
    _check(code, "add_layer_norm")
    return (_as_nchw(y, x) if y is not None else None), _as_nchw(n, x), stats


def layer_norm_backward(
    grad_n: torch.Tensor,
    grad_y: torch.Tensor | None,
    y: torch.Tensor,
    weight: torch.Tensor,
    stats: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The backward of :func:`add_layer_norm` in one native pass: ``(dx, dweight, dbias)``, with
    ``dx`` the gradient of the norm's input ``y`` plus ``grad_y`` (the gradient ``y`` gets
    from its other uses; None: none), which is also the gradient of ``x`` and of ``r``."""
    gn = _rows(grad_n)
    gy = _rows(grad_y) if grad_y is not None else None
    ys = _rows(y)
    dx = torch.empty_like(ys)
    c = ys.shape[1]
    dw, db = ys.new_empty(c), ys.new_empty(c)
    ptrs = [_ptr(t) for t in (gn, gy, ys, weight, stats, dx, dw, db)]
    code = _lib().lsr_layer_norm_backward(*ptrs, ys.shape[0], c)
    _check(code, "layer_norm_backward")
    return _as_nchw(dx, y), dw, db


def conv3x3_weight_grad(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    """The weight gradient (E, C, 3, 3) of a 3x3 convolution with zero padding 1 of ``x``
    (B, C, H, W) whose output has the gradient ``grad_out`` (B, E, H, W); float32 CPU.

    Winograd's F(4x4, 3x3) transposed (``kernels/safmn_train.cpp``): the 36 products in the
    Winograd domain are summed over all tiles natively, then ``G^T M G`` in float64.
    """
    lib = _lib()
    n, c = x.shape[:2]
    e = grad_out.shape[1]
    xs, gs = _nhwc(_pad4(x)), _nhwc(_pad4(grad_out))
    cp, ep = -(-c // 8) * 8, -(-e // 24) * 24
    m = torch.empty(36, cp, ep)
    code = lib.lsr_conv3x3_wgrad_f43(
        xs.data_ptr(), gs.data_ptr(), n, xs.shape[1], xs.shape[2], c, e, m.data_ptr()
    )
    _check(code, "conv3x3_wgrad_f43")
    dw = _KRON_G.t() @ m[:, :c, :e].double().reshape(36, c * e)  # vec(G^T M G)
    return dw.view(3, 3, c, e).permute(3, 2, 0, 1).float()


def _conv3x3_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``conv2d(x, weight, bias, padding=1)`` by Winograd, channels-last (B, E, H, W)."""
    h, w = x.shape[-2:]
    xp = _pad4(x)
    u, b = _winograd_weights(weight, bias)
    out = ops.conv3x3_f43(xp, u, b, weight.shape[0])
    return out[..., :h, :w] if xp is not x else out


def _conv3x3_gelu_forward(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``gelu(z)`` and ``gelu'(z)`` for ``z = conv2d(x, weight, bias, padding=1)``, by Winograd
    with the GELU in the convolution's output pass (``lsr_conv3x3_gelu_f43``): both as
    contiguous (B H W, E) rows."""
    n, _, h, w = x.shape
    e = weight.shape[0]
    xp = _pad4(x)
    hp, wp = xp.shape[-2:]
    u, b = _winograd_weights(weight, bias)
    xs = _nhwc(xp)
    act, slope = torch.empty(n, hp, wp, e), torch.empty(n, hp, wp, e)
    code = _lib().lsr_conv3x3_gelu_f43(
        xs.data_ptr(), act.data_ptr(), slope.data_ptr(), n, hp, wp, xs.shape[-1], e,
        u.data_ptr(), b.data_ptr(),
    )  # fmt: skip
    _check(code, "conv3x3_gelu_f43")
    if (hp, wp) != (h, w):
        act, slope = act[:, :h, :w].contiguous(), slope[:, :h, :w].contiguous()
    return act.view(-1, e), slope.view(-1, e)


def _conv3x3_input_grad(grad: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The input gradient of a 3x3 convolution with padding 1: a 3x3 convolution of ``grad``
    with the flipped, transposed kernel."""
    h, w = grad.shape[-2:]
    u, b = _winograd_weights(weight.detach().flip(2, 3).transpose(0, 1))
    return ops.conv3x3_f43(_pad4(grad), u, b, weight.shape[1])[..., :h, :w]


class Conv3x3Function(torch.autograd.Function):
    """``conv2d(x, weight, bias, padding=1)`` for float32 CPU tensors by Winograd F(4x4, 3x3),
    forward and backward (see the module docstring); the output is channels-last."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return _conv3x3_forward(x, weight, bias)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        x, weight = ctx.saved_tensors  # type: ignore[attr-defined]
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        grad = grad.contiguous(memory_format=torch.channels_last)
        dx = dw = db = None
        if needs[0]:
            dx = _conv3x3_input_grad(grad, weight)
        if needs[1]:
            dw = conv3x3_weight_grad(x, grad)
        if needs[2]:
            db = grad.sum((0, 2, 3))
        return dx, dw, db


def conv3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A 3x3 convolution with zero padding 1 by :class:`Conv3x3Function` (float32 CPU)."""
    return Conv3x3Function.apply(x, weight, bias)  # type: ignore[no-any-return]


class CCMFunction(torch.autograd.Function):
    """The paper's CCM, ``conv1x1(gelu(conv3x3(x)))``, forward and backward for float32 CPU
    tensors: the 3x3 convolution by :func:`conv3x3`'s kernels, the forward's GELU (and its
    slope) in the convolution's output pass, the GELU's backward (with the expansion's bias
    gradient) in one native pass, the 1x1 projection as matrix products over the channels-last
    pixels. Saves ``x``, the expansion after the GELU and the GELU's slope there."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        w1: torch.Tensor,
        b1: torch.Tensor,
        w2: torch.Tensor,
        b2: torch.Tensor,
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        e = w1.shape[0]
        act, slope = _conv3x3_gelu_forward(x, w1, b1)  # (B h w, E) each
        w2m = w2.reshape(c, e)
        out = (act @ w2m.t()).add_(b2)  # (B h w, C); faster than addmm here
        ctx.save_for_backward(x, w1, slope, act, w2m)
        return out.view(n, h, w, c).permute(0, 3, 1, 2)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, w1, slope, act, w2m = ctx.saved_tensors  # type: ignore[attr-defined]
        n, c, h, w = x.shape
        e = w1.shape[0]
        g = _nhwc(grad).view(-1, c)
        dw2 = (g.t() @ act).view(c, e, 1, 1)
        db2 = g.sum(0)
        dhidden, _, db1 = gelu_backward(g @ w2m, slope)
        dh = dhidden.view(n, h, w, e).permute(0, 3, 1, 2)  # channels-last (B, E, h, w)
        needs = ctx.needs_input_grad  # type: ignore[attr-defined]
        dx = _conv3x3_input_grad(dh, w1) if needs[0] else None
        dw1 = conv3x3_weight_grad(x, dh)
        return dx, dw1, db1, dw2, db2


class LayerNormFunction(torch.autograd.Function):
    """The channel LayerNorm of a (B, C, H, W) float32 CPU tensor, forward and backward in one
    native pass each (:func:`add_layer_norm` without the add); the output is channels-last."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        eps: float,
    ) -> torch.Tensor:
        _, n, stats = add_layer_norm(x, None, weight, bias, eps)
        ctx.save_for_backward(x, weight, stats)
        return n

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, weight, stats = ctx.saved_tensors  # type: ignore[attr-defined]
        dx, dw, db = layer_norm_backward(grad, None, x, weight, stats)
        return dx, dw, db, None


class AddLayerNormFunction(torch.autograd.Function):
    """A residual add and the channel LayerNorm after it, ``y = x + r``, ``n = LN(y)``, for
    (B, C, H, W) float32 CPU tensors: one native pass forward, and one backward that also adds
    the gradient ``y`` gets from its other use (the next residual add), so that neither the add
    nor autograd's accumulation of that gradient is a pass of its own. Outputs channels-last."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        r: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        eps: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y, n, stats = add_layer_norm(x, r, weight, bias, eps)
        assert y is not None
        ctx.save_for_backward(y, weight, stats)
        return y, n

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_y: torch.Tensor, grad_n: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        y, weight, stats = ctx.saved_tensors  # type: ignore[attr-defined]
        dx, dw, db = layer_norm_backward(grad_n, grad_y, y, weight, stats)
        return dx, dx, dw, db, None


class SplitPoolFunction(torch.autograd.Function):
    """The SAFM's levels before their depth-wise convolutions, for a (B, C, H, W) float32 CPU
    tensor with H and W multiples of ``2^(levels - 1)``: ``x.chunk(levels, 1)`` with chunk 0 as
    it is and chunk ``i`` max-pooled over ``2^i x 2^i`` windows (``F.max_pool2d(chunk, 2^i)``),
    all channels-last and contiguous, in one native pass (``lsr_split_pool``). The backward
    writes the input's whole gradient in one pass (``lsr_split_pool_backward``): chunk 0's
    gradient, and each pooled value's gradient at the pixel its maximum came from (the first
    maximum in the window in row-major order, as ``max_pool2d``), zeros elsewhere; no per-chunk
    copies, zero fills or concatenation."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, levels: int
    ) -> tuple[torch.Tensor, ...]:
        b, c, h, w = x.shape
        k = c // levels
        xs = _nhwc(x)
        c0 = x.new_empty(b, h, w, k)
        pooled = [x.new_empty(b, h >> i, w >> i, k) for i in range(1, levels)]
        args = [torch.empty(t.shape, dtype=torch.int32) for t in pooled]
        code = _lib().lsr_split_pool(
            xs.data_ptr(), b, h, w, c, levels, c0.data_ptr(),
            ops._ptr_array(pooled), ops._ptr_array(args),
        )  # fmt: skip
        _check(code, "split_pool")
        ctx.save_for_backward(*args)
        ctx.shape = (b, c, h, w, levels)  # type: ignore[attr-defined]
        return tuple(t.permute(0, 3, 1, 2) for t in (c0, *pooled))

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, *grads: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        args = ctx.saved_tensors  # type: ignore[attr-defined]
        b, c, h, w, levels = ctx.shape  # type: ignore[attr-defined]
        gs = [None if g is None else _nhwc(g) for g in grads]
        dx = torch.empty(b, h, w, c)
        code = _lib().lsr_split_pool_backward(
            None if gs[0] is None else gs[0].data_ptr(),
            (ctypes.c_void_p * max(1, levels - 1))(
                *(None if g is None else g.data_ptr() for g in gs[1:])
            ),
            ops._ptr_array(list(args)), b, h, w, c, levels, dx.data_ptr(),
        )  # fmt: skip
        _check(code, "split_pool_backward")
        return dx.permute(0, 3, 1, 2), None


# ---- modules ------------------------------------------------------------------------------------


def _native_input(x: torch.Tensor) -> bool:
    """Whether the kernels take ``x``: float32 on the CPU, autocast off."""
    return (
        x.dtype == torch.float32
        and x.device.type == "cpu"
        and x.dim() == 4
        and not torch.is_autocast_enabled("cpu")
    )


class NativeConv3x3(nn.Module):
    """A 3x3, stride 1, padding 1 ``nn.Conv2d`` run by :func:`conv3x3`; same parameters.

    Args:
        conv: the convolution whose ``weight`` and ``bias`` this module shares.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self.reference = [conv]  # a list: not a sub-module, so the state dict keeps its keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _native_input(x):
            return self.reference[0](x)  # type: ignore[no-any-return]
        return conv3x3(x, self.weight, self.bias)


class NativeLayerNorm(nn.Module):
    """:class:`~lightsr.models.archs.safmn.ChannelLayerNorm` by :class:`LayerNormFunction` (one
    native pass each way); same parameters.

    Args:
        norm: the LayerNorm whose ``weight``, ``bias`` and ``eps`` this module takes.
    """

    def __init__(self, norm: ChannelLayerNorm) -> None:
        super().__init__()
        self.weight = norm.weight
        self.bias = norm.bias
        self.eps = norm.eps
        self.reference = [norm]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _native_input(x):
            return self.reference[0](x)  # type: ignore[no-any-return]
        return LayerNormFunction.apply(x, self.weight, self.bias, self.eps)  # type: ignore[no-any-return]


class NativeCCM(nn.Module):
    """The paper's CCM (3x3 expansion, GELU, 1x1 projection) with the expansion by
    :func:`conv3x3` and the projection as a matrix product; the same ``ccm`` sub-module, so the
    state dict keeps its keys.

    Args:
        ccm: a :class:`~lightsr.models.archs.safmn.CCM` of kind ``"ccm"``.
    """

    def __init__(self, ccm: CCM) -> None:
        super().__init__()
        self.ccm = ccm.ccm
        self.reference = [ccm]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _native_input(x):
            return self.reference[0](x)  # type: ignore[no-any-return]
        expand, project = self.ccm[0], self.ccm[2]
        return CCMFunction.apply(  # type: ignore[no-any-return]
            x, expand.weight, expand.bias, project.weight, project.bias
        )


class SafmMixFunction(torch.autograd.Function):
    """The SAFM after its depth-wise convolutions (Eqs. 3-4), with a hand-written backward:
    ``x * gelu(aggr(cat(s_0, up_2(s_1), up_4(s_2), ...)))`` for float32 CPU tensors.

    ``x`` (B, C, H, W) is the SAFM's input, ``weight`` (C, C) and ``bias`` the 1x1
    aggregation's, ``levels[i]`` (B, C / L, H / 2^i, W / 2^i) level i after its depth-wise
    convolution. The nearest upsampling and the concatenation are one native pass writing the
    channels-last matrix of the aggregation's inputs (``lsr_levels_gather``; backward: the sums
    over each level's 2^i x 2^i blocks, ``lsr_levels_scatter``); the aggregation is one matrix
    product each way; GELU, modulation and their backward one native pass each."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        *levels: torch.Tensor,
    ) -> torch.Tensor:
        b, c, h, w = x.shape
        cat = x.new_empty(b, h, w, c)
        ls = [_nhwc(s) for s in levels]
        code = _lib().lsr_levels_gather(ops._ptr_array(ls), len(ls), cat.data_ptr(), b, h, w, c)
        _check(code, "levels_gather")
        z = cat.view(-1, c) @ weight.t()  # (B h w, C), the bias added in the GELU's pass
        xs = _nhwc(x).view(-1, c)
        act, out, slope = gelu_forward(z, xs, slope=True, bias=bias.detach())
        assert out is not None
        ctx.save_for_backward(xs, weight, cat, act, slope)
        ctx.shape = (b, c, h, w, len(levels))  # type: ignore[attr-defined]
        return out.view(b, h, w, c).permute(0, 3, 1, 2)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        xs, weight, cat, act, slope = ctx.saved_tensors  # type: ignore[attr-defined]
        b, c, h, w, n_levels = ctx.shape  # type: ignore[attr-defined]
        dz, dxs, dbias = gelu_backward(_nhwc(grad).view(-1, c), slope, xs, act)
        assert dxs is not None
        dx = dxs.view(b, h, w, c).permute(0, 3, 1, 2)
        dcat = (dz @ weight).view(b, h, w, c)
        dweight = dz.t() @ cat.view(-1, c)
        k = c // n_levels
        dlevels = [dcat.new_empty(b, h >> i, w >> i, k) for i in range(n_levels)]
        code = _lib().lsr_levels_scatter(
            dcat.data_ptr(), ops._ptr_array(dlevels), n_levels, b, h, w, c
        )
        _check(code, "levels_scatter")
        return (dx, dweight, dbias, *(t.permute(0, 3, 1, 2) for t in dlevels))


class NativeSAFM(nn.Module):
    """The paper's SAFM (max-pooled levels, GELU, modulation) on channels-last activations: the
    channels split and the levels max-pooled with the exact window (the adaptive pooling's, for
    sizes divisible by the window) by :class:`SplitPoolFunction`, convolved depth-wise by
    PyTorch, the rest by
    :class:`SafmMixFunction`; the same sub-modules, so the state dict keeps its keys.

    Args:
        safm: a :class:`~lightsr.models.archs.safmn.SAFM` with the paper's options.
    """

    def __init__(self, safm: SAFM) -> None:
        super().__init__()
        self.mfr = safm.mfr
        self.aggr = safm.aggr
        self.act = safm.act
        self.n_levels = safm.n_levels
        self.reference = [safm]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = x.shape[1:]
        if not _native_input(x) or h % 2 ** (self.n_levels - 1) or w % 2 ** (self.n_levels - 1):
            return self.reference[0](x)  # type: ignore[no-any-return]
        parts = SplitPoolFunction.apply(x, self.n_levels)
        levels = [mfr(part) for mfr, part in zip(self.mfr, parts, strict=True)]
        weight = self.aggr.weight.reshape(c, c)  # type: ignore[union-attr]
        return SafmMixFunction.apply(x, weight, self.aggr.bias, *levels)  # type: ignore[no-any-return]


class NativeBody(nn.Sequential):
    """SAFMN's body, the feature mixing modules of ``Y = SAFM(LN(X)) + X; Z = CCM(LN(Y)) + Y``
    in sequence, with every residual add but the last fused into the LayerNorm after it
    (:class:`AddLayerNormFunction`). The same modules as the ``nn.Sequential`` it is made from,
    so the state dict keeps its keys; runs that ``nn.Sequential``'s forward for inputs the
    kernels do not take.

    Args:
        feats: the body, its modules already swapped (native LayerNorms, SAFM and CCM).
    """

    def __init__(self, feats: nn.Sequential) -> None:
        super().__init__(*feats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if not _native_input(x):
            return super().forward(x)
        blocks = list(self)
        first = blocks[0].norm1
        n = LayerNormFunction.apply(x, first.weight, first.bias, first.eps)
        for i, block in enumerate(blocks):
            norm = block.norm2
            x, n = AddLayerNormFunction.apply(x, block.safm(n), norm.weight, norm.bias, norm.eps)
            c = block.ccm(n)
            if i + 1 == len(blocks):
                return x + c  # type: ignore[no-any-return]
            norm = blocks[i + 1].norm1
            x, n = AddLayerNormFunction.apply(x, c, norm.weight, norm.bias, norm.eps)
        raise AssertionError("unreachable: the body has at least one block")


def _fusable_body(feats: nn.Module) -> bool:
    """Whether ``feats`` is a (swapped) SAFMN body that :class:`NativeBody` can run: an
    ``nn.Sequential`` of feature mixing modules, each with both halves and native LayerNorms."""
    return (
        type(feats) is nn.Sequential
        and len(feats) > 0
        and all(
            isinstance(b, FeatureMixingModule)
            and b.has_safm
            and b.has_ccm
            and type(b.norm1) is NativeLayerNorm
            and type(b.norm2) is NativeLayerNorm
            for b in feats
        )
    )


# ---- the swap -----------------------------------------------------------------------------------


def _is_conv3x3(m: nn.Module) -> bool:
    return (
        type(m) is nn.Conv2d
        and m.kernel_size == (3, 3)
        and m.stride == (1, 1)
        and m.padding == (1, 1)
        and m.dilation == (1, 1)
        and m.groups == 1
        and m.bias is not None
        and m.padding_mode == "zeros"
    )


def _is_paper_ccm(m: nn.Module) -> bool:
    return (
        isinstance(m, CCM)
        and len(m.ccm) == 3
        and _is_conv3x3(m.ccm[0])
        and isinstance(m.ccm[1], nn.GELU)
        and m.ccm[1].approximate == "none"
        and type(m.ccm[2]) is nn.Conv2d
        and m.ccm[2].kernel_size == (1, 1)
    )


def _is_paper_safm(m: nn.Module) -> bool:
    return (
        isinstance(m, SAFM)
        and m.modulation
        and m.multi_scale
        and m.pool == "max"
        and type(m.aggr) is nn.Conv2d
        and isinstance(m.act, nn.GELU)
    )


def _swap(parent: nn.Module, name: str, child: nn.Module) -> None:
    if _is_conv3x3(child):
        setattr(parent, name, NativeConv3x3(child))  # type: ignore[arg-type]
    elif type(child) is ChannelLayerNorm:
        setattr(parent, name, NativeLayerNorm(child))
    elif _is_paper_ccm(child):
        setattr(parent, name, NativeCCM(child))  # type: ignore[arg-type]
    elif _is_paper_safm(child):
        setattr(parent, name, NativeSAFM(child))  # type: ignore[arg-type]
    else:
        for sub_name, sub in list(child.named_children()):
            _swap(child, sub_name, sub)


def native_training_model(model: nn.Module) -> nn.Module:
    """``model`` with the SAFMN networks in it running on the native kernels (in place).

    In every :class:`~lightsr.models.archs.safmn.SAFMN` inside ``model`` (the model itself, or
    a wrapper's sub-module), the 3x3 convolutions, channel LayerNorms, the paper's CCMs and
    SAFMs are replaced by :class:`NativeConv3x3`, :class:`NativeLayerNorm`, :class:`NativeCCM`
    and :class:`NativeSAFM`, which share their parameters (state dict keys and optimizers are
    unchanged). Ablation variants keep their other modules. Returned unchanged when the kernels
    cannot run here (:func:`native_training_available`) or the SAFMN's parameters are not
    float32 on the CPU. Not for ``torch.compile``: the kernels are opaque to it.
    """
    if not native_training_available():
        return model
    for net in [m for m in model.modules() if isinstance(m, SAFMN)]:
        params = list(net.parameters())
        if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in params):
            continue
        for name, child in list(net.named_children()):
            _swap(net, name, child)
        if _fusable_body(net.feats):
            net.feats = NativeBody(net.feats)
    return model
