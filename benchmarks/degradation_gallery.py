"""The figure of docs/degradations.md: one HR crop and 8 seeded Real-ESRGAN degradations.

The HR is the 192x192 centre crop of ``examples/chelsea.png`` (CC0, see examples/README.md);
each LR is ``lightsr.degrade.degrade_image(hr, scale=4, seed=s)`` for ``s = 0..7`` (48x48),
shown enlarged 4x with nearest-neighbour so its pixels stay visible, under the choices its
seed drew (``sample_plan``). Writes ``docs/degradations.png`` (needs matplotlib, a dev-only
dependency) and prints each LR's plan and statistics.

Run: ``python benchmarks/degradation_gallery.py [--out docs/degradations.png]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from lightsr.degrade import DegradationPlan, degrade_image, image_rngs, sample_plan

REPO = Path(__file__).resolve().parents[1]
SCALE = 4
SEEDS = range(8)


def hr_crop() -> np.ndarray:
    """The 192x192 RGB uint8 centre crop of the sample photograph (256x192)."""
    img = cv2.imread(str(REPO / "examples" / "chelsea.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
    return np.ascontiguousarray(img[:, 32:224])


def label(seed: int, plan: DegradationPlan) -> str:
    """Four short lines: stage 1 blur and resize, its noise and JPEG; the same for stage 2."""
    blur2 = plan.blur2.summary() if plan.blur2 else "no blur"
    sinc = plan.final_sinc.summary() if plan.final_sinc else "no sinc"
    tail = [f"resize {plan.final_mode} + {sinc}", f"q{plan.jpeg2}"]
    if not plan.resize_back_first:
        tail.reverse()
    return "\n".join(
        [
            f"seed {seed} | 1: {plan.blur1.summary()}, {plan.resize1.summary()}",
            f"{plan.noise1.summary()}, q{plan.jpeg1}",
            f"2: {blur2}, {plan.resize2.summary()}, {plan.noise2.summary()}",
            " -> ".join(tail),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "degradations.png")
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hr = hr_crop()
    bicubic = cv2.resize(hr, None, fx=1 / SCALE, fy=1 / SCALE, interpolation=cv2.INTER_AREA)
    fig, axes = plt.subplots(3, 3, figsize=(9.6, 11.4), dpi=100)
    panels = [(hr, f"HR: chelsea.png crop {hr.shape[1]}x{hr.shape[0]}\n(target)")]
    for seed in SEEDS:
        lr = degrade_image(hr, scale=SCALE, seed=seed)
        plan = sample_plan(image_rngs(seed, 0)[0])
        err = np.abs(lr.astype(np.float64) - bicubic).mean()
        print(f"seed {seed}: mean {lr.mean():6.1f}  std {lr.std():5.1f}  |LR - area LR| {err:5.1f}")
        print("   ", plan.summary().replace("\n", "\n    "))
        panels.append((np.repeat(np.repeat(lr, SCALE, 0), SCALE, 1), label(seed, plan)))
    for ax, (img, text) in zip(axes.flat, panels, strict=True):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(text, fontsize=6.6, loc="left", family="monospace")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "lightsr.degrade: Real-ESRGAN second-order degradations, x4 (LR 48x48 shown 4x nearest)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
