"""`lightsr bench`: model cost the papers' way."""

from __future__ import annotations

import argparse
import json
import sys

from lightsr.cli.common import EXIT_OK, add_command, add_precision_flag
from lightsr.errors import LightSRError

BENCH_SUMMARY = "model cost the papers' way: params, FLOPs, activations, convs, latency, memory"
BENCH_DETAILS = (
    "Count params, FLOPs (1 multiply-add = 1 FLOP, as fvcore and the papers), "
    "activations (elements of conv outputs) and conv layers of the plain model at a "
    "1280x720 output, then time the forward pass `lightsr upscale` runs (the fast path "
    "where the model has one; --no-fast: the plain model) and measure its peak memory. "
    "The path column says which ran."
)


def bench(args: argparse.Namespace) -> int:
    from lightsr.evaluation.bench import bench, parse_size, render_table, to_markdown

    if bool(args.models) == bool(args.ntire):
        raise LightSRError("bench: give MODEL_OR_CHECKPOINT names or paths, or --ntire (not both)")
    if args.ntire and (args.output_size or args.scale is not None):
        raise LightSRError(
            "--ntire benches x4 models at a 256x256 input; drop --scale/--output-size"
        )
    output_size = parse_size(args.output_size, "--output-size") if args.output_size else None
    input_size = parse_size(args.input_size, "--input-size") if args.input_size else None
    if args.scale is not None and args.scale < 1:
        raise LightSRError(f"--scale must be >= 1, got {args.scale}")
    if args.runs < 1:
        raise LightSRError(f"--runs must be >= 1, got {args.runs}")
    if args.warmup < 0:
        raise LightSRError(f"--warmup must be >= 0, got {args.warmup}")
    options = {
        "device": args.device,
        "precision": args.precision,
        "runs": args.runs,
        "warmup": args.warmup,
        "timing": not args.no_latency,
        "fast": args.fast,
    }
    if args.ntire:
        from lightsr.evaluation.bench import NTIRE_INPUT_SIZE, bench_ntire

        results = bench_ntire(input_size=input_size or NTIRE_INPUT_SIZE, **options)
    else:
        results = [
            bench(
                source,
                scale=args.scale,
                output_size=output_size,
                input_size=input_size,
                **options,
            )
            for source in args.models
        ]
    if args.json:
        print(json.dumps([r.to_record() for r in results], indent=2))
    elif args.markdown:
        print(to_markdown(results))
    else:
        from rich.console import Console

        # Piped output is not squeezed to 80 columns: the table stays readable in logs.
        Console(width=None if sys.stdout.isatty() else 200).print(render_table(results))
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "bench", bench, BENCH_SUMMARY, BENCH_DETAILS)
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL_OR_CHECKPOINT",
        help="names from `lightsr models` (random weights) or checkpoint files",
    )
    p.add_argument(
        "--ntire",
        action="store_true",
        help="the NTIRE efficient-SR winners and entries that have weights (shared/weights, "
        "see LIGHTSR_SHARED; lightsr's SAFMN x4), at the challenges' 256x256 input",
    )
    p.add_argument("--scale", type=int, help="scale for names without one (e.g. safmn)")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--output-size",
        metavar="WxH",
        help="output size (default 1280x720, as the papers); input = ceil(W/s) x ceil(H/s)",
    )
    size.add_argument("--input-size", metavar="WxH", help="input size instead")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    add_precision_flag(p, "bf16 (CPU/CUDA autocast), fp16 (CUDA only)")
    p.add_argument("--runs", type=int, default=10, help="timed runs (10); the median is shown")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs before them (3)")
    p.add_argument(
        "--no-latency",
        action="store_true",
        help="only count (params, FLOPs, activations, convs): no timing, no memory",
    )
    p.add_argument(
        "--no-fast",
        dest="fast",
        action="store_false",
        help="time the plain eager model instead of the fast path `lightsr upscale` runs "
        "(counting always uses the plain model)",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON records")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
