"""Speed of the MATLAB-exact bicubic resize (lightsr.evaluation.resize).

Cases: the training use case (a batch of 16 random 256x256 RGB HR patches downscaled by 4 on
the fly, torch float32 and uint8) and one DIV2K-sized 2040x1356 RGB image downscaled by 4 with
torch and with numpy. Prints the median (and min) wall time of several runs.

Run: ``PYTHONPATH=src python benchmarks/bench_resize.py [--repeats 7] [--threads N]``
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable

import numpy as np
import torch
from _timing import time_ms

from lightsr.evaluation.resize import imresize, imresize_torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    patches_u8 = torch.from_numpy(rng.integers(0, 256, (16, 3, 256, 256), dtype=np.uint8))
    patches = patches_u8.float() / 255
    image_np = rng.integers(0, 256, (1356, 2040, 3), dtype=np.uint8)  # HxWxC, DIV2K-sized
    image_np_f32 = (image_np / 255).astype(np.float32)
    image_u8 = torch.from_numpy(image_np).permute(2, 0, 1).unsqueeze(0).contiguous()
    image = image_u8.float() / 255

    cases: list[tuple[str, str, Callable[[], object]]] = [
        ("torch float32", "16x3x256x256 -> 64x64", lambda: imresize_torch(patches, 1 / 4)),
        ("torch uint8", "16x3x256x256 -> 64x64", lambda: imresize_torch(patches_u8, 1 / 4)),
        ("torch float32", "1x3x1356x2040 -> 339x510", lambda: imresize_torch(image, 1 / 4)),
        ("torch uint8", "1x3x1356x2040 -> 339x510", lambda: imresize_torch(image_u8, 1 / 4)),
        ("numpy uint8", "1356x2040x3 -> 339x510", lambda: imresize(image_np, 1 / 4)),
        ("numpy float32", "1356x2040x3 -> 339x510", lambda: imresize(image_np_f32, 1 / 4)),
    ]
    print(
        f"lightsr.evaluation.resize, x1/4; torch {torch.__version__}, numpy {np.__version__}, "
        f"{torch.get_num_threads()} torch threads, {platform.processor() or platform.machine()}"
    )
    print(f"{'path':<15} {'shape':<26} {'median ms':>10} {'min ms':>8}")
    for path, shape, fn in cases:
        median, best = time_ms(lambda _i, fn=fn: fn(), args.repeats)
        print(f"{path:<15} {shape:<26} {median:>10.1f} {best:>8.1f}")


if __name__ == "__main__":
    main()
