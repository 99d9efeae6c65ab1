"""How fast the `lightsr` command answers when it has no model to run.

Runs each command in a fresh interpreter several times and prints the median wall time, whether
torch was imported (``-X importtime``), and the ratio to ``python -c "import torch"`` measured in
the same run (the cost the CLI avoids by importing torch only in commands that need it).

    python benchmarks/bench_cli_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "lightsr --help": ["-m", "lightsr.cli", "--help"],
    "lightsr --version": ["-m", "lightsr.cli", "--version"],
    "lightsr models": ["-m", "lightsr.cli", "models"],
    "lightsr upscale --tile x (argument error)": ["-m", "lightsr.cli", "upscale", "--tile", "x"],
    "lightsr upscale --help": ["-m", "lightsr.cli", "upscale", "--help"],
    'python -c "import torch" (reference)': ["-c", "import torch"],
}


def _time(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], capture_output=True, check=False)
    return time.perf_counter() - t0


def _imports_torch(args: list[str]) -> bool:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *args], capture_output=True, text=True, check=False
    )
    # lines "import time: self | cumulative | <indent>module"; nested imports are indented
    return any(line.split("|")[-1].strip() == "torch" for line in proc.stderr.splitlines())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=7)
    args = p.parse_args()
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, median of {args.runs} runs")  # fmt: skip
    rows = []
    for name, argv in COMMANDS.items():
        _time(argv)  # warm the file cache
        times = [_time(argv) for _ in range(args.runs)]
        rows.append((name, statistics.median(times), min(times), max(times), _imports_torch(argv)))
    ref = rows[-1][1]
    print("| command | median s | min-max s | imports torch | vs import torch |")
    print("|---|---|---|---|---|")
    for name, med, lo, hi, torch_ in rows:
        print(f"| {name} | {med:.3f} | {lo:.3f}-{hi:.3f} | {'yes' if torch_ else 'no'} | "
              f"{med / ref:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
