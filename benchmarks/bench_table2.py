"""The SAFMN paper's Table 2 (memory and runtime, x4, 320x180 inputs) for lightsr's models.

Measures each model with `lightsr.evaluation.bench.bench` (random weights: cost does not depend on
them) on the CPU here and, when one is present, on CUDA: params, FLOPs (1 multiply-add = 1
FLOP), peak memory and the median runtime of several runs after warm-up (spread in brackets).
The paper's rows (RTX 3090, ``torch.cuda.max_memory_allocated`` and CUDA-synchronised timing)
are printed for reference; CPU figures are not comparable with them, CUDA figures only roughly
(another GPU, another torch). See :mod:`lightsr.evaluation.bench` for the methods.

Run: ``python benchmarks/bench_table2.py [--models safmn-x4 safmn-l-x4] [--runs 5]
[--warmup 2] [--threads N] [--precision fp32 bf16]``
"""

from __future__ import annotations

import argparse

import torch

from lightsr.evaluation.bench import BenchResult, bench
from lightsr.runtime import cpu_name

#: The paper's Table 2 (x4, 320x180 inputs, one RTX 3090): memory MB, runtime ms. Params/FLOPs
#: of SAFMN from its Table 1 (the others' are not restated in design.md).
PAPER_ROWS = [
    ("IMDN (paper)", "-", "-", "203.44", "10.22"),
    ("CARN (paper)", "-", "-", "689.83", "18.90"),
    ("LAPAR-A (paper)", "-", "-", "1811.47", "24.91"),
    ("SAFMN (paper)", "239,520", "13.55", "65.26", "10.71"),
]


def _row(r: BenchResult) -> tuple[str, ...]:
    c, rt = r.complexity, r.runtime
    assert rt is not None
    mem = f"{rt.peak_mem_mb:.2f}" if rt.peak_mem_mb is not None else "n/a"
    return (
        f"{r.model} ({rt.device}, {rt.precision})",
        f"{c.params:,}",
        f"{c.flops / 1e9:.2f}",
        mem,
        f"{rt.median_ms:.2f} ({rt.min_ms:.2f}-{rt.max_ms:.2f})",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["safmn-x4"], help="x4 names or files")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per model (5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs first (2)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--precision", nargs="+", default=["fp32"], help="fp32, bf16 (CPU/CUDA), fp16 (CUDA)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows: list[tuple[str, ...]] = list(PAPER_ROWS)
    for device in devices:
        for precision in args.precision:
            if precision == "fp16" and device == "cpu":
                continue
            for model in args.models:
                r = bench(
                    model,
                    input_size=(320, 180),
                    device=device,
                    precision=precision,
                    runs=args.runs,
                    warmup=args.warmup,
                )
                rows.append(_row(r))

    where = [f"CPU: {cpu_name()}, {torch.get_num_threads()} threads"]
    if torch.cuda.is_available():
        where.append(f"CUDA: {torch.cuda.get_device_name()}")
    print(
        f"SAFMN paper Table 2 layout: x4, 320x180 input -> 1280x720 output, batch 1; "
        f"torch {torch.__version__}; {'; '.join(where)}; median of {args.runs} runs after "
        f"{args.warmup} warm-up (min-max). Paper rows: one RTX 3090.\n"
    )
    headers = ("Method", "#Params", "#FLOPs (G)", "Memory (MB)", "Runtime (ms)")
    print("| " + " | ".join(headers) + " |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(
        "\nFLOPs: 1 multiply-add = 1 FLOP (fvcore, as the paper). Memory: CUDA "
        "max_memory_allocated (the paper's method); CPU: largest peak-RSS increase of a forward "
        "pass + weights + input (lightsr.evaluation.bench)."
    )


if __name__ == "__main__":
    main()
