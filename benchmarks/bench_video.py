"""Video throughput: frames per second of `lightsr upscale clip.mp4` for a 480p input.

Takes the first ``--frames`` frames of the RealDev clip (640x480, H.264, 23.98 fps), writes them
to a lossless temporary clip, and times, on the same frames:

- ``model``: ``Upscaler.upscale`` alone, frame by frame (the network and its quantisation),
  fast path and plain eager path (the reference, measured in the same run);
- ``encode``: YUV conversion and libx264 encoding of the 2560x1920 outputs alone;
- ``end to end``: :func:`lightsr.upscale_video` (decode, model, encode, mux), fast path, the
  model already warm.

    python benchmarks/bench_video.py [--frames 20] [--model safmn-x4] [--preset medium]

Frames per second are frames / wall seconds after one warm-up frame (the first call of a shape
loads kernels and may compile); CPU s/frame is this process's CPU time (all its threads) per
frame, which depends less on other jobs sharing the machine than the wall time does. The end to
end row counts the input's frames (warm-up frame included, model already warm).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

import lightsr
from lightsr.inference.video import upscale_video
from lightsr.runtime import shared_root


def _cut(src: Path, dst: Path, n: int) -> tuple[list[np.ndarray], Fraction]:
    """The first ``n`` frames of ``src`` as RGB arrays, also written losslessly to ``dst``."""
    frames = []
    with av.open(str(src)) as c:
        rate = Fraction(c.streams.video[0].average_rate)
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            if len(frames) == n:
                break
    with av.open(str(dst), "w") as out:
        s = out.add_stream("libx264rgb", rate=rate)
        s.width, s.height, s.pix_fmt = frames[0].shape[1], frames[0].shape[0], "rgb24"
        s.options = {"qp": "0", "preset": "ultrafast"}
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(img, format="rgb24")
            f.pts, f.time_base = i, 1 / rate
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    return frames, rate


class _Clock:
    """Wall and CPU (this process, all threads) seconds of a block."""

    def __enter__(self) -> _Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def _row(name: str, frames: int, clock: _Clock) -> None:
    fps = frames / clock.wall
    print(f"{name:42s} {fps:9.3f} {1 / fps:8.2f} {clock.cpu / frames:11.2f}", flush=True)


def _model(model: str, frames: list[np.ndarray], fast: bool) -> tuple[_Clock, list[np.ndarray]]:
    up = lightsr.load_model(model, fast=fast)
    up.upscale(frames[0])  # warm-up
    with _Clock() as clock:
        outputs = [up.upscale(f) for f in frames[1:]]
    return clock, outputs


def _encode(outputs: list[np.ndarray], rate: Fraction, preset: str, tmp: Path) -> _Clock:
    with av.open(str(tmp / "enc.mp4"), "w") as out, _Clock() as clock:
        s = out.add_stream("libx264", rate=rate)
        s.width, s.height, s.pix_fmt = outputs[0].shape[1], outputs[0].shape[0], "yuv420p"
        s.options = {"crf": "18", "preset": preset}
        for i, img in enumerate(outputs):
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = i, 1 / rate
            out.mux(s.encode(f))
        out.mux(s.encode(None))
    return clock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--model", default="safmn-x4")
    ap.add_argument("--preset", default="medium", help="x264 preset for the encoder rows")
    ap.add_argument("--no-reference", action="store_true", help="skip the plain eager row")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    src = shared_root() / "datasets" / "RealDev" / "video" / "onepiece_demo.mp4"
    print(
        f"{args.model}, 640x480 -> x4, {args.frames} frames (after 1 warm-up), torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load "
        f"average {load0:.1f} at the start (other jobs share the CPUs: wall figures depend on it)"
    )
    print(f"{'what':42s} {'frames/s':>9s} {'s/frame':>8s} {'CPU s/frame':>11s}", flush=True)
    n = args.frames
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        frames, rate = _cut(src, tmp / "in.mp4", n + 1)  # + the warm-up frame
        clock, outputs = _model(args.model, frames, True)
        _row("model, fast path", n, clock)
        if not args.no_reference:
            _row("model, plain eager (reference)", n, _model(args.model, frames, False)[0])
        encode = _encode(outputs, rate, args.preset, tmp)
        _row(f"encode only, libx264 {args.preset} crf 18", n, encode)
        up = lightsr.load_model(args.model)
        up.upscale(frames[0])  # warm
        with _Clock() as clock:
            r = upscale_video(tmp / "in.mp4", tmp / "out.mp4", up, preset=args.preset)
        _row("end to end (decode, model, encode, mux)", r.frames, clock)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
