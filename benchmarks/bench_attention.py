"""Latency of lightsr's window-attention models (SwinIR-light x4, UPS-S x4) against the official
formulation, eager float32 on the CPU.

For each model and input size, one table row: the official formulation (lightsr's formulation
before the fast path, kept in :mod:`_reference_swinir`: all windows batched into
(B*nW, heads, 64, 64) scores, the position bias gathered per layer, cyclic shifts by
``torch.roll``; its outputs equal the official SwinIR module's) and the modules as they run now
(windows gathered in one index, position bias and masks prepared once per shape, scores formed
window chunk by window chunk in place), each the median (min-max) of ``--runs`` calls after one
untimed call, the two timed alternately; their ratio; and the largest |difference| of the
outputs. Random weights (the cost does not depend on them), batch 1, ``torch.inference_mode``.
The models pad a 320x180 input to 320x184 (window 8) and crop.

Run: ``python benchmarks/bench_attention.py [--runs 5] [--threads N] [--sizes 320x180,160x96]
[--models swinir-light-x4,ups-s-x4]``
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _reference_swinir import reference_forward

from lightsr.models.registry import build_model


def _timed(fn: Callable[[], torch.Tensor]) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _cell(times: list[float]) -> str:
    return f"{statistics.median(times):7.3f} ({min(times):.3f}-{max(times):.3f})"


def bench(name: str, size: tuple[int, int], runs: int) -> str:
    """One row: official and current median times, ratio, max |diff|."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    w, h = size
    x = torch.rand(1, 3, h, w)
    with torch.inference_mode():
        ref, new = reference_forward(model, x), model(x)  # untimed: caches, allocator
        diff = (ref - new).abs().max().item()
        t_ref, t_new = [], []
        for _ in range(runs):
            t, _ = _timed(lambda: reference_forward(model, x))
            t_ref.append(t)
            t, _ = _timed(lambda: model(x))
            t_new.append(t)
    ratio = statistics.median(t_ref) / statistics.median(t_new)
    return f"{name:16s} {w}x{h:<4d} {_cell(t_ref)}  {_cell(t_new)}  {ratio:5.2f}x  {diff:.1e}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--sizes", default="320x180,160x96", help="WxH,...")
    ap.add_argument("--models", default="swinir-light-x4,ups-s-x4")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{os.cpu_count()} CPUs, eager float32, median (min-max) of {args.runs} runs, seconds"
    )
    head = f"{'model':16s} {'input':8s} {'official':>24s}  {'lightsr':>24s}  {'ratio':>6s}"
    print(head + "  max|diff|")
    for name in args.models.split(","):
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            print(bench(name, (w, h), args.runs), flush=True)


if __name__ == "__main__":
    main()
