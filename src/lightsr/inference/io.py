"""Image files: read and write without losing bit depth, alpha or grayscale.

Arrays are numpy, HxW (grayscale) or HxWxC with C = 3 (RGB) or 4 (RGBA), channel order RGB
(OpenCV's BGR is converted at the boundary), dtype uint8 or uint16 (float32 for floating-point
TIFF/EXR files, values as stored; written back as float32 to TIFF). Palette images are expanded
to RGB, or RGBA when they carry transparency. Decoding uses OpenCV; a header-only probe with
Pillow first enforces a pixel-count limit before any pixels are decoded (decompression bombs)
and refuses animated and multi-page files (GIF, APNG, WebP, TIFF with more than one frame: only
the first would be upscaled otherwise); a multi-picture JPEG (MPO) gives its main picture.
CMYK (and Lab, HSV, YCbCr) files are converted to RGB by Pillow, CMYK through the file's ICC
profile when it has one, with one line on the ``lightsr`` logger; TIFF files with gray + alpha,
palette + alpha or premultiplied alpha become RGBA (OpenCV would drop their alpha). Signed and
32-bit integer samples become 16-bit when they fit, float64 becomes float32.

Metadata policy: :func:`read_image` applies the EXIF orientation (a portrait phone photo stored
sideways is returned upright). :func:`read_metadata` returns the file's ICC colour profile and
its EXIF block with the orientation reset to 1 (the pixels are upright now); ``write_image(...,
metadata=...)`` embeds both in PNG (``iCCP``, ``eXIf``) and JPEG (APP2 ``ICC_PROFILE``, APP1
``Exif``) outputs, except an ICC profile of another colour space than the output's (a CMYK
input's profile). WebP, TIFF and BMP outputs carry no metadata. Other metadata (XMP, text
chunks, GPS outside EXIF) is not carried over.
"""

from __future__ import annotations

import io
import logging
import os
import struct
import zlib
from dataclasses import dataclass, replace
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
# Formats that store 32-bit float samples (when written through OpenCV).
_FLOAT = {".tif", ".tiff"}
_EXIF_ORIENTATION = 0x0112


def _cv2():  # imported lazily: OpenCV costs ~0.2 s to import and is only needed for files
    # OpenCV's own guard (default 2^30 pixels) for files Pillow cannot probe; read on first use
    os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
    # OpenCV logs its decoders' complaints on stderr; lightsr reports bad files itself
    os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")
    import cv2

    return cv2


@dataclass(frozen=True)
class _Header:
    """What Pillow reads from a file's header, before any pixel is decoded."""

    size: tuple[int, int]  # (width, height)
    mode: str
    format: str
    frames: int
    orientation: int
    icc_profile: bytes | None


def _probe(path: Path) -> _Header | None:
    """The file's header as Pillow reads it without decoding pixels; None if Pillow can't."""
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # our own limit applies; Pillow's would raise first
    try:
        with Image.open(path) as im:
            size = (int(im.size[0]), int(im.size[1]))
            mode, fmt = im.mode, str(im.format)
            frames = int(getattr(im, "n_frames", 1) or 1)
            icc = im.info.get("icc_profile") or None
            try:
                orientation = int(im.getexif().get(_EXIF_ORIENTATION, 1))
            except Exception:  # a broken EXIF block: stored as displayed
                orientation = 1
    except Exception:  # unknown to Pillow, or a header it cannot parse: OpenCV decides below
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = old
    return _Header(size, mode, fmt, frames, orientation if 1 <= orientation <= 8 else 1, icc)


#: Pillow modes whose samples OpenCV would hand over wrongly (colour spaces taken for RGB(A),
#: alpha dropped or padding taken for alpha in TIFF files): decoded by Pillow and converted to
#: this mode instead (CMYK through the file's ICC profile when it has one).
_PILLOW_MODES = {"CMYK": "RGB", "LAB": "RGB", "HSV": "RGB", "YCbCr": "RGB", "RGBX": "RGB"}
_PILLOW_MODES_TIFF = {"LA": "RGBA", "La": "RGBA", "PA": "RGBA", "RGBa": "RGBA"}
#: Conversions that change colours (one line on the ``lightsr`` logger says so).
_COLOUR_MODES = {"CMYK", "LAB", "HSV", "YCbCr"}
#: Multi-picture JPEGs (MPO: phones' depth maps, stereo pairs) hold the photo as frame 0.
_STILL_FORMATS = {"MPO"}

_log = logging.getLogger("lightsr")


def _check_header(path: Path, header: _Header | None, limit: int) -> None:
    """Refuse decompression bombs and animations before decoding."""
    if header is None:
        return
    w, h = header.size
    if w * h > limit:
        raise ImageError(
            f"{path}: {w}x{h} = {w * h:,} pixels exceeds the limit of "
            f"{limit:,}; raise it with LIGHTSR_MAX_PIXELS if the file is trusted"
        )
    if header.frames > 1 and header.format not in _STILL_FORMATS:
        raise ImageError(
            f"{path}: {header.format} with {header.frames} frames (animated or multi-page); "
            "lightsr upscales still images: save the frames as separate images (e.g. "
            "`ffmpeg -i in.gif frames/%04d.png`) and upscale that folder"
        )


def _pillow_mode(header: _Header | None) -> str | None:
    """The mode to decode a file to with Pillow, or None for OpenCV (see :data:`_PILLOW_MODES`)."""
    if header is None:
        return None
    if header.format == "TIFF" and header.mode in _PILLOW_MODES_TIFF:
        return _PILLOW_MODES_TIFF[header.mode]
    return _PILLOW_MODES.get(header.mode)


def _decode_with_pillow(path: Path, header: _Header, mode: str) -> np.ndarray:
    """Decode with Pillow to 8-bit ``mode`` (CMYK through its ICC profile when it has one)."""
    from PIL import Image, ImageCms

    how = "without a colour profile: colours are approximate"
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the size was checked against lightsr's own limit
    try:
        with Image.open(path) as im:
            im.load()
            out = None
            if header.mode == "CMYK" and header.icc_profile:
                try:
                    src = ImageCms.ImageCmsProfile(io.BytesIO(header.icc_profile))
                    dst = ImageCms.createProfile("sRGB")
                    out = ImageCms.profileToProfile(im, src, dst, outputMode=mode)
                    how = "through its ICC profile to sRGB"
                except Exception:  # a profile littlecms cannot use: the plain formula
                    out = None
            if out is None:
                out = im.convert(mode)
    finally:
        Image.MAX_IMAGE_PIXELS = old
    if header.mode in _COLOUR_MODES:
        _log.warning("lightsr: %s: %s image converted to RGB (%s)", path, header.mode, how)
    return np.asarray(out)


def read_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> np.ndarray:
    """Read an image file as an RGB(A) or grayscale array, keeping its bit depth.

    Args:
        path: PNG, JPEG, WebP, BMP or TIFF file (GIF and other formats Pillow or OpenCV
            read also work, as still images).
        max_pixels: refuse images with more than this many pixels (default :data:`MAX_PIXELS`).

    Returns:
        HxW, HxWx3 (RGB) or HxWx4 (RGBA) array of uint8, uint16 or float32, upright (EXIF
        orientation applied). CMYK, Lab, HSV and YCbCr files are converted to 8-bit RGB (one
        line logged on the ``lightsr`` logger, which prints on stderr when unconfigured).

    Raises:
        ImageError: missing, empty, undecodable, truncated, oversized, animated or multi-page
            file (message names it).
    """
    path = Path(path)
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    size = path.stat().st_size
    if size == 0:
        raise ImageError(f"{path}: file is empty")
    header = _probe(path)
    _check_header(path, header, limit)
    _check_complete(path)
    mode = _pillow_mode(header)
    if header is not None and mode is not None:
        try:
            img = _decode_with_pillow(path, header, mode)
        except Exception as exc:  # Pillow raises many types for broken data; all mean "corrupt"
            raise ImageError(f"{path}: not a decodable image ({exc})") from exc
    else:
        img = _decode(path, limit)
    return np.ascontiguousarray(
        _apply_orientation(img, header.orientation if header is not None else 1)
    )


def _to_supported_dtype(img: np.ndarray, path: Path) -> np.ndarray:
    """uint8/uint16/float32 as they are; float64 as float32; signed or 32-bit integer samples
    (TIFF ``I`` mode, signed 16-bit) as uint16 when every value fits, else refused."""
    if img.dtype in (np.uint8, np.uint16, np.float32):
        return img
    if img.dtype == np.float64:
        return img.astype(np.float32)
    if img.dtype.kind in "iu":
        lo, hi = (int(img.min()), int(img.max())) if img.size else (0, 0)
        if 0 <= lo and hi <= 65535:
            return img.astype(np.uint16)
        raise ImageError(
            f"{path}: {img.dtype} samples from {lo} to {hi} do not fit 16 bits; convert the "
            "image to 8- or 16-bit integer or 32-bit float samples"
        )
    raise ImageError(
        f"{path}: unsupported sample type {img.dtype}; expected 8- or 16-bit integer or "
        "32-bit float samples"
    )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_chunks(path: Path, data: bytes) -> None:
    """Refuse a PNG whose chunk list runs past the end of the file, before OpenCV sees it.

    OpenCV's PNG reader allocates a chunk's declared length before reading it: a 60-byte file
    declaring a 4 GB chunk took 4 GB of memory (found by benchmarks/fuzz_decode.py). Walking
    the chunk headers costs nothing and finds every such lie."""
    if not data.startswith(_PNG_SIGNATURE):
        return
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if length > 0x7FFFFFFF or pos + 12 + length > len(data):
            raise ImageError(
                f"{path}: corrupt or truncated PNG (chunk {kind!r} at byte {pos} declares "
                f"{length:,} bytes; {len(data) - pos - 12:,} remain)"
            )
        if kind == b"IEND":
            return
        pos += 12 + length
    raise ImageError(f"{path}: truncated PNG (no IEND chunk)")


def _decode(path: Path, limit: int) -> np.ndarray:
    """Decode with OpenCV (bit depth kept) and turn BGR(A) into RGB(A)."""
    cv2 = _cv2()
    data = np.fromfile(path, dtype=np.uint8)  # np.fromfile + imdecode: unicode paths work
    _check_png_chunks(path, data.tobytes())
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV's own size limit, or a decoder that gives up
        img = None
    if img is None or img.size == 0:
        raise ImageError(
            f"{path}: not a decodable image (corrupt, truncated or unsupported format); "
            f"supported: {', '.join(IMAGE_EXTENSIONS)}"
        )
    if img.shape[0] * img.shape[1] > limit:
        raise ImageError(f"{path}: {img.shape[1]}x{img.shape[0]} exceeds {limit:,} pixels")
    img = _to_supported_dtype(img, path)
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[:, :, 0]
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
        else:
            raise ImageError(f"{path}: {img.shape[2]} channels; expected 1, 3 or 4")
    return img


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


#: ICC colour-space signatures (header bytes 16-19) that no RGB or gray output can carry.
_ICC_OTHER_SPACES = {
    b"CMYK",
    b"CMY ",
    b"Lab ",
    b"XYZ ",
    b"Luv ",
    b"YCbr",
    b"Yxy ",
    b"HSV ",
    b"HLS ",
}


def _icc_fits(icc: bytes | None, gray: bool) -> bool:
    """Whether an ICC profile may be embedded in an RGB (``gray=False``) or gray image: not when
    its header names another colour space (a CMYK input's profile, an RGB profile on gray);
    bytes without a recognisable colour space are carried as they are."""
    if not icc:
        return True
    space = icc[16:20]
    if space in _ICC_OTHER_SPACES:
        return False
    return space != (b"RGB " if gray else b"GRAY")


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
    BMP. Float arrays are taken as [0, 1]: TIFF keeps them as 32-bit float (values as they are),
    PNG gets 16 bits, the other formats 8 bits (clipped to [0, 1], rounded). An ICC profile
    whose header names another colour space than the output's (CMYK, or RGB on a gray image) is
    not embedded.

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
    if img.dtype.kind == "f" and ext in _FLOAT:
        img = img.astype(np.float32, copy=False)
    elif img.dtype.kind == "f" and ext in _SIXTEEN_BIT:
        img = (np.clip(img, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
    elif img.dtype.kind == "f":
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if metadata is not None and not _icc_fits(metadata.icc_profile, img.ndim == 2):
        metadata = replace(metadata, icc_profile=None)
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
