"""Image files: read and write without losing bit depth, alpha or grayscale.

Arrays are numpy, HxW (grayscale) or HxWxC with C = 3 (RGB) or 4 (RGBA), channel order RGB
(OpenCV's BGR is converted at the boundary), dtype uint8 or uint16 (float32 for floating-point
TIFF/EXR files, values as stored). Palette images are expanded to RGB, or RGBA when they carry
transparency. Decoding uses OpenCV; a header-only probe with Pillow enforces a pixel-count limit
before any pixels are decoded (decompression bombs).

Metadata policy: :func:`read_image` applies the EXIF orientation (a portrait phone photo stored
sideways is returned upright). :func:`read_metadata` returns the file's ICC colour profile and
its EXIF block with the orientation reset to 1 (the pixels are upright now); ``write_image(...,
metadata=...)`` embeds both in PNG (``iCCP``, ``eXIf``) and JPEG (APP2 ``ICC_PROFILE``, APP1
``Exif``) outputs. WebP, TIFF and BMP outputs carry no metadata. Other metadata (XMP, text
chunks, GPS outside EXIF) is not carried over.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lightsr.errors import ImageError
from lightsr.files import atomic_path

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "ImageMetadata",
    "read_image",
    "read_metadata",
    "write_image",
]

#: Extensions lightsr reads and writes (lower case, with the dot).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

#: Default limit on width * height of an input image (about 16K x 11K); larger files are refused
#: before decoding. Override with the ``max_pixels`` argument or ``LIGHTSR_MAX_PIXELS``.
MAX_PIXELS = int(os.environ.get("LIGHTSR_MAX_PIXELS", 178_956_970))

# Formats that store 16 bits per channel / an alpha channel (when written through OpenCV).
_SIXTEEN_BIT = {".png", ".tif", ".tiff"}
_ALPHA = {".png", ".webp", ".tif", ".tiff"}


def _cv2():  # imported lazily: OpenCV costs ~0.2 s to import and is only needed for files
    import cv2

    return cv2


def _probe_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding pixels; None if Pillow can't tell."""
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own limit applies; Pillow's would raise first
    try:
        with Image.open(path) as im:
            return im.size
    except Exception:  # unknown to Pillow: OpenCV decides below
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = old


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as an RGB(A) or grayscale array, keeping its bit depth.

    Args:
        path: PNG, JPEG, WebP, BMP or TIFF file.
        max_pixels: refuse images with more than this many pixels (default :data:`MAX_PIXELS`).

    Returns:
        HxW, HxWx3 (RGB) or HxWx4 (RGBA) array of uint8, uint16 or float32.

    Raises:
        ImageError: missing, empty, undecodable, truncated or oversized file (message names it).
    """
    path = Path(path)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"{path}: file is empty")
    dims = _probe_size(path)
    if dims is not None and dims[0] * dims[1] > limit:
        raise ImageError(
            f"{path}: {dims[0]}x{dims[1]} = {dims[0] * dims[1]:,} pixels exceeds the limit of "
            f"{limit:,}; raise it with LIGHTSR_MAX_PIXELS if the file is trusted"
        )
    _check_complete(path)
    cv2 = _cv2()
    data = np.fromfile(path, dtype=np.uint8)  # np.fromfile + imdecode: unicode paths work
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageError(
            f"{path}: not a decodable image (corrupt, truncated or unsupported format); "
            f"supported: {', '.join(IMAGE_EXTENSIONS)}"
        )
    if img.shape[0] * img.shape[1] > limit:
        raise ImageError(f"{path}: {img.shape[1]}x{img.shape[0]} exceeds {limit:,} pixels")
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageError(
            f"{path}: unsupported sample type {img.dtype}; expected 8- or 16-bit integer or "
            "32-bit float samples"
        )
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
        else:
            raise ImageError(f"{path}: {img.shape[2]} channels; expected 1, 3 or 4")
    return np.ascontiguousarray(_apply_orientation(img, _orientation(path)))


_EXIF_ORIENTATION = 0x0112


def _orientation(path: Path) -> int:
    """The EXIF orientation tag (1-8) of a file; 1 when absent or unreadable."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # no EXIF, or a format Pillow does not read: stored as displayed
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(img: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels into displayed pixels for an EXIF orientation (1-8)."""
    if orientation in (5, 6, 7, 8):  # the stored image is transposed relative to the display
        img = img.swapaxes(0, 1)
    flip_rows = orientation in (3, 4, 7, 8)  # after the transpose, as Pillow's exif_transpose
    flip_cols = orientation in (2, 3, 6, 7)
    if flip_rows:
        img = img[::-1]
    if flip_cols:
        img = img[:, ::-1]
    return img


@dataclass(frozen=True)
class ImageMetadata:
    """What an output carries over from its input (see the module's metadata policy).

    Attributes:
        icc_profile: the ICC colour profile's bytes, or None.
        exif: the EXIF block (TIFF-structured bytes, without the ``Exif\\0\\0`` prefix) with the
            orientation reset to 1, or None.
    """

    icc_profile: bytes | None = None
    exif: bytes | None = None


def read_metadata(path: str | os.PathLike[str]) -> ImageMetadata:
    """The ICC profile and EXIF block of an image file (header only; never raises)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            icc = im.info.get("icc_profile") or None
            exif = im.getexif()
            raw = None
            if len(exif):
                if _EXIF_ORIENTATION in exif:
                    exif[_EXIF_ORIENTATION] = 1
                raw = exif.tobytes()
                raw = raw[6:] if raw.startswith(b"Exif\0\0") else raw
    except Exception:
        return ImageMetadata()
    return ImageMetadata(icc_profile=icc, exif=raw)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _embed_png(buf: bytes, meta: ImageMetadata) -> bytes:
    """Insert ``iCCP`` and ``eXIf`` chunks after IHDR (8-byte signature + 25-byte IHDR)."""
    extra = b""
    if meta.icc_profile:
        extra += _png_chunk(b"iCCP", b"icc\0\0" + zlib.compress(meta.icc_profile))
    if meta.exif:
        extra += _png_chunk(b"eXIf", meta.exif)
    return buf[:33] + extra + buf[33:]


def _embed_jpeg(buf: bytes, meta: ImageMetadata) -> bytes:
    """Insert APP1 ``Exif`` and APP2 ``ICC_PROFILE`` segments after SOI and any APP0 (JFIF)."""
    pos = 2
    if buf[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", buf[4:6])[0]
    segments = b""
    if meta.exif and len(meta.exif) + 8 <= 0xFFFF:
        body = b"Exif\0\0" + meta.exif
        segments += b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    if meta.icc_profile:
        size = 0xFFFF - 2 - 14  # per segment: length field and "ICC_PROFILE\0" + seq + count
        parts = [meta.icc_profile[i : i + size] for i in range(0, len(meta.icc_profile), size)]
        if len(parts) <= 255:
            for i, part in enumerate(parts, 1):
                body = b"ICC_PROFILE\0" + bytes([i, len(parts)]) + part
                segments += b"\xff\xe2" + struct.pack(">H", len(body) + 2) + body
    return buf[:pos] + segments + buf[pos:]


def _check_complete(path: Path) -> None:
    """Reject truncated PNG/JPEG files, which OpenCV would decode partially without an error."""
    with open(path, "rb") as f:
        head = f.read(8)
        # PNG ends with its IEND chunk; a JPEG's end-of-image marker may be followed by
        # appended data (camera "motion photos"), so look further back for it.
        f.seek(max(0, path.stat().st_size - (65536 if head.startswith(b"\xff\xd8") else 32)))
        tail = f.read()
    if head.startswith(b"\x89PNG") and b"IEND" not in tail:
        raise ImageError(f"{path}: PNG file is truncated (no IEND chunk); re-export the image")
    if head.startswith(b"\xff\xd8") and b"\xff\xd9" not in tail:
        raise ImageError(f"{path}: JPEG file is truncated (no end-of-image marker)")


def write_image(
    path: str | os.PathLike[str],
    img: np.ndarray,
    *,
    quality: int = 95,
    metadata: ImageMetadata | None = None,
) -> Path:
    """Write an array atomically (temporary file in the same folder, then rename).

    The format follows the extension. 16-bit data is kept for PNG and TIFF and reduced to 8 bits
    (rounded) for JPEG, WebP and BMP; alpha is kept for PNG, WebP and TIFF and dropped for JPEG and
    BMP. Float arrays are taken as [0, 1] and written as 8-bit.

    Args:
        path: destination; its parent folder is created.
        img: HxW, HxWx3 (RGB) or HxWx4 (RGBA) array.
        quality: JPEG/WebP quality (1-100).
        metadata: ICC profile and EXIF to embed (PNG and JPEG; see :func:`read_metadata`).

    Raises:
        ImageError: unsupported extension or encoder failure.
    """
    cv2 = _cv2()
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in IMAGE_EXTENSIONS:
        raise ImageError(
            f"{path}: unsupported output extension {ext or '(none)'}; "
            f"use one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    if img.dtype.kind == "f":
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if img.dtype == np.uint16 and ext not in _SIXTEEN_BIT:
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 4 and ext not in _ALPHA:
        img = img[:, :, :3]
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_RGBA2BGRA)
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, quality]
    ok, buf = cv2.imencode(ext, img, params)
    if not ok:
        raise ImageError(f"{path}: the {ext} encoder failed for a {img.shape} {img.dtype} image")
    data = buf.tobytes()
    if metadata is not None and ext == ".png":
        data = _embed_png(data, metadata)
    elif metadata is not None and ext in (".jpg", ".jpeg"):
        data = _embed_jpeg(data, metadata)
    with atomic_path(path, suffix=f"{ext}.part") as tmp:
        tmp.write_bytes(data)
    return path
