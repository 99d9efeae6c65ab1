"""Latency, peak memory and accuracy of lightsr's fast SAFMN paths against the official formulation.

One run measures, for SAFMN x4 (random weights: the cost does not depend on them):

1. a 320x180 input (the paper's Table 2 size): the official formulation in eager float32 (as the
   official code runs it: adaptive max pooling at the raw size), the off-the-shelf switches
   (channels-last + bfloat16 autocast + torch.compile of the official module), and each of
   lightsr's paths (fast float32 / bfloat16, eager and compiled, and onnxruntime);
2. a 1280x720 input;
3. a tiled run with a 3840x2160 (4K) output, through :class:`lightsr.inference.upscaler.Upscaler`.

Each row: median (min-max) of ``--runs`` timed calls after ``--warmup`` untimed ones, the first
call's time (which includes compiling), the peak memory of one call (increase of the resident
high-water mark, Linux) and the speed-up over the official eager float32 row of its section.
lightsr's paths pad inputs to a multiple of 8 (320x180 runs as 320x184) and crop.

With ``../shared`` present it also prints the accuracy of each path against the plain float32
model with the real SAFMN x2 weights on Set5 (x2 LR images, 112x112 crops): max |difference| in
[0, 1] units and PSNR.

The float32 fast path uses lightsr's native kernels (:mod:`lightsr.native.ops`: Winograd F(4x4, 3x3)
convolutions fused with the rest of each block) where they build; the rows "without native
kernels" time the same fast path in its PyTorch formulation (oneDNN's direct convolutions). The
320x180 section ends with the network's convolutions alone as oneDNN runs them, at their real
shapes with nothing in between: its ratio to the official eager row is the most any path built
from those direct convolutions can gain on this machine, which the native kernels get past by
doing fewer multiplications.

Run: ``python benchmarks/bench_fast.py [--runs 5] [--warmup 2] [--threads N] [--quick]
[--no-large] [--fp32-only]`` (``--quick``: only the 320x180 section, without compilation;
``--no-large``: only the 320x180 section; ``--fp32-only``: no bfloat16 rows).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lightsr.inference.tiling import pad_to_multiple
from lightsr.inference.upscaler import Upscaler
from lightsr.models.archs.safmn import SAFMN
from lightsr.native.fast import (
    CompileMode,
    FastRunner,
    FastSAFMN,
    _conv_gelu,
)
from lightsr.native.ops import unavailable_reason as native_unavailable
from lightsr.runtime import cpu_name, cpu_supports_bf16

CPU = torch.device("cpu")
Fn = Callable[[], object]


@dataclass
class Row:
    name: str
    times: list[float]
    first: float
    peak_mb: float | None

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_memory_mb(fn: Fn) -> float | None:
    """Increase of the resident high-water mark (VmHWM) over one call of ``fn``, in MiB.

    Freed heap memory is first returned to the system (glibc ``malloc_trim``), so that memory
    the allocator re-uses shows up. onnxruntime keeps its own arena resident between calls: its
    row counts only what the arena had to grow by (about 0 after warm-up).
    """
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    except OSError:
        return None
    before = _status_kib("VmRSS")
    out = fn()
    peak = _status_kib("VmHWM")
    del out
    return None if before is None or peak is None else (peak - before) / 1024


def measure(paths: list[tuple[str, Callable[[], Fn | None]]], runs: int, warmup: int) -> list[Row]:
    """Build and warm up every path, then time them round-robin, ``runs`` rounds.

    Interleaving spreads slow changes of the machine's load (other processes share its cores)
    over all rows alike, so the ratios stay meaningful when the absolute times drift.
    """
    built: list[tuple[str, Fn, float]] = []
    for name, build in paths:
        fn = build()
        if fn is None:
            continue
        t = time.perf_counter()
        fn()  # the first call compiles, where the path compiles
        first = time.perf_counter() - t
        for _ in range(max(0, warmup - 1)):
            fn()
        built.append((name, fn, first))
        print(f"  ready: {name} (first call {first:.1f} s)", file=sys.stderr, flush=True)
    times: list[list[float]] = [[] for _ in built]
    for _ in range(runs):
        for i, (_, fn, _) in enumerate(built):
            t = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t)
    return [
        Row(name, ts, first, peak_memory_mb(fn))
        for (name, fn, first), ts in zip(built, times, strict=True)
    ]


def print_table(title: str, rows: list[Row]) -> None:
    base = rows[0].median
    print(f"\n{title}")
    header = (
        f"| {'path':<52} | {'median ms':>9} | {'min-max ms':>13} | {'1st call s':>10} "
        f"| {'peak MB':>7} | {'vs eager':>8} |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        spread = f"{min(r.times) * 1e3:.0f}-{max(r.times) * 1e3:.0f}"
        peak = f"{r.peak_mb:.0f}" if r.peak_mb is not None else "n/a"
        print(
            f"| {r.name:<52} | {r.median * 1e3:>9.1f} | {spread:>13} | {r.first:>10.1f} "
            f"| {peak:>7} | {base / r.median:>7.2f}x |"
        )


# --------------------------------------------------------------------------------------------


def official_eager(model: SAFMN, x: torch.Tensor) -> Fn:
    def run() -> torch.Tensor:
        with torch.inference_mode():
            return model(x)

    return run


def official_switches(model: SAFMN, x: torch.Tensor) -> Fn:
    """The off-the-shelf switches: channels-last, bf16 autocast, torch.compile."""
    m = model.to(memory_format=torch.channels_last)
    compiled = torch.compile(m)
    xc = x.contiguous(memory_format=torch.channels_last)

    def run() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return compiled(xc)

    return run


def fast_path(
    model: SAFMN,
    x: torch.Tensor,
    dtype: torch.dtype,
    compile: CompileMode,
    residual_dtype: torch.dtype = torch.float32,
    native: bool | None = None,
) -> Fn:
    fast = FastSAFMN(model, dtype=dtype, residual_dtype=residual_dtype, native=native)
    runner = FastRunner(fast, CPU, compile=compile)
    h, w = x.shape[-2:]
    s = model.scale

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return runner(pad_to_multiple(x, 8))[..., : h * s, : w * s]

    return run


def convolutions_alone(model: SAFMN, x: torch.Tensor) -> Fn:
    """Only the convolutions of the fast path's PyTorch formulation, as oneDNN runs them
    (channels-last float32).

    Every convolution of the network at its real shape (the head, per block the four depth-wise
    3x3 convolutions at 1, 1/2, 1/4 and 1/8 resolution, the 1x1 aggregation, the 3x3 expansion
    with its fused GELU and the 1x1 projection, and the tail), with nothing in between: no
    LayerNorm, pooling, upsampling, concatenation, modulation or residual. Its speed-up over the
    official eager row is therefore an upper bound on any path built from these direct
    convolutions (lightsr's, compiled or not) on this machine.
    """
    cl = torch.channels_last
    h, w = pad_to_multiple(x, 8).shape[-2:]
    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int, bool]] = []

    def add(conv: torch.nn.Conv2d, size: tuple[int, int], gelu: bool = False) -> None:
        t = torch.rand(1, conv.in_channels, *size).contiguous(memory_format=cl)
        wt = conv.weight.detach().contiguous(memory_format=cl)
        bias = conv.bias.detach()
        calls.append((t, wt, bias, conv.padding[0], conv.groups, gelu))

    add(model.to_feat, (h, w))
    for blk in model.feats:
        for i, dw in enumerate(blk.safm.mfr):
            add(dw, (h // 2**i, w // 2**i))
        add(blk.safm.aggr, (h, w))
        add(blk.ccm.ccm[0], (h, w), gelu=True)
        add(blk.ccm.ccm[2], (h, w))
    add(model.to_img[0], (h, w))

    def run() -> None:
        with torch.inference_mode():
            for t, wt, bias, pad, groups, gelu in calls:
                if gelu:  # the fast path's own call: oneDNN's convolution with a GELU post-op
                    _conv_gelu(t, wt, bias, pad)
                else:
                    torch.nn.functional.conv2d(t, wt, bias, padding=pad, groups=groups)

    return run


def onnxruntime_path(model: SAFMN, x: torch.Tensor, folder: Path) -> Fn | None:
    try:
        from lightsr.inference.onnx import OnnxRuntimeModel, export_onnx

        path = export_onnx(model, folder / "safmn.onnx", verify=False).path
        net = OnnxRuntimeModel(path)
    except Exception as exc:  # onnx not installed, ...
        print(f"  onnxruntime row skipped: {exc}", file=sys.stderr)
        return None
    h, w = x.shape[-2:]
    s = model.scale

    def run() -> torch.Tensor:
        return net(pad_to_multiple(x, 8))[..., : h * s, : w * s]

    return run


def tiled_upscale(
    model: SAFMN,
    img: np.ndarray,
    tile: int,
    *,
    fast: bool,
    precision: str = "fp32",
    compile: CompileMode = "on",
) -> Fn:
    up = Upscaler(
        model,
        scale=model.scale,
        name="safmn-x4",
        arch="safmn",
        config={},
        device="cpu",
        precision=precision,
        fast=fast,
        compile=compile,
    )

    def run() -> np.ndarray:
        return up.upscale(img, tile=tile)

    return run


# --------------------------------------------------------------------------------------------


def accuracy(runs_compiled: bool) -> None:
    shared = Path(os.environ.get("LIGHTSR_SHARED", Path(__file__).resolve().parents[2] / "shared"))
    ckpt = shared / "weights" / "safmn" / "SAFMN_DF2K_x2.pth"
    lr_dir = shared / "datasets" / "Set5" / "LR_bicubic" / "X2"
    if not ckpt.is_file() or not lr_dir.is_dir():
        print(f"\naccuracy: skipped ({shared} has no SAFMN_DF2K_x2.pth / Set5)")
        return
    from lightsr.inference.io import read_image
    from lightsr.models.checkpoint import load_checkpoint

    plain, _ = load_checkpoint(ckpt)
    plain.eval()
    crops = []
    for f in sorted(lr_dir.glob("*.png")):
        img = read_image(f)
        h, w = img.shape[:2]
        y, x = (h - 112) // 2, (w - 112) // 2
        crops.append(img[y : y + 112, x : x + 112].astype(np.float32) / 255.0)
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
    with torch.inference_mode():
        ref = plain(batch).clamp(0, 1)
    f32, bf16 = torch.float32, torch.bfloat16
    paths: list[tuple[str, torch.dtype, CompileMode, torch.dtype]] = [
        ("fast fp32 (eager)", f32, "off", f32),
        ("fast bf16 (eager)", bf16, "off", f32),
        ("fast bf16, bf16 residual (eager)", bf16, "off", bf16),
    ]
    if runs_compiled:
        paths += [
            ("fast fp32 + compile", f32, "on", f32),
            ("fast bf16 + compile", bf16, "on", f32),
            ("fast bf16, bf16 residual + compile", bf16, "on", bf16),
        ]
    print(
        "\naccuracy against the plain float32 model (SAFMN x2 real weights, Set5 x2 LR, "
        "5 crops of 112x112; output clamped to [0, 1])"
    )
    print(f"| {'path':<34} | {'max abs diff':>12} | {'min PSNR dB':>11} | {'mean PSNR dB':>12} |")
    print(f"|{'-' * 36}|{'-' * 14}|{'-' * 13}|{'-' * 14}|")
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = plain(batch).float().clamp(0, 1)
        results = [("plain + bf16 autocast (reference)", auto)]
        for name, dt, comp, rd in paths:
            runner = FastRunner(FastSAFMN(plain, dtype=dt, residual_dtype=rd), CPU, compile=comp)
            results.append((name, runner(batch).clamp(0, 1)))
    for name, out in results:
        d = out - ref
        mse = d.double().pow(2).mean(dim=(1, 2, 3))
        psnr = 10 * torch.log10(1 / mse.clamp_min(1e-30))
        print(
            f"| {name:<34} | {d.abs().max().item():>12.2e} | {psnr.min().item():>11.1f} "
            f"| {psnr.mean().item():>12.1f} |"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="320x180 only, no compilation")
    ap.add_argument("--no-accuracy", action="store_true")
    ap.add_argument(
        "--no-large", action="store_true", help="only the 320x180 section (with compilation)"
    )
    ap.add_argument(
        "--fp32-only",
        action="store_true",
        help="skip the bfloat16 rows (minutes of emulation on CPUs without native bfloat16)",
    )
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)
    cpu = cpu_name()
    load0 = os.getloadavg()
    print(
        f"# lightsr fast-path benchmark: {cpu}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}, native bf16: {cpu_supports_bf16()}, runs {args.runs} after "
        f"{args.warmup} warm-up, load average at start {load0[0]:.2f}"
    )
    reason = native_unavailable()
    print(f"# native kernels: {'in use for float32' if reason is None else reason}")
    torch.manual_seed(0)
    model = SAFMN(upscaling_factor=4).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    r, w = args.runs, args.warmup

    quick = args.quick

    def rows(
        paths: list[tuple[str, Callable[[], Fn | None]]],
    ) -> list[tuple[str, Callable[[], Fn | None]]]:
        """The rows to time: without the bfloat16 ones under --fp32-only."""
        return [p for p in paths if not (args.fp32_only and "bf16" in p[0])]

    f32, bf16 = torch.float32, torch.bfloat16

    # 1. 320x180 input (paper Table 2)
    x = torch.rand(1, 3, 180, 320)
    tmp = tempfile.TemporaryDirectory()
    paths: list[tuple[str, Callable[[], Fn | None]]] = [
        ("official formulation, eager fp32", lambda: official_eager(model, x)),
        ("official + channels_last + bf16 autocast + compile",
         lambda: official_switches(SAFMN(upscaling_factor=4).eval(), x)),
        ("lightsr fast fp32 (eager)", lambda: fast_path(model, x, f32, "off")),
        ("lightsr fast bf16 (eager)", lambda: fast_path(model, x, bf16, "off")),
        ("lightsr fast fp32 + compile", lambda: fast_path(model, x, f32, "on")),
        ("lightsr fast fp32 without native kernels (eager)",
         lambda: fast_path(model, x, f32, "off", native=False)),
        ("lightsr fast fp32 without native kernels + compile",
         lambda: fast_path(model, x, f32, "on", native=False)),
        ("lightsr fast bf16 + compile", lambda: fast_path(model, x, bf16, "on")),
        ("lightsr fast bf16, bf16 residual + compile",
         lambda: fast_path(model, x, bf16, "on", bf16)),
        ("lightsr onnxruntime fp32 (CPU EP)", lambda: onnxruntime_path(model, x, Path(tmp.name))),
        ("bound of direct convs: oneDNN's convolutions alone",
         lambda: convolutions_alone(model, x)),
    ]  # fmt: skip
    if quick:
        paths = [p for p in paths if "compile" not in p[0]]
    print_table("## SAFMN x4, input 320x180 (output 1280x720)", measure(rows(paths), r, w))
    tmp.cleanup()

    if not quick and not args.no_large:
        # 2. 1280x720 input
        x2 = torch.rand(1, 3, 720, 1280)
        paths = [
            ("official formulation, eager fp32", lambda: official_eager(model, x2)),
            ("lightsr fast fp32 + compile", lambda: fast_path(model, x2, f32, "on")),
            ("lightsr fast bf16 + compile", lambda: fast_path(model, x2, bf16, "on")),
        ]
        print_table("## SAFMN x4, input 1280x720 (output 5120x2880)", measure(rows(paths), r, w))

        # 3. tiled, 4K output
        img = np.random.default_rng(0).integers(0, 256, (540, 960, 3), dtype=np.uint8)
        t = 256
        paths = [
            ("official formulation, eager fp32 (Upscaler)",
             lambda: tiled_upscale(model, img, t, fast=False)),
            ("lightsr fast fp32 + compile (Upscaler)",
             lambda: tiled_upscale(model, img, t, fast=True)),
            ("lightsr fast bf16 + compile (Upscaler)",
             lambda: tiled_upscale(model, img, t, fast=True, precision="bf16")),
        ]  # fmt: skip
        print_table(
            f"## SAFMN x4, 960x540 uint8 image -> 3840x2160, tiles of {t} (+32 overlap), "
            "whole upscale() call",
            measure(rows(paths), r, w),
        )
    if not args.no_accuracy:
        accuracy(runs_compiled=not args.quick)
    print(f"\nload average at end: {os.getloadavg()[0]:.2f} (other processes share the cores)")


if __name__ == "__main__":
    main()
