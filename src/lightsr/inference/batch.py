"""Batches of image files through one model: what ``lightsr upscale`` does, as one call.

>>> import lightsr
>>> summary = lightsr.upscale_files(["photos/"], "safmn-x4", output="big/")  # doctest: +SKIP
>>> [r.dst for r in summary.done], [r.error for r in summary.failed]        # doctest: +SKIP

Rules (the CLI's ``--help`` says the same):

- **Inputs.** Image files, folders (searched recursively for :data:`IMAGE_EXTENSIONS` files)
  and globs (``**`` recurses). A path given twice is processed once. A file or glob that
  matches nothing is reported as a failed item, not an error of the whole batch.
- **Output names.** ``<stem><suffix>.<ext>``: ``suffix`` defaults to ``_x<scale>``, ``ext`` to
  the input's. Outputs go next to each input, or under the ``output`` folder, where a folder
  input's tree is mirrored (``photos/a/b.png`` -> ``big/a/b_x4.png``). ``output`` may name an
  image file only when there is exactly one input image.
- **Earlier outputs are not inputs.** An input is left out when another input of the same run
  would be written to its path, whatever its image extension: with the default suffix,
  ``photo_x4.png`` is left out when ``photo.png`` (or ``photo.jpg``...) is an input too, so
  running a folder twice does not upscale the first run's outputs; with an ``output`` folder
  inside an input folder, the outputs under it are left out the same way. A file whose source
  is not an input (``photo_x4.png`` named alone) is processed. ``include_outputs=True``
  processes them all. (With an empty suffix nothing is left out: outputs cannot be told from
  inputs.)
- **Writes** are atomic (:func:`~lightsr.inference.io.write_image`: a temporary file, then a
  rename) and carry the input's ICC profile and EXIF (orientation reset) where the output
  format allows (see :mod:`lightsr.inference.io`). An output that would overwrite its own
  input, or an output of this run, is refused (a failed item). ``skip_existing=True`` skips
  items whose output exists: an output exists only complete, so a batch killed at any moment
  (even ``kill -9``) is resumed by running it again with ``skip_existing``. A killed run can
  leave one hidden temporary file (``.<output name>.*.part``); it is removed when that output
  is written again and the file is older than :data:`STALE_TEMP_SECONDS` (a younger one may be
  another process's write in progress: two processes may write into the same folder).
- **Failures** (unreadable or oversized images, out-of-memory, unwritable outputs) are recorded
  per item and the batch goes on; usage mistakes (bad tile size, ``output`` naming one image
  for several inputs, no inputs at all) raise :class:`~lightsr.errors.LightSRError` before any
  work is done.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lightsr.errors import LightSRError
from lightsr.inference import DEFAULT_TILE_OVERLAP
from lightsr.inference.io import IMAGE_EXTENSIONS

__all__ = ["BatchSummary", "FileResult", "upscale_files"]

PathLike = str | os.PathLike[str]

#: The largest ``outscale``: a final size beyond 16x the input is a typo, not a wish.
MAX_OUTSCALE = 16.0
#: Temporary files of an output older than this are left by a killed run and are removed.
STALE_TEMP_SECONDS = 60.0
Status = Literal["done", "skipped", "failed"]


@dataclass(frozen=True)
class FileResult:
    """What happened to one input file.

    Attributes:
        src: the input file.
        dst: its output path (None when it could not be worked out).
        status: ``"done"``, ``"skipped"`` (``skip_existing`` and the output exists) or
            ``"failed"``.
        input_size: the input's (width, height), once read.
        output_size: the written output's (width, height).
        seconds: time spent on this file (read, upscale, resize, write).
        error: for a failed file, one line naming it and saying what went wrong.
    """

    src: Path
    dst: Path | None
    status: Status
    input_size: tuple[int, int] | None = None
    output_size: tuple[int, int] | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BatchSummary:
    """The outcome of :func:`upscale_files`; progress callbacks see it filling up.

    Attributes:
        results: one record per processed input file, in order.
        total: how many input files are processed (earlier outputs excluded).
        earlier_outputs: inputs left out as outputs of an earlier run (see the module doc).
        suffix: the output-name suffix used (``_x4``...).
        seconds: wall time of the processing, model loading excluded (set at the end).
        model: the model that ran (an :class:`~lightsr.inference.upscaler.Upscaler`).
    """

    results: list[FileResult] = field(default_factory=list)
    total: int = 0
    earlier_outputs: list[Path] = field(default_factory=list)
    suffix: str = ""
    seconds: float = 0.0
    model: Any = None

    @property
    def done(self) -> list[FileResult]:
        """Files upscaled and written."""
        return [r for r in self.results if r.status == "done"]

    @property
    def skipped(self) -> list[FileResult]:
        """Files skipped because their output existed (``skip_existing``)."""
        return [r for r in self.results if r.status == "skipped"]

    @property
    def failed(self) -> list[FileResult]:
        """Files that could not be upscaled or written (``error`` says why)."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def earlier_outputs_pattern(self) -> str:
        """The names earlier outputs have, as a glob (``*_x4.*``)."""
        return f"*{self.suffix}.*"


Progress = Callable[[BatchSummary, "FileResult | None"], None]


# --------------------------------------------------------------------------------------------
# Planning: inputs, output names, earlier outputs


def _expand_inputs(items: Sequence[PathLike]) -> list[tuple[Path, Path]]:
    """Expand files, folders (recursively) and globs into (file, base folder) pairs.

    The base folder is what output paths are made relative to, so a folder's tree is mirrored.
    Items that match nothing are returned as they are, so that they are reported as failures.
    """
    found: list[tuple[Path, Path]] = []
    for item in items:
        text = os.fspath(item)
        p = Path(text)
        if p.is_dir():
            files = sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
            )
            found.extend((f, p) for f in files)
        elif p.exists() or not glob.has_magic(text):
            found.append((p, p.parent))
        else:
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            files = [m for m in matches if m.is_file()]
            found.extend((f, f.parent) for f in files)
            if not files:
                found.append((p, p.parent))
    unique: dict[Path, tuple[Path, Path]] = {}
    for f, base in found:
        unique.setdefault(f.resolve() if f.exists() else f, (f, base))
    return list(unique.values())


def _output_ext(ext: str) -> str | None:
    """The output extension for ``ext`` (None: the input's); refuses unknown formats."""
    if ext == "auto":
        return None
    out = "." + ext.lower().lstrip(".")
    if out not in IMAGE_EXTENSIONS:
        raise LightSRError(
            f"ext: {ext!r} is not an image format lightsr writes; use auto or one of "
            f"{', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)}"
        )
    return out


def _output_path(
    src: Path, base: Path, output: Path | None, single: bool, suffix: str, ext: str | None
) -> Path:
    out_ext = ext or src.suffix.lower()
    if out_ext not in IMAGE_EXTENSIONS:
        out_ext = ".png"
    name = f"{src.stem}{suffix}{out_ext}"
    if output is None:
        return src.with_name(name)
    if single and output.suffix.lower() in IMAGE_EXTENSIONS and not output.is_dir():
        return output
    rel = src.relative_to(base) if src.is_relative_to(base) else Path(src.name)
    return output / rel.parent / name


def _check_single_output(items: Sequence[PathLike], n_files: int, output: Path | None) -> bool:
    """Whether the run has one input image; refuses an image-file ``output`` for several."""
    folder = any(Path(os.fspath(i)).is_dir() for i in items)
    single = len(items) == 1 and not folder and n_files == 1
    if (
        output is not None
        and output.suffix.lower() in IMAGE_EXTENSIONS
        and not output.is_dir()
        and not single
    ):
        what = "a folder is an input" if folder else f"there are {n_files} input images"
        raise LightSRError(
            f"output {output} is an image file name but {what}; give a folder for several "
            "outputs (or one input image)"
        )
    return single


def _stem_key(path: Path) -> str:
    """A path without its extension, absolute, for comparing names across image formats."""
    p = path.resolve()
    return os.path.normcase(str(p.with_name(p.stem)))


def _earlier_outputs(pairs: list[tuple[Path, Path]], dsts: list[Path], suffix: str) -> set[int]:
    """Indices of inputs that another input of the run would be written to (any extension)."""
    if not suffix:
        return set()
    planned: dict[str, set[int]] = {}
    for i, dst in enumerate(dsts):
        planned.setdefault(_stem_key(dst), set()).add(i)
    earlier = set()
    for i, (src, _) in enumerate(pairs):
        if src.stem.endswith(suffix) and src.suffix.lower() in IMAGE_EXTENSIONS:
            if planned.get(_stem_key(src), set()) - {i}:
                earlier.add(i)
    return earlier


# --------------------------------------------------------------------------------------------
# Running


def _resize(img: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    import cv2

    interp = cv2.INTER_AREA if out_hw[0] < img.shape[0] else cv2.INTER_CUBIC
    return cv2.resize(img, (out_hw[1], out_hw[0]), interpolation=interp)


def _one_line(src: Path, exc: BaseException, hint: str = "") -> str:
    text = str(exc).strip()
    line = text.splitlines()[0][:300] if text else type(exc).__name__
    if str(src) not in line:
        line = f"{src}: {line}"
    return line + hint


@dataclass(frozen=True)
class _Job:
    model: Any
    tile: int | None
    tile_overlap: int
    outscale: float | None
    quality: int
    skip_existing: bool
    max_pixels: int | None
    color_fix: bool = False


def _process(job: _Job, src: Path, dst: Path, written: dict[Path, Path]) -> FileResult:
    """Upscale one file; failures become a failed record."""
    from lightsr.inference.io import read_image, read_metadata, write_image

    t0 = time.perf_counter()
    in_size = None
    try:
        key = dst.resolve()
        if src.exists() and key == src.resolve():
            raise LightSRError(
                f"{src}: the output would overwrite the input; choose an output folder or suffix"
            )
        if key in written:
            raise LightSRError(f"{src}: output {dst} was already written from {written[key]}")
        if job.skip_existing and dst.exists():
            return FileResult(src, dst, "skipped")
        img = read_image(src, max_pixels=job.max_pixels)
        in_size = (img.shape[1], img.shape[0])
        extra = {"color_fix": True} if job.color_fix else {}
        out = job.model.upscale(img, tile=job.tile, tile_overlap=job.tile_overlap, **extra)
        if job.outscale is not None and job.outscale != job.model.scale:
            h, w = img.shape[:2]
            out = _resize(out, (max(1, round(h * job.outscale)), max(1, round(w * job.outscale))))
        _remove_stale_temporaries(dst)
        write_image(dst, out, quality=job.quality, metadata=read_metadata(src))
        written[key] = src
        out_size = (out.shape[1], out.shape[0])
        return FileResult(src, dst, "done", in_size, out_size, time.perf_counter() - t0)
    except LightSRError as exc:
        error = _one_line(src, exc)
    except (MemoryError, RuntimeError) as exc:  # e.g. out of GPU memory on one image
        error = _one_line(src, exc, " (try a smaller tile size)")
    except OSError as exc:  # an output folder that cannot be written, a full disk
        error = _one_line(src, exc)
    return FileResult(src, dst, "failed", in_size, None, time.perf_counter() - t0, error)


def _remove_stale_temporaries(dst: Path) -> None:
    """Remove hidden temporary files of ``dst`` that a killed run left (``.<name>.*.part``, see
    :func:`~lightsr.files.atomic_path`), once they are old enough not to be another running
    process's write in progress."""
    if not dst.parent.is_dir():
        return
    now = time.time()
    for tmp in dst.parent.glob(f".{glob.escape(dst.name)}.*.part"):
        try:
            if now - tmp.stat().st_mtime > STALE_TEMP_SECONDS:
                tmp.unlink()
        except OSError:  # gone already (another process), or not ours to remove
            continue


def _resolve_upscaler(
    model: Any,
    load: Callable[[Any], Any] | None = None,
    expected: str = "an Upscaler, a model name or checkpoint path",
) -> Any:
    """An object with ``scale`` and ``upscale()`` from a model, a name or path (loaded by
    ``load``, default :func:`~lightsr.inference.upscaler.load_model`), or a function of no
    arguments returning one of those; anything else is refused as not ``expected``."""
    if hasattr(model, "upscale") and hasattr(model, "scale"):
        return model
    if model is None or isinstance(model, (str, os.PathLike)):
        if load is None:
            from lightsr.inference.upscaler import load_model as load
        return load(model)
    if callable(model):
        return _resolve_upscaler(model(), load, expected)
    raise LightSRError(f"model: expected {expected}, got {type(model).__name__}")


def upscale_files(
    inputs: PathLike | Sequence[PathLike],
    model: Any = None,
    *,
    output: PathLike | None = None,
    suffix: str | None = None,
    ext: str = "auto",
    outscale: float | None = None,
    tile: int | None = None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    quality: int = 95,
    skip_existing: bool = False,
    include_outputs: bool = False,
    max_pixels: int | None = None,
    color_fix: bool = False,
    progress: Progress | None = None,
) -> BatchSummary:
    """Upscale image files, folders and globs with one model (rules: see the module doc).

    Args:
        inputs: image files, folders (recursive) and globs; one path or a list.
        model: an :class:`~lightsr.inference.upscaler.Upscaler` (or any object with ``scale``
            and ``upscale(image, tile=, tile_overlap=)``); a model name or checkpoint path for
            :func:`~lightsr.inference.upscaler.load_model`; None for the default model; or a
            function of no arguments returning one, called once the arguments are checked (so
            a usage mistake is reported before a model loads).
        output: a folder (created; a folder input's tree is mirrored under it), or an image
            file for a single input image. None: next to each input.
        suffix: appended to output stems (default ``_x<scale>``).
        ext: output format (``png``, ``jpg``...) or ``auto``, the input's.
        outscale: final scale relative to the input when different from the model's (the
            output is resized: area for shrinking, bicubic for enlarging); at most
            :data:`MAX_OUTSCALE`.
        tile, tile_overlap: see :meth:`Upscaler.upscale`.
        quality: JPEG/WebP quality, 1 to 100.
        skip_existing: skip inputs whose output exists.
        include_outputs: also process earlier outputs (see the module doc).
        max_pixels: refuse larger input images (see :func:`~lightsr.inference.io.read_image`).
        color_fix: wavelet colour correction (see :meth:`Upscaler.upscale`).
        progress: called as ``progress(summary, record)``: once with ``record=None`` when the
            work is planned (``summary.total``, ``summary.earlier_outputs`` are set), then
            after each file with its :class:`FileResult` (already in ``summary.results``).

    Returns:
        A :class:`BatchSummary`; ``summary.failed`` is empty when every file was written.

    Raises:
        LightSRError: a usage mistake (bad tile, outscale, quality, max_pixels or ext;
            ``output`` an image file for several inputs; no inputs found) or a model that
            cannot be loaded.
    """
    if outscale is not None and not 0 < outscale <= MAX_OUTSCALE:  # NaN fails too
        raise LightSRError(
            f"outscale: expected a number > 0 and <= {MAX_OUTSCALE}, got {outscale!r}"
        )
    if isinstance(quality, bool) or not (quality == int(quality) and 1 <= quality <= 100):
        raise LightSRError(f"quality: expected a whole number from 1 to 100, got {quality!r}")
    if max_pixels is not None and max_pixels < 1:
        raise LightSRError(f"max_pixels: expected a number >= 1, got {max_pixels!r}")
    out_ext = _output_ext(ext)
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    pairs = _expand_inputs(items)
    if not pairs:
        raise LightSRError("no input images found; pass image files, folders or globs")
    out_dir = Path(os.fspath(output)) if output is not None else None
    single = _check_single_output(items, len(pairs), out_dir)
    from lightsr.inference.tiling import check_tiling  # imports torch: after the cheap checks

    check_tiling(tile, tile_overlap)
    up = _resolve_upscaler(model)
    sfx = suffix if suffix is not None else f"_x{up.scale}"
    dsts = [_output_path(src, base, out_dir, single, sfx, out_ext) for src, base in pairs]
    earlier = set() if include_outputs else _earlier_outputs(pairs, dsts, sfx)
    todo = [(pairs[i][0], dsts[i]) for i in range(len(pairs)) if i not in earlier]
    summary = BatchSummary(
        total=len(todo),
        earlier_outputs=[pairs[i][0] for i in sorted(earlier)],
        suffix=sfx,
        model=up,
    )
    if progress is not None:
        progress(summary, None)
    job = _Job(up, tile, tile_overlap, outscale, quality, skip_existing, max_pixels, color_fix)
    t0 = time.perf_counter()
    written: dict[Path, Path] = {}
    for src, dst in todo:
        record = _process(job, src, dst, written)
        summary.results.append(record)
        if progress is not None:
            progress(summary, record)
    summary.seconds = time.perf_counter() - t0
    return summary
