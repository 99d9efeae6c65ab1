"""Restoring images with scale-1 networks: one image (:class:`Restorer`) or a batch of files.

>>> import lightsr
>>> model = lightsr.load_restorer("denoise_safmn.safetensors", task="denoise")  # doctest: +SKIP
>>> clean = model.restore(lightsr.read_image("noisy.png"))         # doctest: +SKIP
>>> summary = lightsr.restore_files(["photos/"], model, output="clean/")  # doctest: +SKIP

A :class:`Restorer` is an :class:`~lightsr.inference.upscaler.Upscaler` whose network keeps the
image size (the scale-1 variants of SAFMN, UPS and SwinIR, see :mod:`lightsr.restoration`), so
padding, tiling, devices, bit depths, grayscale and alpha behave exactly as for upscaling.
:func:`restore_files` is :func:`lightsr.inference.batch.upscale_files` with a restorer: the same
inputs (files, folders, globs), output naming (suffix ``_denoise`` / ``_jpeg``), skipping of
earlier outputs, per-file failures and atomic writes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lightsr.errors import LightSRError
from lightsr.inference import DEFAULT_TILE_OVERLAP
from lightsr.restoration.tasks import RESTORE_TASKS

__all__ = ["TASK_MODELS", "Restorer", "load_restorer", "restore", "restore_files"]

#: The named model each task uses when none is given (``lightsr models`` lists them once lightsr
#: ships trained weights; until then a checkpoint must be passed).
TASK_MODELS = {"denoise": "safmn-denoise", "jpeg": "safmn-jpeg"}

PathLike = str | os.PathLike[str]


def _check_task(task: str) -> str:
    if task not in RESTORE_TASKS:
        raise LightSRError(f"--task {task!r}: expected one of {', '.join(RESTORE_TASKS)}")
    return task


class Restorer:
    """A scale-1 restoration network for one task.

    Attributes:
        task: ``denoise`` or ``jpeg``.
        upscaler: the underlying :class:`~lightsr.inference.upscaler.Upscaler` (scale 1).
        name, arch, config, device, precision: those of the upscaler.
        scale: always 1 (what :func:`lightsr.inference.batch.upscale_files` reads).
    """

    scale = 1

    def __init__(self, upscaler: Any, task: str) -> None:
        self.task = _check_task(task)
        if upscaler.scale != 1:
            raise LightSRError(
                f"model {upscaler.name}: x{upscaler.scale} is a super-resolution model; restore "
                "needs a scale-1 (restoration) model; use `lightsr upscale` for it"
            )
        self.upscaler = upscaler
        self.name = upscaler.name
        self.arch = upscaler.arch
        self.config = upscaler.config
        self.device = upscaler.device
        self.precision = upscaler.precision

    def __repr__(self) -> str:
        return f"Restorer({self.name!r}, task={self.task}, arch={self.arch}, device={self.device})"

    def restore(
        self, image: Any, *, tile: int | None = None, tile_overlap: int = DEFAULT_TILE_OVERLAP
    ) -> Any:
        """Restore an image; same kinds, bit depths, gray and alpha handling as
        :meth:`~lightsr.inference.upscaler.Upscaler.upscale`; the output has the input's size."""
        return self.upscaler.upscale(image, tile=tile, tile_overlap=tile_overlap)

    #: What :mod:`lightsr.inference.batch` calls.
    upscale = restore
    __call__ = restore


def load_restorer(
    name_or_path: PathLike | None = None,
    *,
    task: str,
    device: str = "auto",
    precision: str = "fp32",
) -> Restorer:
    """Load a scale-1 restoration model (checkpoint path or name) for ``task``.

    None: the task's named model (:data:`TASK_MODELS`). SAFMN models run on the fast path (which
    adds the input image at scale 1, as the network does), others on the plain network.

    Raises:
        LightSRError: unknown task, unknown name, a named model without bundled weights, an
            unreadable checkpoint, or a model that is not scale 1.
    """
    from lightsr.inference.upscaler import load_model

    _check_task(task)
    name = TASK_MODELS[task] if name_or_path is None else name_or_path
    up = load_model(name, device=device, precision=precision)
    return Restorer(up, task)


def restore(
    image: Any,
    model: Restorer | PathLike | None = None,
    *,
    task: str = "denoise",
    tile: int | None = None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
) -> Any:
    """Restore one image (numpy, PIL or torch; the same kind comes back) with ``model`` (a
    :class:`Restorer`, a checkpoint path or a name; None: the task's named model)."""
    restorer = model if isinstance(model, Restorer) else load_restorer(model, task=task)
    return restorer.restore(image, tile=tile, tile_overlap=tile_overlap)


def restore_files(
    inputs: PathLike | Sequence[PathLike],
    model: Any = None,
    *,
    task: str = "denoise",
    output: PathLike | None = None,
    suffix: str | None = None,
    ext: str | None = None,
    tile: int | None = None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    quality: int = 95,
    skip_existing: bool = False,
    include_outputs: bool = False,
    max_pixels: int | None = None,
    progress: Any = None,
) -> Any:
    """Restore image files, folders and globs with one model: :func:`upscale_files`'s rules.

    Args:
        inputs: image files, folders (recursive) and globs.
        model: a :class:`Restorer`, a checkpoint path or name, None (the task's named model),
            or a function of no arguments returning one (called after the arguments are
            checked).
        task: ``denoise`` or ``jpeg``.
        suffix: appended to output stems (default ``_<task>``).
        ext: output format; default the input's, except ``png`` for ``jpeg`` (writing the
            restored image as JPEG again would bring the blocks back).
        output, tile, tile_overlap, quality, skip_existing, include_outputs, max_pixels,
            progress: as :func:`lightsr.inference.batch.upscale_files`.

    Returns:
        The :class:`~lightsr.inference.batch.BatchSummary`.
    """
    from lightsr.inference.batch import _resolve_upscaler, upscale_files

    _check_task(task)

    def loader() -> Restorer:  # upscale_files' model rules, with a restorer's loader and check
        got = _resolve_upscaler(
            model,
            lambda name: load_restorer(name, task=task),
            "a Restorer, a checkpoint path or name",
        )
        return got if isinstance(got, Restorer) else Restorer(got, task)

    return upscale_files(
        inputs,
        loader,
        output=output,
        suffix=suffix if suffix is not None else f"_{task}",
        ext=ext if ext is not None else ("png" if task == "jpeg" else "auto"),
        tile=tile,
        tile_overlap=tile_overlap,
        quality=quality,
        skip_existing=skip_existing,
        include_outputs=include_outputs,
        max_pixels=max_pixels,
        progress=progress,
    )
