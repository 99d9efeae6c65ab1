"""lightsr: efficient single-image super-resolution (SAFMN, UPS), faithful and fast.

Quick use::

    import lightsr
    model = lightsr.load_model("safmn-x4")                # or a checkpoint path
    sr = model.upscale(lightsr.read_image("photo.png"))  # numpy / PIL / torch in, same kind out

The package is organised by concern (``ARCHITECTURE.md`` has the map): :mod:`lightsr.models`
(architectures, registry, detection, checkpoint files), :mod:`lightsr.inference` (tiling, image
I/O, batches, ONNX), :mod:`lightsr.evaluation` (MATLAB resize, metrics, benchmarks, cost),
:mod:`lightsr.training`, :mod:`lightsr.native` (kernels and the fast path), :mod:`lightsr.cli`.

Importing :mod:`lightsr` is cheap: the names below load their modules (and torch) on first use.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "MODELS": "lightsr.models.catalog",
    "build_model": "lightsr.models.registry",
    "detect_arch": "lightsr.models.detect",
    "load_checkpoint": "lightsr.models.checkpoint",
    "read_state_dict": "lightsr.models.checkpoint",
    "save_safetensors": "lightsr.models.checkpoint",
    "CheckpointError": "lightsr.errors",
    "ImageError": "lightsr.errors",
    "LightSRError": "lightsr.errors",
    "Upscaler": "lightsr.inference.upscaler",
    "load_model": "lightsr.inference.upscaler",
    "read_image": "lightsr.inference.io",
    "write_image": "lightsr.inference.io",
    "upscale_files": "lightsr.inference.batch",
    "Restorer": "lightsr.restoration.api",
    "load_restorer": "lightsr.restoration.api",
    "restore": "lightsr.restoration.api",
    "restore_files": "lightsr.restoration.api",
    "upscale_video": "lightsr.inference.video",
}

#: Modules of the flat layout before 0.2, kept importable under their old names for one release
#: (``import lightsr.resize`` is :mod:`lightsr.evaluation.resize` itself, not a copy).
_MOVED = {
    "lightsr.archs": "lightsr.models.registry",
    "lightsr.checkpoint": "lightsr.models.checkpoint",
    "lightsr.io": "lightsr.inference.io",
    "lightsr.export": "lightsr.inference.onnx",
    "lightsr.fast": "lightsr.native.fast",
    "lightsr.config": "lightsr.training.config",
    "lightsr.data": "lightsr.training.data",
    "lightsr.losses": "lightsr.training.losses",
    "lightsr.train": "lightsr.training.loop",
    "lightsr.evaluate": "lightsr.evaluation.evaluate",
    "lightsr.metrics": "lightsr.evaluation.metrics",
    "lightsr.resize": "lightsr.evaluation.resize",
    "lightsr.bench": "lightsr.evaluation.bench",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module name and hands back the module that now holds its code."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname in _MOVED:
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: Any) -> Any:
        return importlib.import_module(_MOVED[spec.name])

    def exec_module(self, module: Any) -> None:
        """The target module is already executed."""


if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
    sys.meta_path.append(_MovedModules())


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    moved = f"{__name__}.{name}"
    if moved in _MOVED:  # ``lightsr.resize`` as an attribute, as before
        return importlib.import_module(moved)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", *sorted(_EXPORTS)]
