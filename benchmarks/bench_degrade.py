"""Speed of the Real-ESRGAN degradation pipeline (lightsr.degrade) on the training use case.

A batch of 16 RGB 256x256 HR crops (random crops of ``examples/chelsea.png`` enlarged 1.5x, so
the pixels are a photograph's) degraded to 64x64 LR with ``degrade(hr, scale=4, seed=s)``, a
new seed per run (so each run draws other kernels, resizes and noise). The reference, timed in
the same run: the MATLAB-exact bicubic x1/4 of the same batch (``imresize_torch``), the plain
LR making that the degradations replace. Prints median and min wall time and images/s.

Run: ``python benchmarks/bench_degrade.py [--repeats 9] [--threads N]``
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
from _timing import time_ms

from lightsr.degrade import degrade
from lightsr.evaluation.resize import imresize_torch

REPO = Path(__file__).resolve().parents[1]


def hr_batch(n: int = 16, size: int = 256, seed: int = 0) -> torch.Tensor:
    """``n`` random ``size`` crops of the sample photograph, enlarged 1.5x (it is 256x192)."""
    img = cv2.imread(str(REPO / "examples" / "chelsea.png"), cv2.IMREAD_COLOR)[:, :, ::-1]
    big = cv2.resize(img, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        top = rng.integers(0, big.shape[0] - size + 1)
        left = rng.integers(0, big.shape[1] - size + 1)
        crops.append(big[top : top + size, left : left + size])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per case")
    parser.add_argument("--threads", type=int, default=None, help="torch/OpenCV threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    hr = hr_batch()
    cases: list[tuple[str, Callable[[int], object]]] = [
        ("degrade (Real-ESRGAN x4)", lambda i: degrade(hr, scale=4, seed=i + 1)),
        ("reference: bicubic x1/4", lambda i: imresize_torch(hr, 1 / 4)),
    ]
    print(
        f"lightsr.degrade, batch 16x3x256x256 -> 64x64; torch {torch.__version__}, "
        f"OpenCV {cv2.__version__}, {torch.get_num_threads()} torch threads, "
        f"{cv2.getNumThreads()} OpenCV threads, {platform.processor() or platform.machine()}"
    )
    print(f"{'case':<26} {'median ms':>10} {'min ms':>8} {'images/s':>9}")
    for name, fn in cases:
        median, best = time_ms(fn, args.repeats)
        print(f"{name:<26} {median:>10.1f} {best:>8.1f} {16e3 / median:>9.1f}")


if __name__ == "__main__":
    main()
