"""Checkpoints: read safely, recognise the architecture from tensor shapes, save safetensors.

Reading never executes pickled code: ``.pth``/``.pt``/``.ckpt`` files go through
``torch.load(weights_only=True, map_location="cpu")`` (so GPU-saved files load on a CPU-only
machine), ``.safetensors`` through the safetensors library. Accepted layouts: BasicSR-style dicts
(``params_ema`` is preferred over ``params``: the papers release and evaluate the EMA weights),
``state_dict``/``model`` wrappers, bare state dicts, and keys prefixed by ``module.``
(DataParallel/DDP) or ``_orig_mod.`` (torch.compile).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .archs import build_arch
from .errors import CheckpointError

__all__ = [
    "Detected",
    "detect_arch",
    "load_checkpoint",
    "read_state_dict",
    "save_safetensors",
]

StateDict = dict[str, torch.Tensor]

#: Wrapper keys, in order of preference (EMA first).
_WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_ema", "model", "net", "generator")
_STRIP_PREFIXES = ("module.", "_orig_mod.")


@dataclass(frozen=True)
class Detected:
    """What a state dict's tensor shapes say about the network.

    Attributes:
        arch: architecture name (a key of :data:`lightsr.archs.ARCHS`).
        config: constructor arguments other than the scale.
        scale: upscaling factor.
    """

    arch: str
    config: dict[str, Any]
    scale: int


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


def read_state_dict(path: str | os.PathLike[str]) -> tuple[StateDict, dict[str, str]]:
    """Read a checkpoint's tensors (on the CPU) and its metadata, never executing code.

    Returns:
        ``(state_dict, metadata)``; metadata is the safetensors header metadata (empty for
        pickle-based files).

    Raises:
        CheckpointError: missing, unreadable, truncated or unsafe files, with the path in the
            message.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    if path.suffix.lower() == ".safetensors":
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
        obj = torch.load(path, map_location="cpu", weights_only=True)
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


# --------------------------------------------------------------------------------------------
# Detection: one function per architecture; each returns None when the tensors are not its own.


def _detect_safmn(sd: StateDict) -> Detected | None:
    needed = (
        "to_feat.weight",
        "to_img.0.weight",
        "feats.0.norm1.weight",
        "feats.0.safm.aggr.weight",
    )
    if not all(k in sd for k in needed):
        return None
    dim = sd["to_feat.weight"].shape[0]
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"feats\.(\d+)\.", k))}
    hidden = sd["feats.0.ccm.ccm.0.weight"].shape[0]
    out_ch = sd["to_img.0.weight"].shape[0]
    scale = math.isqrt(out_ch // 3)
    if 3 * scale * scale != out_ch:
        return None
    return Detected(
        "safmn",
        {"dim": dim, "n_blocks": len(blocks), "ffn_scale": hidden / dim},
        scale,
    )


def _detect_swin_family(sd: StateDict) -> Detected | None:
    """SwinIR (official names) and UPS: same skeleton, told apart by their attention tensors."""
    if not all(
        k in sd for k in ("conv_first.weight", "conv_after_body.weight", "upsample.0.weight")
    ):
        return None
    prefix = "layers.0.residual_group.blocks.0."
    dim = sd["conv_first.weight"].shape[0]
    groups = {int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k))}
    depths = [
        len(
            {
                int(m.group(1))
                for k in sd
                if (m := re.match(rf"layers\.{g}\.residual_group\.blocks\.(\d+)\.", k))
            }
        )
        for g in sorted(groups)
    ]
    table = sd[prefix + "attn.relative_position_bias_table"]
    ws = (math.isqrt(table.shape[0]) + 1) // 2
    out_ch = sd["upsample.0.weight"].shape[0]
    scale = math.isqrt(out_ch // 3)
    config: dict[str, Any] = {
        "embed_dim": dim,
        "depths": depths,
        "num_heads": table.shape[1],
        "window_size": ws,
        "mlp_ratio": sd[prefix + "mlp.fc1.weight"].shape[0] / dim,
    }
    masks = [v for k, v in sd.items() if k.endswith(".attn_mask")]
    if masks:  # sized for the training patch: (img_size / ws)^2 windows
        config["img_size"] = math.isqrt(masks[0].shape[0]) * ws
    if prefix + "attn.qkv.weight" in sd:
        return Detected("swinir", config, scale)
    shared = "shared_proj" in sd
    proj = sd["shared_proj"] if shared else sd.get(prefix + "attn.qk")
    if proj is None:
        return None
    config.update(
        proj_dim=proj.shape[1],
        shared_projection=shared,
        v_proj=prefix + "attn.v.weight" in sd,
        # Shapes cannot tell cosine-relu from dot-relu/dot-softmax; lightsr's own files carry the
        # exact config as metadata, which takes precedence (see load_checkpoint).
        similarity="cosine-softmax" if prefix + "attn.logit_scale" in sd else "cosine-relu",
    )
    return Detected("ups", config, scale)


_DETECTORS: list[Callable[[StateDict], Detected | None]] = [_detect_safmn, _detect_swin_family]


def detect_arch(state_dict: Mapping[str, torch.Tensor]) -> Detected | None:
    """Recognise the architecture, its configuration and the scale from tensor shapes alone.

    Returns None when no known architecture matches.
    """
    sd = dict(state_dict)
    for detector in _DETECTORS:
        try:
            found = detector(sd)
        except (KeyError, IndexError, ZeroDivisionError):
            found = None
        if found is not None:
            return found
    return None


def load_checkpoint(path: str | os.PathLike[str]) -> tuple[nn.Module, Detected]:
    """Read, recognise and load a checkpoint strictly into a freshly built float32 model.

    Raises:
        CheckpointError: unreadable file, unknown architecture, or tensors that do not fit the
            detected architecture exactly.
    """
    path = Path(path)
    sd, metadata = read_state_dict(path)
    found = detect_arch(sd)
    if "arch" in metadata and "config" in metadata:
        # lightsr's own files: the stored config is complete (shapes cannot show every option)
        found = _from_metadata(metadata, path)
    if found is None:
        sample = ", ".join(list(sd)[:4])
        raise CheckpointError(
            f"{path}: unknown architecture (first keys: {sample}); expected a checkpoint of one "
            "of lightsr's models (see `lightsr models`)"
        )
    model = build_arch(found.arch, scale=found.scale, **found.config)
    try:
        model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{path}: tensors do not match the detected {found.arch} x{found.scale} "
            f"({_summarise_mismatch(model, sd)}); the file may be a modified variant"
        ) from exc
    model.eval()
    return model, found


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

    When ``arch``/``config``/``scale`` are omitted they are detected from the tensors. The write
    is atomic: a temporary file in the same folder, then a rename.
    """
    from safetensors.torch import save_file

    sd = model_or_state.state_dict() if isinstance(model_or_state, nn.Module) else model_or_state
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sd.items()}
    if arch is None or config is None or scale is None:
        found = detect_arch(tensors)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
