"""The architecture registry, and building models by architecture or by name.

Each module of :mod:`lightsr.models.archs` (one per architecture; names starting with ``_`` are
helpers) declares ``ARCH = ArchDescriptor(...)`` (see :mod:`lightsr.models.base`); importing this
module imports them all and registers their descriptors. Nothing else is listed anywhere, so an
architecture is added by adding its file. Code outside the package registers with
:func:`register_arch` (and may take it back with :func:`unregister_arch`).

The named models are data in :mod:`lightsr.models.catalog` (importable without torch); their
names are re-exported here as before (``MODELS``, ``ModelSpec``, ``get_spec``, ``resolve_name``).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lightsr.models import archs as _archs_pkg
from lightsr.models.base import DEFAULT_SIZE_MULTIPLE, ArchDescriptor
from lightsr.models.catalog import MODELS, ModelSpec, get_spec, resolve_name

__all__ = [
    "ARCHS",
    "DEFAULT_SIZE_MULTIPLE",
    "MODELS",
    "ArchDescriptor",
    "ModelSpec",
    "arch_descriptors",
    "build_arch",
    "build_model",
    "count_params",
    "descriptor_of",
    "get_arch",
    "get_spec",
    "register_arch",
    "resolve_name",
    "size_multiple",
    "unregister_arch",
    "write_param_counts",
]

_REGISTRY: dict[str, ArchDescriptor] = {}


def register_arch(descriptor: ArchDescriptor) -> ArchDescriptor:
    """Add an architecture; returns the descriptor (so it can be used as an expression).

    Registering the same descriptor object again does nothing.

    Raises:
        ValueError: another descriptor already has this name.
    """
    if not isinstance(descriptor, ArchDescriptor):
        raise TypeError(f"register_arch: expected an ArchDescriptor, got {type(descriptor)}")
    known = _REGISTRY.get(descriptor.name)
    if known is not None and known is not descriptor:
        raise ValueError(
            f"architecture {descriptor.name!r} is already registered (by {_origin(known)}); "
            f"{_origin(descriptor)} cannot register it again"
        )
    _REGISTRY[descriptor.name] = descriptor
    return descriptor


def unregister_arch(name: str) -> ArchDescriptor:
    """Remove an architecture (a plug-in's, a test's); returns its descriptor.

    Raises:
        KeyError: no architecture has this name.
    """
    if name not in _REGISTRY:
        raise KeyError(f"architecture {name!r} is not registered")
    return _REGISTRY.pop(name)


def _origin(descriptor: ArchDescriptor) -> str:
    build = descriptor.build
    return f"{getattr(build, '__module__', '?')}.{getattr(build, '__qualname__', build)}"


def arch_descriptors() -> dict[str, ArchDescriptor]:
    """Every registered architecture, by name (a copy, sorted by name)."""
    return dict(sorted(_REGISTRY.items()))


def get_arch(name: str) -> ArchDescriptor:
    """The descriptor of architecture ``name``.

    Raises:
        KeyError: an unknown name; the message lists the registered ones.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown architecture {name!r}; valid: {valid}") from None


class _Builders(Mapping[str, Callable[..., nn.Module]]):
    """A live, read-only view: architecture name -> constructor (the registry's ``build``)."""

    def __getitem__(self, name: str) -> Callable[..., nn.Module]:
        return _REGISTRY[name].build

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(_REGISTRY))

    def __len__(self) -> int:
        return len(_REGISTRY)


#: Architecture name -> constructor (keyword-only arguments), for code that predates
#: :func:`get_arch`. Reflects registrations made later.
ARCHS: Mapping[str, Callable[..., nn.Module]] = _Builders()


def descriptor_of(model: nn.Module) -> ArchDescriptor | None:
    """The descriptor whose ``build`` is the model's class (or a base class of it), or None."""
    by_class = {d.build: d for d in _REGISTRY.values() if isinstance(d.build, type)}
    for cls in type(model).__mro__:
        if cls in by_class:
            return by_class[cls]
    return None


def size_multiple(model: nn.Module) -> int:
    """What the sides of ``model``'s input must be a multiple of (the caller pads to it).

    The model's own ``size_multiple`` attribute when it has one (networks whose multiple
    depends on their config, such as SwinIR's window, and wrappers such as the fast path's
    modules), else its architecture's descriptor, else :data:`DEFAULT_SIZE_MULTIPLE` (1: any
    size).
    """
    value = getattr(model, "size_multiple", None)
    if value is None:
        descriptor = descriptor_of(model)
        value = descriptor.size_multiple if descriptor else DEFAULT_SIZE_MULTIPLE
    return int(value)


def build_arch(arch: str, *, scale: int, **config: Any) -> nn.Module:
    """Build architecture ``arch`` with random weights (``config`` are its keyword arguments)."""
    return get_arch(arch).build(upscaling_factor=scale, **config)


def build_model(name: str, scale: int | None = None) -> nn.Module:
    """Build a named model with random weights (for training, counting, tests)."""
    spec = get_spec(name, scale)
    return build_arch(spec.arch, scale=spec.scale, **spec.config)


def count_params(name: str) -> int:
    """Parameters of a named model, counted on a built one.

    Built on the meta device (no memory, no initialisation) where the constructor allows it,
    else on the CPU (SwinIR's stochastic-depth schedule reads tensor values).
    """
    spec = get_spec(name)
    try:
        with torch.device("meta"):
            model = build_arch(spec.arch, scale=spec.scale, **spec.config)
    except NotImplementedError:
        model = build_arch(spec.arch, scale=spec.scale, **spec.config)
    return sum(p.numel() for p in model.parameters())


def write_param_counts(path: str | Path | None = None) -> Path:
    """Regenerate :mod:`lightsr.models.param_counts` from the built named models."""
    from lightsr.models import param_counts

    target = Path(path) if path is not None else Path(param_counts.__file__)
    doc = param_counts.__doc__ or ""
    rows = "".join(f'    "{name}": {count_params(name):_},\n' for name in MODELS)
    text = f'"""{doc.strip()}\n"""\n\nPARAM_COUNTS: dict[str, int] = {{\n{rows}}}\n'
    target.write_text(text, encoding="utf-8")
    return target


def __getattr__(name: str) -> Any:
    """Architecture classes by class name (``SAFMN``, ``UPS``...), as this module (and its old
    name ``lightsr.archs``) exported them before the registry collected the files."""
    for descriptor in _REGISTRY.values():
        if getattr(descriptor.build, "__name__", None) == name:
            return descriptor.build
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register_builtin() -> None:
    """Import every architecture module of :mod:`lightsr.models.archs` and register its ARCH."""
    for info in pkgutil.iter_modules(_archs_pkg.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{_archs_pkg.__name__}.{info.name}")
        descriptor = getattr(module, "ARCH", None)
        if not isinstance(descriptor, ArchDescriptor):
            raise TypeError(f"{module.__name__}: no module-level ARCH = ArchDescriptor(...)")
        register_arch(descriptor)


_register_builtin()
