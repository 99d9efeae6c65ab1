"""The web app's work: uploaded images, one worker thread, results in a private folder.

Nothing here knows about HTTP. :class:`JobQueue` owns a private temporary folder (mode 0700,
removed by :meth:`JobQueue.close`), stores each upload under a random job id (never under a name
the browser sent), checks its size and pixel count, and runs jobs one at a time, in order, in a
single worker thread: several browser tabs queue instead of competing for memory. The last
model used stays loaded.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from lightsr.errors import LightSRError

__all__ = ["Job", "JobQueue", "Limits", "Options", "UploadTooLarge"]

State = Literal["queued", "running", "done", "failed"]

#: Pillow format name -> the extension an upload is stored under.
_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}

_ID = re.compile(r"^[0-9a-f]{32}$")


class UploadTooLarge(LightSRError):
    """An upload over the byte or pixel limit (HTTP 413)."""


@dataclass(frozen=True)
class Limits:
    """What the server accepts.

    Attributes:
        max_bytes: largest upload in bytes.
        max_pixels: largest input image, width * height.
        max_jobs: jobs kept (with their files); the oldest finished ones are deleted beyond it.
    """

    max_bytes: int = 25 * 1024 * 1024
    max_pixels: int = 4_000_000
    max_jobs: int = 64


@dataclass(frozen=True)
class Options:
    """How one image is upscaled (checked against the server's offer before a job is made).

    Attributes:
        model: a bundled model name, or ``"weights"`` for the server's ``--weights`` file.
        tile: tile size in LR pixels, None for the whole image.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        color_fix: wavelet colour correction.
    """

    model: str
    tile: int | None = None
    precision: str = "fp32"
    color_fix: bool = False


@dataclass
class Job:
    """One uploaded image and what became of it (``name`` is for display only)."""

    id: str
    name: str
    options: Options
    folder: Path
    input_size: tuple[int, int]
    state: State = "queued"
    error: str | None = None
    output_size: tuple[int, int] | None = None
    scale: int | None = None
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None

    @property
    def input(self) -> Path:
        return next(self.folder.glob("input.*"))

    @property
    def result(self) -> Path:
        return self.folder / "result.png"

    @property
    def download_name(self) -> str:
        stem = Path(self.name).stem or "image"
        return f"{stem}_x{self.scale}.png"


def safe_name(name: str) -> str:
    """A display name from a browser-supplied file name: its last path part, reduced to
    letters, digits, ``._-`` and at most 80 characters (it never names a file here)."""
    base = re.split(r"[\\/]", name)[-1]
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._")[:80]
    return clean or "image"


class JobQueue:
    """Uploads, a FIFO of jobs and the worker thread that runs them one at a time.

    Args:
        models: offered model names -> what :func:`~lightsr.inference.upscaler.load_model`
            takes (a bundled name, or the server's checkpoint path).
        limits: upload limits.
        device: where models run.
        color_fix: whether the upscaler takes ``color_fix``.
    """

    def __init__(
        self,
        models: dict[str, str],
        limits: Limits,
        device: str = "auto",
        color_fix: bool = True,
    ) -> None:
        self.models = models
        self.limits = limits
        self.device = device
        self.color_fix = color_fix
        self.root = Path(tempfile.mkdtemp(prefix="lightsr-serve-"))  # mode 0700
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._todo: queue.Queue[str | None] = queue.Queue()
        self._gate = threading.Lock()  # held by the worker while a job runs; see hold()
        self._model: tuple[tuple[str, str], Any] | None = None
        self._rate: float | None = None  # output pixels per second, measured
        self._worker = threading.Thread(target=self._work, name="lightsr-serve", daemon=True)
        self._worker.start()

    # -- uploads ---------------------------------------------------------------------------

    def check(self, options: Options) -> None:
        """Refuse options the server does not offer (one line naming the field)."""
        if options.model not in self.models:
            raise LightSRError(
                f"model: {options.model!r} is not offered; choose one of {', '.join(self.models)}"
            )
        if options.tile is not None and not 16 <= options.tile <= 4096:
            raise LightSRError(f"tile: expected 16..4096 pixels or none, got {options.tile}")
        if options.precision not in ("fp32", "bf16", "fp16"):
            raise LightSRError(f"precision: {options.precision!r} is not fp32, bf16 or fp16")
        if options.color_fix and not self.color_fix:
            raise LightSRError("color fix: this lightsr has no colour correction")

    def new_upload(self) -> tuple[str, Path]:
        """A fresh job id and the private file an upload is streamed into."""
        job_id = uuid.uuid4().hex
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        return job_id, folder / "upload"

    def submit(self, job_id: str, name: str, options: Options) -> Job:
        """Check the streamed upload (an image, within the pixel limit) and queue it.

        Raises:
            UploadTooLarge: more pixels than the limit.
            LightSRError: not an image lightsr reads.
        """
        folder = self.root / job_id
        upload = folder / "upload"
        try:
            size, ext = self._probe(upload)
        except LightSRError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        upload.rename(folder / f"input{ext}")
        job = Job(job_id, safe_name(name), options, folder, size)
        with self._lock:
            self.jobs[job_id] = job
            self._prune()
        self._todo.put(job_id)
        return job

    def discard(self, job_id: str) -> None:
        """Remove an upload that was refused while streaming."""
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def _probe(self, path: Path) -> tuple[tuple[int, int], str]:
        from PIL import Image

        limit = self.limits.max_pixels
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # our own limit applies, with our message
        try:
            with Image.open(path) as im:
                (w, h), fmt = im.size, im.format
        except Exception as exc:
            raise LightSRError(
                "the upload is not an image lightsr reads (PNG, JPEG, WebP, BMP or TIFF)"
            ) from exc
        finally:
            Image.MAX_IMAGE_PIXELS = old
        if w * h > limit:
            raise UploadTooLarge(
                f"the image is {w}x{h} ({w * h / 1e6:.1f} MP); this server takes at most "
                f"{limit / 1e6:.1f} MP per image (start it with --max-pixels to change that)"
            )
        if fmt not in _FORMATS:
            raise LightSRError(f"{fmt} images are not supported; use PNG, JPEG, WebP or TIFF")
        return (w, h), _FORMATS[fmt]

    def _prune(self) -> None:
        """Forget the oldest finished jobs (and delete their files) beyond ``max_jobs``."""
        finished = [j for j in self.jobs.values() if j.state in ("done", "failed")]
        for job in finished[: max(0, len(self.jobs) - self.limits.max_jobs)]:
            del self.jobs[job.id]
            shutil.rmtree(job.folder, ignore_errors=True)

    # -- state -----------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        """The job with this id (ids are 32 hex digits; anything else is no job)."""
        if not _ID.match(job_id):
            return None
        with self._lock:
            return self.jobs.get(job_id)

    def ahead(self, job: Job) -> int:
        """Jobs that run before ``job`` (the running one included)."""
        with self._lock:
            if job.state != "queued":
                return 0
            return sum(
                1
                for j in self.jobs.values()
                if j.created < job.created and j.state in ("queued", "running")
            )

    def estimate(self, job: Job) -> float | None:
        """Seconds the job is expected to run, from the speed measured on earlier jobs."""
        if self._rate is None or job.scale is None:
            return None
        w, h = job.input_size
        return w * h * job.scale**2 / self._rate

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Keep the worker from starting jobs while inside (uploads still queue up)."""
        with self._gate:
            yield

    # -- the worker ------------------------------------------------------------------------

    def _upscaler(self, options: Options) -> Any:
        from lightsr.inference.upscaler import load_model

        key = (options.model, options.precision)
        if self._model is None or self._model[0] != key:
            self._model = None  # free the old one first
            up = load_model(self.models[options.model], device=self.device, precision=key[1])
            self._model = (key, up)
        return self._model[1]

    def _run(self, job: Job) -> None:
        from lightsr.inference.io import read_image, read_metadata, write_image

        up = self._upscaler(job.options)
        job.scale = up.scale
        img = read_image(job.input, max_pixels=self.limits.max_pixels)
        kwargs: dict[str, Any] = {"tile": job.options.tile}
        if job.options.color_fix:
            kwargs["color_fix"] = True
        t0 = time.perf_counter()
        out = up.upscale(img, **kwargs)
        self._rate = out.shape[0] * out.shape[1] / max(time.perf_counter() - t0, 1e-6)
        write_image(job.result, out, metadata=read_metadata(job.input))
        job.output_size = (out.shape[1], out.shape[0])

    def _work(self) -> None:
        while True:
            job_id = self._todo.get()
            if job_id is None:
                return
            job = self.get(job_id)
            if job is None:
                continue
            with self._gate:
                job.state, job.started = "running", time.monotonic()
                try:
                    self._run(job)
                    job.state = "done"
                except LightSRError as exc:
                    job.state, job.error = "failed", str(exc)
                except (MemoryError, RuntimeError) as exc:
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                    job.state, job.error = "failed", f"{first} (try a smaller tile size)"
                except OSError as exc:
                    job.state, job.error = "failed", str(exc)
                job.finished = time.monotonic()

    def close(self) -> None:
        """Stop the worker (after the running job) and delete every upload and result."""
        if not self._worker.is_alive():
            shutil.rmtree(self.root, ignore_errors=True)
            return
        self._todo.put(None)
        self._worker.join(timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def __del__(self) -> None:  # pragma: no cover - the app closes it; this is a last resort
        if os.path.isdir(getattr(self, "root", "")):
            shutil.rmtree(self.root, ignore_errors=True)
