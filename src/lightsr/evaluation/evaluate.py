"""Evaluation with the SR papers' protocol: benchmark sets by name or path, paper-style tables.

Protocol (BasicSR's test script and the MATLAB scripts of the SR literature):

1. HR is cropped to a multiple of the scale (``modcrop``, from the top left).
2. LR = MATLAB ``imresize(HR, 1/s, 'bicubic')``, made on the fly with
   :func:`~lightsr.evaluation.resize.imresize` (exact with MATLAB), unless paired LR files are given
   (``lr_dir``).
3. The SR output is rounded to 8 bits.
4. PSNR and SSIM on the Y channel of BT.601 YCbCr, ``s`` pixels cropped from each border
   (:mod:`lightsr.evaluation.metrics`); a dataset's score is the mean over its images.
   ``metrics=("psnr", "ssim", "niqe")`` adds the no-reference NIQE of the SR output (Y channel,
   ``s`` pixels cropped; lower is better).

Without ground truth (``reference=False``) each dataset is a folder of input images: each is
upscaled by ``s`` and only no-reference metrics (NIQE) of the outputs are reported.

Grayscale images (e.g. Set14's ``bridge``) are read as RGB with equal channels, as BasicSR's
``cv2.imread`` does, so the model and the Y conversion see three channels.

Two bicubic baselines are built in: ``bicubic`` reproduces the papers' "Bicubic" rows, which follow
VDSR's MATLAB script (HR -> uint8 Y first; LR and SR by ``imresize`` of that Y in double
precision; SR rounded to uint8); ``bicubic-rgb`` applies the protocol above to RGB images (it reads
0.01-0.015 dB higher on Set5).
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lightsr.errors import LightSRError
from lightsr.evaluation.metrics import niqe, psnr, rgb_to_y, ssim
from lightsr.evaluation.resize import imresize, modcrop
from lightsr.inference.io import IMAGE_EXTENSIONS, read_image, write_image
from lightsr.runtime import data_root as default_data_root

__all__ = [
    "BENCHMARKS",
    "BICUBIC_MODELS",
    "DEGRADATIONS",
    "METRICS",
    "NO_REFERENCE_METRICS",
    "EvalResult",
    "degrade",
    "evaluate",
    "format_results",
    "geometric_ensemble",
    "parse_degradations",
    "parse_metrics",
    "resolve_dataset",
    "self_ensemble",
]

#: Benchmark names (lower case) -> folder under the data root; each holds ``HR/``.
BENCHMARKS = {
    "set5": "Set5",
    "set14": "Set14",
    "b100": "B100",
    "bsd100": "B100",
    "urban100": "Urban100",
    "manga109": "Manga109",
    "div2k": "DIV2K_valid",
}
BICUBIC_MODELS = ("bicubic", "bicubic-rgb")
#: Metric names in table order; the no-reference ones need no ground truth.
METRICS = ("psnr", "ssim", "niqe")
NO_REFERENCE_METRICS = ("niqe",)
#: How a metric is printed in tables.
_METRIC_FORMATS = {"psnr": "{:.2f}", "ssim": "{:.4f}", "niqe": "{:.4f}"}

#: SR function on a uint8 RGB (H, W, 3) array -> uint8 or float [0, 1] (H*s, W*s, 3) array.
SRFunction = Callable[[np.ndarray], np.ndarray]


@dataclass
class EvalResult:
    """Scores of one model on one dataset at one scale (means over images).

    A metric not in ``metrics`` was not measured: its field is NaN and :meth:`record` leaves
    it out. ``reference=False``: the dataset was a folder of inputs without ground truth.
    """

    model: str
    dataset: str
    scale: int
    psnr: float
    ssim: float
    images: int
    seconds: float
    self_ensemble: bool = False
    degrade: str = ""
    per_image: list[dict[str, float | str]] = field(default_factory=list)
    niqe: float = math.nan
    metrics: tuple[str, ...] = ("psnr", "ssim")
    reference: bool = True

    def record(self, *, per_image: bool = False) -> dict[str, object]:
        rec = asdict(self)
        if not per_image:
            rec.pop("per_image")
        for name in METRICS:
            if name not in self.metrics:
                rec.pop(name)
        rec.pop("metrics")
        return rec


def parse_metrics(spec: str | Sequence[str], *, reference: bool = True) -> tuple[str, ...]:
    """``"psnr,ssim,niqe"`` (or a list of names) -> the names in table order, checked.

    Raises:
        LightSRError: an unknown name, none at all, or a full-reference metric (PSNR, SSIM)
            without a reference.
    """
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    wanted = {n.strip().lower() for n in names if n.strip()}
    unknown = sorted(wanted - set(METRICS))
    if unknown or not wanted:
        raise LightSRError(
            f"--metrics {','.join(names)!r}: expected names from {', '.join(METRICS)}, "
            "separated by commas"
        )
    if not reference and wanted - set(NO_REFERENCE_METRICS):
        raise LightSRError(
            f"--metrics: {', '.join(sorted(wanted - set(NO_REFERENCE_METRICS)))} need a "
            f"reference image; without one (--no-reference) use {', '.join(NO_REFERENCE_METRICS)}"
        )
    return tuple(m for m in METRICS if m in wanted)


def resolve_dataset(name_or_path: str, data_root: Path | None = None) -> tuple[str, Path]:
    """Map a benchmark name (``Set5``...) or a folder of HR images to (display name, HR folder).

    Raises:
        LightSRError: unknown name / missing folder, naming what was looked for.
    """
    path = Path(name_or_path)
    if path.is_dir():
        hr = path / "HR" if (path / "HR").is_dir() else path
        return path.name, hr
    root = data_root or default_data_root()
    key = name_or_path.lower()
    if key in BENCHMARKS:
        folder = root / BENCHMARKS[key] / "HR"
        if not folder.is_dir():
            raise LightSRError(
                f"dataset {name_or_path}: {folder} not found; set --data-root or LIGHTSR_DATA to "
                "the folder that holds Set5/, Set14/, B100/ ..."
            )
        return BENCHMARKS[key], folder
    raise LightSRError(
        f"dataset {name_or_path!r}: not a folder and not one of "
        f"{', '.join(sorted(set(BENCHMARKS.values())))}"
    )


def _images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise LightSRError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) found")
    return files


def _paired_lr(lr_dir: Path, stem: str, scale: int) -> Path:
    for candidate in (f"{stem}x{scale}", stem):
        for ext in IMAGE_EXTENSIONS:
            p = lr_dir / f"{candidate}{ext}"
            if p.is_file():
                return p
    raise LightSRError(
        f"--lr-dir {lr_dir}: no LR file for {stem} ({stem}x{scale}.png or {stem}.png)"
    )


def _as_rgb8(img: np.ndarray, path: Path, reduce: bool = False) -> np.ndarray:
    """RGB uint8; ``reduce``: 16-bit and float inputs are rounded to 8 bits (no-reference
    inputs, e.g. real photos), else they are refused (the papers' protocol is 8-bit)."""
    if img.dtype != np.uint8 and reduce:
        scale = 65535.0 if img.dtype == np.uint16 else 1.0
        img = np.clip(np.round(img.astype(np.float64) / scale * 255.0), 0, 255).astype(np.uint8)
    if img.dtype != np.uint8:
        raise LightSRError(f"{path}: evaluation expects 8-bit images, found {img.dtype}")
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    return img[:, :, :3]


#: LR-side degradations for robustness evaluation: name -> (parameter meaning, default).
DEGRADATIONS = {
    "jpeg": ("JPEG quality 1-100", 40.0),
    "blur": ("Gaussian blur sigma in pixels (7x7 kernel)", 1.0),
    "noise": ("additive Gaussian noise sigma on the 0-255 scale", 10.0),
    "high-order": ("a seed >= 0 (Real-ESRGAN's second-order model makes the LR from the HR)", 0.0),
}


def parse_degradations(specs: Sequence[str]) -> list[tuple[str, float]]:
    """Parse ``["jpeg:40", "blur:1.0", "noise:10"]`` (applied in that order).

    Raises:
        LightSRError: unknown kind or bad value, naming the flag.
    """
    out = []
    for spec in specs:
        kind, _, value = spec.partition(":")
        kind = kind.strip().lower()
        if kind not in DEGRADATIONS:
            raise LightSRError(
                f"--degrade {spec!r}: unknown kind; use "
                + ", ".join(f"{k}:N ({v[0]})" for k, v in DEGRADATIONS.items())
            )
        try:
            level = float(value) if value else DEGRADATIONS[kind][1]
        except ValueError:
            raise LightSRError(f"--degrade {spec!r}: {value!r} is not a number") from None
        if kind == "high-order":
            if level < 0 or level != int(level):
                raise LightSRError(f"--degrade {spec!r}: expected {DEGRADATIONS[kind][0]}")
            out.insert(0, (kind, level))  # it makes the LR: every other kind applies after it
            continue
        if level <= 0 or (kind == "jpeg" and not 1 <= level <= 100):
            raise LightSRError(f"--degrade {spec!r}: expected {DEGRADATIONS[kind][0]}")
        out.append((kind, level))
    return out


def _high_order_seed(degradations: Sequence[tuple[str, float]]) -> int | None:
    """The seed of a ``high-order`` degradation (always first, see :func:`parse_degradations`)."""
    if degradations and degradations[0][0] == "high-order":
        return int(degradations[0][1])
    return None


def degrade(lr: np.ndarray, degradations: Sequence[tuple[str, float]], seed: int) -> np.ndarray:
    """Apply LR-side degradations (UPS robustness protocol) to a uint8 RGB image.

    ``jpeg:Q`` re-encodes with OpenCV's JPEG encoder at quality Q (4:2:0 subsampling);
    ``blur:S`` convolves with a 7x7 Gaussian of sigma S, reflecting at the border;
    ``noise:S`` adds Gaussian noise of sigma S/255 drawn from ``numpy.random.default_rng(seed)``.
    The result is clipped and rounded to 8 bits after each step. ``high-order`` is not an LR-side
    step (it replaces the bicubic LR; see :func:`_sr_and_reference`) and is skipped here.
    """
    import cv2

    img = lr
    for kind, level in degradations:
        if kind == "high-order":
            continue
        if kind == "jpeg":
            ok, buf = cv2.imencode(".jpg", img[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(level)])
            assert ok
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1]
        elif kind == "blur":
            img = cv2.GaussianBlur(img, (7, 7), level, borderType=cv2.BORDER_REFLECT_101)
        else:
            noise = np.random.default_rng(seed).normal(0.0, level, img.shape)
            img = np.clip(np.round(img.astype(np.float64) + noise), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img)


# The 8 dihedral transforms as (forward, inverse) on HxWxC arrays.
_TRANSFORMS: list[tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]] = [
    (
        (lambda a, k=k, f=f: np.rot90(a[:, ::-1] if f else a, k)),
        (lambda a, k=k, f=f: (lambda b: b[:, ::-1] if f else b)(np.rot90(a, -k))),
    )
    for f in (False, True)
    for k in range(4)
]


def geometric_ensemble(
    fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, period: int = 1
) -> np.ndarray:
    """Mean of ``fn`` over the 8 flips/rotations of an HxW(xC) float image, each undone
    (float32). ``fn`` maps a float [0, 1] image to one of any size that turns with it (SR,
    restoration, depth SR); uint8 outputs are read as [0, 255].

    ``period`` > 1 first pads the image at the bottom and right (edge values) to multiples of
    it and crops the mean back: for inputs with a grid, such as JPEG's 8x8 blocks (16x16 with
    4:2:0 chroma), so that every flip and rotation keeps the blocks on the grid the model was
    trained on (flipping a 481-pixel-wide JPEG moves its block edges off the multiples of 8).
    """
    h, w = x.shape[:2]
    ph, pw = -h % period, -w % period
    if ph or pw:
        x = np.pad(x, [(0, ph), (0, pw)] + [(0, 0)] * (x.ndim - 2), mode="edge")
    acc = None
    for fwd, inv in _TRANSFORMS:
        out = np.asarray(fn(np.ascontiguousarray(fwd(x))))
        out = out / 255.0 if out.dtype == np.uint8 else out.astype(np.float64)
        acc = inv(out) if acc is None else acc + inv(out)
    assert acc is not None
    if ph or pw:  # the output's scale is its size over the padded input's
        s = acc.shape[0] // x.shape[0]
        acc = acc[: h * s, : w * s]
    return (acc / len(_TRANSFORMS)).astype(np.float32)


def self_ensemble(fn: SRFunction, lr: np.ndarray) -> np.ndarray:
    """The "+" test-time trick: mean of the SR of the 8 flips/rotations of a uint8 LR image,
    undone (float [0, 1])."""
    return geometric_ensemble(fn, lr.astype(np.float32) / 255.0)


def _bicubic_y(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """VDSR protocol: (SR, HR) as uint8 Y images (grayscale HR is used as is)."""
    y = hr if hr.ndim == 2 else np.floor(rgb_to_y(hr[:, :, :3]) + 0.5).astype(np.uint8)
    sr = imresize(imresize(y.astype(np.float64), 1 / scale), scale)
    return np.clip(np.floor(sr + 0.5), 0, 255).astype(np.uint8), y


def _upscale(
    model: SRFunction | str,
    lr: np.ndarray,
    scale: int,
    ensemble: bool,
) -> np.ndarray:
    """SR of a uint8 RGB LR image by an SR function or MATLAB bicubic (``bicubic-rgb``)."""
    if model in BICUBIC_MODELS:
        return imresize(lr, scale)
    if isinstance(model, str):
        raise LightSRError(f"unknown built-in model {model!r}; use {BICUBIC_MODELS}")
    return self_ensemble(model, lr) if ensemble else model(lr)


def _sr_and_reference(
    model: SRFunction | str,
    path: Path,
    scale: int,
    ds_lr: Path | None,
    ensemble: bool,
    degradations: Sequence[tuple[str, float]],
) -> tuple[np.ndarray, np.ndarray]:
    """(SR, HR) of one HR file under the protocol (SR not yet rounded to 8 bits)."""
    raw = read_image(path)
    if model == "bicubic" and degradations:
        raise LightSRError("--degrade works on RGB LR: use --model bicubic-rgb")
    seed = _high_order_seed(degradations)
    if ds_lr is not None and seed is not None:
        raise LightSRError("--degrade high-order makes the LR from the HR: drop --lr-dir")
    if model == "bicubic":
        return _bicubic_y(modcrop(raw, scale), scale)
    hr = modcrop(_as_rgb8(raw, path), scale)
    if ds_lr is not None:
        lr_path = _paired_lr(ds_lr, path.stem, scale)
        lr = _as_rgb8(read_image(lr_path), lr_path)
        if lr.shape[0] * scale != hr.shape[0] or lr.shape[1] * scale != hr.shape[1]:
            raise LightSRError(
                f"{lr_path}: LR is {lr.shape[1]}x{lr.shape[0]}, expected "
                f"{hr.shape[1] // scale}x{hr.shape[0] // scale} (HR / {scale})"
            )
    elif seed is not None:
        from lightsr.degrade import degrade_image

        lr = degrade_image(hr, scale, seed=seed, index=zlib.crc32(path.stem.encode()))
    else:
        lr = imresize(hr, 1 / scale)
    if degradations:
        lr = degrade(lr, degradations, zlib.crc32(path.stem.encode()))
    return _upscale(model, lr, scale, ensemble), hr


def _score(
    sr: np.ndarray, ref: np.ndarray | None, scale: int, metrics: Sequence[str], path: Path
) -> dict[str, float]:
    """The requested metrics of one uint8 SR image (``ref`` is None without ground truth)."""
    scores: dict[str, float] = {}
    if ref is not None and "psnr" in metrics:
        scores["psnr"] = psnr(sr, ref, crop_border=scale)
    if ref is not None and "ssim" in metrics:
        scores["ssim"] = ssim(sr, ref, crop_border=scale)
    if "niqe" in metrics:
        try:
            scores["niqe"] = niqe(sr, crop_border=scale)
        except LightSRError as e:
            raise LightSRError(f"{path}: {e}") from None
    return scores


def _dataset_folders(ds: str, data_root: Path | None, reference: bool) -> tuple[str, Path]:
    """(display name, folder of the images to read): HR images, or inputs without reference."""
    if reference:
        return resolve_dataset(ds, data_root)
    path = Path(ds)
    if not path.is_dir():
        raise LightSRError(
            f"dataset {ds!r}: without a reference (--no-reference) the datasets are folders of "
            "input images to upscale; no such folder"
        )
    return path.name, path


def evaluate(
    model: SRFunction | str,
    model_name: str,
    datasets: Sequence[str],
    scale: int,
    *,
    data_root: Path | None = None,
    lr_dir: Path | None = None,
    ensemble: bool = False,
    save_images: Path | None = None,
    on_image: Callable[[str, int, int], None] | None = None,
    degradations: Sequence[tuple[str, float]] = (),
    metrics: Sequence[str] = ("psnr", "ssim"),
    reference: bool = True,
    limit: int | None = None,
) -> list[EvalResult]:
    """Evaluate an SR function (or ``"bicubic"``/``"bicubic-rgb"``) on datasets at one scale.

    Args:
        model: uint8 RGB LR (h, w, 3) -> uint8 or float [0, 1] SR (h*s, w*s, 3), or a bicubic name.
        model_name: label for the records.
        datasets: benchmark names or folders of HR images (a folder's ``HR/`` is used if present);
            with ``reference=False``, folders of input images.
        scale: upscaling factor.
        data_root: where benchmark names are resolved (default :func:`default_data_root`).
        lr_dir: paired LR images (``<stem>x<s>.png`` or ``<stem>.png``); with several datasets a
            ``lr_dir/<dataset>/`` subfolder is used when it exists.
        ensemble: average the 8 flips/rotations (self-ensemble, the papers' "+").
        save_images: write SR images to ``save_images/<dataset>/<stem>.png``.
        on_image: progress callback ``(dataset, done, total)``.
        degradations: LR-side degradations (:func:`parse_degradations`), applied after the LR is
            made; the noise seed is derived from the image name, so runs are reproducible.
        metrics: names from :data:`METRICS` (:func:`parse_metrics`); ``niqe`` is measured on the
            SR output with ``scale`` pixels cropped from each border, like PSNR and SSIM.
        reference: False: each dataset folder holds inputs without ground truth; each image is
            upscaled (``bicubic`` and ``bicubic-rgb``: MATLAB ``imresize`` of the RGB image) and
            only no-reference metrics are allowed.
        limit: only the first ``limit`` images of each dataset (sorted by name).
    """
    metrics = parse_metrics(metrics, reference=reference)
    if limit is not None and limit < 1:
        raise LightSRError(f"limit: expected a number of images >= 1, found {limit}")
    if not reference and lr_dir is not None:
        raise LightSRError("--lr-dir needs a reference: the datasets are the inputs already")
    results = []
    for ds in datasets:
        name, folder = _dataset_folders(ds, data_root, reference)
        files = _images(folder)[:limit]
        ds_lr = None
        if lr_dir is not None:
            ds_lr = lr_dir / name if len(datasets) > 1 and (lr_dir / name).is_dir() else lr_dir
        t0 = time.perf_counter()
        per_image: list[dict[str, float | str]] = []
        for i, path in enumerate(files):
            if reference:
                sr, ref = _sr_and_reference(model, path, scale, ds_lr, ensemble, degradations)
            else:
                lr = _as_rgb8(read_image(path), path, reduce=True)
                if _high_order_seed(degradations) is not None:
                    raise LightSRError("--degrade high-order needs ground truth (the HR)")
                if degradations:
                    lr = degrade(lr, degradations, zlib.crc32(path.stem.encode()))
                sr, ref = _upscale(model, lr, scale, ensemble), None
            if sr.dtype != np.uint8:  # round to 8 bits first, as the papers do
                sr = (np.clip(sr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            per_image.append({"image": path.stem, **_score(sr, ref, scale, metrics, path)})
            if save_images is not None:
                write_image(save_images / name / f"{path.stem}.png", sr)
            if on_image is not None:
                on_image(name, i + 1, len(files))
        means = {m: float(np.mean([r[m] for r in per_image])) for m in metrics}
        results.append(
            EvalResult(
                model=model_name,
                dataset=name,
                scale=scale,
                psnr=means.get("psnr", math.nan),
                ssim=means.get("ssim", math.nan),
                images=len(files),
                seconds=time.perf_counter() - t0,
                self_ensemble=ensemble,
                degrade=",".join(f"{k}:{v:g}" for k, v in degradations),
                per_image=per_image,
                niqe=means.get("niqe", math.nan),
                metrics=metrics,
                reference=reference,
            )
        )
    return results


def format_results(results: Iterable[EvalResult], fmt: str = "markdown") -> str:
    """Format results as a paper-style table: one row per (model, scale), scores per dataset.

    A cell holds the measured metrics joined by ``/`` (PSNR/SSIM by default, ``.../NIQE``).
    ``fmt`` is ``"markdown"`` or ``"csv"`` (one row per record; a column per measured metric).
    """
    results = list(results)
    measured = [m for m in METRICS if any(m in r.metrics for r in results)]
    if fmt == "csv":
        cols = ["model", "dataset", "scale", "degrade", *measured, "images", "seconds",
                "self_ensemble"]  # fmt: skip
        lines = [",".join(cols)]
        for r in results:
            rec = asdict(r)
            lines.append(",".join(_csv_cell(rec[c]) for c in cols))
        return "\n".join(lines)
    datasets = list(dict.fromkeys(r.dataset for r in results))

    def label(r: EvalResult) -> str:
        return r.model + ("+" if r.self_ensemble else "") + (f" [{r.degrade}]" if r.degrade else "")

    rows = list(dict.fromkeys((label(r), r.scale) for r in results))
    cell = {(label(r), r.scale, r.dataset): r for r in results}
    head = "| model | scale | " + " | ".join(datasets) + " |"
    lines = [head, "|---|---|" + "---|" * len(datasets)]
    for model, scale in rows:
        cells = []
        for ds in datasets:
            r = cell.get((model, scale, ds))
            cells.append("/".join(_format_metric(r, m) for m in measured) if r else "")
        lines.append(f"| {model} | x{scale} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _format_metric(r: EvalResult, name: str) -> str:
    """One metric of a result as printed in tables ("" when it was not measured)."""
    return _METRIC_FORMATS[name].format(getattr(r, name)) if name in r.metrics else ""


def _csv_cell(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.6f}" if np.isfinite(v) else str(v)
    text = str(v)
    return f'"{text}"' if "," in text else text
