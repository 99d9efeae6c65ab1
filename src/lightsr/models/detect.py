"""Recognising a state dict's architecture: every registered detector, no order.

Each architecture's detector lives in its own file (``detect`` beside its ``ARCH`` descriptor,
see :mod:`lightsr.models.base`). :func:`detect_arch` asks all of them; exactly one may answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightsr.errors import CheckpointError
from lightsr.models.base import Detected
from lightsr.models.registry import arch_descriptors

__all__ = ["Detected", "detect_all", "detect_arch"]

#: What a detector may raise on tensors that are not its own (a missing key, an empty shape):
#: the same as returning None.
_NO_MATCH = (KeyError, IndexError, ZeroDivisionError)


def detect_all(state_dict: Mapping[str, Any]) -> list[Detected]:
    """What every registered detector that recognises the tensors says, by architecture name.

    Raises:
        RuntimeError: a detector answered with another architecture's name (a bug in it).
    """
    sd = dict(state_dict)
    found: list[Detected] = []
    for name, descriptor in arch_descriptors().items():
        if descriptor.detect is None:
            continue
        try:
            result = descriptor.detect(sd)
        except _NO_MATCH:
            result = None
        if result is None:
            continue
        if result.arch != name:
            raise RuntimeError(
                f"the detector of architecture {name!r} answered {result.arch!r}; a detector "
                "recognises its own architecture only"
            )
        found.append(result)
    return found


def detect_arch(state_dict: Mapping[str, Any]) -> Detected | None:
    """Recognise the architecture, its configuration and the scale from tensor shapes alone.

    Every registered detector runs; none depends on another's verdict or on an order.

    Returns:
        The one match, or None when no registered architecture recognises the tensors.

    Raises:
        CheckpointError: several architectures recognise them (the message names them): their
            detectors are not precise enough, which is a bug to report.
    """
    found = detect_all(state_dict)
    if len(found) > 1:
        names = " and ".join(f"{d.arch} x{d.scale}" for d in found)
        raise CheckpointError(
            f"ambiguous checkpoint: the tensors match {len(found)} architectures ({names}); "
            "their detectors must be made precise"
        )
    return found[0] if found else None
