"""Peak memory of tiled inference: does it grow with the tile, not with the image?

Runs each configuration in a fresh subprocess and reports its peak resident set size
(``ru_maxrss``), the RSS after loading the model (baseline) and the wall time. The model is SAFMN x4
with random weights unless ``--weights`` is given (the cost does not depend on the values).

    python benchmarks/bench_tiling_memory.py                      # 2000x2000 input, x4, tile 256
    python benchmarks/bench_tiling_memory.py --size 1000 2000 --tile 128 256
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
from lightsr.models.registry import build_model
from lightsr.inference.upscaler import Upscaler, load_model
size, tile, weights = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
if weights:
    m = load_model(weights, device="cpu")
else:
    torch.manual_seed(0)
    m = Upscaler(build_model("safmn-x4"), scale=4, name="safmn-x4 (random)", arch="safmn",
                 config={}, device="cpu")
img = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
out = m.upscale(img, tile=tile or None)
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"size": size, "tile": tile, "scale": m.scale, "out": list(out.shape),
                  "baseline_mb": base, "peak_rss_mb": peak, "seconds": dt}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, nargs="+", default=[2000], help="square input sides")
    ap.add_argument("--tile", type=int, nargs="+", default=[256], help="tile sizes (0: untiled)")
    ap.add_argument("--weights", default="", help="checkpoint (default: random SAFMN x4)")
    args = ap.parse_args()
    print(
        f"{'input':>10} {'tile':>5} {'output':>12} {'baseline MB':>12} {'peak RSS MB':>12} "
        f"{'time s':>8}"
    )
    for size in args.size:
        for tile in args.tile:
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(size), str(tile), args.weights],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"{size}x{size:<5} {tile or '-':>5} {r['out'][1]}x{r['out'][0]:<6} "
                f"{r['baseline_mb']:12.0f} {r['peak_rss_mb']:12.0f} {r['seconds']:8.1f}"
            )


if __name__ == "__main__":
    main()
