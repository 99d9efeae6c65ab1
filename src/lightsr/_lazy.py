"""Lazy public names (PEP 562): a package lists where its names live and imports on first use.

It keeps ``import lightsr.analysis`` (or any package using it) free of torch until a name that
needs it is asked for. Imports nothing of lightsr, so every layer may use it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(module: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``module`` (``__getattr__ = lazy_getattr(__name__, ...)``):
    ``exports`` maps each public name to the module that defines it; that module is imported on
    the name's first use and the value kept in ``module``, so later uses are plain lookups.
    Other names raise :class:`AttributeError` as for any module."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        setattr(sys.modules[module], name, value)
        return value

    return __getattr__
