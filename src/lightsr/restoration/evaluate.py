"""Evaluation of restoration tasks: denoising and JPEG removal on CBSD68, depth SR on Middlebury.

Protocols (the literature's, so that the published rows are comparable):

- ``denoise`` at ``sigma``: the clean 8-bit RGB image scaled to [0, 1] plus Gaussian noise of
  standard deviation ``sigma/255`` (float, neither clipped nor rounded; seeded per image from
  the seed and the file stem, :func:`~lightsr.restoration.tasks.image_rng`); the output is
  rounded to 8 bits; PSNR and SSIM on the RGB channels (SSIM: mean of the per-channel SSIMs),
  no border cropped (DnCNN, FFDNet and SwinIR report colour denoising this way).
- ``jpeg`` at ``quality``: the clean RGB image through a real JPEG round trip (Pillow,
  4:2:0); output rounded to 8 bits; PSNR and SSIM on RGB, no border cropped.
- ``depth`` at ``scale``: single-channel 8- or 16-bit maps, mod-cropped; the input is MATLAB's
  bicubic ``imresize(map, 1/scale)`` in floating point; the output (not rounded) is compared in
  the map's units: RMSE over all pixels (lower is better) and PSNR with the map's peak (255 or
  65535).

Anchors computed in the same run: ``identity`` (the degraded input itself; for depth, the LR map
shown at full size by pixel repetition), ``cbm3d`` (denoising only: CBM3D from the ``bm3d``
package, given the true sigma; slow: about 35 s of CPU per CBSD68 image on one core) and
``bicubic`` (depth: ``imresize(lr, scale)``, the depth-SR baseline). Published numbers of other
methods are never computed here; :data:`PUBLISHED` holds them as reference rows, printed marked as
published.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lightsr.errors import LightSRError
from lightsr.restoration.tasks import (
    DEPTH_SCALES,
    TaskSpec,
    add_gaussian_noise,
    depth_lr,
    image_rng,
    jpeg_roundtrip,
    to_unit,
)

__all__ = [
    "ANCHORS",
    "PUBLISHED",
    "RESTORATION_DATASETS",
    "PublishedRow",
    "RestoreFunction",
    "TaskResult",
    "cbm3d",
    "evaluate_task",
    "format_task_results",
    "network_function",
    "published_rows",
    "task_for_eval",
]

#: Restoration benchmark names (lower case) -> folder under the data root.
RESTORATION_DATASETS = {"cbsd68": "CBSD68/HR", "middlebury": "Middlebury/depth"}
#: Built-in methods: the degraded input, CBM3D (denoising), bicubic (depth).
ANCHORS = ("identity", "cbm3d", "bicubic")

#: A restoration network as a function: float32 HxWx3 input on the [0, 1] scale (noisy values
#: may leave it) -> HxWx3 output on the [0, 1] scale (float or uint8), same size for denoise
#: and jpeg, ``scale`` times larger for depth.
RestoreFunction = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class PublishedRow:
    """A published score, quoted (not measured here)."""

    method: str
    task: str
    dataset: str
    level: str
    psnr: float
    source: str


_SWINIR = "SwinIR (Liang et al., ICCVW 2021), Table 5 (colour denoising, CBSD68)"
#: Published colour-denoising PSNRs on CBSD68 (RGB PSNR, sigma on the 0-255 scale), as quoted
#: in SwinIR's Table 5, which takes CBM3D, DnCNN and FFDNet from their papers.
PUBLISHED: tuple[PublishedRow, ...] = tuple(
    PublishedRow(method, "denoise", "CBSD68", f"sigma {sigma}", value, _SWINIR)
    for method, values in (
        ("CBM3D", (33.52, 30.71, 27.38)),
        ("DnCNN", (33.90, 31.24, 27.95)),
        ("FFDNet", (33.87, 31.21, 27.96)),
        ("SwinIR", (34.42, 31.78, 28.56)),
    )
    for sigma, value in zip((15, 25, 50), values, strict=True)
)


def published_rows(task: str, dataset: str, level: str) -> list[PublishedRow]:
    """The reference rows for one table (none for JPEG on CBSD68 or for depth maps)."""
    return [
        r for r in PUBLISHED if r.task == task and r.dataset.lower() == dataset.lower()
        and r.level == level
    ]  # fmt: skip


@dataclass
class TaskResult:
    """Scores of one method on one dataset for one task level (means over images).

    ``psnr`` and ``ssim`` are on RGB for ``denoise``/``jpeg``; for ``depth`` ``psnr`` uses the
    map's peak and ``rmse`` is in map units (``ssim`` is not measured: NaN).
    """

    model: str
    dataset: str
    task: str
    level: str
    scale: int
    psnr: float
    ssim: float
    images: int
    seconds: float
    rmse: float = math.nan
    per_image: list[dict[str, float | str]] = field(default_factory=list)

    def record(self, *, per_image: bool = False) -> dict[str, object]:
        rec = asdict(self)
        if not per_image:
            rec.pop("per_image")
        for key in ("ssim", "rmse"):
            if isinstance(rec[key], float) and math.isnan(rec[key]):
                rec.pop(key)
        return rec


def task_for_eval(
    task: str, *, sigma: float | None = None, quality: int | None = None, scale: int | None = None
) -> tuple[TaskSpec, int]:
    """(fixed-level task, scale) from the ``lightsr eval`` flags; refuses a missing or stray
    level, naming the flag."""
    if task == "denoise":
        if sigma is None or quality is not None:
            raise LightSRError("--task denoise needs --sigma LEVEL (e.g. 25) and no --quality")
        return TaskSpec("denoise", sigma=(float(sigma), float(sigma))), 1
    if task == "jpeg":
        if quality is None or sigma is not None:
            raise LightSRError("--task jpeg needs --quality Q (e.g. 20) and no --sigma")
        return TaskSpec("jpeg", quality=(int(quality), int(quality))), 1
    if task == "depth":
        if scale not in DEPTH_SCALES or sigma is not None or quality is not None:
            raise LightSRError(
                f"--task depth needs --scale {' or '.join(map(str, DEPTH_SCALES))} "
                "(no --sigma or --quality)"
            )
        return TaskSpec("depth"), int(scale)
    raise LightSRError(f"--task {task!r}: expected denoise, jpeg or depth (sr is plain `eval`)")


def resolve_task_dataset(name_or_path: str, data_root: Path | None = None) -> tuple[str, Path]:
    """(display name, folder of clean images) for ``CBSD68``, ``Middlebury``, an SR benchmark
    name (``Set14``...: validation during training) or a folder."""
    from lightsr.evaluation.evaluate import BENCHMARKS, resolve_dataset
    from lightsr.runtime import data_root as default_data_root

    path = Path(name_or_path)
    if path.is_dir():
        return path.name, path / "HR" if (path / "HR").is_dir() else path
    key = name_or_path.lower()
    if key in BENCHMARKS:
        return resolve_dataset(name_or_path, data_root)
    if key not in RESTORATION_DATASETS:
        raise LightSRError(
            f"dataset {name_or_path!r}: not a folder and not one of CBSD68, Middlebury, "
            f"{', '.join(sorted(set(BENCHMARKS.values())))}"
        )
    folder = (data_root or default_data_root()) / RESTORATION_DATASETS[key]
    if not folder.is_dir():
        raise LightSRError(
            f"dataset {name_or_path}: {folder} not found; set --data-root or LIGHTSR_DATA to the "
            "folder that holds CBSD68/ and Middlebury/"
        )
    return folder.parts[-2] if folder.name in ("HR", "depth") else folder.name, folder


def network_function(
    model: Any, device: Any, scale: int, keep: list[np.ndarray] | None = None, n_keep: int = 0
) -> RestoreFunction:
    """A :data:`RestoreFunction` of a network (``nn.Module``, [0, 1] in and out): the input is
    padded to the model's size multiple by reflection and the output cropped; the first
    ``n_keep`` outputs are appended to ``keep`` as uint8 (training's TensorBoard images)."""
    import torch

    from lightsr.inference.tiling import pad_to_multiple
    from lightsr.models.registry import size_multiple

    multiple = size_multiple(model)

    @torch.no_grad()
    def fn(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
        h, w = t.shape[-2:]
        t = t.to(device, torch.float32)
        y = model(pad_to_multiple(t, multiple))[0, :, : h * scale, : w * scale]
        out = y.clamp(0.0, 1.0).permute(1, 2, 0).cpu().numpy()
        if keep is not None and len(keep) < n_keep:
            keep.append(_to8(out))
        return out

    return fn


def cbm3d(noisy: np.ndarray, sigma: float) -> np.ndarray:
    """CBM3D (Dabov et al. 2007; the ``bm3d`` package's ``bm3d_rgb``) of a float RGB image on
    the [0, 1] scale with noise ``sigma`` on the 0-255 scale (the true level, as in the papers).

    Raises:
        LightSRError: the optional ``bm3d`` package is not installed.
    """
    try:
        import bm3d
    except ImportError:
        raise LightSRError(
            "--model cbm3d needs the bm3d package: pip install bm3d (research licence)"
        ) from None
    out = bm3d.bm3d_rgb(noisy.astype(np.float64), sigma / 255.0)
    return np.asarray(out, dtype=np.float32)


def _rgb8(img: np.ndarray, path: Path) -> np.ndarray:
    if img.dtype != np.uint8:
        raise LightSRError(f"{path}: restoration evaluation expects 8-bit images, not {img.dtype}")
    return np.repeat(img[:, :, None], 3, axis=2) if img.ndim == 2 else img[:, :, :3]


def _to8(img: np.ndarray) -> np.ndarray:
    """Float [0, 1] -> uint8, rounded (the papers round outputs before scoring)."""
    if img.dtype == np.uint8:
        return img
    return (np.clip(img.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _same_size(
    method: RestoreFunction | str, task: TaskSpec, clean: np.ndarray, name: str, seed: int
) -> np.ndarray:
    """The restored uint8 RGB image of one clean image (denoise or jpeg)."""
    if task.name == "denoise":
        sigma = task.sigma[0]
        x = add_gaussian_noise(to_unit(clean), sigma, image_rng(seed, name))
    else:
        x = to_unit(jpeg_roundtrip(clean, task.quality[0]))
    if method == "identity":
        return _to8(x)
    if method == "cbm3d":
        if task.name != "denoise":
            raise LightSRError("--model cbm3d is a denoiser: use it with --task denoise")
        return _to8(cbm3d(x, task.sigma[0]))
    if isinstance(method, str):
        raise LightSRError(f"--model {method}: no such anchor for --task {task.name}")
    out = method(x)
    if out.shape != clean.shape:
        raise LightSRError(
            f"{name}: the model returned {out.shape[1]}x{out.shape[0]} for a "
            f"{clean.shape[1]}x{clean.shape[0]} input; restoration needs a scale-1 model"
        )
    return _to8(out)


def _depth_sr(method: RestoreFunction | str, gt: np.ndarray, peak: float, scale: int) -> np.ndarray:
    """The super-resolved depth map in map units (float64) of a mod-cropped map ``gt``."""
    from lightsr.evaluation.resize import imresize

    lr = depth_lr(gt, scale)
    if method == "bicubic":
        return np.asarray(imresize(lr, float(scale)), dtype=np.float64)
    if method == "identity":
        return np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)
    if isinstance(method, str):
        raise LightSRError(f"--model {method}: not an anchor for --task depth (bicubic, identity)")
    x = np.repeat((lr / peak).astype(np.float32)[:, :, None], 3, axis=2)
    raw = np.asarray(method(x))
    out = raw / 255.0 if raw.dtype == np.uint8 else raw.astype(np.float64)
    if out.shape[:2] != gt.shape:
        raise LightSRError(
            f"the model returned {out.shape[1]}x{out.shape[0]} for a depth map of "
            f"{gt.shape[1]}x{gt.shape[0]}; use an x{scale} model"
        )
    return (out.mean(axis=2) if out.ndim == 3 else out) * peak


def _depth_scores(sr: np.ndarray, gt: np.ndarray, peak: float) -> dict[str, float]:
    err = sr - gt.astype(np.float64)
    rmse = float(np.sqrt(np.mean(err**2)))
    return {"rmse": rmse, "psnr": 20.0 * math.log10(peak / max(rmse, 1e-12))}


def _image_scores(
    method: RestoreFunction | str, task: TaskSpec, scale: int, path: Path, seed: int
) -> tuple[dict[str, float], np.ndarray]:
    """(scores, output image) of one file under the task's protocol."""
    from lightsr.evaluation.metrics import psnr, ssim
    from lightsr.evaluation.resize import modcrop
    from lightsr.inference.io import read_image

    raw = read_image(path)
    if task.name == "depth":
        if raw.ndim != 2 or raw.dtype not in (np.uint8, np.uint16):
            raise LightSRError(
                f"{path}: a depth map must be one channel of 8 or 16 bits, found "
                f"{raw.dtype} {tuple(raw.shape)}"
            )
        peak = 255.0 if raw.dtype == np.uint8 else 65535.0
        gt = modcrop(raw, scale)
        sr = _depth_sr(method, gt, peak, scale)
        out = np.clip(np.round(sr), 0, peak).astype(raw.dtype)
        return _depth_scores(sr, gt, peak), out
    clean = _rgb8(raw, path)
    out = _same_size(method, task, clean, path.stem, seed)
    scores = {
        "psnr": psnr(out, clean, y_channel=False),
        "ssim": ssim(out, clean, y_channel=False),
    }
    return scores, out


def evaluate_task(
    method: RestoreFunction | str,
    name: str,
    datasets: Sequence[str],
    task: TaskSpec,
    *,
    scale: int = 1,
    data_root: Path | None = None,
    seed: int = 0,
    save_images: Path | None = None,
    on_image: Callable[[str, int, int], None] | None = None,
    limit: int | None = None,
) -> list[TaskResult]:
    """Evaluate a restoration function or an anchor on datasets at one task level.

    Args:
        method: a :data:`RestoreFunction`, or ``"identity"``, ``"cbm3d"``, ``"bicubic"``.
        name: the row label.
        datasets: ``CBSD68``, ``Middlebury`` (depth) or folders of clean images.
        task: a fixed-level task (:func:`task_for_eval`).
        scale: the depth-SR factor (1 for denoise and jpeg).
        data_root: where dataset names are looked up.
        seed: the noise seed (with each file stem; 0 by default).
        save_images: write outputs to ``save_images/<dataset>/<stem>.png``.
        on_image: progress callback ``(dataset, done, total)``.
        limit: evaluate only the first ``limit`` images of each dataset (sorted by name).
    """
    from lightsr.inference.io import IMAGE_EXTENSIONS, write_image

    if task.name not in ("denoise", "jpeg", "depth"):
        raise LightSRError(f"task {task.name!r}: not a restoration task")
    results = []
    for ds in datasets:
        label, folder = resolve_task_dataset(ds, data_root)
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        files = files[:limit] if limit is not None else files
        if not files:
            raise LightSRError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
        t0 = time.perf_counter()
        per_image: list[dict[str, float | str]] = []
        for i, path in enumerate(files):
            scores, out = _image_scores(method, task, scale, path, seed)
            per_image.append({"image": path.stem, **scores})
            if save_images is not None:
                write_image(save_images / label / f"{path.stem}.png", out)
            if on_image is not None:
                on_image(label, i + 1, len(files))
        means = {k: float(np.mean([r[k] for r in per_image])) for k in per_image[0] if k != "image"}
        results.append(
            TaskResult(
                model=name,
                dataset=label,
                task=task.name,
                level=task.level if task.name != "depth" else f"x{scale}",
                scale=scale,
                psnr=means["psnr"],
                ssim=means.get("ssim", math.nan),
                images=len(files),
                seconds=time.perf_counter() - t0,
                rmse=means.get("rmse", math.nan),
                per_image=per_image,
            )
        )
    return results


def format_task_results(results: Sequence[TaskResult], *, published: bool = True) -> str:
    """A Markdown table: measured rows (with their run time), then the published reference
    rows for the same task, dataset and level, marked as published."""
    lines = ["| method | dataset | task | PSNR | SSIM | RMSE | images | time | source |"]
    lines.append("|---|---|---|---|---|---|---|---|---|")
    seen: set[tuple[str, str, str]] = set()
    for r in results:
        ssim = "" if math.isnan(r.ssim) else f"{r.ssim:.4f}"
        rmse = "" if math.isnan(r.rmse) else f"{r.rmse:.3f}"
        lines.append(
            f"| {r.model} | {r.dataset} | {r.task} {r.level} | {r.psnr:.2f} | {ssim} | {rmse} | "
            f"{r.images} | {r.seconds:.1f} s | measured |"
        )
        seen.add((r.task, r.dataset, r.level))
    if published:
        for task, dataset, level in sorted(seen):
            for p in published_rows(task, dataset, level):
                lines.append(
                    f"| {p.method} | {p.dataset} | {p.task} {p.level} | {p.psnr:.2f} | | | | | "
                    f"published: {p.source} |"
                )
    return "\n".join(lines)
