"""Crops side by side: LR (nearest), bicubic, safmn-x4, light SAFMN++ and real-world models.

Two kinds of rows:

- ``--synthetic`` (the default, committed as ``docs/real_world.png``): the project's own
  ``examples/chelsea.png``, degraded with ``lightsr.degrade`` (Real-ESRGAN second-order model,
  x4) for a few seeds, so the figure has a ground truth column and no third-party pixels.
- ``--realdev``: crops of the real photos in ``../shared/datasets/RealDev`` (third-party images:
  write this figure outside the repository, e.g. ``-o /tmp/realdev_crops.png``).

Models are named models or checkpoint paths: ``--model real=path/to/export.safetensors``
(repeatable). Light SAFMN++ is read from ``../shared/weights/safmn/`` when it is there.

    python benchmarks/real_world_figure.py --model real-safmn-x4 -o docs/real_world.png
    python benchmarks/real_world_figure.py --realdev --model real-safmn-x4 -o /tmp/realdev.png
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from degradation_gallery import hr_crop
from PIL import Image

from lightsr.degrade import degrade_image
from lightsr.evaluation.resize import imresize
from lightsr.inference.io import read_image
from lightsr.inference.upscaler import load_model

REPO = Path(__file__).resolve().parents[1]
SCALE = 4
#: RealDev crops: file, (x, y) of the LR crop's top-left corner, LR crop side.
REALDEV_CROPS = (
    ("0014.jpg", (40, 40), 64),
    ("OST_009.png", (120, 60), 64),
    ("ADE_val_00000114.jpg", (150, 90), 64),
    ("0030.jpg", (90, 60), 64),
)
SYNTHETIC_SEEDS = (0, 3, 5)


def shared_root() -> Path:
    return Path(os.environ.get("LIGHTSR_SHARED", REPO.parent / "shared"))


def parse_models(specs: list[str]) -> list[tuple[str, str]]:
    models = []
    for spec in specs:
        label, _, ref = spec.partition("=")
        models.append((label, ref or label))
    return models


def synthetic_rows() -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    hr = hr_crop()  # the same crop as the degradation gallery (docs/degradations.md)
    rows = []
    for seed in SYNTHETIC_SEEDS:
        rows.append((f"chelsea high-order:{seed}", degrade_image(hr, scale=SCALE, seed=seed), hr))
    return rows


def realdev_rows() -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    root = shared_root() / "datasets" / "RealDev"
    rows = []
    for name, (x, y), side in REALDEV_CROPS:
        img = read_image(root / name)
        if img.dtype != np.uint8:
            img = (img.astype(np.float64) / np.iinfo(img.dtype).max * 255 + 0.5).astype(np.uint8)
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        img = img[..., :3]
        y0, x0 = min(y, img.shape[0] - side), min(x, img.shape[1] - side)
        rows.append((name, img[max(y0, 0) : y0 + side, max(x0, 0) : x0 + side], None))
    return rows


def columns(models: list[tuple[str, str]]) -> list[tuple[str, object]]:
    cols: list[tuple[str, object]] = [("safmn-x4", "safmn-x4")]
    light = shared_root() / "weights" / "safmn" / "light_SAFMNPP_AIS2024_x4.pth"
    if light.exists():
        cols.append(("light SAFMN++", str(light)))
    cols.extend(models)
    return [("bicubic", _Bicubic())] + [(label, load_model(ref)) for label, ref in cols]


class _Bicubic:
    """MATLAB bicubic x4 (the evaluation protocol's resize), shaped like an Upscaler."""

    def upscale(self, img: np.ndarray, color_fix: bool = False) -> np.ndarray:
        return imresize(img, scale=SCALE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realdev", action="store_true", help="rows from RealDev photos")
    parser.add_argument("--model", action="append", default=[], metavar="LABEL=REF")
    parser.add_argument("--color-fix", action="store_true", help="also apply --color-fix")
    parser.add_argument("-o", "--out", type=Path, default=REPO / "docs" / "real_world.png")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = realdev_rows() if args.realdev else synthetic_rows()
    cols = columns(parse_models(args.model))
    ncol = 1 + len(cols) + (0 if args.realdev else 1)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.1 * ncol, 2.25 * len(rows)), dpi=110)
    axes = np.atleast_2d(axes)
    for r, (name, lr, hr) in enumerate(rows):
        panels = [(f"{name}\nLR (nearest)", np.repeat(np.repeat(lr, SCALE, 0), SCALE, 1))]
        for label, model in cols:
            out = model.upscale(lr, color_fix=args.color_fix and label != "bicubic")
            panels.append((label, out))
        if hr is not None:
            panels.append(("HR (ground truth)", hr))
        for ax, (title, img) in zip(axes[r], panels, strict=True):
            ax.imshow(img, interpolation="nearest")
            ax.set_title(title, fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out)
    palette = Image.Quantize.MEDIANCUT
    small = Image.open(args.out).convert("RGB").quantize(255, palette, dither=Image.Dither.NONE)
    small.save(args.out, optimize=True)  # a third of the size of the RGB PNG
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
