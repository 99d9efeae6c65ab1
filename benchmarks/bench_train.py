"""Training throughput: lightsr's loop with its fast options vs a plain eager float32 loop.

Model SAFMN x4 (the paper's, 239,520 params), batch 16 of 64x64 LR patches (HR 256x256) by
default, L1 + 0.05 FFT loss, Adam, EMA. Both loops read the same on-the-fly MATLAB-bicubic
patches (synthetic 512x512 HR images made in a temporary folder, decoded once, loaded in the
training process: ``data.workers=0``) and do the same work per step; only the execution options
differ:

- ``plain fp32``: a 15-line eager float32 loop written here (forward, loss, backward, Adam, EMA).
- ``plain fp32 + native kernels``: the same loop with the model passed through
  :func:`lightsr.native.train_ops.native_training_model` (Winograd 3x3 convolutions forward and
  backward, fused LayerNorm, channels-last SAFM/CCM; float32, AVX2 CPUs), so the two rows differ
  only in the kernels.
- ``lightsr ...``: :func:`~lightsr.training.loop.train` with a config, timed from the it/s it logs
  every iteration (``metrics.jsonl``), after its warm-up (compilation) iterations.

The plain loop runs first and last and its two medians are averaged, so load drift on a shared
machine hits both sides; ``--interleaved PAIRS`` instead alternates single steps of the plain
and the native loop in one process and reports the median of the per-pair ratios, which drift
disturbs least. Prints samples/s per row and the ratio to the plain loop, and for the
plain and native rows also the CPU seconds per step (this process, all threads), which other
processes' load disturbs much less than wall time.

    python benchmarks/bench_train.py                 # CPU: threads = CPUs this process may use
    OMP_NUM_THREADS=1 python benchmarks/bench_train.py
    python benchmarks/bench_train.py --device cuda --batch 64   # the paper's batch on a GPU
    python benchmarks/bench_train.py --native-only   # plain vs native kernels only (CPU)
    python benchmarks/bench_train.py --interleaved 12   # the same, one step of each in turn
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from lightsr.inference.io import write_image
from lightsr.models.registry import build_model
from lightsr.native.train_ops import native_training_available, native_training_model
from lightsr.runtime import configure_threads
from lightsr.training.config import load_config
from lightsr.training.data import PatchDataset, StreamSampler, make_loader, scan_images
from lightsr.training.loop import ema_update, train
from lightsr.training.losses import sr_loss


def make_images(folder: Path, n: int = 8, size: int = 512) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        base = rng.integers(0, 256, (size // 16, size // 16, 3)).astype(np.float64)
        img = np.kron(base, np.ones((16, 16, 1))) + rng.normal(0, 6, (size, size, 3))
        write_image(folder / f"{i}.png", np.clip(img, 0, 255).astype(np.uint8))


def make_step(
    folder: Path, batch: int, patch: int, device: torch.device, native: bool = False
) -> Callable[[], None]:
    """One step of the eager float32 loop anyone would write first (with ``native``, on the
    native training kernels): next batch, forward, loss, backward, Adam, EMA."""
    torch.manual_seed(0)
    model = build_model("safmn-x4").to(device)
    if native:
        model = native_training_model(model)
    ema = build_model("safmn-x4").to(device).requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
    records = scan_images([folder], scale=4, patch_size=patch, log=lambda s: None)
    ds = PatchDataset(records, scale=4, patch_size=patch, seed=0, cache=True)
    loader = iter(make_loader(ds, StreamSampler(len(ds), batch_size=batch, seed=0), workers=0))

    def step() -> None:
        lr_img, hr_img = next(loader)
        lr_img, hr_img = lr_img.to(device), hr_img.to(device)
        loss, _ = sr_loss(model(lr_img), hr_img, l1=1.0, fft=0.05)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        ema_update(ema, model, 0.999)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def _timed(step: Callable[[], None]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    t0, c0 = time.perf_counter(), time.process_time()
    step()
    return time.perf_counter() - t0, time.process_time() - c0


def plain_loop(
    folder: Path,
    steps: int,
    warmup: int,
    batch: int,
    patch: int,
    device: torch.device,
    native: bool = False,
) -> tuple[float, float]:
    """:func:`make_step`'s loop: median samples/s and the median CPU seconds (all of this
    process's threads) per step after ``warmup`` steps."""
    step = make_step(folder, batch, patch, device, native)
    for _ in range(warmup):
        step()
    times, cpu = zip(*(_timed(step) for _ in range(steps)), strict=True)
    return batch / statistics.median(times), statistics.median(cpu)


def interleaved(
    folder: Path, pairs: int, batch: int, patch: int, device: torch.device
) -> dict[str, float]:
    """The plain and the native loop side by side in one process, one step each in turn (in
    ABBA order), so that load drift hits both alike. Returns the medians of each side's wall and
    CPU seconds per step and of the per-pair ratios plain / native."""
    plain = make_step(folder, batch, patch, device)
    native = make_step(folder, batch, patch, device, native=True)
    for _ in range(2):
        plain()
        native()
    rows: list[tuple[float, float, float, float]] = []
    for i in range(pairs):
        if i % 2 == 0:
            p, n = _timed(plain), _timed(native)
        else:
            n, p = _timed(native), _timed(plain)
        rows.append((*p, *n))
    pw, pc, nw, nc = (list(col) for col in zip(*rows, strict=True))
    return {
        "plain_wall": statistics.median(pw),
        "plain_cpu": statistics.median(pc),
        "native_wall": statistics.median(nw),
        "native_cpu": statistics.median(nc),
        "ratio_wall": statistics.median(a / b for a, b in zip(pw, nw, strict=True)),
        "ratio_cpu": statistics.median(a / b for a, b in zip(pc, nc, strict=True)),
    }


def lightsr_loop(
    folder: Path,
    out: Path,
    name: str,
    steps: int,
    warmup: int,
    batch: int,
    patch: int,
    device: str,
    sets: list[str],
) -> float:
    """``train`` with extra options; returns median samples/s after warm-up."""
    cfg = load_config(
        None,
        [
            f"name={name}",
            f"output_dir={out}",
            "model.scale=4",
            f"data.hr_dirs=[{folder}]",
            f"data.patch_size={patch}",
            f"data.batch_size={batch}",
            "data.cache=true",
            "data.workers=0",
            f"train.iters={warmup + steps}",
            "train.log_every=1",
            f"train.checkpoint_every={warmup + steps}",
            "train.tensorboard=false",
            f"train.device={device}",
            "seed=0",
            *sets,
        ],
    )
    res = train(cfg, quiet=True)
    recs = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["speed"]["samples_s"] for r in recs if "speed" in r and r["iter"] > warmup]
    return statistics.median(speeds)


def run_interleaved(pairs: int, batch: int, patch: int, device: torch.device) -> None:
    """Prints the table of :func:`interleaved`."""
    if device.type != "cpu" or not native_training_available():
        raise SystemExit("--interleaved: the native training kernels do not run here")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "hr"
        folder.mkdir()
        make_images(folder)
        r = interleaved(folder, pairs, batch, patch, device)
    print(f"{pairs} pairs, one step of each loop in turn; medians")
    print(f"{'loop':34s} {'samples/s':>10s} {'wall s/step':>12s} {'CPU s/step':>11s}")
    for name in ("plain", "native"):
        label = "plain eager fp32" + (" + native kernels" if name == "native" else "")
        wall, cpu = r[f"{name}_wall"], r[f"{name}_cpu"]
        print(f"{label:34s} {batch / wall:10.2f} {wall:12.3f} {cpu:11.3f}")
    print(
        f"native vs plain (median of the per-pair ratios): {r['ratio_wall']:.2f}x wall, "
        f"{r['ratio_cpu']:.2f}x CPU time; total {time.perf_counter() - t0:.0f} s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, default=16, help="patches per step (16)")
    ap.add_argument("--patch", type=int, default=64, help="LR patch side (64)")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per row (8)")
    ap.add_argument("--quick", action="store_true", help="only plain vs the fastest options")
    ap.add_argument(
        "--native-only", action="store_true", help="only plain vs plain + native kernels"
    )
    ap.add_argument(
        "--interleaved",
        type=int,
        metavar="PAIRS",
        help="plain vs native kernels, one step each in turn for PAIRS pairs (CPU)",
    )
    args = ap.parse_args()
    device = torch.device(args.device)
    threads = configure_threads() if device.type == "cpu" else None
    fast = ["train.precision=bf16", "train.channels_last=true"]
    rows: list[tuple[str, list[str], int]] = [  # label, options, warm-up steps
        ("lightsr bf16 + channels_last + compile", [*fast, "train.compile=true"], 3),
    ]
    if args.native_only:
        rows = []
    elif not args.quick:
        rows = [
            ("lightsr fp32 (same options as plain)", [], 2),
            ("lightsr bf16 + channels_last", fast, 2),
            *rows,
        ]
    where = f"{device}" + (
        f", {threads} threads" if threads else f", {torch.cuda.get_device_name()}"
    )
    print(
        f"SAFMN x4 training, batch {args.batch} of {args.patch}x{args.patch} LR patches, "
        f"L1 + 0.05 FFT, Adam, EMA; {where}; torch {torch.__version__}"
    )
    if args.interleaved:
        run_interleaved(args.interleaved, args.batch, args.patch, device)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "hr"
        folder.mkdir()
        make_images(folder)
        t0 = time.perf_counter()
        plain = [plain_loop(folder, args.steps, 2, args.batch, args.patch, device)]
        results = []
        native_cpu = None
        if device.type == "cpu" and native_training_available():
            t = time.perf_counter()
            sps, native_cpu = plain_loop(
                folder, args.steps, 2, args.batch, args.patch, device, native=True
            )
            results.append(("plain fp32 + native kernels", sps, time.perf_counter() - t))
        else:
            print("(no native row: the native training kernels do not run here)")
        for i, (label, sets, warm) in enumerate(rows):
            t = time.perf_counter()
            sps = lightsr_loop(
                folder, Path(tmp) / "runs", f"r{i}", args.steps, warm, args.batch, args.patch,
                args.device, sets,
            )  # fmt: skip
            results.append((label, sps, time.perf_counter() - t))
        plain.append(plain_loop(folder, args.steps, 2, args.batch, args.patch, device))
    base = sum(p[0] for p in plain) / 2
    base_cpu = sum(p[1] for p in plain) / 2
    print(f"{'loop':42s} {'samples/s':>10s} {'it/s':>7s} {'vs plain':>9s}")
    print(
        f"{'plain eager fp32 (first, last run)':42s} {base:10.2f} {base / args.batch:7.3f} "
        f"{1.0:8.2f}x   ({plain[0][0]:.2f}, {plain[1][0]:.2f})"
    )
    for label, sps, secs in results:
        print(
            f"{label:42s} {sps:10.2f} {sps / args.batch:7.3f} {sps / base:8.2f}x   "
            f"(row took {secs:.0f} s with warm-up)"
        )
    if native_cpu is not None:  # robust to other processes' load, unlike wall time
        print(
            f"CPU seconds per step (median; first/last plain averaged): plain {base_cpu:.2f}, "
            f"native {native_cpu:.2f}: {base_cpu / native_cpu:.2f}x"
        )
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
