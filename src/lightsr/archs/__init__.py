"""Architectures and the table of named models.

Every architecture is a plain ``nn.Module`` in its own file. Named models are data: the
:data:`MODELS` table maps a name to an architecture, its constructor arguments, the scale and the
file name of bundled weights (when lightsr ships trained weights for it). Nothing registers
itself on import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .safmn import SAFMN

__all__ = [
    "ARCHS",
    "MODELS",
    "ModelSpec",
    "build_arch",
    "build_model",
    "get_spec",
    "resolve_name",
]

#: Architecture name -> constructor. Constructors take keyword-only arguments.
ARCHS: dict[str, Callable[..., nn.Module]] = {
    "safmn": SAFMN,
}


@dataclass(frozen=True)
class ModelSpec:
    """A named model: architecture + configuration + scale (+ bundled weights, if any).

    Attributes:
        name: the public name, e.g. ``safmn-x4``.
        arch: key into :data:`ARCHS`.
        config: constructor arguments (keyword-only), without the scale.
        scale: upscaling factor.
        description: one line for ``lightsr models``.
        weights: file name of bundled weights under ``lightsr/weights/``, or None.
    """

    name: str
    arch: str
    config: dict[str, Any]
    scale: int
    description: str
    weights: str | None = None
    paper: dict[str, str] = field(default_factory=dict)


def _safmn_specs() -> list[ModelSpec]:
    specs = []
    sizes = {
        "safmn": ({"dim": 36, "n_blocks": 8, "ffn_scale": 2.0}, "SAFMN (ICCV 2023), efficient SR"),
        "safmn-l": (
            {"dim": 128, "n_blocks": 16, "ffn_scale": 2.0},
            "SAFMN-L (official repo), classic SR",
        ),
    }
    for base, (config, desc) in sizes.items():
        for scale in (2, 3, 4):
            specs.append(
                ModelSpec(
                    name=f"{base}-x{scale}",
                    arch="safmn",
                    config=config,
                    scale=scale,
                    description=f"{desc}, x{scale}",
                )
            )
    return specs


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _safmn_specs()}


def resolve_name(name: str, scale: int | None = None) -> str:
    """Return the table key for ``name``, accepting ``safmn`` + ``scale`` for ``safmn-x{scale}``.

    Raises:
        KeyError: with the list of valid names, when nothing matches.
    """
    key = name.lower()
    if key in MODELS:
        spec = MODELS[key]
        if scale is not None and spec.scale != scale:
            raise KeyError(
                f"model {name!r} is x{spec.scale} but scale {scale} was asked for; "
                f"use {key.rsplit('-x', 1)[0]}-x{scale} or drop the scale"
            )
        return key
    if scale is not None and f"{key}-x{scale}" in MODELS:
        return f"{key}-x{scale}"
    bases = sorted({n.rsplit("-x", 1)[0] for n in MODELS})
    if key in bases:
        raise KeyError(f"model {name!r} needs a scale: use {key}-x2, {key}-x3 or {key}-x4")
    raise KeyError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}")


def get_spec(name: str, scale: int | None = None) -> ModelSpec:
    """The :class:`ModelSpec` for a name (see :func:`resolve_name`)."""
    return MODELS[resolve_name(name, scale)]


def build_arch(arch: str, *, scale: int, **config: Any) -> nn.Module:
    """Build architecture ``arch`` with random weights (``config`` are its keyword arguments)."""
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture {arch!r}; valid: {', '.join(sorted(ARCHS))}")
    return ARCHS[arch](upscaling_factor=scale, **config)


def build_model(name: str, scale: int | None = None) -> nn.Module:
    """Build a named model with random weights (for training, counting, tests)."""
    spec = get_spec(name, scale)
    return build_arch(spec.arch, scale=spec.scale, **spec.config)
