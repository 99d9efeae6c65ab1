"""The photo cases users hit, with real files made here by Pillow: EXIF rotation, ICC profiles,
CMYK, animations and multi-page files, float and 16-bit samples (policy: lightsr.inference.io)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from lightsr.errors import ImageError
from lightsr.inference.batch import upscale_files
from lightsr.inference.io import read_image, read_metadata, write_image

RNG = np.random.default_rng(22)


class _Nearest:
    """A stand-in model: nearest-neighbour x2 that keeps the input's dtype (no torch needed)."""

    scale = 2
    name = "nearest"
    device = "cpu"
    precision = "fp32"

    def upscale(self, img: np.ndarray, *, tile: int | None, tile_overlap: int) -> np.ndarray:
        return img.repeat(2, 0).repeat(2, 1)


def _rgb(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_portrait_phone_photo_comes_out_upright_with_the_tag_cleared(tmp_path: Path) -> None:
    """Orientation 6 (stored 96 wide x 64 high, displayed 64 x 96): the issue's sideways case."""
    stored = _rgb(64, 96)
    exif = Image.Exif()
    exif[0x0112] = 6
    src = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(src, exif=exif.tobytes(), quality=95)
    summary = upscale_files(src, _Nearest(), output=tmp_path / "out")
    assert not summary.failed
    dst = summary.done[0].dst
    assert summary.done[0].input_size == (64, 96)
    with Image.open(dst) as out:
        assert out.size == (128, 192)  # upright: twice the displayed size
        assert out.getexif().get(0x0112, 1) == 1  # no second rotation in any viewer
        shown = np.asarray(out.convert("RGB")).astype(int)
    with Image.open(src) as im:
        upright = np.asarray(im.transpose(Image.Transpose.ROTATE_270).convert("RGB"))
    expect = upright.repeat(2, 0).repeat(2, 1).astype(int)
    assert np.abs(shown - expect).mean() < 12  # the same picture (JPEG noise aside; ~85 if not)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_a_real_icc_profile_is_carried_to_the_output(tmp_path: Path, ext: str) -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / f"p{ext}"
    Image.fromarray(_rgb(20, 30)).save(src, icc_profile=profile)
    dst = upscale_files(src, _Nearest(), output=tmp_path / "o").done[0].dst
    with Image.open(dst) as out:
        assert out.info.get("icc_profile") == profile


def _cmyk_profile() -> bytes | None:
    """A CMYK ICC profile, if this Pillow's littlecms can make one (it has no built-in CMYK)."""
    try:
        lab = ImageCms.createProfile("LAB")
        return ImageCms.ImageCmsProfile(lab).tobytes()
    except Exception:  # pragma: no cover - littlecms missing
        return None


@pytest.mark.parametrize("ext", [".jpg", ".tif"])
def test_cmyk_is_converted_to_rgb_with_a_note(
    tmp_path: Path, ext: str, caplog: pytest.LogCaptureFixture
) -> None:
    """OpenCV hands a CMYK TIFF over as 4 channels (taken for RGBA before); a CMYK JPEG's
    conversion must not depend on the decoder either."""
    rgb = _rgb(24, 32)
    cmyk = Image.fromarray(rgb).convert("CMYK")
    src = tmp_path / f"c{ext}"
    cmyk.save(src, quality=100) if ext == ".jpg" else cmyk.save(src)
    with caplog.at_level(logging.WARNING, logger="lightsr"):
        img = read_image(src)
    assert img.shape == (24, 32, 3) and img.dtype == np.uint8
    with Image.open(src) as im:
        expect = np.asarray(im.convert("RGB")).astype(int)
    assert np.abs(img.astype(int) - expect).max() <= 1
    assert any("CMYK image converted to RGB" in r.getMessage() for r in caplog.records)
    assert str(src) in caplog.records[-1].getMessage()


def test_cmyk_profile_is_not_put_on_an_rgb_output(tmp_path: Path) -> None:
    """A CMYK input's ICC profile describes CMYK samples; an RGB output must not carry it."""
    fake_cmyk_icc = bytes(16) + b"CMYK" + bytes(108)
    src = tmp_path / "c.png"
    Image.fromarray(_rgb(8, 8)).save(src, icc_profile=fake_cmyk_icc)
    assert read_metadata(src).icc_profile == fake_cmyk_icc
    dst = upscale_files(src, _Nearest(), output=tmp_path / "o").done[0].dst
    with Image.open(dst) as out:
        assert "icc_profile" not in out.info


@pytest.mark.parametrize("fmt", ["gif", "png", "webp", "tif"])
def test_animated_and_multi_page_inputs_are_refused(tmp_path: Path, fmt: str) -> None:
    frames = [Image.fromarray(_rgb(16, 16)) for _ in range(3)]
    src = tmp_path / f"anim.{fmt}"
    frames[0].save(src, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match=rf"anim\.{fmt}: .* with 3 frames .*ffmpeg"):
        read_image(src)
    summary = upscale_files(src, _Nearest(), output=tmp_path / "o")
    assert len(summary.failed) == 1 and "3 frames" in (summary.failed[0].error or "")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_a_still_gif_is_read(tmp_path: Path) -> None:
    src = tmp_path / "still.gif"
    Image.fromarray(_rgb(10, 12)).convert("P").save(src)
    assert read_image(src).shape == (10, 12, 3)


def test_float_tiff_stays_float(tmp_path: Path) -> None:
    gray = RNG.random((12, 10)).astype(np.float32)
    src = tmp_path / "f.tif"
    Image.fromarray(gray, mode="F").save(src)
    img = read_image(src)
    assert img.dtype == np.float32 and np.array_equal(img, gray)
    dst = upscale_files(src, _Nearest(), output=tmp_path / "o").done[0].dst
    assert dst.suffix == ".tif"
    with Image.open(dst) as out:
        assert out.mode == "F"
        assert np.array_equal(np.asarray(out), gray.repeat(2, 0).repeat(2, 1))


def test_float_rgb_goes_to_float_tiff_and_16_bit_png(tmp_path: Path) -> None:
    f = RNG.random((6, 7, 3)).astype(np.float32)
    back = read_image(write_image(tmp_path / "a.tif", f))
    assert back.dtype == np.float32 and np.array_equal(back, f)
    png = read_image(write_image(tmp_path / "a.png", f))
    assert png.dtype == np.uint16
    assert np.abs(png / 65535.0 - f).max() <= 0.5 / 65535 + 1e-7


def test_16_bit_png_stays_16_bit_through_a_batch(tmp_path: Path) -> None:
    deep = RNG.integers(0, 65536, (9, 11, 3), dtype=np.uint16)
    src = tmp_path / "d.png"
    write_image(src, deep)
    dst = upscale_files(src, _Nearest(), output=tmp_path / "o").done[0].dst
    assert np.array_equal(read_image(dst), deep.repeat(2, 0).repeat(2, 1))


def test_a_multi_picture_jpeg_gives_its_main_picture(tmp_path: Path) -> None:
    main, extra = _rgb(16, 24), _rgb(8, 8)
    src = tmp_path / "mpo.jpg"
    Image.fromarray(main).save(
        src, format="MPO", save_all=True, append_images=[Image.fromarray(extra)]
    )
    with Image.open(src) as im:
        assert im.format == "MPO" and im.n_frames == 2
        first = np.asarray(im.convert("RGB")).astype(int)  # frame 0: the main picture
    img = read_image(src)
    assert img.shape == (16, 24, 3)
    assert np.abs(img.astype(int) - first).max() <= 2


def test_icc_bytes_survive_a_round_trip_through_littlecms(tmp_path: Path) -> None:
    """The carried profile is the input's bytes, usable by a colour-managed viewer."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "p.png"
    Image.fromarray(_rgb(4, 4)).save(src, icc_profile=profile)
    meta = read_metadata(src)
    assert meta.icc_profile is not None
    ImageCms.ImageCmsProfile(io.BytesIO(meta.icc_profile))  # parses
