"""`lightsr models` and `lightsr inspect`: what lightsr can load.

``lightsr models`` reads the catalog (:mod:`lightsr.models.catalog`: names, architectures,
scales, descriptions, bundled weights, paper figures, parameter counts), which imports no torch,
so the list prints at once.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightsr.cli.common import EXIT_OK, add_command

#: The text table's width when stdout is not a terminal (and its most on one).
WIDTH = 100


def model_rows() -> list[dict[str, Any]]:
    """Every named model as a record (every catalog field), grouped by architecture: the
    architectures with bundled weights first, and within one the bundled models first, then
    the catalog's order."""
    from lightsr.models.catalog import MODELS, is_bundled

    rows = [
        {
            "name": spec.name,
            "arch": spec.arch,
            "scale": spec.scale,
            "params": spec.params,
            "weights": "bundled" if is_bundled(spec) else "none",
            "weights_file": spec.weights,
            "description": spec.description,
            "config": spec.config,
            "paper": spec.paper,
        }
        for spec in MODELS.values()
    ]
    order = {r["name"]: i for i, r in enumerate(rows)}
    first_of_arch: dict[str, int] = {}
    for i, r in enumerate(rows):
        first_of_arch.setdefault(r["arch"], i)
    has_bundled = {r["arch"] for r in rows if r["weights"] == "bundled"}
    return sorted(
        rows,
        key=lambda r: (
            r["arch"] not in has_bundled,
            first_of_arch[r["arch"]],
            r["weights"] != "bundled",
            order[r["name"]],
        ),
    )


def format_table(rows: Sequence[dict[str, Any]], width: int = WIDTH) -> str:
    """The rows as plain text at most ``width`` columns wide: one block per architecture; a
    description is printed once for a run of models that share it (without the scale)."""
    name_w = max(len("model"), *(len(r["name"]) for r in rows))
    head = f"  {'model':<{name_w}}  scale     params  weights  "
    desc_w = max(20, width - len(head))
    lines = [head + "description", ""]
    arch, last_desc = None, None
    for r in rows:
        if r["arch"] != arch:
            arch, last_desc = r["arch"], None
            n = sum(1 for x in rows if x["arch"] == arch)
            bundled = sum(1 for x in rows if x["arch"] == arch and x["weights"] == "bundled")
            extra = f", {bundled} with bundled weights" if bundled else ""
            count = f"{n} model{'s' if n > 1 else ''}{extra}"
            lines += ([""] if len(lines) > 2 else []) + [f"{arch} ({count})"]
        desc = re.sub(rf",? x{r['scale']}$", "", r["description"])
        text = desc if desc != last_desc else ""
        last_desc = desc
        params = f"{r['params']:,}" if r["params"] is not None else "?"
        weights = "bundled" if r["weights"] == "bundled" else "-"
        wrapped = textwrap.wrap(text, desc_w) or [""]
        lines.append(
            f"  {r['name']:<{name_w}}  x{r['scale']:<4} {params:>10}  {weights:<7}  {wrapped[0]}"
        )
        lines += [" " * len(head) + more for more in wrapped[1:]]
    return "\n".join(line.rstrip() for line in lines)


def models(args: argparse.Namespace) -> int:
    rows = model_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    width = WIDTH
    if sys.stdout.isatty():
        width = min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)
    print(format_table(rows, width))
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
    p = add_command(sub, "models", models, "list the named models")
    p.add_argument("--json", action="store_true", help="print JSON records (every field)")
    p = add_command(sub, "inspect", inspect, "show a checkpoint's detected architecture and size")
    p.add_argument("checkpoint", help=".pth/.pt/.safetensors file")
    p.add_argument("--json", action="store_true", help="print JSON")
