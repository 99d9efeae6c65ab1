"""Training data: HR folders, LR made on the fly with the MATLAB-exact bicubic, random patches.

Pipeline for one sample (SAFMN recipe, paper Sec. 4.1; BasicSR's ``PairedImageDataset``):

1. The HR image (8 or 16 bit; grayscale is repeated to RGB, alpha is dropped) is cropped to a
   multiple of the scale (``modcrop``).
2. A random ``patch x patch`` window of the LR image is chosen, and the aligned
   ``patch*s x patch*s`` HR window. The LR patch equals the same window of
   ``imresize(HR, 1/s)`` (MATLAB's bicubic, ``imresize``) exactly: it is
   computed from the HR window plus a margin of :data:`LR_MARGIN` LR pixels (the kernel reaches
   2), so whole images are never resized. With paired LR folders the LR file is cropped instead.
3. Random horizontal flip, vertical flip and transpose (the 8 flips/90-degree rotations).

Determinism. Samples come from an endless stream: epoch ``e`` is a permutation of the images
seeded by ``(seed, e)``, and the sample at stream position ``p`` draws its window and flips from
a generator seeded by ``(seed, p)``. A global batch ``k`` is positions ``[k*G, (k+1)*G)`` with
``G = batch_size * world_size``, and rank ``r`` takes its ``r``-th slice of ``batch_size``. So
the data depend only on the seed and the number of samples consumed (saved in checkpoints as the
data position): not on the number of loader workers, and the ranks of a DDP run together see
exactly the batches of a single process with the global batch. Workers are also seeded from
``(seed, rank, worker id)`` (Python, NumPy and torch generators) for any other randomness.

Checks before training (:func:`scan_images`): every file's header is read and verified (PNG
chunk CRCs, truncated JPEG/PNG ends); a corrupt file stops the run with its path, or is skipped
with a warning when ``skip_corrupt`` is set. Images smaller than a patch are skipped with a
warning naming them.

Restoration tasks (``task``, a :class:`lightsr.restoration.tasks.TaskSpec`): ``denoise`` and
``jpeg`` (scale 1) take the augmented clean patch and degrade it with the task's seeded
degradation (the generator of the sample's stream position, so samples stay reproducible);
``depth`` reads single-channel maps (or :func:`synthetic_records`' generated maps) as floats and
makes the LR patch with the same MATLAB bicubic, unrounded.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from lightsr.errors import ImageError, LightSRError
from lightsr.evaluation.resize import imresize, modcrop
from lightsr.inference.io import IMAGE_EXTENSIONS, read_image

__all__ = [
    "LR_MARGIN",
    "SYNTHETIC_DEPTH",
    "DataError",
    "ImageRecord",
    "PatchDataset",
    "StreamSampler",
    "augment",
    "epoch_permutation",
    "lr_patch",
    "make_loader",
    "scan_images",
    "synthetic_records",
    "to_rgb",
]

#: LR pixels of context around a patch when it is downscaled on its own. MATLAB's bicubic at
#: 1/s has a support of 4*s HR pixels, i.e. 2 LR pixels on each side of a pixel; one more keeps
#: a safe distance from the clamped border of the cut-out.
LR_MARGIN = 3

Log = Callable[[str], None]


class DataError(LightSRError):
    """Training data that cannot be used (missing folder, corrupt file, nothing left)."""


@dataclass(frozen=True)
class ImageRecord:
    """One training image.

    Attributes:
        hr: the HR file.
        lr: the paired LR file, or None (LR made on the fly).
        height, width: HR size in pixels (before ``modcrop``).
    """

    hr: Path
    lr: Path | None
    height: int
    width: int


# --------------------------------------------------------------------------------------------
# Scanning


def _list_images(folder: Path, key: str) -> list[Path]:
    if not folder.is_dir():
        raise DataError(f"{key}: folder not found: {folder} (set it with --set {key}=[...])")
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
    if not files:
        raise DataError(f"{key}: no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}")
    return files


def _probe(path: Path) -> tuple[int, int]:
    """(height, width) from the header after verifying the file without decoding its pixels.

    Raises:
        ImageError: unreadable, corrupt or truncated file.
    """
    from PIL import Image

    from lightsr.inference.io import _check_complete

    if not path.is_file() or path.stat().st_size == 0:
        raise ImageError(f"{path}: file is missing or empty")
    _check_complete(path)
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # trusted training data; io.read_image keeps its own limit
    try:
        with Image.open(path) as im:
            width, height = im.size
            im.verify()  # PNG: chunk CRCs; others: structure
        return height, width
    except ImageError:
        raise
    except Exception as exc:  # Pillow raises many types; all mean "not a valid image"
        if "cannot identify image file" in str(exc):  # a format Pillow lacks: decode it
            img = read_image(path)
            return img.shape[0], img.shape[1]
        raise ImageError(f"{path}: corrupt image ({str(exc).splitlines()[0][:120]})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = old


def _find_lr(lr_dir: Path, stem: str, scale: int) -> Path | None:
    for name in (stem, f"{stem}x{scale}"):
        for ext in IMAGE_EXTENSIONS:
            p = lr_dir / f"{name}{ext}"
            if p.is_file():
                return p
    return None


def scan_images(
    hr_dirs: Sequence[str | Path],
    lr_dirs: Sequence[str | Path] = (),
    *,
    scale: int,
    patch_size: int,
    skip_corrupt: bool = False,
    log: Log = print,
) -> list[ImageRecord]:
    """List and check the training images before training starts.

    Args:
        hr_dirs: folders of HR images (searched recursively, sorted by path).
        lr_dirs: paired LR folders, one per HR folder, or empty.
        scale: the upscaling factor.
        patch_size: LR patch side; images whose LR would be smaller are skipped with a warning.
        skip_corrupt: skip corrupt files with a warning instead of raising.
        log: receives one line per warning.

    Raises:
        DataError: missing folder, corrupt file (its path in the message), missing or
            mis-sized paired LR file, or no usable image left.
    """
    jobs: list[tuple[Path, Path | None]] = []
    for i, hr_dir in enumerate(hr_dirs):
        files = _list_images(Path(hr_dir), f"data.hr_dirs[{i}]")
        lr_dir = Path(lr_dirs[i]) if lr_dirs else None
        if lr_dir is not None and not lr_dir.is_dir():
            raise DataError(f"data.lr_dirs[{i}]: folder not found: {lr_dir}")
        for f in files:
            lr = None
            if lr_dir is not None:
                lr = _find_lr(lr_dir / f.parent.relative_to(Path(hr_dir)), f.stem, scale)
                if lr is None:
                    raise DataError(
                        f"{f}: no paired LR file {f.stem}.png or {f.stem}x{scale}.png in {lr_dir}"
                    )
            jobs.append((f, lr))

    def check(job: tuple[Path, Path | None]) -> tuple[int, int] | ImageError:
        try:
            size = _probe(job[0])
            if job[1] is not None:
                lr_size = _probe(job[1])
                want = (size[0] // scale, size[1] // scale)
                if lr_size != want:
                    raise ImageError(
                        f"{job[1]}: LR is {lr_size[1]}x{lr_size[0]}, expected "
                        f"{want[1]}x{want[0]} (HR {size[1]}x{size[0]} / {scale})"
                    )
            return size
        except ImageError as exc:
            return exc

    with ThreadPoolExecutor(max_workers=8) as pool:  # file I/O and zlib release the GIL
        results = list(pool.map(check, jobs))
    records: list[ImageRecord] = []
    small = 0
    for (hr, lr), res in zip(jobs, results, strict=True):
        if isinstance(res, ImageError):
            if not skip_corrupt:
                raise DataError(
                    f"{res}; fix or remove the file, or set data.skip_corrupt=true to skip it"
                )
            log(f"warning: skipping corrupt image: {res}")
            continue
        h, w = res
        if min(h // scale, w // scale) < patch_size:
            small += 1
            log(
                f"warning: skipping {hr}: {w}x{h} is smaller than a {patch_size * scale}x"
                f"{patch_size * scale} HR patch (data.patch_size={patch_size}, x{scale})"
            )
            continue
        records.append(ImageRecord(hr, lr, h, w))
    if not records:
        raise DataError(
            f"data.hr_dirs: no usable training images ({len(jobs)} found, {small} smaller than "
            f"a patch); lower data.patch_size or add images"
        )
    return records


# --------------------------------------------------------------------------------------------
# Pure helpers


def to_rgb(img: np.ndarray) -> np.ndarray:
    """HxW (gray) or HxWx{3,4} -> HxWx3 (gray repeated, alpha dropped); dtype unchanged."""
    if img.ndim == 2:
        return np.repeat(img[:, :, None], 3, axis=2)
    return img[:, :, :3]


def lr_patch(hr: np.ndarray, top: int, left: int, patch: int, scale: int) -> np.ndarray:
    """The ``patch x patch`` window at LR ``(top, left)`` of ``imresize(hr, 1/scale)``.

    ``hr`` must be mod-cropped (sides multiples of ``scale``). Only the HR window plus
    :data:`LR_MARGIN` LR pixels of context is resized; the result equals cropping the
    whole-image resize bit for bit (tested), at a fraction of the cost.
    """
    lh, lw = hr.shape[0] // scale, hr.shape[1] // scale
    t0, l0 = max(0, top - LR_MARGIN), max(0, left - LR_MARGIN)
    t1, l1 = min(lh, top + patch + LR_MARGIN), min(lw, left + patch + LR_MARGIN)
    lr = imresize(hr[t0 * scale : t1 * scale, l0 * scale : l1 * scale], 1 / scale)
    return lr[top - t0 : top - t0 + patch, left - l0 : left - l0 + patch]


def augment(arrays: Sequence[np.ndarray], hflip: bool, vflip: bool, transpose: bool) -> list:
    """Apply the same flips/transpose to HxWxC arrays (BasicSR's ``augment`` order)."""
    out = []
    for a in arrays:
        if hflip:
            a = a[:, ::-1]
        if vflip:
            a = a[::-1]
        if transpose:
            a = a.transpose(1, 0, 2)
        out.append(a)
    return out


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8/uint16/float array -> (3, H, W) float32 tensor in [0, 1]."""
    if img.dtype == np.uint8:
        x = img.astype(np.float32) / 255.0
    elif img.dtype == np.uint16:
        x = img.astype(np.float32) / 65535.0
    else:
        x = np.clip(img.astype(np.float32), 0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))


def _float_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 float array -> (3, H, W) float32 tensor, values kept as they are (no clipping)."""
    return torch.from_numpy(np.ascontiguousarray(img.astype(np.float32).transpose(2, 0, 1)))


def _seed_sequence(seed: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(seed, spawn_key=key)


@functools.lru_cache(maxsize=4)
def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the ``n`` images in epoch ``epoch`` of the stream (cached, read-only)."""
    perm = np.random.default_rng(_seed_sequence(seed, 0, epoch)).permutation(n)
    perm.setflags(write=False)
    return perm


# --------------------------------------------------------------------------------------------
# Dataset and sampler


#: The folder name of :func:`synthetic_records`' images (no file exists there).
SYNTHETIC_DEPTH = Path("<synthetic-depth>")


def synthetic_records(n: int, size: int) -> list[ImageRecord]:
    """``n`` generated square depth maps of ``size`` pixels (``data.task: depth`` without
    ``hr_dirs``): map ``i`` is :func:`lightsr.restoration.tasks.synthetic_depth` seeded by the
    data seed and ``i``, made when a patch of it is first needed."""
    return [ImageRecord(SYNTHETIC_DEPTH / f"{i:06d}", None, size, size) for i in range(n)]


@functools.lru_cache(maxsize=64)
def _synthetic_map(seed: int, index: int, size: int) -> np.ndarray:
    from lightsr.restoration.tasks import synthetic_depth

    rng = np.random.default_rng(_seed_sequence(seed, 3, index))
    depth = synthetic_depth(rng, size, size)[:, :, None]
    depth.setflags(write=False)
    return depth


def _as_map(img: np.ndarray, path: Path) -> np.ndarray:
    """A depth map file -> HxWx1 float32 on the [0, 1] scale of its bit depth."""
    from lightsr.restoration.tasks import to_unit

    if img.ndim == 3:
        if img.shape[2] >= 3 and not np.array_equal(img[:, :, 0], img[:, :, 1]):
            raise DataError(f"{path}: a depth map must have one channel, found {img.shape[2]}")
        img = img[:, :, 0]
    return to_unit(img)[:, :, None]


class PatchDataset(Dataset):
    """Random (LR, HR) patch pairs; indexed by ``(image index, stream position)`` keys.

    Args:
        records: images from :func:`scan_images`.
        scale: upscaling factor.
        patch_size: LR patch side.
        flip: random horizontal flips.
        rotate: random vertical flips and transposes.
        seed: the data seed (with the stream position, it fixes each sample's window and flips).
        cache: decode every image now and keep it in memory.
        skip_corrupt: an image that fails to decode during training is replaced by the next one
            (with a warning) instead of stopping the run.
        log: receives warnings.
        degradation: ``bicubic`` (MATLAB-exact LR) or ``high-order`` (:mod:`lightsr.degrade`,
            applied to the augmented HR patch, seeded by ``seed`` and the stream position).
        degrade: overrides of :class:`lightsr.degrade.DegradeParams`.
        usm_target: return the unsharp-masked HR patch as the target.
        task: a restoration task (see the module doc); None or ``sr``: super-resolution.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        *,
        scale: int,
        patch_size: int,
        flip: bool = True,
        rotate: bool = True,
        seed: int = 0,
        cache: bool = False,
        skip_corrupt: bool = False,
        log: Log = print,
        degradation: str = "bicubic",
        degrade: dict[str, Any] | None = None,
        usm_target: bool = False,
        task: Any = None,
    ) -> None:
        self.records = list(records)
        self.task = task if task is not None and task.name != "sr" else None
        self.degradation = degradation
        self.degrade_params = dict(degrade or {})
        self.usm_target = usm_target
        self.scale = scale
        self.patch = patch_size
        self.flip = flip
        self.rotate = rotate
        self.seed = seed
        self.skip_corrupt = skip_corrupt
        self.log = log
        self.cache: list[tuple[np.ndarray, np.ndarray | None]] | None = None
        if cache:
            self.cache = [self._load(i) for i in range(len(self.records))]

    def __len__(self) -> int:
        return len(self.records)

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        rec = self.records[index]
        if rec.hr.parent == SYNTHETIC_DEPTH:
            return _synthetic_map(self.seed, index, rec.height), None
        if self.task is not None and self.task.name == "depth":
            return modcrop(_as_map(read_image(rec.hr), rec.hr), self.scale), None
        hr = modcrop(to_rgb(read_image(rec.hr)), self.scale)
        lr = to_rgb(read_image(rec.lr)) if rec.lr is not None else None
        return hr, lr

    def _image(self, index: int) -> tuple[np.ndarray, np.ndarray | None]:
        if self.cache is not None:
            return self.cache[index]
        for k in range(len(self.records)):
            i = (index + k) % len(self.records)
            try:
                return self._load(i)
            except ImageError as exc:
                if not self.skip_corrupt:
                    raise
                self.log(f"warning: skipping unreadable image: {exc}")
        raise DataError("data: no training image could be decoded")

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        index, position = key
        rng = np.random.default_rng(_seed_sequence(self.seed, 1, position))
        hr, lr = self._image(index)
        s, p = self.scale, self.patch
        lh, lw = hr.shape[0] // s, hr.shape[1] // s
        top = int(rng.integers(0, lh - p + 1))
        left = int(rng.integers(0, lw - p + 1))
        hflip, vflip, transpose = (bool(b) for b in rng.integers(0, 2, size=3))
        hr_p = hr[top * s : (top + p) * s, left * s : (left + p) * s]
        flips = (hflip and self.flip, vflip and self.rotate, transpose and self.rotate)
        if self.task is not None:
            return self._task_sample(hr, hr_p, (top, left), flips, rng)
        if self.degradation == "high-order":
            (hr_p,) = augment([hr_p], *flips)
            return self._high_order(np.ascontiguousarray(hr_p), position)
        lr_p = (
            lr[top : top + p, left : left + p] if lr is not None else lr_patch(hr, top, left, p, s)
        )
        lr_p, hr_p = augment([lr_p, hr_p], *flips)
        return _to_tensor(lr_p), _to_tensor(hr_p)

    def _task_sample(
        self,
        hr: np.ndarray,
        hr_p: np.ndarray,
        corner: tuple[int, int],
        flips: tuple[bool, bool, bool],
        rng: np.random.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(input, target) of a restoration task: the degraded patch and the clean one (depth:
        the bicubic LR of the map and the map, as 3 equal channels)."""
        if self.task.name == "depth":
            lr_p = lr_patch(hr, corner[0], corner[1], self.patch, self.scale)
            lr_p, hr_p = augment([lr_p, hr_p], *flips)
            lr3 = np.repeat(np.asarray(lr_p, dtype=np.float32), 3, axis=2)
            return _float_tensor(lr3), _float_tensor(np.repeat(hr_p, 3, axis=2))
        (hr_p,) = augment([hr_p], *flips)
        hr_p = np.ascontiguousarray(hr_p)
        # the noisy input keeps values outside [0, 1] (not clipped, as the evaluation)
        return _float_tensor(self.task.degrade(hr_p, rng)), _to_tensor(hr_p)

    def _high_order(self, hr_p: np.ndarray, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Real-ESRGAN's degradations of one (augmented) HR patch, seeded by its position."""
        from lightsr.degrade import degrade_image, usm_sharp

        if hr_p.dtype != np.uint8:  # the pipeline works on 8-bit levels, as the photos it imitates
            hr_p = np.round(_to_tensor(hr_p).numpy().transpose(1, 2, 0) * 255).astype(np.uint8)
        lr_p = degrade_image(hr_p, self.scale, self.seed, self.degrade_params, index=position)
        target = usm_sharp(hr_p.astype(np.float32) / 255.0) if self.usm_target else hr_p
        return _to_tensor(lr_p), _to_tensor(np.asarray(target))


class StreamSampler(Sampler[list[tuple[int, int]]]):
    """Endless batches of ``(image index, stream position)`` keys for one rank.

    Global batch ``k`` covers stream positions ``[start + k*G, start + (k+1)*G)`` with
    ``G = batch_size * world_size``; this rank yields its slice ``rank * batch_size`` onward.

    Args:
        n_items: number of images.
        batch_size: per-rank batch size.
        seed: the data seed.
        rank, world_size: this process's place in a distributed run.
        start: stream position to start from (samples consumed so far, over all ranks).
    """

    def __init__(
        self,
        n_items: int,
        *,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
    ) -> None:
        self.n = n_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.start = start

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        pos = self.start
        while True:
            first = pos + self.rank * self.batch_size
            batch = []
            for p in range(first, first + self.batch_size):
                epoch, i = divmod(p, self.n)
                batch.append((int(epoch_permutation(self.n, self.seed, epoch)[i]), p))
            yield batch
            pos += self.batch_size * self.world_size


def _seed_worker(seed: int, rank: int, worker_id: int) -> None:
    s = int(_seed_sequence(seed, 2, rank, worker_id).generate_state(1)[0])
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def make_loader(
    dataset: PatchDataset,
    sampler: StreamSampler,
    *,
    workers: int,
    pin_memory: bool = False,
) -> DataLoader:
    """An endless loader of ``(lr, hr)`` float batches; worker count does not change the data."""
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        num_workers=workers,
        pin_memory=pin_memory,
        worker_init_fn=functools.partial(_seed_worker, dataset.seed, sampler.rank),
        generator=torch.Generator().manual_seed(dataset.seed),  # leaves the global RNG alone
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
