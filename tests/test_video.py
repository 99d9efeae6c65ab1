"""lightsr.upscale_video and `lightsr upscale clip.mp4`: frames, timing, audio, resume."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av.video.reformatter import Interpolation

import lightsr
from lightsr.cli import main
from lightsr.errors import LightSRError
from lightsr.inference.video import probe_video, upscale_video

from conftest import need_shared

FPS = Fraction(25)


def make_clip(
    path: Path,
    frames: int = 7,
    size: tuple[int, int] = (24, 16),
    audio: str | None = "aac",
    smooth: bool = False,
) -> Path:
    """A lossless RGB H.264 clip (random texture, or colour ramps with ``smooth``; a moving
    flat band) with a 440 Hz tone."""
    rng = np.random.default_rng(frames)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    ramps = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 127 // (w + h) + 64], axis=-1)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264rgb", rate=FPS)
        v.width, v.height, v.pix_fmt = w, h, "rgb24"
        v.options = {"qp": "0"}
        a = None
        if audio is not None:
            a = out.add_stream(audio, rate=48000)
            a.layout = "stereo"
        for i in range(frames):
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            if smooth:
                img = ramps.astype(np.uint8)
            img[: h // 4] = i * 30 % 256
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, 1 / FPS
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None:
            n = int(48000 * frames / FPS)
            tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)
            for off in range(0, n, 1024):
                chunk = np.stack([tone[off : off + 1024]] * 2)
                if audio == "aac":
                    data, fmt = chunk.astype(np.float32), "fltp"
                else:
                    data, fmt = (chunk * 32767).astype(np.int16), "s16p"
                fr = av.AudioFrame.from_ndarray(data, format=fmt, layout="stereo")
                fr.sample_rate, fr.pts = 48000, off
                out.mux(a.encode(fr))
            out.mux(a.encode(None))
    return path


def rgb_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def timing(path: Path) -> tuple[int, Fraction, float, list[str]]:
    """(decoded frames, average rate, video duration in seconds, audio codecs)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        n = sum(1 for _ in c.decode(video=0))
        return (
            n,
            s.average_rate,
            float(s.duration * s.time_base),
            [a.codec_context.name for a in c.streams.audio],
        )


@pytest.fixture(scope="module")
def model() -> Any:
    return lightsr.load_model("safmn-x2", compile="off")  # tiny frames: compiling costs more


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


def test_frames_equal_per_frame_upscale_and_timing_and_audio_are_kept(
    model: Any, clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "clip_x2.mp4"
    r = upscale_video(clip, out, model, codec="libx264rgb", crf=0, segment_frames=3)
    assert (r.frames, r.resumed, r.output_size, r.audio) == (7, 0, (48, 32), ("copy aac",))
    want = [model.upscale(f) for f in rgb_frames(clip)]
    got = rgb_frames(out)
    assert len(got) == len(want) == 7
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)  # lossless codec: exactly the per-frame upscale
    n_in, rate_in, dur_in, audio_in = timing(clip)
    n_out, rate_out, dur_out, audio_out = timing(out)
    assert (n_out, rate_out, audio_out) == (n_in, rate_in, audio_in) == (7, FPS, ["aac"])
    assert abs(dur_out - dur_in) <= 1 / FPS
    assert not (tmp_path / ".clip_x2.mp4.parts").exists()  # the work folder is removed


def test_batched_frames_match_single_frames_within_one_level(
    model: Any, clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "b.mkv"
    upscale_video(clip, out, model, codec="ffv1", batch=3)
    want = [model.upscale(f) for f in rgb_frames(clip)]
    for g, w in zip(rgb_frames(out), want, strict=True):
        assert np.abs(g.astype(int) - w).max() <= 1


def test_h264_output_keeps_colours(model: Any, tmp_path: Path) -> None:
    """YUV 4:2:0 H.264 from RGB frames and back: a wrong matrix or range would shift colours."""
    clip = make_clip(tmp_path / "ramps.mp4", frames=3, size=(48, 32), audio=None, smooth=True)
    r = upscale_video(clip, tmp_path / "q.mp4", model, crf=10, preset="ultrafast")
    with av.open(str(r.dst)) as c:
        ctx = c.streams.video[0].codec_context
        assert (ctx.name, ctx.pix_fmt, ctx.color_range) == ("h264", "yuv420p", 1)  # tv range
        sws = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
        frames = [f.to_ndarray(format="rgb24", interpolation=sws) for f in c.decode(video=0)]
    got = np.stack(frames).astype(float)
    want = np.stack([model.upscale(f) for f in rgb_frames(clip)]).astype(float)
    assert np.abs(got.mean((0, 1, 2)) - want.mean((0, 1, 2))).max() < 1.0
    assert 10 * np.log10(255**2 / np.mean((got - want) ** 2)) > 40


def test_no_audio_and_pcm_audio_reencoded_to_aac(model: Any, tmp_path: Path) -> None:
    silent = make_clip(tmp_path / "silent.mp4", frames=3, audio=None)
    r = upscale_video(silent, tmp_path / "s.mp4", model, preset="ultrafast")
    assert r.audio == () and timing(r.dst)[3] == []
    pcm = make_clip(tmp_path / "pcm.mkv", frames=3, audio="pcm_s16le")
    r = upscale_video(pcm, tmp_path / "p.mp4", model, preset="ultrafast")
    assert r.audio == ("pcm_s16le -> aac",) and timing(r.dst)[3] == ["aac"]
    r = upscale_video(pcm, tmp_path / "p.mkv", model, preset="ultrafast")  # MKV takes PCM
    assert r.audio == ("copy pcm_s16le",)
    assert probe_video(r.dst).audio == ("pcm_s16le",)


def test_interrupted_then_resumed_equals_uninterrupted(
    model: Any, clip: Path, tmp_path: Path
) -> None:
    whole = upscale_video(clip, tmp_path / "whole.mp4", model, segment_frames=3)
    out = tmp_path / "cut.mp4"
    seen = []

    def stop_at_five(p: Any) -> None:
        seen.append(p.done)
        if p.done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        upscale_video(clip, out, model, segment_frames=3, progress=stop_at_five)
    work = tmp_path / ".cut.mp4.parts"
    assert not out.exists() and sorted(p.name for p in work.glob("segment_*")) == [
        "segment_000000.mp4"
    ]
    with pytest.raises(LightSRError, match="--resume"):  # leftovers are not silently reused
        upscale_video(clip, out, model, segment_frames=3)
    with pytest.raises(LightSRError, match="crf"):  # nor resumed with other settings
        upscale_video(clip, out, model, segment_frames=3, crf=30, resume=True)
    calls = []
    r = upscale_video(clip, out, model, segment_frames=3, resume=True, progress=calls.append)
    assert r.resumed == 3 and calls[0].done == 4 and r.frames == 7  # segment 0 not redone
    assert out.read_bytes() == whole.dst.read_bytes()
    assert not work.exists()


def test_bad_arguments_are_one_line_errors(model: Any, clip: Path, tmp_path: Path) -> None:
    with pytest.raises(LightSRError, match="webm"):
        upscale_video(clip, tmp_path / "x.webm", model)
    with pytest.raises(LightSRError, match="crf"):
        upscale_video(clip, tmp_path / "x.mp4", model, crf=60)
    with pytest.raises(LightSRError, match="mkv"):
        upscale_video(clip, tmp_path / "x.mp4", model, codec="ffv1")
    (tmp_path / "not.mp4").write_bytes(b"not a video")
    with pytest.raises(LightSRError, match="cannot be read as a video"):
        upscale_video(tmp_path / "not.mp4", tmp_path / "y.mp4", model)


def test_cli_routes_videos_and_images(clip: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(clip.read_bytes())
    lightsr.write_image(folder / "photo.png", np.zeros((8, 8, 3), np.uint8))
    out = tmp_path / "out"
    fast = ["--model", "safmn-x2", "-q", "--compile", "off", "--preset", "ultrafast"]
    assert main(["upscale", str(folder), "-o", str(out), *fast]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["clip_x2.mp4", "photo_x2.png"]
    assert timing(out / "clip_x2.mp4")[:2] == (7, FPS)
    # a second run over the folder with outputs beside the inputs leaves them out
    assert main(["upscale", str(folder), *fast]) == 0
    assert main(["upscale", str(folder), *fast, "--skip-existing"]) == 0
    assert not (folder / "clip_x2_x2.mp4").exists() and not (folder / "photo_x2_x2.png").exists()
    assert main(["upscale", str(clip), "-o", str(tmp_path / "o.webm")]) == 2
    assert main(["upscale", str(clip), "--outscale", "3"]) == 2


def test_real_clip_keeps_timing_and_audio(tmp_path: Path) -> None:
    """The RealDev clip (H.264 with B-frames, AAC, 23.98 fps, an odd time base): timestamps of
    every frame and the audio stream survive segmenting and muxing (a nearest-neighbour model,
    so the test is about the container, not the network)."""
    src = need_shared("datasets", "RealDev", "video", "onepiece_demo.mp4")

    class Nearest:
        scale, name = 2, "nearest"

        def upscale(self, img: np.ndarray, **_: Any) -> np.ndarray:
            return img.repeat(2, 0).repeat(2, 1)

    r = upscale_video(src, tmp_path / "op.mp4", Nearest(), segment_frames=64, preset="ultrafast")
    assert r.output_size == (1280, 960) and r.audio == ("copy aac",)
    with av.open(str(src)) as a, av.open(str(r.dst)) as b:
        ta = [f.time for f in a.decode(video=0)]
        tb = [f.time for f in b.decode(video=0)]
        assert len(ta) == len(tb) == 181
        assert max(abs(x - y) for x, y in zip(ta, tb, strict=True)) < 0.5 / float(r.fps)
        assert a.streams.audio[0].duration == b.streams.audio[0].duration
