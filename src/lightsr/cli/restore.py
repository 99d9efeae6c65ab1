"""`lightsr restore`: denoise or de-JPEG images, folders and globs with a scale-1 model; and
the restoration half of `lightsr eval` (``--task denoise|jpeg|depth``).

The batch logic is :func:`lightsr.restoration.api.restore_files`, which is
:func:`lightsr.inference.batch.upscale_files` with a restorer: the same inputs, output naming,
skipping of earlier outputs, per-file failures (exit 1) and atomic writes as ``upscale``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lightsr.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_command,
    add_precision_flag,
    add_tile_flags,
)
from lightsr.errors import LightSRError

DESCRIPTION = """\
Restore image files, folders (searched recursively) and globs with a scale-1 model:
--task denoise (Gaussian-like noise) or --task jpeg (JPEG blocks and ringing).

Outputs are named <stem>_<task>.<ext> (the input's format; PNG for --task jpeg, since
writing JPEG again would bring the blocks back) and written next to each input, or
under the -o folder. A bad image is reported on stderr and the batch goes on (exit 1).
Earlier outputs (photo_denoise.png beside photo.png) are not taken as inputs;
--include-outputs processes them. Same rules as `lightsr upscale`.

--model takes a checkpoint (.safetensors/.pth, e.g. exported by `lightsr train`) or a
name from `lightsr models`. Depth maps are upscaled, not restored: use `lightsr upscale`
with a depth model."""

#: Flags passed to :func:`~lightsr.restoration.api.restore_files` under the same names.
_BATCH_OPTIONS = (
    "output", "suffix", "ext", "tile", "tile_overlap", "quality", "skip_existing",
    "include_outputs", "max_pixels",
)  # fmt: skip


def restore(args: argparse.Namespace) -> int:
    from lightsr.cli.upscale import _Report
    from lightsr.restoration.api import load_restorer, restore_files

    def loader() -> Any:
        return load_restorer(
            args.model, task=args.task, device=args.device, precision=args.precision
        )

    with _Report(args.quiet, title=f"restore {args.task}") as report:
        options = {name: getattr(args, name) for name in _BATCH_OPTIONS}
        summary = restore_files(args.inputs, loader, task=args.task, progress=report, **options)
    m = summary.model
    print(
        f"{len(summary.done)} done, {len(summary.skipped)} skipped, {len(summary.failed)} failed "
        f"in {summary.seconds:.1f} s ({m.name}, {args.task}, {m.device}, {m.precision})",
        file=sys.stderr,
    )
    return EXIT_FAILED if summary.failed else EXIT_OK


def _method(args: argparse.Namespace, scale: int) -> tuple[Any, str]:
    """(restore function or anchor name, row label) for ``lightsr eval --task``."""
    from lightsr.restoration.evaluate import ANCHORS

    if args.weights and args.model:
        raise LightSRError("give either --model or --weights, not both")
    source = args.weights or args.model
    if not source:
        raise LightSRError("--model NAME_OR_PATH, --weights PATH or an anchor "
                           f"({', '.join(ANCHORS)}) is required")  # fmt: skip
    if args.model and args.model.lower() in ANCHORS:
        if args.self_ensemble:
            raise LightSRError(f"--self-ensemble has no meaning for --model {args.model}: drop it")
        return args.model.lower(), args.model.lower()
    from lightsr.inference.upscaler import load_model

    up = load_model(source, device=args.device, precision=args.precision, fast=args.fast)
    if up.scale != scale:
        what = "restoration needs a scale-1 model" if scale == 1 else f"depth x{scale}"
        raise LightSRError(f"--model {source}: the model is x{up.scale}; {what}")
    tile, overlap = args.tile, args.tile_overlap

    def fn(x: Any) -> Any:
        return up.upscale(x, tile=tile, tile_overlap=overlap)

    if args.self_ensemble:
        from lightsr.evaluation.evaluate import geometric_ensemble
        from lightsr.restoration.tasks import JPEG_GRID

        period = JPEG_GRID if args.task == "jpeg" else 1  # flips keep the blocks on the grid
        return (lambda x: geometric_ensemble(fn, x, period)), up.name + "+"
    return fn, up.name


def run_task_eval(args: argparse.Namespace) -> int:
    """``lightsr eval --task denoise|jpeg|depth``: the task's protocol, the anchors, and the
    published reference rows (:mod:`lightsr.restoration.evaluate`)."""
    from lightsr.restoration.evaluate import evaluate_task, format_task_results, task_for_eval

    task, scale = task_for_eval(args.task, sigma=args.sigma, quality=args.quality, scale=args.scale)
    if args.lr_dir or args.degrade or args.no_reference or args.metrics:
        raise LightSRError(
            "--task: --lr-dir, --degrade, --no-reference and --metrics are "
            "for super-resolution evaluation; drop them"
        )
    method, name = _method(args, scale)
    datasets = args.datasets or (["Middlebury"] if task.name == "depth" else ["CBSD68"])
    quiet = args.quiet or not sys.stderr.isatty()

    def on_image(ds: str, done: int, total: int) -> None:
        if not quiet:
            print(f"\r{ds} {task.name}: {done}/{total}", end="", file=sys.stderr, flush=True)

    results = evaluate_task(
        method,
        name,
        datasets,
        task,
        scale=scale,
        data_root=Path(args.data_root) if args.data_root else None,
        seed=args.seed,
        save_images=Path(args.save_images) if args.save_images else None,
        on_image=on_image,
        limit=args.limit,
    )
    if not quiet:
        print(file=sys.stderr)
    if args.json:
        print(json.dumps([r.record(per_image=args.per_image) for r in results], indent=2))
    else:
        print(format_task_results(results))
    return EXIT_OK


def add_task_eval_flags(p: argparse.ArgumentParser) -> None:
    """``--task``, ``--sigma``, ``--quality``, ``--seed`` of ``lightsr eval``."""
    g = p.add_argument_group("restoration tasks (lightsr.restoration)")
    g.add_argument(
        "--task", default="sr", choices=("sr", "denoise", "jpeg", "depth"),
        help="sr (default: super-resolution); denoise --sigma S; jpeg --quality Q; depth "
        "--scale 4 (RMSE in map units). Anchors: --model identity (the degraded input), "
        "cbm3d (denoise), bicubic (depth); datasets default to CBSD68 / Middlebury",
    )  # fmt: skip
    g.add_argument("--sigma", type=float, help="denoise: noise level on the 0-255 scale (25)")
    g.add_argument("--quality", type=int, help="jpeg: JPEG quality 1-100 (20)")
    g.add_argument("--seed", type=int, default=0, help="denoise: noise seed (0)")


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "restore", restore, "denoise or remove JPEG artifacts (scale-1 models)", DESCRIPTION
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("--task", required=True, choices=("denoise", "jpeg"), help="what to remove")
    p.add_argument("--model", metavar="NAME_OR_PATH", help="checkpoint file or model name")
    p.add_argument(
        "-o", "--output",
        help="output folder, or an image file name for one input image; default: next to "
        "each input",
    )  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    add_precision_flag(p)
    add_tile_flags(p)
    p.add_argument("--suffix", help="appended to output names (default _<task>)")
    p.add_argument("--ext", help="output format: auto (as input), png, jpg... (default: auto; "
                   "png for --task jpeg)")  # fmt: skip
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP output quality (95)")
    p.add_argument("--skip-existing", action="store_true", help="skip outputs that exist")
    p.add_argument(
        "--include-outputs", action="store_true",
        help="also restore earlier outputs (photo_denoise.png beside photo.png)",
    )  # fmt: skip
    p.add_argument("--max-pixels", type=int, help="refuse larger inputs (decompression bombs)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
