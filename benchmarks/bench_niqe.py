"""Speed of NIQE (lightsr.evaluation.metrics.niqe) on Set14 baboon and on a 1024x768 image.

Cases: Set14's ``baboon.png`` (500x480 RGB, 5x5 blocks of 96x96) and a 1024x768 RGB image
(baboon resized with MATLAB bicubic; 10x8 blocks). Prints the median (and min) wall time of
several runs after one warm-up call, and the time of the first call of the process (it also
builds the shape lookup and imports torch for the resize).

Run: ``PYTHONPATH=src python benchmarks/bench_niqe.py [--repeats 5]`` (reads
``$LIGHTSR_SHARED/datasets/Set14/HR/baboon.png``, default ``../shared``)
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from _timing import time_ms

from lightsr.evaluation.metrics import niqe
from lightsr.evaluation.resize import imresize
from lightsr.inference.io import read_image
from lightsr.runtime import shared_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case")
    args = parser.parse_args()

    baboon = read_image(shared_root() / "datasets" / "Set14" / "HR" / "baboon.png")
    large = imresize(baboon, size=(768, 1024))
    start = time.perf_counter()
    value = niqe(baboon)
    first = (time.perf_counter() - start) * 1e3
    print(
        f"lightsr niqe; numpy {np.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs; median of {args.repeats} runs"
    )
    print(f"first call of the process (baboon, includes setup): {first:.0f} ms")
    print(f"{'image':<28} {'NIQE':>8} {'median ms':>10} {'min ms':>8}")
    for label, img in (("baboon 500x480", baboon), ("baboon resized 1024x768", large)):
        med, low = time_ms(lambda _i, img=img: niqe(img), args.repeats)
        score = value if img is baboon else niqe(img)
        print(f"{label:<28} {score:>8.4f} {med:>10.1f} {low:>8.1f}")


if __name__ == "__main__":
    main()
