"""`lightsr eval`: PSNR/SSIM (and NIQE) on benchmark sets, the papers' protocol; NIQE of
upscaled folders without ground truth (``--no-reference``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lightsr.cli.common import (
    EXIT_OK,
    add_command,
    add_model_flags,
    add_tile_flags,
    load_model_from_args,
)
from lightsr.cli.restore import add_task_eval_flags
from lightsr.errors import LightSRError

if TYPE_CHECKING:
    from lightsr.evaluation.evaluate import EvalResult


def run_eval(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lightsr.evaluation.evaluate import (
        BICUBIC_MODELS,
        evaluate,
        format_results,
        parse_degradations,
        parse_metrics,
    )

    if args.limit is not None and args.limit < 1:
        raise LightSRError(f"--limit: expected a number of images >= 1, found {args.limit}")
    if args.task != "sr":  # denoise, jpeg, depth: lightsr.restoration's protocols
        from lightsr.cli.restore import run_task_eval

        return run_task_eval(args)
    if args.sigma is not None or args.quality is not None:
        raise LightSRError("--sigma and --quality need --task denoise or --task jpeg")
    if args.weights and args.model:
        raise LightSRError("give either --model or --weights, not both")
    degradations = parse_degradations(args.degrade)
    reference = not args.no_reference
    metrics = parse_metrics(
        args.metrics or ("psnr,ssim" if reference else "niqe"), reference=reference
    )
    if args.no_reference and args.lr_dir:
        raise LightSRError(
            "--lr-dir needs a reference: with --no-reference the datasets are the inputs"
        )
    if not (args.weights or args.model):
        raise LightSRError("--model NAME, --weights PATH or --model bicubic is required")
    if args.model and args.model.lower() in BICUBIC_MODELS:
        if args.scale is None:
            raise LightSRError("--scale is required with --model bicubic")
        if args.self_ensemble:
            raise LightSRError("--self-ensemble has no meaning for bicubic")
        model, name, scale = args.model.lower(), args.model.lower(), args.scale
    else:
        up = load_model_from_args(args)
        tile, overlap = args.tile, args.tile_overlap

        def model(lr: np.ndarray) -> np.ndarray:
            return up.upscale(lr, tile=tile, tile_overlap=overlap)

        name, scale = up.name, up.scale
    quiet = args.quiet or not sys.stderr.isatty()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=quiet,
        transient=True,
    ) as progress:
        tasks: dict[str, int] = {}

        def on_image(ds: str, done: int, total: int) -> None:
            if ds not in tasks:
                tasks[ds] = progress.add_task(f"{ds} x{scale}", total=total)
            progress.update(tasks[ds], completed=done)

        results = evaluate(
            model,
            name,
            args.datasets or ["Set5", "Set14", "B100"],
            scale,
            data_root=Path(args.data_root) if args.data_root else None,
            lr_dir=Path(args.lr_dir) if args.lr_dir else None,
            ensemble=args.self_ensemble,
            save_images=Path(args.save_images) if args.save_images else None,
            on_image=on_image,
            degradations=degradations,
            metrics=metrics,
            reference=reference,
            limit=args.limit,
        )
    if args.json:
        print(json.dumps([r.record(per_image=args.per_image) for r in results], indent=2))
    elif args.csv:
        print(format_results(results, "csv"))
    elif args.markdown:
        print(format_results(results, "markdown"))
    else:
        _print_table(results, name, scale, metrics, args.degrade, reference)
    return EXIT_OK


def _print_table(
    results: list[EvalResult],
    name: str,
    scale: int,
    metrics: tuple[str, ...],
    degrade: list[str],
    ref: bool,
) -> None:
    """The rich table of ``lightsr eval``: a row per dataset, a column per metric."""
    from rich.console import Console
    from rich.table import Table

    extra = f"; LR degraded: {', '.join(degrade)}" if degrade else ""
    what = "/".join(m.upper() for m in metrics)
    if "niqe" in metrics:
        extra = "; NIQE: lower is better" + extra
    if not ref:
        extra = "; inputs upscaled, no reference" + extra
    # A short title on one line (as wide as the table must be); the details as a caption.
    title = f"{name} x{scale}"
    table = Table(
        title=title,
        title_justify="left",
        caption=f"{what} on Y, border {scale} px cropped{extra}",
        caption_justify="left",
        min_width=len(title) + 4,
    )
    for col in ("dataset", "images", *(m.upper() for m in metrics), "time"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    formats = {"psnr": "{:.2f}", "ssim": "{:.4f}", "niqe": "{:.4f}"}
    for r in results:
        scores = [formats[m].format(getattr(r, m)) for m in metrics]
        table.add_row(r.dataset, str(r.images), *scores, f"{r.seconds:.1f} s")
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub,
        "eval",
        run_eval,
        "PSNR/SSIM/NIQE on benchmark sets, as in the papers' tables",
        "PSNR/SSIM (and NIQE) on benchmark sets, as in the papers' tables; with --no-reference, "
        "NIQE of the upscaled images of folders without ground truth",
    )
    add_model_flags(
        p,
        model="named model, or bicubic / bicubic-rgb (the papers' baseline)",
        scale="scale (detected from --weights)",
    )
    p.add_argument(
        "--datasets", nargs="+", metavar="NAME_OR_DIR",
        help="benchmark names (default Set5 Set14 B100; also Urban100 Manga109; CBSD68 and "
        "Middlebury with --task) or folders of HR images (with --no-reference: folders of "
        "input images)",
    )  # fmt: skip
    p.add_argument(
        "--metrics", metavar="NAMES",
        help="comma-separated metrics from psnr, ssim, niqe (default psnr,ssim; niqe with "
        "--no-reference); NIQE is no-reference, lower is better",
    )  # fmt: skip
    p.add_argument(
        "--no-reference", action="store_true",
        help="the datasets are folders of inputs without ground truth: upscale each image and "
        "report no-reference metrics (NIQE) of the outputs",
    )  # fmt: skip
    p.add_argument(
        "--data-root",
        help="folder holding the named benchmarks (default $LIGHTSR_DATA, else "
        "$LIGHTSR_SHARED/datasets, else ../shared/datasets)",
    )
    p.add_argument("--lr-dir", help="paired LR images (<name>x<s>.png) instead of on-the-fly LR")
    p.add_argument("--self-ensemble", action="store_true", help="average 8 flips/rotations (+)")
    p.add_argument("--save-images", metavar="DIR", help="write SR images to DIR/<dataset>/")
    add_tile_flags(p)
    p.add_argument("--per-image", action="store_true", help="with --json: per-image scores")
    p.add_argument("--limit", type=int, metavar="N",
                   help="only the first N images of each dataset (sorted by name)")  # fmt: skip
    p.add_argument(
        "--degrade", action="append", default=[], metavar="KIND:LEVEL",
        help="degrade the LR first: jpeg:40, blur:1.0 (sigma), noise:10 (sigma/255), or "
        "high-order:SEED (Real-ESRGAN's second-order model makes the LR); repeatable",
    )  # fmt: skip
    add_task_eval_flags(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON records")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
