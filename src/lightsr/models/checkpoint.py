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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightsr.errors import CheckpointError
from lightsr.inference.io import new_file_mode
from lightsr.models.registry import build_arch

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

#: Buffers that are functions of the architecture's config alone (SwinIR/UPS window attention:
#: the shifted-window mask for the training size and the relative-position index). They are
#: not learned, so :func:`save_safetensors` leaves them out (eight 64x64x64 masks would make a
#: 1.3 MB UPS-S file 9.7 MB) and :func:`load_checkpoint` takes them from the freshly built
#: model when a file lacks them; files that carry them (official SwinIR) still load strictly.
DERIVED_BUFFERS = (".attn_mask", ".relative_position_index")


@dataclass(frozen=True)
class Detected:
    """What a state dict's tensor shapes say about the network.

    Attributes:
        arch: architecture name (a key of :data:`lightsr.models.registry.ARCHS`).
        config: constructor arguments other than the scale.
        scale: upscaling factor.
        scales: every scale the same tensors run at, when there are several: a multi-scale
            network (CARN-M's x2/x3/x4 upsamplers), or one whose weights do not depend on the
            scale (PAN x2/x3, FSRCNN). Empty when only ``scale`` fits. ``load_checkpoint``
            picks among them (see there).
    """

    arch: str
    config: dict[str, Any]
    scale: int
    scales: tuple[int, ...] = ()


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


def _count(sd: StateDict, pattern: str) -> int:
    """Number of distinct integers captured by ``pattern`` (matched at the start of keys)."""
    return len({int(m.group(1)) for k in sd if (m := re.match(pattern, k))})


def _pixelshuffle_scale(out_ch: int, ch: int = 3) -> int | None:
    """The factor r of a conv producing ``ch * r * r`` channels for PixelShuffle(r), or None."""
    r = math.isqrt(out_ch // ch)
    return r if ch * r * r == out_ch else None


def _detect_imdn(sd: StateDict) -> Detected | None:
    if not all(k in sd for k in ("fea_conv.weight", "IMDB1.c1.weight", "upsampler.0.weight")):
        return None
    scale = _pixelshuffle_scale(sd["upsampler.0.weight"].shape[0])
    if scale is None:
        return None
    config = {"nf": sd["fea_conv.weight"].shape[0], "num_modules": _count(sd, r"IMDB(\d+)\.")}
    return Detected("imdn", config, scale)


def _detect_rfdn(sd: StateDict) -> Detected | None:
    if not all(k in sd for k in ("fea_conv.weight", "B1.c1_d.weight", "B1.esa.conv_max.weight")):
        return None
    scale = _pixelshuffle_scale(sd["upsampler.0.weight"].shape[0])
    if scale is None:
        return None
    config = {"nf": sd["fea_conv.weight"].shape[0], "num_modules": _count(sd, r"B(\d+)\.")}
    return Detected("rfdn", config, scale)


def _detect_rlfn(sd: StateDict) -> Detected | None:
    if not all(
        k in sd for k in ("conv_1.weight", "block_1.c1_r.weight", "block_1.esa.conv1.weight")
    ):
        return None
    scale = _pixelshuffle_scale(sd["upsampler.0.weight"].shape[0])
    if scale is None:
        return None
    config = {
        "feature_channels": sd["conv_1.weight"].shape[0],
        "mid_channels": sd["block_1.c1_r.weight"].shape[0],
        "esa_channels": sd["block_1.esa.conv1.weight"].shape[0],
        "n_blocks": _count(sd, r"block_(\d+)\."),
    }
    return Detected("rlfn", config, scale)


def _detect_pan(sd: StateDict) -> Detected | None:
    if not all(
        k in sd for k in ("conv_first.weight", "SCPA_trunk.0.conv1_a.weight", "att1.conv.weight")
    ):
        return None
    config = {
        "nf": sd["conv_first.weight"].shape[0],
        "unf": sd["upconv1.weight"].shape[0],
        "nb": _count(sd, r"SCPA_trunk\.(\d+)\."),
    }
    if "HRconv2.weight" in sd:  # two x2 reconstruction stages
        return Detected("pan", config, 4)
    return Detected("pan", config, 2, scales=(2, 3))  # x2 and x3 have the same tensors


def _detect_carn_m(sd: StateDict) -> Detected | None:
    block = "b1.b1.body."
    if not all(k in sd for k in ("sub_mean.shifter.weight", "entry.weight", block + "4.weight")):
        return None
    n_feats = sd["entry.weight"].shape[0]
    config: dict[str, Any] = {
        "n_feats": n_feats,
        "group": n_feats // sd[block + "0.weight"].shape[1],
    }
    if "upsample.up2.body.0.weight" in sd:  # the public multi-scale model: x4 unless asked
        return Detected("carn_m", {**config, "multi_scale": True}, 4, scales=(2, 3, 4))
    first = sd["upsample.body.0.weight"].shape[0] // n_feats
    scale = 4 if "upsample.body.3.weight" in sd else {4: 2, 9: 3}.get(first)
    if scale is None:
        return None
    return Detected("carn_m", {**config, "multi_scale": False}, scale)


def _detect_fsrcnn(sd: StateDict) -> Detected | None:
    if not all(k in sd for k in ("first_part.0.weight", "mid_part.0.weight", "last_part.weight")):
        return None
    config = {
        "d": sd["first_part.0.weight"].shape[0],
        "s": sd["mid_part.0.weight"].shape[0],
        "m": _count(sd, r"mid_part\.(\d+)\.bias") - 2,
    }
    # The transposed conv's stride is the scale: the tensors fit x2, x3 and x4 alike.
    return Detected("fsrcnn", config, 2, scales=(2, 3, 4))


def _detect_espcn(sd: StateDict) -> Detected | None:
    if not all(
        k in sd for k in ("first_part.0.weight", "first_part.2.weight", "last_part.0.weight")
    ):
        return None
    scale = _pixelshuffle_scale(sd["last_part.0.weight"].shape[0], ch=1)
    if scale is None:
        return None
    config = {"n1": sd["first_part.0.weight"].shape[0], "n2": sd["first_part.2.weight"].shape[0]}
    return Detected("espcn", config, scale)


def _detect_edsr(sd: StateDict) -> Detected | None:
    if not all(k in sd for k in ("sub_mean.weight", "head.0.weight", "body.0.body.0.weight")):
        return None
    n_feats = sd["head.0.weight"].shape[0]
    n_resblocks = _count(sd, r"body\.(\d+)\.body\.")
    steps = _count(sd, r"tail\.0\.(\d+)\.weight")
    first = sd["tail.0.0.weight"].shape[0] // n_feats
    scale = 2**steps if first == 4 else 3 if (first, steps) == (9, 1) else None
    if scale is None:
        return None
    config = {
        "n_resblocks": n_resblocks,
        "n_feats": n_feats,
        "res_scale": 0.1 if (n_resblocks, n_feats) == (32, 256) else 1.0,  # the paper's EDSR
        # the mean shift's bias is -img_range * mean: 255-range models have |bias| > 1
        "img_range": 255.0 if float(sd["sub_mean.bias"].abs().max()) > 1.0 else 1.0,
    }
    return Detected("edsr", config, scale)


def _detect_safmn_ntire2023(sd: StateDict) -> Detected | None:
    if not all(k in sd for k in ("norm.gamma", "to_feat.weight", "feats.0.safm.aggr.weight")):
        return None
    scale = _pixelshuffle_scale(sd["to_img.0.weight"].shape[0])
    if scale is None:
        return None
    dim = sd["to_feat.weight"].shape[0]
    config = {
        "dim": dim,
        "n_blocks": _count(sd, r"feats\.(\d+)\."),
        "ffn_scale": sd["feats.0.ccm.ccm.0.weight"].shape[0] / dim,
    }
    return Detected("safmn_ntire2023", config, scale)


def _detect_safmnpp(sd: StateDict) -> Detected | None:
    """SAFMN++ (``conv2.conv1``) and light SAFMN++ (``conv2.conv.0``)."""
    if "feats.0.conv1.proj.weight" not in sd or "to_feat.weight" not in sd:
        return None
    scale = _pixelshuffle_scale(sd["to_img.0.weight"].shape[0])
    if scale is None:
        return None
    dim = sd["to_feat.weight"].shape[0]
    chunk = sd["feats.0.conv1.dwconv.weight"].shape[0]
    light = "feats.0.conv2.conv.0.weight" in sd
    hidden = sd["feats.0.conv2.conv.0.weight" if light else "feats.0.conv2.conv1.weight"].shape[0]
    if chunk != (dim // 2 if light else dim // 3):
        return None
    config = {"dim": dim, "n_blocks": _count(sd, r"feats\.(\d+)\."), "ffn_scale": hidden / dim}
    return Detected("light_safmnpp" if light else "safmnpp", config, scale)


_DETECTORS: list[Callable[[StateDict], Detected | None]] = [
    _detect_safmn,
    _detect_swin_family,
    _detect_imdn,
    _detect_rfdn,
    _detect_rlfn,
    _detect_pan,
    _detect_carn_m,
    _detect_fsrcnn,
    _detect_espcn,
    _detect_edsr,
    _detect_safmn_ntire2023,
    _detect_safmnpp,
]


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
        CheckpointError: unreadable file, unknown architecture, or tensors that do not fit the
            detected architecture exactly.
    """
    path = Path(path)
    sd, metadata = read_state_dict(path)
    found = detect_arch(sd)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
