"""Checkpoints: read safely, load into the detected architecture, save safetensors.

Recognising the architecture is :func:`lightsr.models.detect.detect_arch` (re-exported here):
each architecture's detector lives in its own file under :mod:`lightsr.models.archs`.

Reading never executes pickled code: ``.pth``/``.pt``/``.ckpt`` files go through
``torch.load(weights_only=True, map_location="cpu")`` (so GPU-saved files load on a CPU-only
machine), ``.safetensors`` through the safetensors library. Accepted layouts: BasicSR-style dicts
(``params_ema`` is preferred over ``params``: the papers release and evaluate the EMA weights),
``state_dict``/``model`` wrappers, bare state dicts, and keys prefixed by ``module.``
(DataParallel/DDP) or ``_orig_mod.`` (torch.compile).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightsr.errors import CheckpointError
from lightsr.files import atomic_path
from lightsr.models.base import Detected
from lightsr.models.detect import detect_arch
from lightsr.models.registry import build_arch

__all__ = [
    "Detected",
    "detect_arch",
    "load_checkpoint",
    "read_state_dict",
    "save_safetensors",
    "sniff_format",
]

StateDict = dict[str, torch.Tensor]

#: Wrapper keys, in order of preference (EMA first).
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_ema", "model", "net", "generator")
_STRIP_PREFIXES = ("module.", "_orig_mod.")
#: The safetensors format caps its JSON header at 100 MB.
_MAX_HEADER = 100_000_000

#: Buffers that are functions of the architecture's config alone (SwinIR/UPS window attention:
#: the shifted-window mask for the training size and the relative-position index). They are
#: not learned, so :func:`save_safetensors` leaves them out (eight 64x64x64 masks would make a
#: 1.3 MB UPS-S file 9.7 MB) and :func:`load_checkpoint` takes them from the freshly built
#: model when a file lacks them; files that carry them (official SwinIR) still load strictly.
DERIVED_BUFFERS = (".attn_mask", ".relative_position_index")


def _unwrap(obj: Any, path: Path) -> StateDict:
    """Find the state dict inside a loaded checkpoint object."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(
            f"{path}: expected a dict of tensors, found {type(obj).__name__}; "
            "save the model's state_dict(), not the model object"
        )
    for _ in range(3):  # nested wrappers such as {"state_dict": {"params_ema": ...}}
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        for key in _WRAPPER_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
        else:
            break
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        keys = ", ".join(map(str, list(obj)[:6]))
        raise CheckpointError(
            f"{path}: no tensors found (top-level keys: {keys}); expected a state dict or a "
            f"dict with one of {', '.join(_WRAPPER_KEYS)}"
        )
    out: StateDict = {}
    for key, value in tensors.items():
        for prefix in _STRIP_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    return out


def sniff_format(path: str | os.PathLike[str]) -> str | None:
    """What a file's first bytes say it is: ``"zip"`` (``torch.save``'s format),
    ``"pickle"`` (protocol 2 or later: legacy ``torch.save`` files, plain pickles),
    ``"safetensors"`` (an 8-byte little-endian header length, then ``{``), or None.

    A truncated file keeps its first bytes, so it is still recognised (and reported as
    truncated by the reader)."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    header = int.from_bytes(head[:8], "little")
    if len(head) == 9 and head[8:9] == b"{" and 0 < header < _MAX_HEADER:
        # before the pickle test: a header length whose low byte is 0x80 starts with b"\x80"
        return "safetensors"
    if head.startswith(b"\x80"):
        return "pickle"
    return None


def read_state_dict(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, str]]:
    """Read a checkpoint's tensors (on the CPU) and its metadata, never executing code.

    The format is taken from the file's first bytes (:func:`sniff_format`), not its suffix.

    Returns:
        ``(state_dict, metadata)``; metadata is the safetensors header metadata (empty for
        pickle-based files).

    Raises:
        CheckpointError: missing, unreadable, truncated or unsafe files, and files that are not
            checkpoints at all, with the path in the message.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    kind = sniff_format(path)
    if kind is None:
        raise CheckpointError(
            f"{path}: not a checkpoint (neither a PyTorch zip/pickle nor safetensors)"
        )
    if kind == "safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                metadata = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(
                f"{path}: not a readable .safetensors file ({_first_line(exc)}); "
                "it may be truncated or corrupt"
            ) from exc
        return _unwrap(tensors, path), metadata
    try:
        with open(path, "rb") as f:  # a file object: torch.load must not guess from the suffix
            obj = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for bad files; all mean "unreadable"
        msg = _first_line(exc)
        full = str(exc).lower()
        if "weights only" in full or "weights_only" in full or "unsupported global" in full:
            raise CheckpointError(
                f"{path}: the file contains pickled Python objects other than tensors; "
                "lightsr refuses to execute them (weights_only=True). Re-save only the "
                "state_dict, or convert it to .safetensors"
            ) from exc
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint ({msg}); it may be truncated or corrupt"
        ) from exc
    return _unwrap(obj, path), {}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def load_checkpoint(
    path: str | os.PathLike[str], *, scale: int | None = None
) -> tuple[nn.Module, Detected]:
    """Read, recognise and load a checkpoint strictly into a freshly built float32 model.

    Args:
        path: the checkpoint file.
        scale: the wanted scale, used when the tensors fit several (``Detected.scales``): the
            multi-scale CARN-M file runs its x2, x3 or x4 branch; a PAN x2/x3 or FSRCNN file is
            built with that stride. Without it such a file gets the scale its name states
            (``PANx3_DF2K.pth``, ``fsrcnn_x4.pth``, ``..._3x.pth``) or else the detector's
            default (x4 for CARN-M, x2 for PAN and FSRCNN). For other files ``scale`` is not
            used: the caller compares it with the returned ``Detected.scale``.

    Raises:
        CheckpointError: unreadable file, NaN/Inf weights, unknown architecture, or tensors
            that do not fit the detected architecture exactly.
    """
    path = Path(path)
    sd, metadata = read_state_dict(path)
    broken = [k for k, v in sd.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if broken:
        raise CheckpointError(
            f"{path}: {len(broken)} tensor(s) hold NaN or Inf values (e.g. {broken[0]}); the "
            "weights are broken (a diverged run or a damaged file): use another checkpoint"
        )
    try:
        found = detect_arch(sd)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    if "arch" in metadata and "config" in metadata:
        # lightsr's own files: the stored config is complete (shapes cannot show every option)
        shapes = found
        found = _from_metadata(metadata, path)
        if shapes is not None and shapes.arch == found.arch:
            found = replace(found, scales=shapes.scales)
    if found is not None and found.scales:
        found = replace(found, scale=_choose_scale(found, path, scale))
    if found is None:
        sample = ", ".join(list(sd)[:4])
        raise CheckpointError(
            f"{path}: unknown architecture (first keys: {sample}); expected a checkpoint of one "
            "of lightsr's models (see `lightsr models`)"
        )
    model = build_arch(found.arch, scale=found.scale, **found.config)
    derived = {
        k: v for k, v in model.state_dict().items() if k.endswith(DERIVED_BUFFERS) and k not in sd
    }
    try:
        model.load_state_dict({**derived, **{k: v.float() for k, v in sd.items()}}, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: tensors do not match the detected {found.arch} x{found.scale} "
            f"({_summarise_mismatch(model, sd)}); the file may be a modified variant"
        ) from exc
    model.eval()
    return model, found


def _choose_scale(found: Detected, path: Path, wanted: int | None) -> int:
    """The scale to build a checkpoint whose tensors fit several (see :func:`load_checkpoint`)."""
    if wanted is not None:
        return wanted if wanted in found.scales else found.scale
    stem = path.stem.lower()
    named = {int(d) for d in re.findall(r"x(\d)(?!\d)", stem) + re.findall(r"(?<!\d)(\d)x", stem)}
    named &= set(found.scales)
    return named.pop() if len(named) == 1 else found.scale


def _from_metadata(metadata: dict[str, str], path: Path) -> Detected:
    try:
        return Detected(
            metadata["arch"], json.loads(metadata.get("config", "{}")), int(metadata["scale"])
        )
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f"{path}: malformed lightsr metadata ({exc})") from exc


def _summarise_mismatch(model: nn.Module, sd: StateDict) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    extra = [k for k in sd if k not in own]
    shape = [k for k in own if k in sd and own[k].shape != sd[k].shape]
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} e.g. {missing[0]}")
    if extra:
        parts.append(f"unexpected {len(extra)} e.g. {extra[0]}")
    if shape:
        k = shape[0]
        parts.append(f"shape of {k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)}")
    return "; ".join(parts) or "load_state_dict failed"


def save_safetensors(
    model_or_state: nn.Module | Mapping[str, torch.Tensor],
    path: str | os.PathLike[str],
    *,
    arch: str | None = None,
    config: Mapping[str, Any] | None = None,
    scale: int | None = None,
    extra: Mapping[str, str] | None = None,
) -> Path:
    """Write weights as ``.safetensors`` with metadata (``arch``, ``config`` as JSON, ``scale``).

    Buffers derived from the config (:data:`DERIVED_BUFFERS`) are not written.

    When ``arch``/``config``/``scale`` are omitted they are detected from the tensors. The write
    is atomic: a temporary file in the same folder, then a rename.
    """
    from safetensors.torch import save_file

    sd = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    full = {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}
    tensors = {k: v for k, v in full.items() if not k.endswith(DERIVED_BUFFERS)}
    if arch is None or config is None or scale is None:
        found = detect_arch(full)  # the masks' size tells a SwinIR file's img_size
        if found is None:
            raise CheckpointError(
                f"{path}: cannot detect the architecture; pass arch, config and scale"
            )
        arch = arch or found.arch
        config = found.config if config is None else config
        scale = found.scale if scale is None else scale
    metadata = {
        "format": "pt",
        "arch": arch,
        "config": json.dumps(dict(config), sort_keys=True),
        "scale": str(scale),
        "producer": "lightsr",
        **dict(extra or {}),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return path
