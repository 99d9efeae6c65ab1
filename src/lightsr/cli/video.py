"""The video part of `lightsr upscale`: which inputs are videos, their flags, their progress.

`lightsr upscale clip.mp4` hands each video file (given by name, in a folder, or matched by a
glob) to :func:`lightsr.inference.video.upscale_video`; the images of the same command go to
:func:`lightsr.inference.batch.upscale_files` as before. Not a subcommand of its own.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from lightsr.cli.common import EXIT_FAILED, EXIT_OK, err, progress_modes, start_progress_bar
from lightsr.errors import LightSRError

__all__ = ["add_video_flags", "split_videos", "upscale_videos"]

# The same lists as lightsr.inference.video / io (which import numpy; the parser must stay light).
_VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm")
_OUTPUT_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv")


def add_video_flags(p: argparse.ArgumentParser) -> None:
    """The ``video`` group of `lightsr upscale`."""
    g = p.add_argument_group(
        "video",
        "video inputs (.mp4 .mkv .mov .m4v .avi .webm) keep their frame rate and audio; output "
        "<stem><suffix>.mp4 (or the input's .mkv/.mov), H.264 unless --video-codec says",
    )
    g.add_argument(
        "--crf", type=int, default=18, help="video quality 0..51, lower is better (18; 0 lossless)"
    )
    g.add_argument("--preset", default="medium", help="x264/x265 speed preset (medium)")
    g.add_argument(
        "--video-codec",
        default="libx264",
        choices=("libx264", "libx265", "libx264rgb", "ffv1"),
        help="libx264 (H.264, default), libx265 (H.265), libx264rgb or ffv1 (lossless, ffv1 "
        "in .mkv only)",
    )
    g.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted video run (its finished segments are kept)",
    )


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in _VIDEO_EXTENSIONS


def split_videos(items: Sequence[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Split inputs into video files (with the folder their output path is relative to) and
    the inputs left for the image batch (folders and globs that also hold images stay there)."""
    from lightsr.inference.io import IMAGE_EXTENSIONS

    videos: list[tuple[Path, Path]] = []
    images: list[str] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file())
            videos += [(f, p) for f in files if _is_video(f)]
            if not any(_is_video(f) for f in files) or any(
                f.suffix.lower() in IMAGE_EXTENSIONS for f in files
            ):
                images.append(item)
        elif _is_video(p) and (p.exists() or not glob.has_magic(item)):
            videos.append((p, p.parent))
        elif glob.has_magic(item) and not p.exists():
            matches = [Path(m) for m in sorted(glob.glob(item, recursive=True))]
            found = [m for m in matches if m.is_file() and _is_video(m)]
            videos += [(m, m.parent) for m in found]
            if not found or len(found) < len([m for m in matches if m.is_file()]):
                images.append(item)
        else:
            images.append(item)
    unique = {os.path.abspath(f): (f, base) for f, base in videos}
    return list(unique.values()), images


def _plan(
    videos: list[tuple[Path, Path]], args: argparse.Namespace, scale: int, n_images: int
) -> list[tuple[Path, Path]]:
    """(input, output) per video; earlier outputs (``clip_x4.mp4`` beside ``clip.mp4``) are left
    out unless ``--include-outputs``."""
    suffix = args.suffix if args.suffix is not None else f"_x{scale}"
    out = Path(args.output) if args.output else None
    single = len(videos) == 1 and n_images == 0
    plan = []
    for src, base in videos:
        ext = src.suffix.lower() if src.suffix.lower() in _OUTPUT_EXTENSIONS else ".mp4"
        name = f"{src.stem}{suffix}{ext}"
        if out is None:
            dst = src.with_name(name)
        elif out.suffix.lower() in _VIDEO_EXTENSIONS and not out.is_dir():
            if not single:
                raise LightSRError(
                    f"output {out} is a video file name but there are several inputs; give a "
                    "folder for several outputs"
                )
            dst = out
        else:
            rel = src.relative_to(base) if src.is_relative_to(base) else Path(src.name)
            dst = out / rel.parent / name
        plan.append((src, dst))
    if args.include_outputs or not suffix:
        return plan
    planned = {os.path.abspath(d.with_suffix("")) for _, d in plan}
    return [(s, d) for s, d in plan if os.path.abspath(s.with_suffix("")) not in planned]


class _VideoReport:
    """A bar with frames, frames/s and ETA on a terminal; else a line every 10 s; -q: nothing."""

    def __init__(self, quiet: bool, name: str) -> None:
        self.bar, self.lines = progress_modes(quiet)
        self.name = name
        self.progress: Any = None
        self.task: Any = None
        self.last = 0.0

    def __enter__(self) -> _VideoReport:
        if self.bar:
            self.progress = start_progress_bar(
                f"[bold]{self.name}", "frames {task.fields[rate]}", eta=True
            )
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, p: Any) -> None:
        rate = f"{p.fps:.2f}/s"
        if self.progress is not None:
            if self.task is None:
                self.task = self.progress.add_task("", total=p.total, rate=rate)
            self.progress.update(self.task, completed=p.done, total=p.total, rate=rate)
        elif self.lines and (time.monotonic() - self.last >= 10 or p.done >= p.total):
            self.last = time.monotonic()
            eta = f", ETA {p.eta:.0f} s" if p.eta is not None else ""
            print(f"{self.name}: {p.done}/{p.total} frames, {rate}{eta}", flush=True)


def upscale_videos(
    args: argparse.Namespace, videos: list[tuple[Path, Path]], model: Callable[[], Any], n: int
) -> int:
    """Upscale the videos with the model ``model()`` returns; ``n`` is the number of image
    inputs of the same command (for the single-output check). Returns the exit code."""
    try:
        import av
    except ImportError as exc:
        raise LightSRError(
            f"{videos[0][0]}: video needs PyAV: pip install 'lightsr[video]'"
        ) from exc

    from lightsr.inference.video import upscale_video

    if args.outscale is not None:
        raise LightSRError(f"--outscale: not supported for videos ({videos[0][0]})")
    out = Path(args.output) if args.output else None
    if out is not None and _is_video(out) and out.suffix.lower() not in _OUTPUT_EXTENSIONS:
        raise LightSRError(
            f"output {out}: video outputs are {', '.join(_OUTPUT_EXTENSIONS)} files; choose "
            "one of those extensions"
        )
    up = model()
    failed = 0
    for src, dst in _plan(videos, args, up.scale, n):
        if args.skip_existing and dst.exists():
            print(f"{src}: skipped, {dst} exists", file=sys.stderr)
            continue
        try:
            with _VideoReport(args.quiet, src.name) as report:
                r = upscale_video(
                    src, dst, up,
                    tile=args.tile, tile_overlap=args.tile_overlap,
                    color_fix=getattr(args, "color_fix", False),
                    codec=args.video_codec, crf=args.crf, preset=args.preset,
                    resume=args.resume, progress=report,
                )  # fmt: skip
        except LightSRError as exc:
            err(str(exc))
            failed += 1
            continue
        except (av.error.FFmpegError, OSError) as exc:  # a damaged file, a full disk
            err(f"{src}: {exc}")
            failed += 1
            continue
        audio = ", audio " + "; ".join(r.audio) if r.audio else ", no audio"
        resumed = f", {r.resumed} resumed" if r.resumed else ""
        w, h = r.output_size
        print(
            f"{src} -> {dst} {w}x{h}, {r.frames} frames at {float(r.fps):.3f} fps{audio}"
            f"{resumed}, {r.seconds:.1f} s",
            file=sys.stderr,
        )
    return EXIT_FAILED if failed else EXIT_OK
