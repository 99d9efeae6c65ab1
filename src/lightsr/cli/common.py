"""What every subcommand shares: exit codes, one-line errors, the model and fast-path flags."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def err(message: str) -> None:
    """One line on stderr."""
    print(f"error: {message}", file=sys.stderr)


def add_model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="named model (see `lightsr models`); default: the bundled one")
    g.add_argument("--weights", help="checkpoint file (.pth/.pt/.safetensors); arch is detected")
    g.add_argument("--scale", type=int, choices=(2, 3, 4), help="upscaling factor (default 4)")
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    g.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="fp32 (default), bf16 (CPU/CUDA), fp16 (CUDA only)",
    )
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
