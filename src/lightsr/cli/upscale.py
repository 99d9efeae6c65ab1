"""`lightsr upscale`: images, folders and globs through one model.

The batch logic is :func:`lightsr.inference.batch.upscale_files`; this module turns flags into
its arguments and renders its progress: a bar on a terminal, else one line per file.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from typing import Any

from lightsr.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    add_command,
    add_model_flags,
    add_tile_flags,
    load_model_from_args,
    progress_modes,
    start_progress_bar,
)
from lightsr.cli.video import add_video_flags
from lightsr.errors import LightSRError

DESCRIPTION = """\
Upscale image files, folders (searched recursively) and globs with one model.

Outputs are named <stem><suffix>.<ext> (suffix _x<scale>, the input's format) and
written next to each input, or under the -o folder, where a folder input's tree is
mirrored. A bad image is reported on stderr and the batch goes on (exit 1).

Earlier outputs are not taken as inputs: an image is left out when another input
of the same run would be written to its name (any image extension), e.g.
photo_x4.png when photo.png is an input too; so is an earlier run's output under
an -o folder inside an input folder. --include-outputs processes them.

Progress: a bar on a terminal; otherwise (piped, scripts, CI logs) one line per
finished file on stdout. -q shows neither.

The bundled SAFMN models were trained on clean (bicubic-downscaled) images: on
real photos they amplify JPEG blocks and sensor noise. A model for real-world
images is planned."""


def _model_loader(args: argparse.Namespace) -> Callable[[], Any]:
    """Check the model flags now; load the model when the batch asks for it."""
    if args.weights and args.model:
        raise LightSRError("give either --model or --weights, not both")
    if args.backend == "onnxruntime":
        if not args.onnx or args.weights or args.model:
            raise LightSRError("--backend onnxruntime runs --onnx FILE (not --model/--weights)")
        if args.precision != "fp32":
            raise LightSRError("--backend onnxruntime: the graph sets the precision (--fp16)")

        def load_onnx() -> Any:
            from lightsr.inference.onnx import load_onnx

            return load_onnx(args.onnx)

        return load_onnx
    if args.onnx:
        raise LightSRError("--onnx needs --backend onnxruntime")

    return lambda: load_model_from_args(args)


class _Report:
    """Renders a batch: a rich bar on stderr when stdout and stderr are terminals, else one
    line per finished file on stdout (flushed, so logs follow along); errors once on stderr."""

    def __init__(self, quiet: bool, title: str = "upscale x{task.fields[scale]}") -> None:
        self.bar, self.lines = progress_modes(quiet)
        self.title = title  # the bar's label (a rich format string; the task's scale is a field)
        self.progress: Any = None
        self.task: Any = None
        self.t0 = time.perf_counter()

    def __enter__(self) -> _Report:
        if self.bar:
            self.progress = start_progress_bar(f"[bold]{self.title}", "{task.fields[rate]}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def say(self, text: str) -> None:
        """One line on stderr, above the bar when there is one."""
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=sys.stderr, flush=True)

    def __call__(self, summary: Any, record: Any) -> None:
        if record is None:  # planned: say what was left out, start the bar
            n = len(summary.earlier_outputs)
            if n:
                self.say(
                    f"skipped {n} earlier output{'s' if n != 1 else ''} "
                    f"({summary.earlier_outputs_pattern}); --include-outputs to process them"
                )
            if self.progress is not None:
                self.task = self.progress.add_task(
                    "", total=summary.total, scale=summary.model.scale, rate=""
                )
            self.t0 = time.perf_counter()
            return
        i, n = len(summary.results), summary.total
        if record.status == "failed":
            self.say(f"error: {record.error}")
        elif self.lines and record.status == "skipped":
            print(f"[{i}/{n}] {record.src}: skipped, {record.dst} exists", flush=True)
        elif self.lines:
            w, h = record.output_size
            print(
                f"[{i}/{n}] {record.src} -> {record.dst} {w}x{h} {record.seconds:.2f} s", flush=True
            )
        if self.progress is not None:
            rate = f"{i / (time.perf_counter() - self.t0):.2f} img/s"
            self.progress.update(self.task, advance=1, rate=rate)


#: Flags passed to :func:`~lightsr.inference.batch.upscale_files` under the same names.
_BATCH_OPTIONS = (
    "output", "suffix", "ext", "outscale", "tile", "tile_overlap", "quality", "skip_existing",
    "include_outputs", "max_pixels", "color_fix",
)  # fmt: skip


def upscale(args: argparse.Namespace) -> int:
    from lightsr.cli.video import split_videos, upscale_videos
    from lightsr.inference.batch import upscale_files

    loader = functools.cache(_model_loader(args))  # one model for the images and the videos
    videos, images = split_videos(args.inputs)
    if videos and not images:
        return upscale_videos(args, videos, loader, 0)
    with _Report(args.quiet) as report:
        options = {name: getattr(args, name) for name in _BATCH_OPTIONS}
        summary = upscale_files(images, loader, progress=report, **options)
    m = summary.model
    print(
        f"{len(summary.done)} done, {len(summary.skipped)} skipped, {len(summary.failed)} failed "
        f"in {summary.seconds:.1f} s ({m.name}, x{m.scale}, {m.device}, {m.precision})",
        file=sys.stderr,
    )
    code = upscale_videos(args, videos, loader, summary.total) if videos else EXIT_OK
    return EXIT_FAILED if summary.failed else code


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "upscale", upscale, "upscale images, folders or globs", DESCRIPTION)
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument(
        "-o",
        "--output",
        help="output folder, or an image file name for one input image; default: next to "
        "each input",
    )
    add_model_flags(p)
    add_tile_flags(p)
    add_video_flags(p)
    p.add_argument("--outscale", type=float, help="final scale if different from the model's")
    p.add_argument("--suffix", help="appended to output names (default _x<scale>)")
    p.add_argument("--ext", default="auto", help="output format: auto (as input), png, jpg...")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (95)")
    p.add_argument("--skip-existing", action="store_true", help="skip outputs that exist")
    p.add_argument(
        "--include-outputs",
        action="store_true",
        help="also upscale earlier outputs (e.g. photo_x4.png beside photo.png), which are "
        "left out by default",
    )
    p.add_argument("--max-pixels", type=int, help="refuse larger inputs (decompression bombs)")
    p.add_argument(
        "--color-fix",
        action="store_true",
        help="keep the model's detail on the colours of a plain bicubic upscale (wavelet colour "
        "correction; for real-world models that shift colours)",
    )
    p.add_argument(
        "--backend",
        default="torch",
        choices=("torch", "onnxruntime"),
        help="torch (default) or onnxruntime (with --onnx FILE from `lightsr export`)",
    )
    p.add_argument("--onnx", metavar="FILE", help="ONNX model for --backend onnxruntime")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, no per-file lines")
