"""Model cost the papers' way: parameters, FLOPs, activations, convolutions, latency, memory.

Conventions (those of the SAFMN paper's Tables 1-4, i.e. of fvcore and the NTIRE efficient-SR
challenges), printed by ``lightsr bench`` next to the numbers:

- **Input size.** The papers size the input so that the *output* is 1280x720: the input is
  ``ceil(1280 / s) x ceil(720 / s)`` (320x180 at x4, 640x360 at x2, 427x240 at x3). The x3 side
  1280 / 3 is not an integer; 427 (output 1281x720) is what reproduces the paper's x3 figures
  (23.42G FLOPs, 134.30M activations; 426 would give 23.36G and 134.00M). Counting runs on that
  exact, unpadded size: SAFMN's adaptive pooling floors odd sizes (180 / 8 = 22 rows), as the
  official code did when the paper was measured. A model that cannot run on the size is counted
  on the size padded to its ``size_multiple`` (reported as the input size).
- **FLOPs.** One multiply-add (MAC) counts as one FLOP, as fvcore does. The MACs of every op
  that multiplies and accumulates (convolutions, linear layers, mm/addmm/bmm/baddbmm, so also
  matmul/einsum, and scaled-dot-product attention) come from ``torch.utils.flop_counter``
  (which counts 2 per MAC; halved here). On top, the non-MAC ops that fvcore counts by default
  are counted with fvcore's weights: nearest upsampling 1 per output element, bilinear
  upsampling 4, adaptive average pooling 1 per input element, BatchNorm 2 per element in eval
  mode (1 without affine) and 5 in training mode, LayerNorm/GroupNorm/InstanceNorm 5 (4 without
  affine). The paper's numbers need them: SAFMN's nearest upsampling is 0.01G of the 13.55G at
  x4 (conv MACs alone give 13.54G and 51.48G at x2 instead of 51.53G). Element-wise arithmetic
  (add, multiply, GELU, hand-written norms such as SAFMN's channel LayerNorm) is not counted,
  as in fvcore. ``flops2`` is the other common convention: 2 FLOPs per MAC (plus the same
  fvcore element-wise counts).
- **Activations.** The number of elements of the outputs of all convolution layers (every
  call of an ``nn.Conv*`` / ``nn.ConvTranspose*`` module), as the paper defines them and as
  fvcore's activation count gives for convolutional models.
- **Convolutions.** The number of distinct convolution modules that run in the forward pass.
- **Counting** runs on the ``meta`` device (shapes only; instant, no memory) in eval mode, with
  a real-tensor fallback for models that cannot run there.
- **Latency.** ``runs`` timed forward passes after ``warmup`` untimed ones, in eval and
  inference mode, one image per batch; CUDA is synchronised before each clock reading. The
  median and the spread (min, max, inter-quartile range) are reported in milliseconds.
  What is timed is the path ``lightsr upscale`` runs by default (``path`` in the results):
  the fast path (:class:`lightsr.native.fast.FastSAFMN` through
  :class:`~lightsr.inference.upscaler.Upscaler`, the input padded to its size multiple as
  ``upscale`` pads it; ``"fast (native kernels)"`` for float32 on CPUs with lightsr's kernels,
  else ``"fast (PyTorch)"``) where the model has one, else (or with ``fast=False``,
  ``--no-fast``) the plain eager model (``"plain"``). On the CPU the fast path is timed
  without ``torch.compile`` (a single image never compiles: ``compile="auto"``); on CUDA it
  captures a CUDA graph at a shape's second call, as ``upscale`` does for a batch (the
  path then says so). Counting always uses the plain model, as the papers do.
- **Peak memory** (MB = 2**20 bytes). On CUDA: ``torch.cuda.max_memory_allocated`` over one
  forward pass after resetting the peak (the paper's Table 2 method: weights, input,
  activations, output and workspaces held by the caching allocator). On the CPU (Linux): the
  resident-memory high-water mark of the process over one forward pass, measured after
  warm-up; freed heap memory is first returned to the system (glibc ``malloc_trim``) and the
  kernel's high-water mark reset (``/proc/self/clear_refs`` <- ``5``), so the increase of
  ``VmHWM`` over ``VmRSS`` is the memory the forward pass really touched (activations, output,
  oneDNN reorders and workspaces, allocator fragmentation). It varies from pass to pass with
  the allocator's re-use of freed blocks, so the largest of :data:`MEMORY_PASSES` passes is
  reported. The bytes of the weights and of the input are added, as the CUDA figure holds
  them too. Elsewhere the CPU figure is not available (reported as None). Measuring one pass
  in a fresh process instead (``ru_maxrss``) gives about the same figure plus the first-use
  cost of code and thread pools.
"""

from __future__ import annotations

import copy
import ctypes
import dataclasses
import gc
import inspect
import math
import re
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

from lightsr.errors import LightSRError
from lightsr.models.registry import size_multiple
from lightsr.models.resolve import resolve_model
from lightsr.runtime import precision_dtype, resolve_device

__all__ = [
    "CONVENTIONS",
    "DEFAULT_OUTPUT_SIZE",
    "MEMORY_PASSES",
    "NTIRE_INPUT_SIZE",
    "NTIRE_MODELS",
    "BenchResult",
    "Complexity",
    "Runtime",
    "bench",
    "bench_ntire",
    "count_complexity",
    "input_size_for_output",
    "measure_runtime",
    "ntire_sources",
    "parse_size",
    "render_table",
    "to_markdown",
]

#: The papers' output size (width, height): input = ceil(1280 / s) x ceil(720 / s).
DEFAULT_OUTPUT_SIZE = (1280, 720)

#: Printed with every table: what the numbers mean.
CONVENTIONS = (
    "FLOPs: 1 multiply-add = 1 FLOP (fvcore/paper convention; '2/MAC' counts 2 per "
    "multiply-add), plus fvcore's counts for upsampling, adaptive avg pooling and norm layers. "
    "Acts: elements of all conv outputs. Convs: conv layers run. "
    "Input: ceil(W/s) x ceil(H/s) for the output size; batch 1. "
    "Latency: median (min-max) of the timed runs after warm-up. "
    "Peak memory (MB = 2^20 B): CUDA max_memory_allocated; CPU: largest peak-RSS increase "
    "of a forward pass + weights + input."
)

#: CPU peak memory is the largest of this many measured forward passes: the allocator's re-use
#: of freed blocks makes single passes vary by up to ~25 % (e.g. 96-137 MB for SAFMN x4).
MEMORY_PASSES = 3

_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX×*]\s*(\d+)\s*$")


# --------------------------------------------------------------------------------------------
# Sizes


def parse_size(text: str, flag: str = "size") -> tuple[int, int]:
    """Parse ``"WIDTHxHEIGHT"`` (e.g. ``"1280x720"``) into ``(width, height)``.

    Raises:
        LightSRError: naming ``flag`` when the text is not two positive integers.
    """
    m = _SIZE_RE.match(text)
    if m is None or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise LightSRError(f"{flag}: expected WIDTHxHEIGHT such as 1280x720, got {text!r}")
    return int(m.group(1)), int(m.group(2))


def input_size_for_output(output_size: tuple[int, int], scale: int) -> tuple[int, int]:
    """The input ``(width, height)`` for an output of ``output_size`` at ``scale``.

    ``ceil(W / s) x ceil(H / s)``: the smallest input whose output covers the requested size
    (427x240 for 1280x720 at x3, the size that reproduces the SAFMN paper's x3 figures).
    """
    if scale < 1:
        raise LightSRError(f"scale must be >= 1, got {scale}")
    w, h = output_size
    return math.ceil(w / scale), math.ceil(h / scale)


# --------------------------------------------------------------------------------------------
# Counting


def _fvcore_elementwise(func: Callable[..., Any], a: dict[str, Any], out: Any) -> int:
    """FLOPs that fvcore assigns by default to non-MAC ops (its ``jit_handles`` weights)."""
    if func is F.interpolate:
        mode = a.get("mode", "nearest")
        per = 1 if mode in ("nearest", "nearest-exact") else 4 if mode == "bilinear" else 0
        return per * out.numel()
    if func is F.adaptive_avg_pool2d:
        return a["input"].numel()
    if func is F.batch_norm:
        affine = a.get("weight") is not None
        per = (5 if affine else 4) if a.get("training") else (2 if affine else 1)
        return per * a["input"].numel()
    if func in (F.layer_norm, F.group_norm):
        return (5 if a.get("weight") is not None else 4) * a["input"].numel()
    if func is F.instance_norm:  # fvcore keys "affine" on running_mean (its argument 1)
        return (5 if a.get("running_mean") is not None else 4) * a["input"].numel()
    return 0


_COUNTED_FUNCTIONS = (
    F.interpolate,
    F.adaptive_avg_pool2d,
    F.batch_norm,
    F.layer_norm,
    F.group_norm,
    F.instance_norm,
)


class _ElementwiseFlops(TorchFunctionMode):
    """Counts fvcore's non-MAC FLOPs at the ``torch.nn.functional`` level (before decomposition:
    ``adaptive_avg_pool2d(x, 1)`` reaches the dispatcher as a plain ``mean``)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[str] = Counter()
        self._signatures: dict[Callable[..., Any], inspect.Signature] = {}

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in _COUNTED_FUNCTIONS:
            sig = self._signatures.setdefault(func, inspect.signature(func))
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            n = _fvcore_elementwise(func, dict(bound.arguments), out)
            if n:
                self.counts[func.__name__] += n
        return out


@dataclass(frozen=True)
class Complexity:
    """What a forward pass of one image costs, counted the papers' way (see the module doc).

    Attributes:
        params: number of parameters (buffers excluded).
        macs: multiply-adds of convolutions, linear layers, matrix products and attention.
        other_flops: fvcore's counts of upsampling, adaptive average pooling and norm layers.
        acts: elements of all convolution outputs.
        convs: distinct convolution layers that ran.
        input_size: the counted input (width, height).
        output_size: the output (width, height).
        breakdown: FLOPs (1 per MAC) per op name.
    """

    params: int
    macs: int
    other_flops: int
    acts: int
    convs: int
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    breakdown: dict[str, int] = field(default_factory=dict)

    @property
    def flops(self) -> int:
        """FLOPs in the paper's (fvcore's) convention: 1 per multiply-add."""
        return self.macs + self.other_flops

    @property
    def flops2(self) -> int:
        """FLOPs counting 2 per multiply-add (``torch.utils.flop_counter``'s convention)."""
        return 2 * self.macs + self.other_flops


def _count_once(model: nn.Module, x: torch.Tensor) -> Complexity:
    acts = 0
    ran: set[int] = set()

    def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal acts
        acts += output.numel()
        ran.add(id(module))

    conv_types = (nn.modules.conv._ConvNd,)
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, conv_types)]
    elementwise = _ElementwiseFlops()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter, elementwise:
            y = model(x)
    finally:
        for h in handles:
            h.remove()
    per_op = {
        str(op).split(".")[-1]: int(n) // 2 for op, n in counter.get_flop_counts()["Global"].items()
    }
    per_op.update(elementwise.counts)
    return Complexity(
        params=sum(p.numel() for p in model.parameters()),
        macs=int(counter.get_total_flops()) // 2,
        other_flops=sum(elementwise.counts.values()),
        acts=acts,
        convs=len(ran),
        input_size=(x.shape[-1], x.shape[-2]),
        output_size=(y.shape[-1], y.shape[-2]),
        breakdown=per_op,
    )


def count_complexity(
    model: nn.Module,
    input_size: tuple[int, int],
    *,
    channels: int = 3,
    device: str | torch.device = "meta",
) -> Complexity:
    """Count params, FLOPs, activations and convolutions of one forward pass (batch 1).

    The model is not modified: a copy runs in eval mode on ``device`` (``"meta"`` by default:
    shapes only, no arithmetic). If the model cannot run there (data-dependent code), it is
    counted on the CPU with a real input. If it cannot run on ``input_size`` at all, the size is
    padded up to the model's ``size_multiple`` and the counted size is reported.

    Args:
        model: the network; its forward takes a (1, channels, H, W) tensor.
        input_size: ``(width, height)`` of the input.
        channels: input channels.
        device: where to count.
    """
    w, h = input_size
    sizes = [(w, h)]
    multiple = size_multiple(model)
    if multiple > 1 and (w % multiple or h % multiple):
        sizes.append((-(-w // multiple) * multiple, -(-h // multiple) * multiple))
    devices = [torch.device(device)]
    if devices[0].type == "meta":
        devices.append(torch.device("cpu"))
    errors: list[str] = []
    for dev in devices:
        twin = copy.deepcopy(model).eval().to(dev)
        for sw, sh in sizes:
            x = torch.zeros(1, channels, sh, sw, device=dev)
            try:
                return _count_once(twin, x)
            except (RuntimeError, NotImplementedError) as exc:
                errors.append(f"{dev} {sw}x{sh}: {str(exc).strip().splitlines()[0][:160]}")
    raise LightSRError(
        f"cannot run the model on a {w}x{h} input to count it ({'; '.join(errors)}); "
        "try another --input-size"
    )


# --------------------------------------------------------------------------------------------
# Latency and memory


@dataclass(frozen=True)
class Runtime:
    """Latency and peak memory of one forward pass (see the module doc for the methods).

    Attributes:
        device: where it ran (``"cpu"``, ``"cuda:0"``...).
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        times_ms: every timed run, in milliseconds.
        warmup: untimed runs before them.
        peak_mem_mb: peak memory in MB (2**20 bytes), or None where it cannot be measured.
        mem_method: how ``peak_mem_mb`` was measured.
        path: what ran: ``"fast (native kernels)"``, ``"fast (PyTorch)"`` (either with
            ``", CUDA graph"`` when one was replayed) or ``"plain"`` (the eager model).
    """

    device: str
    precision: str
    times_ms: tuple[float, ...]
    warmup: int
    peak_mem_mb: float | None
    mem_method: str
    path: str = "plain"

    @property
    def median_ms(self) -> float:
        """Median latency."""
        return statistics.median(self.times_ms)

    @property
    def min_ms(self) -> float:
        """Fastest run."""
        return min(self.times_ms)

    @property
    def max_ms(self) -> float:
        """Slowest run."""
        return max(self.times_ms)

    @property
    def iqr_ms(self) -> float:
        """Inter-quartile range (0 for fewer than 2 runs)."""
        if len(self.times_ms) < 2:
            return 0.0
        q1, _, q3 = statistics.quantiles(self.times_ms, n=4, method="inclusive")
        return q3 - q1


def _proc_status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _reset_peak_rss() -> bool:
    """Set the kernel's resident high-water mark (VmHWM) to the current RSS (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


def _malloc_trim() -> bool:
    """Return freed heap memory to the system (glibc), so that re-use shows up in the RSS."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim(0)
    return True


def _tensor_bytes(model: nn.Module) -> int:
    tensors = [*model.parameters(), *model.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def _cpu_peak_mb(
    run: Callable[[], Any], resident_bytes: int, *, passes: int = MEMORY_PASSES
) -> tuple[float | None, str]:
    """Largest increase of the resident high-water mark over ``passes`` calls of ``run``."""
    if not sys.platform.startswith("linux"):
        return None, "unavailable (the CPU method needs Linux /proc)"
    increases = []
    trimmed = True
    for _ in range(passes):
        gc.collect()
        trimmed = _malloc_trim() and trimmed
        if not _reset_peak_rss():
            return None, "unavailable (/proc/self/clear_refs is not writable)"
        before = _proc_status_kib("VmRSS")
        out = run()
        peak = _proc_status_kib("VmHWM")
        del out
        if before is None or peak is None:
            return None, "unavailable (/proc/self/status has no VmRSS/VmHWM)"
        increases.append((peak - before) * 1024)
    method = (
        f"cpu: max over {passes} forward passes of VmHWM - VmRSS (after malloc_trim and "
        "clear_refs) + weights + input"
    )
    if not trimmed:
        method += "; malloc_trim unavailable, may under-count"
    return (max(increases) + resident_bytes) / 2**20, method


def _fast_upscaler(model: nn.Module, device: torch.device, precision: str) -> Any:
    """The :class:`~lightsr.inference.upscaler.Upscaler` fast path ``upscale`` would run for
    ``model`` (on a copy: ``model`` is left as it is), or None when the model has none."""
    from lightsr.inference.upscaler import Upscaler
    from lightsr.native.fast import fast_unsupported_reason

    if fast_unsupported_reason(model) is not None:
        return None
    up = Upscaler(
        copy.deepcopy(model),
        scale=int(getattr(model, "scale", 1)),
        name=type(model).__name__,
        arch=type(model).__name__.lower(),
        config={},
        device=device,
        precision=precision,
        fast=True,
        # A single image never compiles on the CPU; a batch replays CUDA graphs on CUDA.
        compile="auto" if device.type == "cuda" else "off",
    )
    up.model.to("cpu")  # only the fast module runs: keep the plain copy out of device memory
    return up


def _path_label(up: Any) -> str:
    """``"fast (native kernels)"``, ``"fast (PyTorch)"`` (+ ``", CUDA graph"``) or ``"plain"``."""
    if up is None or up.runner is None:
        return "plain"
    native = bool(getattr(up.runner.module, "native", False)) and up.device.type == "cpu"
    label = "fast (native kernels" if native else "fast (PyTorch"
    if up.runner.compiled_shapes:
        label += ", CUDA graph" if up.device.type == "cuda" else ", compiled"
    return label + ")"


def measure_runtime(
    model: nn.Module,
    input_size: tuple[int, int],
    *,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    runs: int = 10,
    warmup: int = 3,
    channels: int = 3,
    fast: bool = True,
) -> Runtime:
    """Time ``runs`` forward passes after ``warmup`` ones, then measure one pass's peak memory.

    With ``fast`` (default) and a model the fast path supports, what runs is what
    ``lightsr upscale`` runs: :class:`~lightsr.inference.upscaler.Upscaler`'s fast path on a copy
    of the model, the input padded to its size multiple (see the module doc). Otherwise the model
    itself runs, in eval mode on ``device``, ``bf16``/``fp16`` under autocast (as ``Upscaler``'s
    plain path). The input is a fixed random image; ``Runtime.path`` says what was timed.

    Raises:
        LightSRError: bad ``runs``/``warmup``, unknown precision, fp16 on the CPU, or an
            unavailable device.
    """
    if runs < 1:
        raise LightSRError(f"--runs must be >= 1, got {runs}")
    if warmup < 0:
        raise LightSRError(f"--warmup must be >= 0, got {warmup}")
    dev = resolve_device(device, what="--device")
    dtype = precision_dtype(precision, dev, what="--precision")
    w, h = input_size
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, channels, h, w, generator=gen).to(dev)
    cuda = dev.type == "cuda"
    up = _fast_upscaler(model, dev, precision) if fast else None

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)

    if up is not None:
        from lightsr.inference.tiling import pad_to_multiple

        timed: nn.Module = up.runner.module
        xp = pad_to_multiple(x, up.size_multiple)

        def forward() -> torch.Tensor:
            return up.forward_tensor(xp)

    else:
        timed = model = model.eval().to(dev)

        def forward() -> torch.Tensor:
            if dtype == torch.float32:
                return model(x)
            with torch.autocast(dev.type, dtype=dtype):
                return model(x)

    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            forward()
        sync()
        for _ in range(runs):
            t0 = time.perf_counter()
            forward()
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        if cuda:
            torch.cuda.reset_peak_memory_stats(dev)
            forward()
            sync()
            peak: float | None = torch.cuda.max_memory_allocated(dev) / 2**20
            method = "cuda: torch.cuda.max_memory_allocated over one forward"
        else:
            resident = _tensor_bytes(timed) + x.numel() * x.element_size()
            peak, method = _cpu_peak_mb(forward, resident)
    return Runtime(str(dev), precision, tuple(times), warmup, peak, method, _path_label(up))


# --------------------------------------------------------------------------------------------
# Models by name or checkpoint, and the whole benchmark


@dataclass(frozen=True)
class BenchResult:
    """One model's row: what it is, what it costs, how fast it ran (if timed)."""

    model: str
    arch: str
    scale: int
    weights: str
    complexity: Complexity
    runtime: Runtime | None
    paper: dict[str, str]

    def to_record(self) -> dict[str, Any]:
        """A JSON-ready dict (``model, scale, params, flops_g, acts_m, convs, latency_ms,
        peak_mem_mb`` and more; timing fields are None when not measured)."""
        c, r = self.complexity, self.runtime
        return {
            "model": self.model,
            "arch": self.arch,
            "scale": self.scale,
            "weights": self.weights,
            "input_size": list(c.input_size),
            "output_size": list(c.output_size),
            "params": c.params,
            "flops_g": c.flops / 1e9,
            "flops2_g": c.flops2 / 1e9,
            "macs": c.macs,
            "other_flops": c.other_flops,
            "acts_m": c.acts / 1e6,
            "convs": c.convs,
            "flops_convention": "1 multiply-add = 1 FLOP (fvcore); flops2_g: 2 per multiply-add",
            "device": r.device if r else None,
            "precision": r.precision if r else None,
            "path": r.path if r else None,
            "runs": len(r.times_ms) if r else 0,
            "warmup": r.warmup if r else 0,
            "latency_ms": r.median_ms if r else None,
            "latency_min_ms": r.min_ms if r else None,
            "latency_max_ms": r.max_ms if r else None,
            "latency_iqr_ms": r.iqr_ms if r else None,
            "peak_mem_mb": r.peak_mem_mb if r else None,
            "mem_method": r.mem_method if r else None,
            "paper": dict(self.paper),
        }


def bench(
    source: str,
    *,
    scale: int | None = None,
    output_size: tuple[int, int] | None = None,
    input_size: tuple[int, int] | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    runs: int = 10,
    warmup: int = 3,
    timing: bool = True,
    fast: bool = True,
) -> BenchResult:
    """Count and (unless ``timing=False``) time one model, named or from a checkpoint.

    Args:
        source: a name from ``lightsr models`` or a checkpoint path.
        scale: the scale, for names without one (``safmn``) or as a check.
        output_size: ``(width, height)`` of the output (default 1280x720); the input is
            :func:`input_size_for_output`. Exclusive with ``input_size``.
        input_size: ``(width, height)`` of the input instead.
        device, precision, runs, warmup: see :func:`measure_runtime`.
        timing: False only counts (no latency, no memory).
        fast: time the fast path ``lightsr upscale`` runs by default, where the model has one
            (see :func:`measure_runtime`); False times the plain eager model. Counting always
            uses the plain model.
    """
    if output_size is not None and input_size is not None:
        raise LightSRError("give --output-size or --input-size, not both")
    if timing:  # fail before the counting on a device or precision that cannot run
        precision_dtype(precision, resolve_device(device, what="--device"), what="--precision")
    loaded = resolve_model(source, scale=scale, random_weights=True)
    if input_size is None:
        input_size = input_size_for_output(output_size or DEFAULT_OUTPUT_SIZE, loaded.scale)
    complexity = count_complexity(loaded.model, input_size)
    runtime = None
    if timing:
        runtime = measure_runtime(
            loaded.model,
            complexity.input_size,
            device=device,
            precision=precision,
            runs=runs,
            warmup=warmup,
            fast=fast,
        )
    return BenchResult(
        loaded.name, loaded.arch, loaded.scale, loaded.weights, complexity, runtime, loaded.paper
    )


#: The NTIRE efficient-SR challenges count FLOPs and activations at a 256x256 input (x4).
NTIRE_INPUT_SIZE = (256, 256)

#: ``lightsr bench --ntire``: the challenges' winners and entries lightsr has, with where their
#: public weights are (under ``shared/weights/``; None: lightsr's bundled weights).
NTIRE_MODELS: tuple[tuple[str, str | None], ...] = (
    ("rlfn-x4", "baselines/rlfn_x4.pth"),  # NTIRE 2022 winner
    ("safmn-x4", None),  # lightsr's own SAFMN x4
    ("safmn-ntire2023-x4", "safmn/SAFMN_NTIRE2023_x4.pth"),
    ("safmnpp-x4", "safmn/SAFMNPP_NTIRE2024_x4.pth"),
    ("span-ch28-x4", "ntire/NTIRE2024_team38_span_ch28_slim.pth"),  # NTIRE 2024 winner
    ("dscf-x4", "ntire/NTIRE2025_team23_DSCF.pth"),  # NTIRE 2025 winner
    ("span-f-x4", "ntire/NTIRE2025_team24_spanf.pth"),
    ("espan-x4", "ntire/NTIRE2025_team36_espan.pth"),
    ("safmnv3-x4", "ntire/NTIRE2025_team19_safmnv3.pth"),
    ("efdn-x4", "ntire/NTIRE2025_team00_EFDN.pth"),  # NTIRE 2025 baseline
)


def ntire_sources(weights_root: Path | None = None) -> list[tuple[str, str]]:
    """``(name, source)`` for every :data:`NTIRE_MODELS` entry whose weights are here: the
    checkpoint path under ``weights_root`` (default: ``shared/weights``, see
    :func:`lightsr.runtime.shared_root`), or the name itself for bundled weights.

    Raises:
        LightSRError: none of the checkpoints is there.
    """
    from lightsr.models.catalog import get_spec, is_bundled
    from lightsr.runtime import shared_root

    root = weights_root if weights_root is not None else shared_root() / "weights"
    found = []
    for name, rel in NTIRE_MODELS:
        if rel is None:
            if is_bundled(get_spec(name)):
                found.append((name, name))
        elif (root / rel).is_file():
            found.append((name, str(root / rel)))
    if all(name == source for name, source in found):  # at most lightsr's own SAFMN
        raise LightSRError(
            f"--ntire: no NTIRE checkpoint under {root} (see shared/weights/README.md); "
            "set LIGHTSR_SHARED to the folder that holds weights/"
        )
    return found


def bench_ntire(
    *,
    input_size: tuple[int, int] = NTIRE_INPUT_SIZE,
    weights_root: Path | None = None,
    **options: Any,
) -> list[BenchResult]:
    """:func:`bench` for every NTIRE model with weights (:func:`ntire_sources`), at the
    challenges' 256x256 input; rows are named by their catalog names and carry no paper
    figures (those are for a 1280x720 output). ``options``: those of :func:`bench` (device,
    precision, runs, warmup, timing, fast)."""
    results = []
    for name, source in ntire_sources(weights_root):
        r = bench(source, input_size=input_size, **options)
        results.append(dataclasses.replace(r, model=name, paper={}))
    return results


# --------------------------------------------------------------------------------------------
# Tables


def _columns(
    results: Sequence[BenchResult],
) -> list[tuple[str, bool, Callable[[BenchResult], str]]]:
    """(header, right-aligned, cell) for the columns the results have data for."""

    def latency(r: BenchResult) -> str:
        rt = r.runtime
        return f"{rt.median_ms:.1f} ({rt.min_ms:.1f}-{rt.max_ms:.1f})" if rt else "-"

    def memory(r: BenchResult) -> str:
        rt = r.runtime
        return f"{rt.peak_mem_mb:.2f}" if rt and rt.peak_mem_mb is not None else "-"

    def paper(r: BenchResult) -> str:
        p = r.paper
        if not all(k in p for k in ("params_k", "flops_g", "acts_m")):
            return "-"
        return f"{p['params_k']}K / {p['flops_g']}G / {p['acts_m']}M"

    cols: list[tuple[str, bool, Callable[[BenchResult], str]]] = [
        ("model", False, lambda r: r.model),
        ("scale", False, lambda r: f"x{r.scale}"),
        ("input", False, lambda r: "x".join(map(str, r.complexity.input_size))),
        ("params", True, lambda r: f"{r.complexity.params:,}"),
        ("FLOPs G", True, lambda r: f"{r.complexity.flops / 1e9:.2f}"),
        ("2/MAC G", True, lambda r: f"{r.complexity.flops2 / 1e9:.2f}"),
        ("acts M", True, lambda r: f"{r.complexity.acts / 1e6:.2f}"),
        ("convs", True, lambda r: str(r.complexity.convs)),
    ]
    if any(r.runtime for r in results):
        cols += [
            ("path", False, lambda r: r.runtime.path if r.runtime else "-"),
            ("latency ms (min-max)", True, latency),
            ("peak MB", True, memory),
        ]
    if any(r.paper for r in results):
        cols.append(("paper params/FLOPs/acts", False, paper))
    return cols


def _notes(results: Sequence[BenchResult]) -> str:
    timed = [r.runtime for r in results if r.runtime is not None]
    if not timed:
        return CONVENTIONS + " Not timed (--no-latency)."
    rt = timed[0]
    return (
        f"{CONVENTIONS} Timed on {rt.device}, {rt.precision}: {len(rt.times_ms)} runs after "
        f"{rt.warmup} warm-up; memory: {rt.mem_method}. Path: what was timed; 'fast' is what "
        "`lightsr upscale` runs by default (input padded to a multiple of 8), 'plain' the eager "
        "model (--no-fast, or no fast path for the model); counts are the plain model's."
    )


def render_table(results: Sequence[BenchResult]) -> Any:
    """A ``rich`` table of the results, with the conventions as its caption."""
    from rich.table import Table
    from rich.text import Text

    cols = _columns(results)
    table = Table(caption=Text(_notes(results)), caption_justify="left")
    for header, right, _ in cols:
        table.add_column(header, justify="right" if right else "left", no_wrap=True)
    for r in results:
        table.add_row(*(Text(cell(r)) for _, _, cell in cols))
    return table


def to_markdown(results: Sequence[BenchResult]) -> str:
    """The results as a Markdown table followed by the conventions."""
    cols = _columns(results)
    lines = [
        "| " + " | ".join(h for h, _, _ in cols) + " |",
        "|" + "|".join("---:" if right else "---" for _, right, _ in cols) + "|",
    ]
    lines += ["| " + " | ".join(cell(r) for _, _, cell in cols) + " |" for r in results]
    return "\n".join([*lines, "", _notes(results)])
