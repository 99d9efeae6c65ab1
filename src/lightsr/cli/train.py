"""`lightsr train` and `lightsr export-weights`."""

from __future__ import annotations

import argparse
from pathlib import Path

from lightsr.cli.common import EXIT_OK, add_command
from lightsr.errors import LightSRError

TRAIN_SUMMARY = "train a model from a YAML recipe (configs/); resume a run; DDP under torchrun"
TRAIN_DETAILS = (
    "Train from a YAML recipe (see configs/README.md). Under `torchrun "
    "--nproc_per_node=N` it trains with DistributedDataParallel; data.batch_size is per "
    "process."
)
EXPORT_WEIGHTS_SUMMARY = (
    "write a training run's EMA weights as .safetensors for upscale/eval --weights"
)


def train(args: argparse.Namespace) -> int:
    """Load and resolve the recipe (CONFIG.yaml, or on ``--resume`` without one the run's
    ``config.yaml``) plus ``--set``; on resume, the keys named by ``--set`` are the changes to
    the checkpoint's stored config that the loop accepts (any other difference is refused)."""
    from lightsr.training.config import dump_config, load_config, override_keys

    config = args.config
    if config is None:
        if args.resume is None:
            raise LightSRError("give a CONFIG.yaml, or --resume RUN_DIR to continue a run")
        config = Path(args.resume) / "config.yaml"
        if not config.is_file():
            raise LightSRError(f"{args.resume}: not a run directory (no config.yaml)")
    overrides = args.set or []
    cfg = load_config(config, overrides)
    if args.dry_run:
        from lightsr.runtime import shared_root

        print(dump_config(cfg), end="")
        print(f"# ${{LIGHTSR_SHARED}} = {shared_root().resolve()}")
        return EXIT_OK
    from lightsr.training.loop import train

    train(cfg, resume=args.resume, quiet=args.quiet, accept=override_keys(overrides))
    return EXIT_OK


def export_weights(args: argparse.Namespace) -> int:
    from lightsr.training.loop import export_weights

    path = export_weights(args.run, args.output, checkpoint=args.checkpoint, weights=args.weights)
    print(f"wrote {path} ({args.weights} weights of {args.run}, {args.checkpoint} checkpoint)")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "train", train, TRAIN_SUMMARY, TRAIN_DETAILS)
    p.add_argument("config", nargs="?", metavar="CONFIG.yaml", help="the recipe")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a value, e.g. --set optim.lr=2e-4 --set data.hr_dirs=[a,b] (repeatable)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue this run from its last checkpoint (with CONFIG.yaml, or the run's "
        "config.yaml); a value that differs from the checkpoint's config is refused unless "
        "--set names its key",
    )
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no console output")
    p = add_command(sub, "export-weights", export_weights, EXPORT_WEIGHTS_SUMMARY)
    p.add_argument("run", metavar="RUN_DIR", help="run directory (or a checkpoint .pt file)")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    p.add_argument(
        "--checkpoint", default="latest", choices=("latest", "best"), help="which (latest)"
    )
    p.add_argument(
        "--weights", default="ema", choices=("ema", "model"), help="ema (default) or model"
    )
