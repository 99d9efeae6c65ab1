"""Reliability under bad input: the malformed-input corpus (reduced), the fuzz harnesses (a few
seconds each), and regression tests for every bug they found (benchmarks/reliability.py runs
all of it in full and writes docs/reliability.md)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightsr.errors import CheckpointError, ImageError, LightSRError
from lightsr.inference.batch import STALE_TEMP_SECONDS, upscale_files
from lightsr.inference.io import read_image, write_image

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks"
sys.path.insert(0, str(BENCH))


@pytest.fixture(scope="module")
def quick_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``reliability.py --quick --only corpus``: every group of the corpus, through the CLI and
    the API, each case in its own process with a time limit."""
    out = tmp_path_factory.mktemp("rel") / "r.json"
    cmd = [sys.executable, str(BENCH / "reliability.py"), "--quick", "--only", "corpus"]
    cmd += ["--no-doc", "--json", str(out), "--timeout", "120"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_quick_corpus_has_no_traceback_hang_crash_or_partial_output(quick_corpus: dict) -> None:
    failures = [
        f"{f['category']}/{f['group']}/{f['case']} via {f['via']}: {f['outcome']} {f['detail']}"
        for f in quick_corpus["failures"]
    ]
    assert not failures, "\n".join(failures)
    rows = quick_corpus["rows"]
    groups = {f"{r['category']}/{r['group']}" for r in rows}
    for needed in (
        "image/truncated",
        "image/bitflip",
        "image/bomb",
        "image/modes",
        "image/photo",
        "checkpoint/pickle",
        "checkpoint/safetensors_header",
        "checkpoint/nonfinite",
        "recipe/recipe",
        "cli/flags",
    ):
        assert needed in groups
    assert sum(r["runs"] for r in rows) >= 120
    routes = {o["via"] for o in quick_corpus["outcomes"]}
    assert routes == {"cli", "api"}
    # refused cases exit non-zero; bombs and truncations are refused, never decoded
    for r in rows:
        if r["group"] in ("bomb", "truncated", "pickle", "nonfinite"):
            assert r["ok"] == 0 and r["refused"] == r["runs"], r


def test_the_full_corpus_has_at_least_300_cases(tmp_path: Path) -> None:
    from make_corpus import make_corpus

    cases = make_corpus(tmp_path, quick=False)
    assert len(cases) >= 300
    assert len({c.name for c in cases}) == len(cases)
    for c in cases:
        if c.category != "cli":
            assert (tmp_path / c.path).is_file(), c.path
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert len(manifest) == len(cases)


def _fuzz_available() -> None:
    try:
        import atheris  # noqa: F401
    except ImportError:
        msg = "atheris is not installed (pip install atheris)"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["image", "checkpoint"])
def test_fuzz_harness_runs_without_findings(tmp_path: Path, target: str) -> None:
    _fuzz_available()
    from fuzz_decode import fuzz

    result = fuzz(target, 8, tmp_path / "artifacts")
    assert result["executions"] > 0, result
    assert result["findings"] == 0, result


# --- regressions: bugs the corpus and the fuzzer found -------------------------------------


class _Boom:
    """A model loader that must not be called (usage mistakes are found before loading)."""

    def __call__(self) -> None:
        raise AssertionError("the model was loaded before the arguments were checked")


@pytest.mark.parametrize("outscale", [0.0, -1.0, float("nan"), float("inf"), 1e9])
def test_outscale_out_of_range_is_a_usage_error(tmp_path: Path, outscale: float) -> None:
    """outscale=inf passed the old check (> 0) and ended in an OverflowError traceback."""
    src = write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(LightSRError, match="outscale: expected a number > 0 and <= 16"):
        upscale_files(src, _Boom(), outscale=outscale)


@pytest.mark.parametrize("quality", [0, 101, 500, -3])
def test_quality_out_of_range_is_a_usage_error(tmp_path: Path, quality: int) -> None:
    """OpenCV clamped any quality silently."""
    src = write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(LightSRError, match="quality: expected a whole number from 1 to 100"):
        upscale_files(src, _Boom(), quality=quality, output=tmp_path / "o.jpg")


def test_a_binary_recipe_is_a_config_error(tmp_path: Path) -> None:
    """A non-UTF-8 file given as a recipe raised UnicodeDecodeError (a traceback)."""
    from lightsr.training.config import ConfigError, load_config

    bad = tmp_path / "r.yaml"
    bad.write_bytes(b"\xff\xfe\x00\x80model: \xc3\x28")
    with pytest.raises(ConfigError, match=r"r\.yaml: not a text file"):
        load_config(bad)


def test_32_bit_integer_tiff_is_read_as_16_bit(tmp_path: Path) -> None:
    """Pillow's mode I TIFF (int32 samples) was refused."""
    arr = np.arange(12 * 10, dtype=np.int32).reshape(12, 10) * 500
    Image.fromarray(arr, mode="I").save(tmp_path / "i.tif")
    img = read_image(tmp_path / "i.tif")
    assert img.dtype == np.uint16 and np.array_equal(img, arr)
    Image.fromarray(arr - 70_000, mode="I").save(tmp_path / "neg.tif")
    with pytest.raises(ImageError, match=r"neg\.tif: int32 samples from -70000 .* 16 bits"):
        read_image(tmp_path / "neg.tif")


@pytest.mark.parametrize("mode", ["LA", "PA"])
def test_tiff_alpha_modes_keep_their_alpha(tmp_path: Path, mode: str) -> None:
    """OpenCV dropped the alpha of gray+alpha and palette+alpha TIFF files."""
    rng = np.random.default_rng(1)
    rgba = rng.integers(0, 256, (8, 9, 4), dtype=np.uint8)
    im = Image.fromarray(rgba).convert(mode)
    im.save(tmp_path / "a.tif")
    img = read_image(tmp_path / "a.tif")
    assert img.shape == (8, 9, 4)
    assert np.array_equal(img[..., 3], np.asarray(im.convert("RGBA"))[..., 3])


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    """A checkpoint with a NaN weight loaded and made NaN (then black) images."""
    from lightsr.models.checkpoint import load_checkpoint
    from lightsr.models.registry import build_arch

    sd = build_arch("safmn", scale=2, dim=8, n_blocks=1).state_dict()
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    sd[key].view(-1)[3] = float("nan")
    torch.save(sd, tmp_path / "nan.pth")
    with pytest.raises(CheckpointError, match=rf"nan\.pth: 1 tensor\(s\) hold NaN .*{key}"):
        load_checkpoint(tmp_path / "nan.pth")


def test_stale_temporaries_of_an_output_are_removed(tmp_path: Path) -> None:
    """A batch killed during a write leaves a hidden .part file; the next write of that output
    removes it once it is too old to be another process's write in progress."""

    class Copy:
        scale = 1

        def upscale(self, img: np.ndarray, *, tile: int | None, tile_overlap: int) -> np.ndarray:
            return img

    src = write_image(tmp_path / "in" / "a.png", np.zeros((4, 4, 3), np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    old, fresh = out / ".a_x1.png.old123.png.part", out / ".a_x1.png.new456.png.part"
    old.write_bytes(b"half")
    fresh.write_bytes(b"half")
    past = time.time() - STALE_TEMP_SECONDS - 5
    os.utime(old, (past, past))
    summary = upscale_files(src, Copy(), output=out)
    assert not summary.failed
    assert not old.exists() and fresh.exists()  # fresh: maybe another process's write


def test_a_large_untiled_input_is_tiled_before_memory_runs_out(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import lightsr.inference.upscaler as up_mod
    from lightsr.models.registry import build_arch

    torch.manual_seed(0)
    up = up_mod.Upscaler(
        build_arch("safmn", scale=2, dim=8, n_blocks=1),
        scale=2,
        name="tiny",
        arch="safmn",
        config={},
        device="cpu",
        fast=False,
    )
    img = np.random.default_rng(0).integers(0, 256, (300, 280, 3), dtype=np.uint8)
    whole = up.upscale(img)  # plenty of memory: untiled
    per_px = 4 * (8 * 32 + 12 * 4)  # the estimate for this model (widest conv: 32 channels)
    monkeypatch.setattr(up_mod, "memory_available", lambda device: 300 * 280 * per_px)
    with caplog.at_level(logging.WARNING, logger="lightsr"):
        tiled = up.upscale(img)
    assert "tiled automatically with --tile" in caplog.text
    assert tiled.shape == whole.shape == (600, 560, 3)
    assert np.abs(tiled.astype(int) - whole).max() <= 1  # seamless tiles
    monkeypatch.setattr(up_mod, "memory_available", lambda device: 1_000_000)
    with pytest.raises(LightSRError, match=r"280x300 at x2 needs about .* GiB untiled"):
        up.upscale(img)


def test_png_with_a_chunk_longer_than_the_file_is_refused_before_decoding(tmp_path) -> None:
    """Found by benchmarks/fuzz_decode.py (libFuzzer out-of-memory): a 60-byte PNG whose IDAT
    declares 4,143,972,642 bytes made OpenCV's reader allocate 4 GB before refusing it."""
    from lightsr.errors import ImageError
    from lightsr.inference.io import read_image

    data = bytes.fromhex(
        "89504e470d0a1a0a0000000d494844520000000a0000000c0802000000d4f74408f7000122"
        "49444154789c05be027a000049454e4489504eae422682"
    )
    path = tmp_path / "lying_chunk.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match="declares 4,143,972,642 bytes"):
        read_image(path)
