"""The ``lightsr`` command line: one entry point, one thin handler per subcommand.

Every handler parses its flags and calls a library function. User mistakes (bad flags, bad files,
unknown names) print one line and exit non-zero; ``main(argv)`` returns the exit code so tests
can call it directly.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import numpy as np

from lightsr.errors import LightSRError

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _err(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# upscale


def _collect_inputs(items: Sequence[str]) -> list[tuple[Path, Path]]:
    """Expand files, folders (recursively) and globs into (file, base folder) pairs.

    The base folder is what output paths are made relative to, so a folder's tree is mirrored.
    Items that match nothing are returned as-is so they are reported as failures.
    """
    from lightsr.inference.io import IMAGE_EXTENSIONS

    found: list[tuple[Path, Path]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
            )
            found.extend((f, p) for f in files)
        elif p.exists() or not glob.has_magic(item):
            found.append((p, p.parent))
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            files = [m for m in matches if m.is_file()]
            found.extend((f, f.parent) for f in files)
            if not files:
                found.append((p, p.parent))
    unique: dict[Path, tuple[Path, Path]] = {}
    for f, base in found:
        unique.setdefault(f.resolve() if f.exists() else f, (f, base))
    return list(unique.values())


def _output_path(src: Path, base: Path, args: argparse.Namespace, single: bool, scale: int) -> Path:
    from lightsr.inference.io import IMAGE_EXTENSIONS

    suffix = args.suffix if args.suffix is not None else f"_x{scale}"
    ext = src.suffix.lower() if args.ext == "auto" else "." + args.ext.lower().lstrip(".")
    if ext not in IMAGE_EXTENSIONS:
        ext = ".png"
    if args.output is None:
        return src.with_name(f"{src.stem}{suffix}{ext}")
    out = Path(args.output)
    if single and out.suffix.lower() in IMAGE_EXTENSIONS:
        return out
    rel = src.relative_to(base) if src.is_relative_to(base) else Path(src.name)
    return out / rel.parent / f"{src.stem}{suffix}{ext}"


def _resize_output(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if out_hw[0] < img.shape[0] else cv2.INTER_CUBIC
    res = cv2.resize(img, (out_hw[1], out_hw[0]), interpolation=interp)
    return res


def _cmd_upscale(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lightsr.inference.io import read_image, write_image
    from lightsr.inference.upscaler import load_model

    if args.tile is not None and args.tile < 1:
        raise LightSRError(f"--tile must be a positive number of pixels, got {args.tile}")
    if args.tile_overlap < 0:
        raise LightSRError(f"--tile-overlap must be >= 0, got {args.tile_overlap}")
    if args.outscale is not None and args.outscale <= 0:
        raise LightSRError(f"--outscale must be > 0, got {args.outscale}")
    if args.weights and args.model:
        raise LightSRError("give either --model or --weights, not both")
    inputs = _collect_inputs(args.inputs)
    if not inputs:
        raise LightSRError("no input images found; pass image files, folders or globs")
    if args.backend == "onnxruntime":
        from lightsr.inference.onnx import load_onnx

        if not args.onnx or args.weights or args.model:
            raise LightSRError("--backend onnxruntime runs --onnx FILE (not --model/--weights)")
        if args.precision != "fp32":
            raise LightSRError("--backend onnxruntime: the graph sets the precision (--fp16)")
        model = load_onnx(args.onnx)
    elif args.onnx:
        raise LightSRError("--onnx needs --backend onnxruntime")
    else:
        model = load_model(
            args.weights or args.model,
            scale=args.scale,
            device=args.device,
            precision=args.precision,
            fast=args.fast,
            compile=args.compile,
        )
    single = len(inputs) == 1 and not Path(args.inputs[0]).is_dir()
    done = skipped = failed = 0
    t0 = time.perf_counter()
    quiet = args.quiet or not sys.stderr.isatty()
    with Progress(
        TextColumn("[bold]upscale x{task.fields[scale]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        disable=quiet,
        transient=True,
    ) as progress:
        task = progress.add_task("", total=len(inputs), scale=model.scale, rate="")
        for src, base in inputs:
            try:
                dst = _output_path(src, base, args, single, model.scale)
                if src.exists() and dst.exists() and dst.resolve() == src.resolve():
                    raise LightSRError(
                        f"{src}: output would overwrite the input; choose -o or --suffix"
                    )
                if args.skip_existing and dst.exists():
                    skipped += 1
                    continue
                img = read_image(src, max_pixels=args.max_pixels)
                out = model.upscale(img, tile=args.tile, tile_overlap=args.tile_overlap)
                if args.outscale is not None and args.outscale != model.scale:
                    h, w = img.shape[:2]
                    out = _resize_output(
                        out, (max(1, round(h * args.outscale)), max(1, round(w * args.outscale)))
                    )
                write_image(dst, out, quality=args.quality)
                done += 1
            except LightSRError as exc:
                failed += 1
                progress.console.print(f"[red]failed[/red] {exc}", highlight=False, soft_wrap=True)
                if quiet:
                    _err(str(exc))
            except (MemoryError, RuntimeError) as exc:  # e.g. out of GPU memory on one image
                failed += 1
                line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                msg = f"{src}: {line[:200]} (try a smaller --tile)"
                progress.console.print(f"[red]failed[/red] {msg}", highlight=False)
                if quiet:
                    _err(msg)
            finally:
                elapsed = time.perf_counter() - t0
                n = done + failed
                progress.update(task, advance=1, rate=f"{n / elapsed:.2f} img/s" if n else "")
    elapsed = time.perf_counter() - t0
    print(
        f"{done} done, {skipped} skipped, {failed} failed in {elapsed:.1f} s "
        f"({model.name}, x{model.scale}, {model.device}, {model.precision})",
        file=sys.stderr,
    )
    return EXIT_FAILED if failed else EXIT_OK


# --------------------------------------------------------------------------------------------
# eval


def _cmd_eval(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from lightsr.evaluation.evaluate import (
        BICUBIC_MODELS,
        evaluate,
        format_results,
        parse_degradations,
    )

    if args.weights and args.model:
        raise LightSRError("give either --model or --weights, not both")
    degradations = parse_degradations(args.degrade)
    if not (args.weights or args.model):
        raise LightSRError("--model NAME, --weights PATH or --model bicubic is required")
    if args.model and args.model.lower() in BICUBIC_MODELS:
        if args.scale is None:
            raise LightSRError("--scale is required with --model bicubic")
        if args.self_ensemble:
            raise LightSRError("--self-ensemble has no meaning for bicubic")
        model, name, scale = args.model.lower(), args.model.lower(), args.scale
    else:
        from lightsr.inference.upscaler import load_model

        up = load_model(
            args.weights or args.model,
            scale=args.scale,
            device=args.device,
            precision=args.precision,
            fast=args.fast,
            compile=args.compile,
        )
        tile, overlap = args.tile, args.tile_overlap

        def model(lr: np.ndarray) -> np.ndarray:
            return up.upscale(lr, tile=tile, tile_overlap=overlap)

        name, scale = up.name, up.scale
    quiet = args.quiet or not sys.stderr.isatty()
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=quiet,
        transient=True,
    ) as progress:
        tasks: dict[str, int] = {}

        def on_image(ds: str, done: int, total: int) -> None:
            if ds not in tasks:
                tasks[ds] = progress.add_task(f"{ds} x{scale}", total=total)
            progress.update(tasks[ds], completed=done)

        results = evaluate(
            model,
            name,
            args.datasets,
            scale,
            data_root=Path(args.data_root) if args.data_root else None,
            lr_dir=Path(args.lr_dir) if args.lr_dir else None,
            ensemble=args.self_ensemble,
            save_images=Path(args.save_images) if args.save_images else None,
            on_image=on_image,
            degradations=degradations,
        )
    if args.json:
        print(json.dumps([r.record(per_image=args.per_image) for r in results], indent=2))
    elif args.csv:
        print(format_results(results, "csv"))
    elif args.markdown:
        print(format_results(results, "markdown"))
    else:
        from rich.console import Console
        from rich.table import Table

        extra = f", LR degraded: {','.join(args.degrade)}" if args.degrade else ""
        table = Table(title=f"{name} x{scale} (PSNR/SSIM on Y, border {scale} cropped{extra})")
        for col in ("dataset", "images", "PSNR", "SSIM", "time"):
            table.add_column(col, justify="left" if col == "dataset" else "right")
        for r in results:
            table.add_row(
                r.dataset, str(r.images), f"{r.psnr:.2f}", f"{r.ssim:.4f}", f"{r.seconds:.1f} s"
            )
        Console(width=None if sys.stdout.isatty() else 160).print(table)
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# models / inspect


def _cmd_models(args: argparse.Namespace) -> int:
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


# --------------------------------------------------------------------------------------------
# bench


def _cmd_bench(args: argparse.Namespace) -> int:
    from lightsr.evaluation.bench import bench, parse_size, render_table, to_markdown

    output_size = parse_size(args.output_size, "--output-size") if args.output_size else None
    input_size = parse_size(args.input_size, "--input-size") if args.input_size else None
    if args.scale is not None and args.scale < 1:
        raise LightSRError(f"--scale must be >= 1, got {args.scale}")
    if args.runs < 1:
        raise LightSRError(f"--runs must be >= 1, got {args.runs}")
    if args.warmup < 0:
        raise LightSRError(f"--warmup must be >= 0, got {args.warmup}")
    results = [
        bench(
            source,
            scale=args.scale,
            output_size=output_size,
            input_size=input_size,
            device=args.device,
            precision=args.precision,
            runs=args.runs,
            warmup=args.warmup,
            timing=not args.no_latency,
        )
        for source in args.models
    ]
    if args.json:
        print(json.dumps([r.to_record() for r in results], indent=2))
    elif args.markdown:
        print(to_markdown(results))
    else:
        from rich.console import Console

        # Piped output is not squeezed to 80 columns: the table stays readable in logs.
        Console(width=None if sys.stdout.isatty() else 160).print(render_table(results))
    return EXIT_OK


# --------------------------------------------------------------------------------------------


def _cmd_export(args: argparse.Namespace) -> int:
    from lightsr.inference.onnx import export_onnx, parse_static

    static = parse_static(args.static) if args.static else None
    res = export_onnx(args.model, args.output, opset=args.opset, fp16=args.fp16, static=static)
    shape = "dynamic batch/height/width" if res.dynamic else f"static {args.static}"
    check = (
        f"; onnxruntime vs PyTorch max abs diff {res.max_abs_diff:.1e}"
        if res.max_abs_diff is not None
        else ""
    )
    print(f"wrote {res.path} (x{res.scale}, opset {res.opset}, {res.dtype}, {shape}{check})")
    return EXIT_OK


# --------------------------------------------------------------------------------------------
# train / export-weights


def _cmd_train(args: argparse.Namespace) -> int:
    from lightsr.training.config import dump_config, load_config

    config = args.config
    if config is None:
        if args.resume is None:
            raise LightSRError("give a CONFIG.yaml, or --resume RUN_DIR to continue a run")
        config = Path(args.resume) / "config.yaml"
        if not config.is_file():
            raise LightSRError(f"{args.resume}: not a run directory (no config.yaml)")
    cfg = load_config(config, args.set or [])
    if args.dry_run:
        from lightsr.runtime import shared_root

        print(dump_config(cfg), end="")
        print(f"# ${{LIGHTSR_SHARED}} = {shared_root().resolve()}")
        return EXIT_OK
    from lightsr.training.loop import train

    train(cfg, resume=args.resume, quiet=args.quiet)
    return EXIT_OK


def _cmd_export_weights(args: argparse.Namespace) -> int:
    from lightsr.training.loop import export_weights

    path = export_weights(args.run, args.output, checkpoint=args.checkpoint, weights=args.weights)
    print(f"wrote {path} ({args.weights} weights of {args.run}, {args.checkpoint} checkpoint)")
    return EXIT_OK


# --------------------------------------------------------------------------------------------


def _add_model_flags(p: argparse.ArgumentParser) -> None:
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
    _add_fast_flags(g)


def _add_fast_flags(g: argparse._ArgumentGroup) -> None:
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


def _build_parser() -> argparse.ArgumentParser:
    from lightsr import __version__

    parser = _Parser(prog="lightsr", description="Efficient single-image super-resolution.")
    parser.add_argument("--version", action="version", version=f"lightsr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("upscale", help="upscale images, folders or globs")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument(
        "-o",
        "--output",
        help="output file (one input) or folder; default: next to each input",
    )
    _add_model_flags(p)
    p.add_argument("--tile", type=int, help="tile size in input pixels (bounds memory)")
    p.add_argument("--tile-overlap", type=int, default=32, help="context around tiles (32)")
    p.add_argument("--outscale", type=float, help="final scale if different from the model's")
    p.add_argument("--suffix", help="appended to output names (default _x<scale>)")
    p.add_argument("--ext", default="auto", help="output format: auto (as input), png, jpg...")
    p.add_argument("--quality", type=int, default=95, help="JPEG/WebP quality (95)")
    p.add_argument("--skip-existing", action="store_true", help="skip outputs that exist")
    p.add_argument("--max-pixels", type=int, help="refuse larger inputs (decompression bombs)")
    p.add_argument(
        "--backend",
        default="torch",
        choices=("torch", "onnxruntime"),
        help="torch (default) or onnxruntime (with --onnx FILE from `lightsr export`)",
    )
    p.add_argument("--onnx", metavar="FILE", help="ONNX model for --backend onnxruntime")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_upscale)

    p = sub.add_parser("eval", help="PSNR/SSIM on benchmark sets, as in the papers' tables")
    g = p.add_argument_group("model")
    g.add_argument("--model", help="named model, or bicubic / bicubic-rgb (the papers' baseline)")
    g.add_argument("--weights", help="checkpoint file (.pth/.pt/.safetensors)")
    g.add_argument("--scale", type=int, choices=(2, 3, 4), help="scale (detected from --weights)")
    g.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    g.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    _add_fast_flags(g)
    p.add_argument(
        "--datasets", nargs="+", default=["Set5", "Set14", "B100"], metavar="NAME_OR_DIR",
        help="benchmark names (Set5 Set14 B100 Urban100 Manga109) or folders of HR images",
    )  # fmt: skip
    p.add_argument(
        "--data-root",
        help="folder holding the named benchmarks (default $LIGHTSR_DATA, else "
        "$LIGHTSR_SHARED/datasets, else ../shared/datasets)",
    )
    p.add_argument("--lr-dir", help="paired LR images (<name>x<s>.png) instead of on-the-fly LR")
    p.add_argument("--self-ensemble", action="store_true", help="average 8 flips/rotations (+)")
    p.add_argument("--save-images", metavar="DIR", help="write SR images to DIR/<dataset>/")
    p.add_argument("--tile", type=int, help="tile size in LR pixels (bounds memory)")
    p.add_argument("--tile-overlap", type=int, default=32, help="context around tiles (32)")
    p.add_argument("--per-image", action="store_true", help="with --json: per-image scores")
    p.add_argument(
        "--degrade", action="append", default=[], metavar="KIND:LEVEL",
        help="degrade the LR first: jpeg:40, blur:1.0 (sigma), noise:10 (sigma/255); repeatable",
    )  # fmt: skip
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON records")
    fmt.add_argument("--csv", action="store_true", help="print CSV")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("models", help="list the named models")
    p.add_argument("--json", action="store_true", help="print JSON records")
    p.set_defaults(func=_cmd_models)

    p = sub.add_parser("inspect", help="show a checkpoint's detected architecture and size")
    p.add_argument("checkpoint", help=".pth/.pt/.safetensors file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_inspect)

    p = sub.add_parser(
        "export",
        help="export to ONNX with dynamic batch, height and width",
        description="Export a model to ONNX (dynamic batch/height/width; exact at every size "
        "that is a multiple of 8: callers pad, as `lightsr upscale --backend onnxruntime` does).",
    )
    p.add_argument("model", metavar="MODEL_OR_CHECKPOINT", help="checkpoint file or model name")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (17)")
    p.add_argument("--fp16", action="store_true", help="float16 weights and compute (GPU)")
    p.add_argument("--static", metavar="WxH", help="fixed input size (multiples of 8)")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "bench",
        help="model cost the papers' way: params, FLOPs, activations, convs, latency, memory",
        description="Count params, FLOPs (1 multiply-add = 1 FLOP, as fvcore and the papers), "
        "activations (elements of conv outputs) and conv layers at a 1280x720 output, then time "
        "the forward pass and measure its peak memory.",
    )
    p.add_argument(
        "models",
        nargs="+",
        metavar="MODEL_OR_CHECKPOINT",
        help="names from `lightsr models` (random weights) or checkpoint files",
    )
    p.add_argument("--scale", type=int, help="scale for names without one (e.g. safmn)")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--output-size",
        metavar="WxH",
        help="output size (default 1280x720, as the papers); input = ceil(W/s) x ceil(H/s)",
    )
    size.add_argument("--input-size", metavar="WxH", help="input size instead")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda, cuda:N")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="fp32 (default), bf16 (CPU/CUDA autocast), fp16 (CUDA only)",
    )
    p.add_argument("--runs", type=int, default=10, help="timed runs (10); the median is shown")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs before them (3)")
    p.add_argument(
        "--no-latency",
        action="store_true",
        help="only count (params, FLOPs, activations, convs): no timing, no memory",
    )
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON records")
    fmt.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=_cmd_bench)

    p = sub.add_parser(
        "train",
        help="train a model from a YAML recipe (configs/); resume a run; DDP under torchrun",
        description="Train from a YAML recipe (see configs/README.md). Under `torchrun "
        "--nproc_per_node=N` it trains with DistributedDataParallel; data.batch_size is per "
        "process.",
    )
    p.add_argument("config", nargs="?", metavar="CONFIG.yaml", help="the recipe")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a value, e.g. --set optim.lr=2e-4 --set data.hr_dirs=[a,b] (repeatable)",
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="no console output")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser(
        "export-weights",
        help="write a training run's EMA weights as .safetensors for upscale/eval --weights",
    )
    p.add_argument("run", metavar="RUN_DIR", help="run directory (or a checkpoint .pt file)")
    p.add_argument("-o", "--output", required=True, help="the .safetensors file to write")
    p.add_argument(
        "--checkpoint", default="latest", choices=("latest", "best"), help="which (latest)"
    )
    p.add_argument(
        "--weights", default="ema", choices=("ema", "model"), help="ema (default) or model"
    )
    p.set_defaults(func=_cmd_export_weights)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 1 some item failed, 2 usage or input error)."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return func(args)
    except LightSRError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
