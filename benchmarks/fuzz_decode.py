"""Coverage-guided fuzzing (atheris, libFuzzer) of lightsr's image reading and checkpoint parsing.

Targets:

- ``image``: bytes -> a file -> :func:`lightsr.inference.io.read_image` (header probe,
  animation and size checks, Pillow or OpenCV decoding, orientation) and
  :func:`~lightsr.inference.io.read_metadata`. The only accepted exception is ``ImageError``.
- ``checkpoint``: bytes -> a file -> :func:`lightsr.models.checkpoint.load_checkpoint`
  (format sniffing, ``torch.load(weights_only=True)`` or safetensors, unwrapping, NaN check,
  detection, strict loading). The only accepted exception is ``CheckpointError``.

Coverage comes from lightsr, Pillow's Python plugins, safetensors and torch's weights-only
unpickler (instrumented at import); the native decoders (OpenCV, libpng...) run uninstrumented.
Seeds are small valid files of every format (made here). Anything else that escapes, a hang
beyond ``-timeout`` or a crash is a finding: libFuzzer stops and writes the input as
``crash-*``/``timeout-*`` into ``--artifacts``.

    python benchmarks/fuzz_decode.py image --seconds 300          # prints executions, findings
    python benchmarks/fuzz_decode.py checkpoint --seconds 300 --json
    python benchmarks/fuzz_decode.py image --run crash-1234        # replay one input
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("OPENCV_LOG_LEVEL", "FATAL")

_SUFFIXES = (".png", ".jpg", ".tif", ".webp", ".gif", ".bmp", ".pth", ".safetensors")


def _seeds(target: str, folder: Path) -> None:
    """Small valid inputs for the fuzzer to start from."""
    folder.mkdir(parents=True, exist_ok=True)
    from make_corpus import _encode, _image

    if target == "image":
        from PIL import Image

        img = _image(12, 10)
        for i, fmt in enumerate(("png", "jpg", "tif", "webp", "gif", "bmp")):
            (folder / f"seed{i}").write_bytes(bytes([i]) + _encode(img, fmt))
        exif = Image.Exif()
        exif[0x0112] = 6
        (folder / "seed_exif").write_bytes(b"\x01" + _encode(img, "jpg", exif=exif))
        (folder / "seed_cmyk").write_bytes(
            b"\x02" + _encode(Image.fromarray(img).convert("CMYK"), "tif")
        )
        return
    import torch
    from safetensors.torch import save

    from lightsr.models.registry import build_arch

    torch.manual_seed(0)
    sd = build_arch("safmn", scale=2, dim=8, n_blocks=1).state_dict()
    buf = io.BytesIO()
    torch.save({"params_ema": sd}, buf)
    (folder / "seed_pth").write_bytes(buf.getvalue())
    (folder / "seed_st").write_bytes(save({k: v.contiguous() for k, v in sd.items()}))


def _harness(target: str) -> None:
    """Set up atheris on one target and run libFuzzer with the remaining ``sys.argv``."""
    import atheris
    import numpy  # noqa: F401 - imported (uninstrumented) before the context below
    import torch
    import torch._weights_only_unpickler as unpickler

    torch.set_num_threads(1)
    # "include" matches packages by prefix: torch is imported first, so only the weights-only
    # unpickler's loop is instrumented, not the whole of torch
    unpickler.Unpickler.load = atheris.instrument_func(unpickler.Unpickler.load)
    with atheris.instrument_imports(include=["lightsr", "PIL", "safetensors"]):
        import PIL.Image  # noqa: F401

        from lightsr.errors import CheckpointError, ImageError
        from lightsr.inference.io import read_image, read_metadata
        from lightsr.models.checkpoint import load_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="lightsr_fuzz_"))

    def one_image(data: bytes) -> None:
        if not data:
            return
        path = tmp / f"in{_SUFFIXES[data[0] % 6]}"  # the first byte picks the name's suffix
        path.write_bytes(data[1:])
        try:
            read_image(path, max_pixels=4_000_000)
        except ImageError:
            pass
        read_metadata(path)  # never raises

    def one_checkpoint(data: bytes) -> None:
        path = tmp / "in.pth"
        path.write_bytes(data)
        try:
            load_checkpoint(path)
        except CheckpointError:
            pass

    atheris.Setup(sys.argv, one_image if target == "image" else one_checkpoint)
    atheris.Fuzz()


def fuzz(target: str, seconds: float, artifacts: Path) -> dict[str, object]:
    """Run one target for ``seconds`` in a subprocess; returns executions and findings."""
    artifacts.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lightsr_fuzz_corpus_") as work:
        corpus = Path(work) / "corpus"
        _seeds(target, corpus)
        before = set(artifacts.iterdir())
        t0 = time.perf_counter()
        cmd = [sys.executable, __file__, target, "--libfuzzer"]
        cmd += [f"-max_total_time={int(seconds)}", "-timeout=20", "-rss_limit_mb=4096"]
        cmd += [f"-artifact_prefix={artifacts}/", "-print_final_stats=1", str(corpus)]
        p = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        elapsed = time.perf_counter() - t0
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", p.stderr)
    done = re.findall(r"Done (\d+) runs in (\d+) second", p.stderr)
    executions = int(runs[-1]) if runs else int(done[-1][0]) if done else 0
    found = sorted(str(f) for f in set(artifacts.iterdir()) - before)
    detail = ""
    if p.returncode != 0 and not found:
        detail = p.stderr.strip()[-600:]
    return {
        "engine": "atheris (libFuzzer)",
        "target": target,
        "executions": executions,
        "seconds": round(elapsed, 1),
        "findings": len(found) + (1 if detail else 0),
        "artifacts": found,
        "detail": detail,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("target", choices=("image", "checkpoint"))
    ap.add_argument("--seconds", type=float, default=60.0, help="fuzzing time (default 60)")
    ap.add_argument("--artifacts", default="fuzz-artifacts", help="where findings are written")
    ap.add_argument("--json", action="store_true", help="print one JSON line")
    ap.add_argument("--run", metavar="FILE", help="replay one input (a finding) and exit")
    ap.add_argument("--libfuzzer", action="store_true", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.libfuzzer:
        sys.argv = [sys.argv[0], *rest]
        _harness(args.target)
        return
    if args.run:
        sys.argv = [sys.argv[0], args.run]
        _harness(args.target)
        return
    result = fuzz(args.target, args.seconds, Path(args.artifacts).resolve())
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['target']}: {result['executions']:,} executions in {result['seconds']} s, "
            f"{result['findings']} findings {result['artifacts'] or ''}{result['detail']}"
        )
    sys.exit(1 if result["findings"] else 0)


if __name__ == "__main__":
    main()
