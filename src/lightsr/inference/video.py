"""Video files through one model: decode, upscale in batches, encode H.264/H.265, keep the audio.

>>> import lightsr
>>> lightsr.upscale_video("clip.mp4", "clip_x4.mp4", "safmn-x4", crf=18)  # doctest: +SKIP

Decoding and encoding use PyAV (FFmpeg's libraries, shipped inside the ``av`` wheel; nothing is
downloaded at run time). How a video is processed:

- **Frames** are decoded in order, turned into RGB with the input's colour matrix and range,
  upscaled by the model (``batch`` frames per network call when untiled), turned back into YUV
  with the same matrix and range (the output is tagged with them), and encoded with ``codec``
  (``libx264`` by default; ``libx265``; ``libx264rgb`` and ``ffv1`` are lossless, for tests and
  archives) at quality ``crf`` (lower is better; 0 is lossless for x264/x265).
- **Timing.** The output has the input's frame count and its average frame rate, constant
  (frame ``i`` at ``i / fps``); a variable-rate input becomes constant-rate at its average.
- **Audio.** Every audio stream is copied packet by packet when the output container takes its
  codec (AAC, MP3, Opus, AC-3, FLAC, ALAC into MP4/MOV; anything into MKV), else re-encoded to
  AAC. Audio timestamps move with the video's start, so they stay in sync. Subtitle and data
  streams are not carried over.
- **Segments and resume.** Frames are encoded in segments of ``segment_frames`` frames, each an
  independent file written atomically into a work folder beside the output
  (``.<output name>.parts/``). At the end the segments' packets and the audio are muxed into the
  output (written atomically) and the work folder is removed. An interrupted run leaves its
  finished segments; ``resume=True`` checks that the settings are the same (``job.json``) and
  encodes only the missing ones (the finished frames are decoded again, not upscaled), and the
  result is the file an uninterrupted run writes.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from lightsr.errors import LightSRError
from lightsr.files import atomic_path
from lightsr.inference import DEFAULT_TILE_OVERLAP

__all__ = [
    "CODECS",
    "OUTPUT_FORMATS",
    "VIDEO_EXTENSIONS",
    "VideoInfo",
    "VideoProgress",
    "VideoResult",
    "is_video",
    "probe_video",
    "upscale_video",
    "video_output_path",
]

#: Extensions read as videos (lower case, with the dot).
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm")

#: Output extensions and their FFmpeg container formats.
OUTPUT_FORMATS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}

#: Video encoders: default pixel format and whether ``crf`` is a rate-control option.
CODECS = {
    "libx264": "yuv420p",
    "libx265": "yuv420p",
    "libx264rgb": "rgb24",
    "ffv1": "bgr0",
}

#: Audio codecs that MP4/MOV outputs take as they are (others are re-encoded to AAC).
_MP4_AUDIO = {"aac", "mp3", "opus", "ac3", "eac3", "flac", "alac"}

DEFAULT_CRF = 18
DEFAULT_PRESET = "medium"
DEFAULT_SEGMENT_FRAMES = 120


def is_video(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a video extension (:data:`VIDEO_EXTENSIONS`)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def video_output_path(src: Path, suffix: str) -> Path:
    """``<stem><suffix>.<ext>`` beside ``src``: the input's extension when lightsr writes it,
    else ``.mp4``."""
    ext = src.suffix.lower() if src.suffix.lower() in OUTPUT_FORMATS else ".mp4"
    return src.with_name(f"{src.stem}{suffix}{ext}")


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` reads from a file's header.

    Attributes:
        width, height: the frame size.
        fps: the average frame rate (frames per second, exact fraction).
        frames: the frame count the container states (0 when it does not say).
        duration: seconds, from the container (0.0 when unknown).
        audio: the codec name of each audio stream.
    """

    width: int
    height: int
    fps: Fraction
    frames: int
    duration: float
    audio: tuple[str, ...]

    @property
    def expected_frames(self) -> int:
        """The stated frame count, else one estimated from the duration."""
        return self.frames or round(self.duration * self.fps)


@dataclass(frozen=True)
class VideoProgress:
    """Handed to ``progress`` after each batch of frames.

    Attributes:
        done: frames finished, those of resumed segments included.
        total: frames expected (:attr:`VideoInfo.expected_frames`; may be off for some files).
        resumed: frames taken from an earlier run's segments.
        seconds: time since this run started decoding.
    """

    done: int
    total: int
    resumed: int
    seconds: float

    @property
    def fps(self) -> float:
        """Frames per second upscaled by this run (resumed frames excluded)."""
        return (self.done - self.resumed) / self.seconds if self.seconds > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left at the current rate (None before the first frame)."""
        rate = self.fps
        return max(0.0, self.total - self.done) / rate if rate > 0 else None


@dataclass(frozen=True)
class VideoResult:
    """What :func:`upscale_video` did.

    Attributes:
        src, dst: the input and the written output.
        frames: frames in the output; ``resumed``: of those, taken from an earlier run.
        fps: the output's frame rate.
        input_size, output_size: (width, height).
        audio: audio streams written, as ``"copy <codec>"`` or ``"<codec> -> aac"``.
        seconds: wall time of the whole call (model loading excluded).
    """

    src: Path
    dst: Path
    frames: int
    resumed: int
    fps: Fraction
    input_size: tuple[int, int]
    output_size: tuple[int, int]
    audio: tuple[str, ...]
    seconds: float


def _av() -> Any:
    try:
        import av
    except ImportError as exc:  # pragma: no cover - av is a dependency
        raise LightSRError("video needs PyAV: pip install 'lightsr[video]'") from exc
    return av


def _open_input(path: Path) -> Any:
    av = _av()
    if not path.is_file():
        raise LightSRError(f"{path}: no such video file")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as exc:
        raise LightSRError(f"{path}: cannot be read as a video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise LightSRError(f"{path}: has no video stream")
    return container


def _info(container: Any) -> VideoInfo:
    stream = container.streams.video[0]
    ctx = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    if not rate:
        raise LightSRError(f"{container.name}: the video states no frame rate")
    duration = float(container.duration / 1_000_000) if container.duration else 0.0
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    audio = tuple(s.codec_context.name for s in container.streams.audio)
    return VideoInfo(ctx.width, ctx.height, Fraction(rate), stream.frames or 0, duration, audio)


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Frame size, frame rate, frame count, duration and audio codecs of a video file.

    Raises:
        LightSRError: the file is missing, not a video, or states no frame rate.
    """
    with _open_input(Path(path)) as container:
        return _info(container)


# --------------------------------------------------------------------------------------------
# Frames: decode -> RGB -> model -> YUV


def _sws() -> Any:
    """swscale flags for YUV <-> RGB: FFmpeg's fast defaults shift colours by about one level;
    accurate rounding with full chroma interpolation does not."""
    from av.video.reformatter import Interpolation as I

    return I.BICUBIC | I.ACCURATE_RND | I.FULL_CHR_H_INT


@dataclass(frozen=True)
class _Colour:
    """The input's colour matrix and range, used both ways so colours survive the round trip."""

    space: Any
    range: Any

    @classmethod
    def of(cls, frame: Any) -> _Colour:
        from av.video.reformatter import ColorRange, Colorspace

        if not frame.format.name.startswith("yuv"):  # RGB input: a standard YUV output
            return cls(Colorspace.ITU601, ColorRange.MPEG)
        space = frame.colorspace
        if int(space) in (2, 0):  # unspecified: FFmpeg's default, BT.601
            space = Colorspace.ITU601
        rng = frame.color_range if int(frame.color_range) != 0 else ColorRange.MPEG
        return cls(space, rng)


@dataclass(frozen=True)
class _Settings:
    """How frames are upscaled and encoded (all of it is recorded in ``job.json``)."""

    tile: int | None
    tile_overlap: int
    color_fix: bool
    batch: int
    codec: str
    crf: int | None
    preset: str | None
    segment_frames: int


def _upscale_batch(up: Any, frames: list[np.ndarray], s: _Settings) -> list[np.ndarray]:
    """Upscale RGB uint8 frames: one network call for the batch when the model allows it
    (untiled, no colour fix, a torch Upscaler), else frame by frame."""
    kwargs: dict[str, Any] = {"tile": s.tile, "tile_overlap": s.tile_overlap}
    if s.color_fix:
        kwargs["color_fix"] = True
    stacked = len(frames) > 1 and s.tile is None and not s.color_fix
    if not stacked or not hasattr(up, "forward_tensor"):
        return [up.upscale(f, **kwargs) for f in frames]
    import torch

    from lightsr.inference.tiling import pad_to_multiple

    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float().div_(255.0)
    h, w = x.shape[-2:]
    y = up.forward_tensor(pad_to_multiple(x, up.size_multiple))
    y = y[..., : h * up.scale, : w * up.scale].clamp(0.0, 1.0)
    out = (y.permute(0, 2, 3, 1).numpy() * 255.0 + 0.5).astype(np.uint8)
    return list(out)


def _upscaled_frames(
    container: Any, up: Any, s: _Settings, skip: int, on_batch: Callable[[int], None]
) -> Iterator[tuple[np.ndarray, _Colour]]:
    """Every frame of the input's first video stream, upscaled, with the input's colours.
    The first ``skip`` frames are decoded but not upscaled (yielded as None arrays)."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    pending: list[np.ndarray] = []
    colour: _Colour | None = None
    for i, frame in enumerate(container.decode(stream)):
        if colour is None:
            colour = _Colour.of(frame)
        if i < skip:
            continue
        pending.append(
            frame.to_ndarray(
                format="rgb24",
                src_colorspace=colour.space,
                src_color_range=colour.range,
                interpolation=_sws(),
            )
        )
        if len(pending) == s.batch:
            for out in _upscale_batch(up, pending, s):
                yield out, colour
            on_batch(len(pending))
            pending = []
    if pending and colour is not None:
        for out in _upscale_batch(up, pending, s):
            yield out, colour
        on_batch(len(pending))


def _write_segment(
    path: Path,
    frames: Iterator[tuple[np.ndarray, _Colour]],
    first: int,
    fps: Fraction,
    s: _Settings,
) -> int:
    """Encode frames ``first, first + 1, ...`` (at most ``segment_frames``) into ``path``,
    atomically; returns how many were written (0: none left, nothing written)."""
    av = _av()
    chunk = itertools.islice(frames, s.segment_frames)
    head = next(chunk, None)
    if head is None:
        return 0
    n = 0
    with atomic_path(path, suffix=".mp4") as tmp, av.open(str(tmp), "w", format="mp4") as out:
        colour = head[1]
        stream = out.add_stream(s.codec, rate=fps)
        stream.width, stream.height = head[0].shape[1], head[0].shape[0]
        stream.pix_fmt = CODECS[s.codec]
        tb = 1 / fps
        stream.time_base = tb
        options = {}
        if s.crf is not None:
            options["crf"] = str(s.crf)
        if s.preset is not None:
            options["preset"] = s.preset
        stream.options = options
        yuv = stream.pix_fmt.startswith("yuv")
        if yuv:
            stream.codec_context.colorspace = colour.space
            stream.codec_context.color_range = colour.range
        for rgb, _ in itertools.chain([head], chunk):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if yuv:
                frame = frame.reformat(
                    format=stream.pix_fmt,
                    dst_colorspace=colour.space,
                    dst_color_range=colour.range,
                    interpolation=_sws(),
                )
            frame.pts = first + n
            frame.time_base = tb  # not stream.time_base: the muxer changes that
            out.mux(stream.encode(frame))
            n += 1
        out.mux(stream.encode(None))
    return n


# --------------------------------------------------------------------------------------------
# Work folder, resume


def _work_dir(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.parts")


def _segment(work: Path, k: int) -> Path:
    return work / f"segment_{k:06d}.mp4"


def _job(src: Path, up: Any, s: _Settings, info: VideoInfo) -> dict[str, Any]:
    st = src.stat()
    return {
        "src": str(src.resolve()),
        "src_bytes": st.st_size,
        "src_mtime_ns": st.st_mtime_ns,
        "model": str(getattr(up, "name", type(up).__name__)),
        "scale": int(up.scale),
        "precision": str(getattr(up, "precision", "")),
        "fast": bool(getattr(up, "fast", False)),
        "size": [info.width, info.height],
        "fps": str(info.fps),
        **{k: v for k, v in vars(s).items() if k != "batch"},
    }


def _prepare_work(work: Path, job: dict[str, Any], resume: bool, dst: Path) -> int:
    """Make the work folder; returns how many finished segments an earlier run left."""
    record = work / "job.json"
    if work.exists() and not resume:
        raise LightSRError(
            f"{dst}: an unfinished earlier run left {work}; pass --resume to continue it, "
            "or delete that folder to start over"
        )
    if resume and record.exists():
        old = json.loads(record.read_text())
        changed = sorted(k for k in set(old) | set(job) if old.get(k) != job.get(k))
        if changed:
            raise LightSRError(
                f"{dst}: --resume: the earlier run in {work} used other settings "
                f"({', '.join(changed)}); use the same ones, or delete that folder to start over"
            )
    work.mkdir(parents=True, exist_ok=True)
    with atomic_path(record) as tmp:
        tmp.write_text(json.dumps(job, indent=1))
    k = 0
    while _segment(work, k).exists():
        k += 1
    return k


# --------------------------------------------------------------------------------------------
# Muxing: segments + audio -> output


def _video_packets(
    segments: Sequence[Path], out_stream: Any, fps: Fraction
) -> Iterator[tuple[float, Any, Any]]:
    """The segments' packets in decode order, timed in frames: ``pts`` is the frame index, and
    ``dts`` is recomputed for the whole stream as ``j - delay`` for the ``j``-th packet, with
    ``delay`` the stream's largest reordering (each segment's encoder chose its own, so their
    own decode times need not line up)."""
    av = _av()

    def packets() -> Iterator[tuple[Any, int]]:
        for path in segments:
            with av.open(str(path)) as seg:
                stream = seg.streams.video[0]
                for pkt in seg.demux(stream):
                    if pkt.size and pkt.pts is not None:
                        yield pkt, round(pkt.pts * stream.time_base * fps)

    delay = max([0] + [j - index for j, (_, index) in enumerate(packets())])
    tb = 1 / fps
    for j, (pkt, index) in enumerate(packets()):
        pkt.pts, pkt.dts, pkt.duration = index, j - delay, 1
        pkt.stream = out_stream
        yield float((j - delay) * tb), pkt, tb


def _audio_packets(
    src: Path, index: int, out_stream: Any, start: float, transcode: bool
) -> Iterator[tuple[float, Any, Any]]:
    """The input's audio stream ``index`` (its packets, or AAC re-encoded), shifted by ``-start``
    seconds."""
    av = _av()
    with av.open(str(src)) as inp:
        stream = inp.streams.audio[index]
        tb = stream.time_base
        shift = round(start / tb) if start else 0
        if not transcode:
            for pkt in inp.demux(stream):
                if pkt.size == 0 or pkt.dts is None:
                    continue
                pkt.pts, pkt.dts = pkt.pts - shift if pkt.pts is not None else None, pkt.dts - shift
                pkt.stream = out_stream
                yield float(pkt.dts * tb), pkt, tb
            return
        resampler = av.AudioResampler(format="fltp", layout=out_stream.layout, rate=out_stream.rate)
        out_tb = out_stream.codec_context.time_base or Fraction(1, out_stream.rate)

        def encoded(frame: Any) -> Iterator[tuple[float, Any, Any]]:
            for pkt in out_stream.encode(frame):
                yield float(pkt.dts * out_tb), pkt, out_tb

        for frame in inp.decode(stream):
            if frame.pts is not None:
                frame.pts -= shift
            for rs in resampler.resample(frame):
                yield from encoded(rs)
        for rs in resampler.resample(None):
            yield from encoded(rs)
        yield from encoded(None)


def _mux(
    segments: Sequence[Path], src: Path, dst: Path, start: float, fps: Fraction
) -> tuple[str, ...]:
    """Write the segments' video packets and the input's audio into ``dst`` (atomically)."""
    av = _av()
    fmt = OUTPUT_FORMATS[dst.suffix.lower()]
    audio: list[str] = []
    with (
        av.open(str(segments[0])) as first,
        av.open(str(src)) as inp,
        atomic_path(dst, suffix=dst.suffix) as tmp,
        av.open(str(tmp), "w", format=fmt) as out,
    ):
        v_out = out.add_stream_from_template(first.streams.video[0])
        sources: list[Iterator[tuple[float, Any, Any]]] = [_video_packets(segments, v_out, fps)]
        for i, a in enumerate(inp.streams.audio):
            name = a.codec_context.name
            transcode = fmt != "matroska" and name not in _MP4_AUDIO
            if transcode:
                rate = a.codec_context.sample_rate or 48000
                a_out = out.add_stream("aac", rate=rate)
                a_out.layout = "stereo" if a.codec_context.channels != 1 else "mono"
                a_out.bit_rate = 192_000
                audio.append(f"{name} -> aac")
            else:
                a_out = out.add_stream_from_template(a)
                audio.append(f"copy {name}")
            sources.append(_audio_packets(src, i, a_out, start, transcode))
        order = itertools.count()
        merged = heapq.merge(
            *(((t, next(order), p, tb) for t, p, tb in it) for it in sources),
            key=lambda item: (item[0], item[1]),
        )
        for _, _, pkt, tb in merged:
            pkt.time_base = tb
            out.mux(pkt)
    return tuple(audio)


# --------------------------------------------------------------------------------------------
# The whole call


def _check_args(src: Path, dst: Path, codec: str, crf: int | None, segment_frames: int) -> None:
    if dst.suffix.lower() not in OUTPUT_FORMATS:
        raise LightSRError(
            f"{dst}: video outputs are {', '.join(OUTPUT_FORMATS)} files; choose one of those "
            "extensions"
        )
    if codec not in CODECS:
        raise LightSRError(f"video codec: {codec!r} is not one of {', '.join(CODECS)}")
    if codec == "ffv1" and OUTPUT_FORMATS[dst.suffix.lower()] != "matroska":
        raise LightSRError(f"{dst}: the ffv1 codec needs an .mkv output")
    if crf is not None and not (isinstance(crf, int) and 0 <= crf <= 51):
        raise LightSRError(f"crf: expected a whole number 0..51 (lower is better), got {crf!r}")
    if not (isinstance(segment_frames, int) and segment_frames >= 1):
        raise LightSRError(f"segment_frames: expected a whole number >= 1, got {segment_frames!r}")
    if src.exists() and dst.exists() and src.resolve() == dst.resolve():
        raise LightSRError(f"{src}: the output would overwrite the input; choose another name")


def upscale_video(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str] | None = None,
    model: Any = None,
    *,
    tile: int | None = None,
    tile_overlap: int = DEFAULT_TILE_OVERLAP,
    color_fix: bool = False,
    codec: str = "libx264",
    crf: int | None = DEFAULT_CRF,
    preset: str | None = DEFAULT_PRESET,
    batch: int | None = None,
    segment_frames: int = DEFAULT_SEGMENT_FRAMES,
    resume: bool = False,
    progress: Callable[[VideoProgress], None] | None = None,
) -> VideoResult:
    """Upscale a video file; the frame rate, frame count and audio are kept (see the module doc).

    Args:
        src: the input video (any container and codec FFmpeg reads).
        dst: the output (``.mp4``, ``.m4v``, ``.mov`` or ``.mkv``); default ``<stem>_x<scale>``
            beside the input (``.mp4`` unless the input is one of those).
        model: as for :func:`~lightsr.inference.batch.upscale_files`: an Upscaler, a name or
            checkpoint path, None for the default model, or a function returning one.
        tile, tile_overlap, color_fix: as for :meth:`Upscaler.upscale`, per frame.
        codec: ``libx264`` (H.264, default), ``libx265`` (H.265), ``libx264rgb`` (lossless RGB
            H.264 with ``crf=0``) or ``ffv1`` (lossless, ``.mkv`` only).
        crf: constant rate factor for x264/x265, 0..51 (lower is better; 18 is visually
            near-lossless; 0 lossless); None: the encoder's default.
        preset: x264/x265 speed preset (``ultrafast`` ... ``veryslow``); None for ffv1.
        batch: frames per network call when untiled (default: 4 on CUDA, 1 on the CPU, where
            a larger batch is no faster).
        segment_frames: frames per resumable segment.
        resume: continue an interrupted run with the same settings.
        progress: called with a :class:`VideoProgress` after each batch.

    Raises:
        LightSRError: the input is not a readable video; a bad output extension, codec, crf or
            tile; unfinished work of an earlier run without ``resume``, or with other settings.
    """
    from lightsr.inference.batch import _resolve_upscaler
    from lightsr.inference.tiling import check_tiling

    t0 = time.perf_counter()
    src = Path(src)
    if codec == "ffv1":
        crf, preset = None, None
    with _open_input(src) as container:
        info = _info(container)
    check_tiling(tile, tile_overlap)
    up = _resolve_upscaler(model)
    dst = Path(dst) if dst is not None else video_output_path(src, f"_x{up.scale}")
    _check_args(src, dst, codec, crf, segment_frames)
    device = getattr(getattr(up, "device", None), "type", "cpu")
    s = _Settings(
        tile, tile_overlap, color_fix, batch or (4 if device == "cuda" else 1),
        codec, crf, preset, segment_frames,
    )  # fmt: skip
    work = _work_dir(dst)
    done_segments = _prepare_work(work, _job(src, up, s, info), resume, dst)
    resumed = done_segments * segment_frames
    total = max(info.expected_frames, resumed)
    count = [resumed]
    t_run = time.perf_counter()

    def on_batch(n: int) -> None:
        count[0] += n
        if progress is not None:
            progress(VideoProgress(count[0], total, resumed, time.perf_counter() - t_run))

    with _open_input(src) as container:
        start_time = container.streams.video[0].start_time
        tb = container.streams.video[0].time_base
        start = float(start_time * tb) if start_time is not None and tb else 0.0
        frames = _upscaled_frames(container, up, s, resumed, on_batch)
        k = done_segments
        while _write_segment(_segment(work, k), frames, k * segment_frames, info.fps, s):
            k += 1
    segments = [_segment(work, i) for i in range(k)]
    if not segments:
        raise LightSRError(f"{src}: no frames could be decoded")
    with _av().open(str(segments[-1])) as last:
        n_last = last.streams.video[0].frames
        w_out = last.streams.video[0].codec_context.width
        h_out = last.streams.video[0].codec_context.height
    audio = _mux(segments, src, dst, start, info.fps)
    shutil.rmtree(work, ignore_errors=True)
    frames_out = (k - 1) * segment_frames + n_last
    return VideoResult(
        src, dst, frames_out, resumed, info.fps, (info.width, info.height), (w_out, h_out),
        audio, time.perf_counter() - t0,
    )  # fmt: skip
