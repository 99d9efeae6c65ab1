"""`lightsr upscale`: images, folders and globs through one model."""

from __future__ import annotations

import argparse
import glob
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lightsr.cli.common import EXIT_FAILED, EXIT_OK, add_model_flags, err
from lightsr.errors import LightSRError
from lightsr.inference import DEFAULT_TILE_OVERLAP


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


def upscale(args: argparse.Namespace) -> int:
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
                    err(str(exc))
            except (MemoryError, RuntimeError) as exc:  # e.g. out of GPU memory on one image
                failed += 1
                line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                msg = f"{src}: {line[:200]} (try a smaller --tile)"
                progress.console.print(f"[red]failed[/red] {msg}", highlight=False)
                if quiet:
                    err(msg)
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="upscale images, folders or globs")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument(
        "-o",
        "--output",
        help="output file (one input) or folder; default: next to each input",
    )
    add_model_flags(p)
    p.add_argument("--tile", type=int, help="tile size in input pixels (bounds memory)")
    p.add_argument(
        "--tile-overlap",
        type=int,
        default=DEFAULT_TILE_OVERLAP,
        help=f"context around tiles ({DEFAULT_TILE_OVERLAP})",
    )
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
    p.set_defaults(func=upscale)
