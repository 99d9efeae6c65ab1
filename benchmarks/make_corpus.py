"""Make the malformed-input corpus of ``benchmarks/reliability.py``: files, not committed blobs.

Every case is made here from seeded numbers, so the corpus is the same on every machine:

- ``image``: truncations at many offsets and bit flips in headers and chunks of PNG, JPEG, TIFF,
  WebP, GIF and BMP files; wrong extensions; zero-byte, 1x1, 1xN and Nx1 images; decompression
  bombs (headers declaring far more pixels than the data holds) in each format; every Pillow
  mode in every format Pillow writes it to; the photo cases (EXIF orientations, ICC, CMYK,
  animations, float and 16-bit samples).
- ``checkpoint``: truncated, random and bit-flipped files; NaN/Inf tensors; wrong shapes,
  missing and unexpected keys; pickles that reference globals (``os.system``, ``eval``, a whole
  module object); safetensors files whose headers lie (offsets past the end, overlapping,
  unknown dtype, impossible shapes, not JSON, a length larger than the file).
- ``recipe``: YAML with wrong types, unknown keys, missing data folders, bad values, not YAML.
- ``cli``: out-of-range flags (tile <= overlap, outscale 0/NaN/inf, quality), unwritable
  outputs, output equal to input, a full disk (``RLIMIT_FSIZE``), missing inputs.

    python benchmarks/make_corpus.py /tmp/corpus            # writes files + manifest.json
    python benchmarks/make_corpus.py /tmp/corpus --quick    # a subset (every group, fewer)

Each case says what counts as correct: ``ok`` (must succeed with a readable output),
``refused`` (must fail with a one-line error) or ``either`` (a damaged file that may still
decode); never a traceback, a hang, a crash or a partial output.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import pickle
import struct
import sys
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Case", "make_corpus"]

FORMATS = ("png", "jpg", "tif", "webp", "gif", "bmp")


@dataclass
class Case:
    """One corpus entry.

    Attributes:
        category: ``image``, ``checkpoint``, ``recipe`` or ``cli``.
        group: the kind of damage (``truncated``, ``bitflip``, ``bomb``...).
        name: unique name.
        path: the file under test, relative to the corpus folder ("" for some CLI cases).
        expect: ``ok``, ``refused`` or ``either``.
        argv: for ``cli`` cases, the ``lightsr`` arguments (``{corpus}`` and ``{out}`` are
            replaced by the corpus and a fresh output folder).
        api: for ``cli`` cases, keyword arguments of ``upscale_files`` for the API run.
        fsize: for ``cli`` cases, an ``RLIMIT_FSIZE`` in bytes (a full disk) or 0.
    """

    category: str
    group: str
    name: str
    path: str = ""
    expect: str = "either"
    argv: list[str] = field(default_factory=list)
    api: dict[str, Any] | None = None
    fsize: int = 0


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients with some noise: compresses like a photo."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255.0 / max(w, 1), y * 255.0 / max(h, 1), (x + y) % 64 * 4.0], -1)
    return np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def _encode(img: Any, fmt: str, **kw: Any) -> bytes:
    from PIL import Image

    im = img if isinstance(img, Image.Image) else Image.fromarray(img)
    buf = io.BytesIO()
    pil_fmt = {"jpg": "JPEG", "tif": "TIFF"}.get(fmt, fmt.upper())
    im.save(buf, format=pil_fmt, **kw)
    return buf.getvalue()


class _Writer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.cases: list[Case] = []

    def add(self, category: str, group: str, name: str, data: bytes | None, expect: str) -> str:
        rel = f"{category}/{group}/{name}"
        if data is not None:
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        self.cases.append(Case(category, group, name, rel, expect))
        return rel


# --------------------------------------------------------------------------------------------
# Images


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bombs() -> dict[str, bytes]:
    """Small files whose headers declare far more pixels than lightsr's limit."""
    out: dict[str, bytes] = {}
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 4096, 9)
    out["png_100k_square.png"] = (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat)
    ) + _png_chunk(b"IEND", b"")
    # a real zlib bomb: 20000 x 20000 gray zeros in ~400 KB (400 M pixels)
    row = b"\0" * 20_001
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(20_000)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 0, 0, 0, 0)
    out["png_zlib_bomb_20k.png"] = (
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", body)
    ) + _png_chunk(b"IEND", b"")
    jpg = bytearray(_encode(_image(16, 16), "jpg"))
    sof = jpg.find(b"\xff\xc0")
    jpg[sof + 5 : sof + 9] = struct.pack(">HH", 65_000, 65_000)
    out["jpeg_65k_square.jpg"] = bytes(jpg)
    # TIFF: one IFD declaring 100000 x 100000 8-bit gray, one tiny strip
    entries = [
        (256, 4, 1, 100_000),  # ImageWidth (LONG)
        (257, 4, 1, 100_000),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: black is zero
        (273, 4, 1, 8 + 2 + 12 * 8 + 4),  # StripOffsets
        (278, 4, 1, 100_000),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts
    ]
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        fmt = "<HHII" if typ == 4 else "<HHIHxx"
        ifd += struct.pack(fmt, tag, typ, count, value)
    out["tiff_100k_square.tif"] = b"II*\0" + struct.pack("<I", 8) + ifd + b"\0\0\0\0" + bytes(16)
    # WebP VP8X: canvas 16384 x 16384 (268 M pixels), no image data
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\0\0\0\0" + (16383).to_bytes(3, "little") * 2
    out["webp_vp8x_16k.webp"] = b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x
    webp = bytearray(_encode(_image(16, 16), "webp", lossless=True))
    pos = webp.find(b"VP8L")
    if pos >= 0:  # VP8L: 14-bit width-1 and height-1 after the signature byte
        bits = (16383) | (16383 << 14)
        webp[pos + 9 : pos + 13] = struct.pack("<I", bits | (webp[pos + 12] & 0xF0) << 24)
        out["webp_vp8l_16k.webp"] = bytes(webp)
    gif = bytearray(_encode(_image(16, 16), "gif"))
    gif[6:10] = struct.pack("<HH", 65_535, 65_535)
    desc = gif.find(b",")
    gif[desc + 5 : desc + 9] = struct.pack("<HH", 65_535, 65_535)
    out["gif_65k_square.gif"] = bytes(gif)
    bmp = bytearray(_encode(_image(8, 8), "bmp"))
    bmp[18:26] = struct.pack("<ii", 100_000, 100_000)
    out["bmp_100k_square.bmp"] = bytes(bmp)
    return out


def _image_cases(w: _Writer, quick: bool) -> None:
    rng = np.random.default_rng(22)
    base = {fmt: _encode(_image(40, 48, i), fmt) for i, fmt in enumerate(FORMATS)}
    n_cut = 4 if quick else 14
    for fmt, data in base.items():
        w.add("image", "valid", f"base.{fmt}", data, "ok")
        cuts = sorted({int(x) for x in np.linspace(1, len(data) - 1, n_cut)} | {len(data) - 1})
        for cut in cuts:
            w.add("image", "truncated", f"{fmt}_cut{cut}.{fmt}", data[:cut], "either")
        n_flip = 3 if quick else 10
        for i in range(n_flip):  # header bytes first, then anywhere (chunk fields, CRCs, data)
            pos = (
                int(rng.integers(0, min(64, len(data))))
                if i % 2 == 0
                else int(rng.integers(0, len(data)))
            )
            flipped = bytearray(data)
            flipped[pos] ^= 1 << int(rng.integers(0, 8))
            w.add("image", "bitflip", f"{fmt}_flip{i}_at{pos}.{fmt}", bytes(flipped), "either")
    # wrong extensions: valid images under another format's name, and non-images named as images
    for src, ext in (
        ("png", "jpg"),
        ("jpg", "png"),
        ("webp", "tif"),
        ("tif", "webp"),
        ("gif", "png"),
        ("bmp", "jpg"),
    ):
        w.add("image", "wrong_ext", f"{src}_named.{ext}", base[src], "ok")
    w.add("image", "wrong_ext", "text_named.png", b"just some text\n" * 10, "refused")
    w.add("image", "wrong_ext", "zip_named.jpg", b"PK\x03\x04" + bytes(200), "refused")
    w.add("image", "wrong_ext", "html_named.webp", b"<html><body>404</body></html>", "refused")
    # degenerate sizes
    for fmt in FORMATS:
        w.add("image", "degenerate", f"empty.{fmt}", b"", "refused")
        for h, wd in ((1, 1), (1, 97), (97, 1), (2, 3)):
            if quick and (h, wd) == (2, 3):
                continue
            w.add("image", "degenerate", f"{h}x{wd}.{fmt}", _encode(_image(h, wd), fmt), "ok")
    for name, data in _bombs().items():
        w.add("image", "bomb", name, data, "refused")
    _mode_cases(w, quick)
    _photo_cases(w)


def _mode_cases(w: _Writer, quick: bool) -> None:
    """Every Pillow mode, saved to every format that Pillow writes it to."""
    from PIL import Image

    rgb = Image.fromarray(_image(24, 20, 5))
    modes = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"]
    modes += ["LAB", "HSV", "I", "I;16", "I;16B", "I;16L", "F"]
    for mode in modes:
        try:
            if mode.startswith("I;16"):
                arr = (np.asarray(rgb.convert("L")).astype(np.uint16) * 257).astype(
                    ">u2" if mode == "I;16B" else "<u2"
                )
                im = Image.frombytes(mode, rgb.size, arr.tobytes())
            elif mode == "F":
                im = Image.fromarray(np.asarray(rgb.convert("L")).astype(np.float32) / 255.0)
            else:
                im = rgb.convert(mode)
        except (ValueError, OSError):
            continue
        for fmt in ("png", "tif") if quick else FORMATS:
            try:
                data = _encode(im, fmt)
            except (OSError, ValueError, KeyError):
                continue  # Pillow does not write this mode to this format
            safe = mode.replace(";", "_")
            w.add("image", "modes", f"{safe}.{fmt}", data, "ok")


def _photo_cases(w: _Writer) -> None:
    from PIL import Image, ImageCms

    img = Image.fromarray(_image(24, 32, 7))
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        w.add("image", "photo", f"orientation{o}.jpg", _encode(img, "jpg", exif=exif), "ok")
    exif = Image.Exif()
    exif[0x0112] = 99  # out of range: taken as 1
    w.add("image", "photo", "orientation99.jpg", _encode(img, "jpg", exif=exif), "ok")
    w.add("image", "photo", "garbage_exif.jpg", _encode(img, "jpg", exif=b"Exif\0\0garbage"), "ok")
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    w.add("image", "photo", "icc.png", _encode(img, "png", icc_profile=icc), "ok")
    w.add("image", "photo", "garbage_icc.jpg", _encode(img, "jpg", icc_profile=b"x" * 300), "ok")
    w.add("image", "photo", "cmyk.jpg", _encode(img.convert("CMYK"), "jpg"), "ok")
    w.add("image", "photo", "cmyk.tif", _encode(img.convert("CMYK"), "tif"), "ok")
    frames = [Image.fromarray(_image(16, 16, s)) for s in range(3)]
    for fmt in ("gif", "png", "webp", "tif"):
        data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:])
        w.add("image", "photo", f"animated.{fmt}", data, "refused")
    w.add(
        "image",
        "photo",
        "float.tif",
        _encode(Image.fromarray(np.float32(_image(8, 9)[..., 0]) / 255), "tif"),
        "ok",
    )
    deep = Image.fromarray(_image(8, 9)[..., 0].astype(np.uint16) * 257)
    w.add("image", "photo", "gray16.png", _encode(deep, "png"), "ok")


# --------------------------------------------------------------------------------------------
# Checkpoints


class _Evil:
    """Pickles to a call of ``os.system`` (never executed by a safe loader)."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.system, ("echo pwned > /tmp/lightsr_corpus_pwned",))


class _EvalEvil:
    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (eval, ("__import__('os').getpid()",))


def _safetensors(header: Any, data: bytes, length: int | None = None) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def _checkpoint_cases(w: _Writer, quick: bool) -> None:
    import torch

    from lightsr.models.registry import build_arch

    torch.manual_seed(0)
    model = build_arch("safmn", scale=2, dim=8, n_blocks=1)
    sd = {k: v.clone() for k, v in model.state_dict().items()}

    def pth(obj: Any) -> bytes:
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    def st(state: dict[str, torch.Tensor]) -> bytes:
        from safetensors.torch import save

        return save({k: v.contiguous() for k, v in state.items()})

    good_pth, good_st = pth({"params_ema": sd}), st(sd)
    w.add("checkpoint", "valid", "good.pth", good_pth, "ok")
    w.add("checkpoint", "valid", "good.safetensors", good_st, "ok")
    n_cut = 4 if quick else 10
    for name, data in (("pth", good_pth), ("safetensors", good_st)):
        for cut in sorted({int(x) for x in np.linspace(1, len(data) - 1, n_cut)}):
            w.add("checkpoint", "truncated", f"cut{cut}.{name}", data[:cut], "refused")
    rng = np.random.default_rng(7)
    for i in range(2 if quick else 6):
        w.add(
            "checkpoint",
            "random",
            f"random{i}.pth",
            rng.bytes(int(rng.integers(1, 5000))),
            "refused",
        )
    w.add("checkpoint", "random", "pk_random.pth", b"PK\x03\x04" + rng.bytes(3000), "refused")
    w.add("checkpoint", "random", "pickle_random.pth", b"\x80\x02" + rng.bytes(3000), "refused")
    w.add(
        "checkpoint",
        "random",
        "st_random.safetensors",
        struct.pack("<Q", 40) + b"{" + rng.bytes(300),
        "refused",
    )
    for i in range(2 if quick else 6):
        flipped = bytearray(good_st)
        pos = int(rng.integers(0, 8 + 200))  # the header
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        w.add("checkpoint", "bitflip", f"flip{i}_at{pos}.safetensors", bytes(flipped), "either")
    key = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
    for bad, value in (("nan", float("nan")), ("inf", float("inf"))):
        broken = {k: v.clone() for k, v in sd.items()}
        broken[key].view(-1)[0] = value
        w.add("checkpoint", "nonfinite", f"{bad}.pth", pth(broken), "refused")
        w.add("checkpoint", "nonfinite", f"{bad}.safetensors", st(broken), "refused")
    reshaped = dict(sd)
    reshaped[key] = torch.zeros(*sd[key].shape[:-1], sd[key].shape[-1] + 1)
    w.add("checkpoint", "shapes", "wrong_shape.pth", pth(reshaped), "refused")
    w.add("checkpoint", "shapes", "wrong_shape.safetensors", st(reshaped), "refused")
    w.add(
        "checkpoint",
        "keys",
        "unexpected_key.pth",
        pth({**sd, "extra.weight": torch.zeros(3)}),
        "refused",
    )
    w.add(
        "checkpoint",
        "keys",
        "missing_key.pth",
        pth({k: v for k, v in sd.items() if k != key}),
        "refused",
    )
    w.add("checkpoint", "keys", "no_tensors.pth", pth({"epoch": 3, "note": "hello"}), "refused")
    w.add("checkpoint", "keys", "tensor_not_dict.pth", pth(torch.zeros(3)), "refused")
    w.add("checkpoint", "keys", "nested_deep.pth", pth({"a": {"b": {"c": {"d": sd}}}}), "refused")
    w.add("checkpoint", "pickle", "os_system.pth", pth({"params": sd, "x": _Evil()}), "refused")
    w.add("checkpoint", "pickle", "eval.pth", pth({"params": sd, "x": _EvalEvil()}), "refused")
    w.add("checkpoint", "pickle", "whole_module.pth", pth(model), "refused")
    w.add(
        "checkpoint",
        "pickle",
        "plain_pickle_system.pth",
        pickle.dumps(_Evil(), protocol=2),
        "refused",
    )
    w.add(
        "checkpoint",
        "pickle",
        "plain_pickle_dict.pth",
        pickle.dumps({"a": 1}, protocol=4),
        "refused",
    )
    t = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    lies = {
        "offsets_past_end.safetensors": _safetensors(
            {"w": {**t, "data_offsets": [0, 10**9]}}, bytes(16)
        ),
        "overlapping.safetensors": _safetensors({"a": t, "b": t}, bytes(16)),
        "negative_offset.safetensors": _safetensors(
            {"w": {**t, "data_offsets": [-8, 8]}}, bytes(16)
        ),
        "unknown_dtype.safetensors": _safetensors({"w": {**t, "dtype": "F99"}}, bytes(16)),
        "shape_mismatch.safetensors": _safetensors({"w": {**t, "shape": [3, 3]}}, bytes(16)),
        "huge_shape.safetensors": _safetensors({"w": {**t, "shape": [2**40, 2**40]}}, bytes(16)),
        "not_json.safetensors": _safetensors(b"{this is not json}", bytes(16)),
        "json_list.safetensors": _safetensors([1, 2, 3], bytes(16)),
        "length_past_end.safetensors": _safetensors({"w": t}, bytes(16), length=10**7),
        "length_zero.safetensors": _safetensors(b"", bytes(16)),
        "metadata_not_str.safetensors": _safetensors(
            {"__metadata__": {"arch": 5}, "w": t}, bytes(16)
        ),
        "lying_lightsr_metadata.safetensors": _lying_metadata(sd),
    }
    for name, data in lies.items():
        w.add("checkpoint", "safetensors_header", name, data, "refused")


def _lying_metadata(sd: dict[str, Any]) -> bytes:
    from safetensors.torch import save

    meta = {"arch": "safmn", "config": '{"dim": 64, "n_blocks": 99}', "scale": "2"}
    return save({k: v.contiguous() for k, v in sd.items()}, metadata=meta)


# --------------------------------------------------------------------------------------------
# Recipes and command lines


def _recipe_cases(w: _Writer, root: Path, quick: bool) -> None:
    data = root / "recipe" / "data"
    data.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(_image(64, 64)).save(data / "a.png")
    runs = root / "recipe" / "runs"
    head = f"output_dir: {runs}\n"
    good_model = "model: {name: safmn, scale: 2, args: {dim: 8, n_blocks: 1}}\n"
    good_data = f"data: {{hr_dirs: [{data}], patch_size: 8, batch_size: 2, workers: 0}}\n"
    recipes: dict[str, str | bytes] = {
        "wrong_type_iters.yaml": head + good_model + good_data + "train: {iters: many}\n",
        "wrong_type_lr.yaml": head + good_model + good_data + "optim: {lr: [1, 2]}\n",
        "wrong_type_model.yaml": head + "model: safmn\n" + good_data,
        "unknown_top_key.yaml": head + good_model + good_data + "trian: {iters: 3}\n",
        "unknown_nested_key.yaml": head + good_model + good_data + "train: {itres: 3}\n",
        "unknown_model_arg.yaml": head
        + "model: {name: safmn, scale: 2, args: {dimm: 8}}\n"
        + good_data,
        "missing_data_dir.yaml": head
        + good_model
        + f"data: {{hr_dirs: [{root}/nowhere], patch_size: 8}}\n",
        "missing_val_dir.yaml": head
        + good_model
        + good_data
        + f"val: {{datasets: [{root}/noval]}}\n",
        "unset_env_var.yaml": head + good_model + "data: {hr_dirs: [${LIGHTSR_NO_SUCH_VAR}/x]}\n",
        "negative_iters.yaml": head + good_model + good_data + "train: {iters: -5}\n",
        "zero_patch.yaml": head + good_model + f"data: {{hr_dirs: [{data}], patch_size: 0}}\n",
        "bad_scale.yaml": head + "model: {name: safmn, scale: 7}\n" + good_data,
        "unknown_model.yaml": head + "model: {name: nosuchnet, scale: 2}\n" + good_data,
        "not_yaml.yaml": "model: {name: [unclosed\n",
        "empty.yaml": "",
        "top_level_list.yaml": "- a\n- b\n",
        "binary.yaml": b"\xff\xfe\x00\x80model: \xc3\x28" * 4,
        "nan_lr.yaml": head + good_model + good_data + "optim: {lr: .nan}\n",
    }
    if quick:
        recipes = dict(list(recipes.items())[::2])
    for name, text in recipes.items():
        if isinstance(text, bytes):
            w.add("recipe", "recipe", name, text, "refused")
            continue
        if text.startswith(head):  # a unique run name; two short iterations if it ever ran
            text = f"name: {Path(name).stem}\n" + text
            if "train:" not in text:
                text += "train: {iters: 2, threads: 1, tensorboard: false}\n"
        w.add("recipe", "recipe", name, text.encode("utf-8"), "refused")


def _cli_cases(w: _Writer, root: Path) -> None:
    from PIL import Image

    src = root / "cli" / "in.png"
    src.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_image(24, 24)).save(src)
    (root / "cli" / "a_file").write_bytes(b"x")
    (root / "cli" / "empty_dir").mkdir(exist_ok=True)
    inp = "{corpus}/cli/in.png"

    def cli(
        name: str, argv: list[str], expect: str, api: dict | None = None, fsize: int = 0
    ) -> None:
        w.cases.append(Case("cli", "flags", name, "cli/in.png", expect, argv, api, fsize))

    up = ["upscale", inp, "-q"]
    cli(
        "tile_equal_overlap",
        [*up, "-o", "{out}", "--tile", "8", "--tile-overlap", "8"],
        "ok",
        {"tile": 8, "tile_overlap": 8},
    )
    cli(
        "tile_below_overlap",
        [*up, "-o", "{out}", "--tile", "4", "--tile-overlap", "16"],
        "ok",
        {"tile": 4, "tile_overlap": 16},
    )
    cli("tile_zero", [*up, "-o", "{out}", "--tile", "0"], "refused", {"tile": 0})
    cli("tile_negative", [*up, "-o", "{out}", "--tile", "-3"], "refused", {"tile": -3})
    cli(
        "overlap_negative",
        [*up, "-o", "{out}", "--tile-overlap", "-1"],
        "refused",
        {"tile_overlap": -1},
    )
    cli("tile_not_int", [*up, "-o", "{out}", "--tile", "abc"], "refused")
    for v in ("0", "-2", "nan", "inf", "1e9"):
        api = {"outscale": float(v)}
        cli(f"outscale_{v}", [*up, "-o", "{out}", "--outscale", v], "refused", api)
    cli("outscale_fraction", [*up, "-o", "{out}", "--outscale", "0.5"], "ok", {"outscale": 0.5})
    cli("quality_0", [*up, "-o", "{out}/o.jpg", "--quality", "0"], "refused", {"quality": 0})
    cli("quality_500", [*up, "-o", "{out}/o.jpg", "--quality", "500"], "refused", {"quality": 500})
    cli("ext_gif", [*up, "-o", "{out}", "--ext", "gif"], "refused", {"ext": "gif"})
    cli("max_pixels_0", [*up, "-o", "{out}", "--max-pixels", "0"], "refused", {"max_pixels": 0})
    cli(
        "output_under_a_file",
        [*up, "-o", "{corpus}/cli/a_file/sub"],
        "refused",
        {"output": "{corpus}/cli/a_file/sub"},
    )
    cli("output_is_input", [*up, "-o", inp], "refused", {"output": inp})
    cli(
        "output_unwritable_proc",
        [*up, "-o", "/proc/lightsr_out"],
        "refused",
        {"output": "/proc/lightsr_out"},
    )
    cli("disk_full", [*up, "-o", "{out}"], "refused", fsize=4096)
    cli("missing_input", ["upscale", "{corpus}/cli/nope.png", "-o", "{out}", "-q"], "refused")
    cli("empty_folder_input", ["upscale", "{corpus}/cli/empty_dir", "-o", "{out}", "-q"], "refused")
    cli("missing_weights", [*up, "-o", "{out}", "--weights", "{corpus}/nope.pth"], "refused")
    cli("unknown_model", [*up, "-o", "{out}", "--model", "nosuchnet"], "refused")
    cli("weights_is_image", [*up, "-o", "{out}", "--weights", inp], "refused")
    cli("bad_scale", [*up, "-o", "{out}", "--scale", "5"], "refused")
    cli("unknown_flag", [*up, "--frobnicate"], "refused")
    cli("train_missing_recipe", ["train", "{corpus}/nope.yaml", "-q"], "refused")
    cli("train_resume_not_a_run", ["train", "--resume", "{corpus}/cli", "-q"], "refused")
    cli(
        "export_not_a_run",
        ["export-weights", "{corpus}/cli", "-o", "{out}/w.safetensors"],
        "refused",
    )


def make_corpus(root: str | os.PathLike[str], *, quick: bool = False) -> list[Case]:
    """Write the corpus under ``root`` (created) and return its cases (also in manifest.json)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    w = _Writer(root)
    _image_cases(w, quick)
    _checkpoint_cases(w, quick)
    _recipe_cases(w, root, quick)
    _cli_cases(w, root)
    (root / "manifest.json").write_text(json.dumps([asdict(c) for c in w.cases], indent=1))
    return w.cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", help="folder to write the corpus to")
    ap.add_argument("--quick", action="store_true", help="a subset: every group, fewer cases")
    args = ap.parse_args()
    cases = make_corpus(args.root, quick=args.quick)
    counts: dict[str, int] = {}
    for c in cases:
        counts[f"{c.category}/{c.group}"] = counts.get(f"{c.category}/{c.group}", 0) + 1
    for k, n in sorted(counts.items()):
        print(f"{k:32s} {n:4d}")
    print(f"{'total':32s} {len(cases):4d}", file=sys.stdout)


if __name__ == "__main__":
    main()
