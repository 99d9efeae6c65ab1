"""`lightsr analyze {lam,cka,features}`: look inside a model (lightsr.analysis)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from lightsr.cli.common import EXIT_OK, EXIT_USAGE, Parser, add_command, err
from lightsr.errors import LightSRError

ANALYZE_SUMMARY = "look inside a model: LAM attribution + DI, layer CKA, feature/attention maps"
ANALYZE_DETAILS = (
    "Figures (PNG) and the numbers (JSON) in OUTDIR, for a named model with bundled weights or "
    "a checkpoint. Inputs are LR images up to 256x256 (--from-hr: HR images, made into the "
    "benchmark LR input by MATLAB bicubic). Layers are module names (see --list-layers) or "
    "globs (* within one dotted name part, ** across), with @in (input), @q/@k (attention "
    "projections) or @attn (attention weights). docs/analysis.md has the details."
)


def _model(args: argparse.Namespace) -> str:
    if args.model and args.weights:
        raise LightSRError("give --model NAME or --weights PATH, not both")
    return args.weights or args.model or "safmn-x4"


def _listed_layers(args: argparse.Namespace) -> bool:
    """Print the model's module names for ``--list-layers`` (True); else check that IMAGEs and
    ``-o OUTDIR`` were given (they are optional only beside ``--list-layers``)."""
    if args.list_layers:
        from lightsr.analysis._common import load_network

        net = load_network(_model(args), scale=args.scale, device=args.device)
        for name, module in net.model.named_modules():
            if name:
                print(f"{name}  ({type(module).__name__})")
        return True
    if not args.images or not args.out:
        raise LightSRError("name IMAGE files and -o OUTDIR (or ask only for --list-layers)")
    return False


def _run(
    args: argparse.Namespace, run: Callable[..., dict[str, Any]], what: Any, **options: Any
) -> dict[str, Any]:
    """``run(model, images, OUTDIR, what, ...)`` with the model, input and device flags every
    analysis takes (:func:`_common_flags`) and its own ``options``."""
    model, images, out = _model(args), args.images, args.out
    where = {"scale": args.scale, "from_hr": args.from_hr, "device": args.device}
    return run(model, images, out, what, **where, **options)


def lam(args: argparse.Namespace) -> int:
    from lightsr.analysis.lam import run_lam

    data = _run(
        args,
        run_lam,
        args.window,
        sigma=args.sigma,
        steps=args.steps,
        kernel_size=args.kernel_size,
        objective=args.objective,
        batch=args.batch,
    )
    print(json.dumps({k: data[k] for k in ("model", "di") if k in data}))
    return EXIT_OK


def cka(args: argparse.Namespace) -> int:
    if _listed_layers(args):
        return EXIT_OK
    from lightsr.analysis.cka import run_cka

    data = _run(args, run_cka, args.layers, samples=args.samples, seed=args.seed)
    print(
        f"{data['model']}: {len(data['layers'])} layers, {data['examples']} pixels -> "
        f"{args.out}/cka.json, cka.png"
    )
    return EXIT_OK


def features(args: argparse.Namespace) -> int:
    if _listed_layers(args):
        return EXIT_OK
    from lightsr.analysis.features import run_features

    query = tuple(args.query) if args.query else None
    data = _run(args, run_features, args.layers, block=args.block, query=query, reduce=args.reduce)
    print(f"{data['model']}: {', '.join(data['layers'])} -> {args.out}/features.json")
    return EXIT_OK


def _common_flags(p: argparse.ArgumentParser, layers: bool = False) -> None:
    """Inputs, OUTDIR, the model group and --from-hr; with ``layers``, --layers and
    --list-layers too (IMAGE and -o are then optional: --list-layers needs neither)."""
    p.add_argument(
        "images",
        nargs="*" if layers else "+",
        metavar="IMAGE",
        help="input images (LR, at most 256x256)",
    )
    p.add_argument(
        "-o",
        "--out",
        required=not layers,
        metavar="OUTDIR",
        help="folder for the PNG figures and the JSON",
    )
    g = p.add_argument_group("model")
    g.add_argument("--model", help="named model with bundled weights (default safmn-x4)")
    g.add_argument("--weights", help="checkpoint file (.pth/.pt/.safetensors); arch detected")
    g.add_argument("--scale", type=int, choices=(2, 3, 4), help="scale for names without one")
    g.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N")
    p.add_argument(
        "--from-hr",
        action="store_true",
        help="the images are HR: analyse imresize(modcrop(hr, s), 1/s) (as LAM)",
    )
    if not layers:
        return
    p.add_argument(
        "--layers",
        nargs="+",
        metavar="NAME[@PART]",
        help="module names or globs, @in/@q/@k/@attn for parts (default: see docs)",
    )
    p.add_argument(
        "--list-layers",
        action="store_true",
        help="print the model's module names and exit (no IMAGE needed)",
    )


def _no_command(args: argparse.Namespace) -> int:
    err("lightsr analyze: name an analysis: lam, cka or features (see lightsr analyze --help)")
    return EXIT_USAGE


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(sub, "analyze", _no_command, ANALYZE_SUMMARY, ANALYZE_DETAILS)
    kinds = p.add_subparsers(dest="analysis", metavar="ANALYSIS", parser_class=Parser)

    q = add_command(
        kinds,
        "lam",
        lam,
        "Local Attribution Map of an output window, and its DI",
        "LAM (Gu and Dong, CVPR 2021): path-integrated gradients "
        "along a progressive blur, for one output window; DI = (1 - Gini) x 100.",
    )
    _common_flags(q)
    q.add_argument(
        "--window",
        nargs=3,
        type=int,
        action="append",
        required=True,
        metavar=("X", "Y", "SIZE"),
        help="output window: column, row, side in output pixels (repeatable)",
    )
    q.add_argument("--steps", type=int, default=50, help="path intervals (LAM: 50)")
    q.add_argument("--sigma", type=float, default=1.2, help="baseline blur sigma (LAM: 1.2)")
    q.add_argument("--kernel-size", type=int, default=9, help="blur kernel side (LAM: 9)")
    q.add_argument(
        "--objective",
        choices=("gradient", "sum"),
        default="gradient",
        help="gradient: LAM's sum of gradient magnitudes; sum: of pixel values",
    )
    q.add_argument("--batch", type=int, default=4, help="path points per backward (4)")

    c = add_command(
        kinds,
        "cka",
        cka,
        "linear CKA between layers over a set of images",
        "Linear CKA (Kornblith et al., ICML 2019) between layers, "
        "pixels of all images as examples.",
    )
    _common_flags(c, layers=True)
    c.add_argument("--samples", type=int, default=4096, help="pixels drawn per image (4096)")
    c.add_argument("--seed", type=int, default=0, help="seed of the pixel draw (0)")

    f = add_command(
        kinds,
        "features",
        features,
        "channel-reduced feature and attention maps",
        "Feature maps (mean or first principal component over "
        "channels) and attention maps of a query pixel, beside the input.",
    )
    _common_flags(f, layers=True)
    f.add_argument(
        "--block",
        type=int,
        help="block (SAFMN) or attention layer (SwinIR/UPS) for the default layers",
    )
    f.add_argument(
        "--query",
        nargs=2,
        type=int,
        metavar=("X", "Y"),
        help="input pixel whose attention map @attn layers show (default: centre)",
    )
    f.add_argument(
        "--reduce",
        choices=("mean", "pca"),
        default="mean",
        help="channel reduction (mean, or first principal component)",
    )
