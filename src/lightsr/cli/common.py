"""What every subcommand shares: exit codes, one-line errors, the model and fast-path flags."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any, NoReturn

from lightsr.inference import DEFAULT_TILE_OVERLAP

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def err(message: str) -> None:
    """One line on stderr."""
    print(f"error: {message}", file=sys.stderr)


def add_command(
    sub: argparse._SubParsersAction,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    summary: str,
    details: str | None = None,
) -> argparse.ArgumentParser:
    """Add subcommand ``name`` (``summary`` in ``lightsr --help``, ``details`` in its own) run
    by ``handler``; returns its parser for the flags."""
    p = sub.add_parser(name, help=summary, description=details or summary)
    p.set_defaults(func=handler)
    return p


def add_precision_flag(g: Any, note: str = "bf16 (CPU/CUDA), fp16 (CUDA only)") -> None:
    """``--precision fp32|bf16|fp16`` on a parser or argument group."""
    g.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help=f"fp32 (default), {note}",
    )


def add_tile_flags(p: Any) -> None:
    """``--tile N`` and ``--tile-overlap N`` (checked by the library's ``check_tiling``)."""
    p.add_argument("--tile", type=int, help="tile size in input pixels (bounds memory)")
    overlap_help = f"context around tiles ({DEFAULT_TILE_OVERLAP})"
    p.add_argument("--tile-overlap", type=int, default=DEFAULT_TILE_OVERLAP, help=overlap_help)


def load_model_from_args(args: argparse.Namespace) -> Any:
    """The :class:`~lightsr.inference.upscaler.Upscaler` that :func:`add_model_flags` describe."""
    from lightsr.inference.upscaler import load_model

    return load_model(
        args.weights or args.model,
        scale=args.scale,
        device=args.device,
        precision=args.precision,
        fast=args.fast,
        compile=args.compile,
    )


def add_model_flags(
    p: argparse.ArgumentParser,
    model: str = "named model (see `lightsr models`); default: the bundled one",
    scale: str = "upscaling factor (default 4)",
) -> None:
    """The model group: ``--model``/``--weights``/``--scale``, device, precision, fast path."""
    g = p.add_argument_group("model")
    g.add_argument("--model", help=model)
    g.add_argument("--weights", help="checkpoint file (.pth/.pt/.safetensors); arch is detected")
    g.add_argument("--scale", type=int, choices=(2, 3, 4, 8), help=scale)
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    add_precision_flag(g)
    add_fast_flags(g)


def add_fast_flags(g: argparse._ArgumentGroup) -> None:
    g.add_argument(
        "--no-fast",
        dest="fast",
        action="store_false",
        help="run the plain eager model instead of the fast path (same outputs, slower)",
    )
    g.add_argument(
        "--compile",
        default="auto",
        choices=("auto", "on", "off"),
        help="fast path: torch.compile per input shape; auto (default) once a shape has cost "
        "more time than compiling, e.g. many tiles or frames of one size",
    )


def progress_modes(quiet: bool) -> tuple[bool, bool]:
    """``(bar, lines)``: a rich bar when stdout and stderr are terminals, else plain lines on
    stdout (logs, pipes); neither with ``-q``."""
    terminal = sys.stdout.isatty() and sys.stderr.isatty()
    return not quiet and terminal, not quiet and not terminal


def start_progress_bar(title: str, rate: str, *, eta: bool = False) -> Any:
    """A started, transient rich ``Progress`` on stderr: ``title``, the bar, done/total, the
    ``rate`` column (task fields may be used in both), elapsed time, and the ETA if asked."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [
        TextColumn(title), BarColumn(), MofNCompleteColumn(), TextColumn(rate), TimeElapsedColumn()
    ]  # fmt: skip
    if eta:
        columns += [TextColumn("ETA"), TimeRemainingColumn()]
    progress = Progress(*columns, console=Console(stderr=True), transient=True)
    progress.__enter__()
    return progress
