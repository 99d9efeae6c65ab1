"""From "a model name or a checkpoint path" to a loaded network: the one resolver.

``lightsr upscale``, ``eval``, ``bench`` and ``export`` (and :func:`lightsr.load_model`) all turn
what the user typed into a model here, so a name, a scale or a file means the same everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightsr.errors import CheckpointError, LightSRError
from lightsr.models.catalog import bundled_models, bundled_weights_path, get_spec
from lightsr.models.checkpoint import load_checkpoint
from lightsr.models.registry import build_arch

__all__ = [
    "CHECKPOINT_SUFFIXES",
    "DEFAULT_MODEL",
    "DEFAULT_SCALE",
    "ResolvedModel",
    "bundled_models",
    "bundled_weights_path",
    "is_checkpoint_path",
    "resolve_model",
]

#: File suffixes that always mean "a checkpoint file", even when the file does not exist (so
#: a typo gives "file not found" rather than "unknown model name").
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors", ".bin")
#: The model used when none is named, and its default scale.
DEFAULT_MODEL = "safmn"
DEFAULT_SCALE = 4


@dataclass(frozen=True)
class ResolvedModel:
    """A loaded network and what is known about it.

    Attributes:
        model: the network (float32, CPU, eval mode).
        name: the model name, or the checkpoint's file name.
        arch: architecture name; ``config``: its constructor arguments; ``scale``: its factor.
        weights: the checkpoint path, ``"bundled"`` or ``"random"``.
        paper: the paper's figures for a named model (a ``ModelSpec``'s ``paper``).
    """

    model: nn.Module
    name: str
    arch: str
    config: dict[str, Any]
    scale: int
    weights: str
    paper: dict[str, str] = field(default_factory=dict)


def is_checkpoint_path(name_or_path: str | os.PathLike[str]) -> bool:
    """True when the text names a checkpoint file rather than a registry name."""
    path = Path(os.fspath(name_or_path))
    return path.suffix.lower() in CHECKPOINT_SUFFIXES or path.exists()


def resolve_model(
    name_or_path: str | os.PathLike[str] | None = None,
    *,
    scale: int | None = None,
    random_weights: bool = False,
) -> ResolvedModel:
    """Load a checkpoint file, or build a named model with its bundled weights.

    Args:
        name_or_path: a checkpoint (``.pth``, ``.pt``, ``.ckpt``, ``.safetensors``, ``.bin``;
            architecture and scale are detected from its tensors) or a name from ``lightsr
            models`` (``safmn-x4``, or ``safmn`` with ``scale``). None: :data:`DEFAULT_MODEL`
            at ``scale`` (default :data:`DEFAULT_SCALE`).
        scale: the wanted scale; for a checkpoint it must match the detected one.
        random_weights: build a named model with seeded random weights instead of its bundled
            ones (cost counting and export of untrained models need no weights).

    Raises:
        LightSRError: unknown name (the message lists the valid ones), unreadable checkpoint,
            a scale that contradicts the name or the checkpoint, or a named model without
            bundled weights when ``random_weights`` is False.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
        scale = scale or DEFAULT_SCALE
    text = os.fspath(name_or_path)
    if is_checkpoint_path(text):
        path = Path(text)
        model, found = load_checkpoint(path, scale=scale)
        if scale is not None and found.scale != scale:
            raise CheckpointError(
                f"{path}: the checkpoint is x{found.scale}, but scale {scale} was asked for; "
                "drop the scale"
            )
        return ResolvedModel(model, path.name, found.arch, dict(found.config), found.scale, text)
    try:
        spec = get_spec(text, scale)
    except KeyError as exc:
        raise LightSRError(str(exc.args[0])) from exc
    if random_weights:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = build_arch(spec.arch, scale=spec.scale, **spec.config)
        return ResolvedModel(
            model.eval(), spec.name, spec.arch, dict(spec.config), spec.scale, "random", spec.paper
        )
    if spec.weights is None or not bundled_weights_path(spec.weights).is_file():
        shipped = bundled_models()
        hint = f" (bundled: {', '.join(shipped)})" if shipped else ""
        raise LightSRError(
            f"model {spec.name!r}: lightsr ships no weights for it{hint}; pass a checkpoint "
            "with --weights PATH (Python: load_model('path/to/weights.pth'))"
        )
    model, found = load_checkpoint(bundled_weights_path(spec.weights))
    if found.arch != spec.arch or found.scale != spec.scale:
        raise CheckpointError(
            f"bundled weights of {spec.name!r} are {found.arch} x{found.scale}, expected "
            f"{spec.arch} x{spec.scale}; reinstall lightsr"
        )
    return ResolvedModel(
        model, spec.name, spec.arch, dict(spec.config), spec.scale, "bundled", spec.paper
    )
