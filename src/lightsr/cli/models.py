"""`lightsr models` and `lightsr inspect`: what lightsr can load."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lightsr.cli.common import EXIT_OK


def models(args: argparse.Namespace) -> int:
    from lightsr.models.registry import MODELS, build_arch
    from lightsr.models.resolve import bundled_weights_path

    rows = []
    for name, spec in MODELS.items():
        params = sum(
            p.numel() for p in build_arch(spec.arch, scale=spec.scale, **spec.config).parameters()
        )
        bundled = bool(spec.weights and bundled_weights_path(spec.weights).is_file())
        rows.append(
            {
                "name": name,
                "arch": spec.arch,
                "scale": spec.scale,
                "params": params,
                "weights": "bundled" if bundled else "none",
                "description": spec.description,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "arch", "scale", "params", "weights", "description")
    for r in rows:
        table.add_row(
            r["name"],
            r["arch"],
            f"x{r['scale']}",
            f"{r['params']:,}",
            r["weights"],
            r["description"],
        )
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    return EXIT_OK


def _cmd_inspect(args: argparse.Namespace) -> int:
    from lightsr.models.checkpoint import load_checkpoint, read_state_dict

    path = Path(args.checkpoint)
    sd, metadata = read_state_dict(path)
    model, found = load_checkpoint(path)  # strict load: proves the detection
    info = {
        "file": str(path),
        "arch": found.arch,
        "config": found.config,
        "scale": found.scale,
        "params": sum(p.numel() for p in model.parameters()),
        "tensors": len(sd),
        "dtypes": sorted({str(v.dtype).replace("torch.", "") for v in sd.values()}),
        "metadata": metadata,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            if key == "metadata" and not value:
                continue
            print(f"{key:9s} {value:,}" if isinstance(value, int) else f"{key:9s} {value}")
    return EXIT_OK


def inspect(args: argparse.Namespace) -> int:
    from lightsr.models.checkpoint import load_checkpoint, read_state_dict

    path = Path(args.checkpoint)
    sd, metadata = read_state_dict(path)
    model, found = load_checkpoint(path)  # strict load: proves the detection
    info = {
        "file": str(path),
        "arch": found.arch,
        "config": found.config,
        "scale": found.scale,
        "params": sum(p.numel() for p in model.parameters()),
        "tensors": len(sd),
        "dtypes": sorted({str(v.dtype).replace("torch.", "") for v in sd.values()}),
        "metadata": metadata,
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            if key == "metadata" and not value:
                continue
            print(f"{key:9s} {value:,}" if isinstance(value, int) else f"{key:9s} {value}")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the named models")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=models)
    p = sub.add_parser("inspect", help="show a checkpoint's detected architecture and size")
    p.add_argument("checkpoint", help=".pth/.pt/.safetensors file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=inspect)
