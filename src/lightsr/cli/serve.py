"""`lightsr serve`: the web app (:mod:`lightsr.serve`) on this machine."""

from __future__ import annotations

import argparse
import sys

from lightsr.cli.common import EXIT_OK, add_command
from lightsr.errors import LightSRError

DESCRIPTION = """\
Upscale images from a web browser: open the address it prints, drop images, pick a
model, scale, tile, precision (and colour fix), compare before and after with a
slider, download full-resolution PNGs.

Uploads and results live in a private temporary folder that is deleted when the
server stops; file names sent by the browser are only displayed. Jobs from several
tabs run one at a time, in order. The server listens on 127.0.0.1 (this machine
only) unless --host says otherwise; on another address anyone who can reach it can
use it. Needs the serve extra: pip install 'lightsr[serve]'."""


def serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise LightSRError(
            f"lightsr serve needs the web server packages ({exc.name} is missing): "
            "pip install 'lightsr[serve]'"
        ) from exc
    from pathlib import Path

    from lightsr.serve.app import ServeConfig, run
    from lightsr.serve.jobs import Limits

    if args.weights is not None and not Path(args.weights).is_file():
        raise LightSRError(f"--weights {args.weights}: no such file")
    if args.max_upload_mb <= 0 or args.max_pixels <= 0:
        raise LightSRError("--max-upload-mb and --max-pixels: expected numbers > 0")
    limits = Limits(max_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels)
    config = ServeConfig(args.host, args.port, args.weights, args.device, limits)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"warning: listening on {args.host}: anyone who can reach this address can upload "
            "images and use this machine's CPU/GPU",
            file=sys.stderr,
        )
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"lightsr serve: http://{host}:{args.port}/  (Ctrl-C to stop)", file=sys.stderr)
    run(config)
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "serve", serve, "upscale images from a web browser", DESCRIPTION)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (8000)")
    p.add_argument(
        "--weights",
        help="also offer this checkpoint (.pth/.safetensors) on the server as the model "
        "'weights'; the browser can never name a file",
    )
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument("--max-upload-mb", type=float, default=25.0, help="largest upload in MiB (25)")
    p.add_argument(
        "--max-pixels",
        type=int,
        default=4_000_000,
        help="largest input image, width x height (4000000)",
    )
