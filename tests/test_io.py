"""Image files: bit depth, alpha, grayscale and palette survive; bad files give clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lightsr.errors import ImageError
from lightsr.inference.io import read_image, write_image

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_16_bit_round_trip(tmp_path: Path, ext: str) -> None:
    img = RNG.integers(0, 65536, (9, 13, 3), dtype=np.uint16)
    back = read_image(write_image(tmp_path / f"a{ext}", img))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, img)


@pytest.mark.parametrize("ext", [".png", ".webp", ".tif"])
def test_rgba_round_trip(tmp_path: Path, ext: str) -> None:
    img = RNG.integers(0, 256, (9, 13, 4), dtype=np.uint8)
    if ext == ".webp":
        write_image(tmp_path / f"a{ext}", img, quality=101)  # lossless WebP
    back = read_image(write_image(tmp_path / f"a{ext}", img, quality=101))
    assert back.shape == (9, 13, 4)
    if ext != ".webp":
        np.testing.assert_array_equal(back, img)


def test_rgb_order_and_gray(tmp_path: Path) -> None:
    img = np.zeros((4, 5, 3), np.uint8)
    img[..., 0] = 200  # red
    Image.fromarray(img).save(tmp_path / "red.png")
    assert read_image(tmp_path / "red.png")[0, 0].tolist() == [200, 0, 0]
    gray = RNG.integers(0, 256, (6, 7), dtype=np.uint8)
    back = read_image(write_image(tmp_path / "g.png", gray))
    assert back.shape == (6, 7)
    np.testing.assert_array_equal(back, gray)


def test_palette_expands(tmp_path: Path) -> None:
    pal = Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).quantize(8)
    pal.save(tmp_path / "p.png")
    pal.save(tmp_path / "pt.png", transparency=2)
    assert read_image(tmp_path / "p.png").shape == (8, 8, 3)
    assert read_image(tmp_path / "pt.png").shape == (8, 8, 4)


def test_lossy_formats_reduce_depth_and_alpha(tmp_path: Path) -> None:
    img16 = np.full((4, 4, 4), 65535, np.uint16)
    for ext in (".jpg", ".bmp"):
        back = read_image(write_image(tmp_path / f"a{ext}", img16))
        assert back.dtype == np.uint8 and back.shape == (4, 4, 3)


def test_atomic_write_leaves_no_temporary(tmp_path: Path) -> None:
    write_image(tmp_path / "x.png", np.zeros((3, 3, 3), np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]
    with pytest.raises(ImageError, match=r"x\.gif.*unsupported output extension"):
        write_image(tmp_path / "x.gif", np.zeros((3, 3, 3), np.uint8))


def _write_bad(tmp_path: Path, kind: str) -> Path:
    good = write_image(tmp_path / "good.png", RNG.integers(0, 256, (40, 40, 3), dtype=np.uint8))
    path = tmp_path / f"{kind}.png"
    if kind == "truncated":
        path.write_bytes(good.read_bytes()[:300])
    elif kind == "garbage":
        path.write_bytes(b"this is not an image" * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("truncated", "truncated"),
        ("garbage", "not a decodable image"),
        ("empty", "empty"),
        ("missing", "not found"),
    ],
)
def test_bad_files(tmp_path: Path, kind: str, message: str) -> None:
    path = _write_bad(tmp_path, kind)
    with pytest.raises(ImageError, match=rf"{kind}\.png.*{message}"):
        read_image(path)


def test_truncated_jpeg(tmp_path: Path) -> None:
    good = write_image(tmp_path / "a.jpg", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    (tmp_path / "t.jpg").write_bytes(good.read_bytes()[:-200])
    with pytest.raises(ImageError, match=r"t\.jpg.*truncated"):
        read_image(tmp_path / "t.jpg")


def test_pixel_limit_checked_before_decoding(tmp_path: Path) -> None:
    path = write_image(tmp_path / "big.png", np.zeros((100, 100), np.uint8))
    with pytest.raises(ImageError, match=r"big\.png: 100x100 = 10,000 pixels exceeds"):
        read_image(path, max_pixels=9_999)
    assert read_image(path, max_pixels=10_000).shape == (100, 100)


def test_outputs_get_the_usual_file_mode(tmp_path: Path) -> None:
    """Atomic writes use mkstemp (0600); outputs must end up 0666 minus the umask."""
    from lightsr.files import new_file_mode
    from lightsr.models.checkpoint import save_safetensors

    old = os.umask(0o022)
    try:
        img = tmp_path / "a.png"
        write_image(img, np.zeros((4, 4, 3), np.uint8))
        weights = save_safetensors(
            {"x": torch.zeros(1)}, tmp_path / "w.safetensors", arch="safmn", config={}, scale=2
        )
        assert new_file_mode() == 0o644
        assert img.stat().st_mode & 0o777 == 0o644
        assert weights.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


# --- EXIF orientation and metadata carried to outputs -------------------------------------


def _photo_with_metadata(path: Path, orientation: int, icc: bytes) -> np.ndarray:
    """A small JPEG/PNG as a phone writes it: stored pixels + EXIF orientation + ICC profile."""
    from PIL import Image

    rng = np.random.default_rng(orientation)
    stored = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = orientation
    exif[0x010F] = "lightsr-test-camera"  # Make: something else that must survive
    im.save(path, exif=exif.tobytes(), icc_profile=icc, quality=100)
    return stored


@pytest.mark.parametrize("orientation", range(1, 9))
def test_read_applies_exif_orientation_like_pillow(tmp_path: Path, orientation: int) -> None:
    from PIL import Image, ImageOps

    path = tmp_path / "phone.png"
    _photo_with_metadata(path, orientation, b"")
    with Image.open(path) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    got = read_image(path)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_icc_and_exif_are_carried_with_orientation_normalised(tmp_path: Path, ext: str) -> None:
    from PIL import Image

    from lightsr.inference.io import read_metadata

    icc = bytes(range(256)) * 300  # 76.8 KB: more than one JPEG APP2 segment
    src = tmp_path / f"phone{ext}"
    _photo_with_metadata(src, 6, icc)
    meta = read_metadata(src)
    assert meta.icc_profile == icc
    img = read_image(src)
    assert img.shape[:2] == (10, 6)  # upright
    dst = write_image(tmp_path / f"out{ext}", img, metadata=meta)
    with Image.open(dst) as out:
        out.load()  # the file stays decodable with the inserted chunks/segments
        assert out.info.get("icc_profile") == icc
        exif = out.getexif()
        assert exif.get(0x0112) == 1
        assert exif.get(0x010F) == "lightsr-test-camera"
        assert out.size == (6, 10)
    back = read_image(dst)  # orientation 1 now: no second rotation
    assert back.shape == img.shape
    if ext == ".png":
        np.testing.assert_array_equal(back, img)


def test_files_without_metadata_give_empty_metadata(tmp_path: Path) -> None:
    from lightsr.inference.io import read_metadata

    path = write_image(tmp_path / "plain.png", np.zeros((4, 4, 3), np.uint8))
    meta = read_metadata(path)
    assert meta.icc_profile is None and meta.exif is None
    assert read_metadata(tmp_path / "missing.png").icc_profile is None
