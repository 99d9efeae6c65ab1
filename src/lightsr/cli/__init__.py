"""The ``lightsr`` command line: one entry point, one small module per subcommand.

Each module (``upscale``, ``evaluate``, ``models``, ``bench``, ``export``, ``train``, ``doctor``)
has ``register(sub)``, which adds its parser with ``func`` set to its handler; the handler calls
the library. User mistakes (bad flags, bad files, unknown names) print one line and exit
non-zero; ``main(argv)`` returns the exit code so tests can call it directly. Nothing here imports
torch before a command that needs it runs, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable, Sequence

from lightsr.cli.common import EXIT_USAGE, Parser, err
from lightsr.errors import LightSRError

__all__ = ["main"]

#: Subcommand modules, in the order ``lightsr --help`` lists them.
COMMANDS = (
    "upscale",
    "serve",
    "restore",
    "evaluate",
    "models",
    "bench",
    "export",
    "train",
    "doctor",
    "analyze",
)


def build_parser() -> argparse.ArgumentParser:
    from lightsr import __version__

    parser = Parser(prog="lightsr", description="Efficient single-image super-resolution.")
    parser.add_argument("--version", action="version", version=f"lightsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMANDS:
        importlib.import_module(f"lightsr.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 some item failed, 2 usage or input error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return func(args)
    except LightSRError as exc:
        err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted")
        return 130
