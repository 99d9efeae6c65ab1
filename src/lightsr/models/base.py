"""The plug-in interface of an architecture: its descriptor, its detector and its model protocol.

An architecture is one file under :mod:`lightsr.models.archs` that defines the network (an
``nn.Module``), a detector (``detect``: from a state dict's keys and shapes to a
:class:`Detected`, or None when the tensors are not its own) and a module-level
``ARCH = ArchDescriptor(...)``. :mod:`lightsr.models.registry` imports every module of that
package and registers its ``ARCH``; code outside the package (a plug-in, a test) registers its own
descriptor with :func:`lightsr.models.registry.register_arch`. Adding an architecture is one new
file plus its row in the tests.

Detection never depends on an order: :func:`lightsr.models.detect.detect_arch` runs every
registered detector, and two matches are an error that names both. A detector must therefore
recognise its own tensors precisely (keys that only it has, and the absence of keys that mark a
sibling architecture), not merely "enough keys to build it".

This module imports nothing heavy (no torch), so the catalog and the CLI can read it cheaply.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import torch

__all__ = [
    "DEFAULT_SIZE_MULTIPLE",
    "ArchDescriptor",
    "Detected",
    "Detector",
    "SRModel",
    "StateDict",
    "count_indices",
    "has_keys",
    "pixelshuffle_scale",
]

#: A checkpoint's tensors by name (prefixes such as ``module.`` already stripped).
StateDict = Mapping[str, "torch.Tensor"]

#: The size multiple of a model that declares none: inputs of any size.
DEFAULT_SIZE_MULTIPLE = 1


@dataclass(frozen=True)
class Detected:
    """What a state dict's tensor shapes say about the network.

    Attributes:
        arch: architecture name (an :class:`ArchDescriptor` ``name``).
        config: constructor arguments other than the scale.
        scale: upscaling factor.
        scales: every scale the same tensors run at, when there are several: a multi-scale
            network (CARN-M's x2/x3/x4 upsamplers), or one whose weights do not depend on the
            scale (PAN x2/x3, FSRCNN). Empty when only ``scale`` fits.
            :func:`lightsr.models.checkpoint.load_checkpoint` picks among them.
    """

    arch: str
    config: dict[str, Any]
    scale: int
    scales: tuple[int, ...] = ()


#: ``detect(state_dict)``: a :class:`Detected` whose ``arch`` is the descriptor's name, or None.
#: It may raise KeyError, IndexError or ZeroDivisionError on tensors that are not its own; those
#: count as "no match".
Detector = Callable[[StateDict], "Detected | None"]


@runtime_checkable
class SRModel(Protocol):
    """The interface lightsr expects of a super-resolution network.

    Every architecture is an ``nn.Module`` (``eval``, ``to``, ``parameters``, ``state_dict``,
    ``load_state_dict`` are used as such) built as ``build(upscaling_factor=scale, **config)``
    with keyword-only arguments, and:

    - ``forward(x)`` takes a float tensor (B, ``in_channels``, H, W) with values in the
      descriptor's ``input_range`` and returns (B, ``out_channels``, H * scale, W * scale) in the
      same range; H and W are multiples of the size multiple (the caller pads, see
      :func:`lightsr.inference.tiling.pad_to_multiple`);
    - ``scale`` is the upscaling factor it was built with.

    What is true of the whole architecture (scales, size multiple, input range, channels,
    float16) lives in its :class:`ArchDescriptor`, not on the instance; read the size multiple
    with :func:`lightsr.models.registry.size_multiple`, which also honours an instance attribute
    ``size_multiple`` for networks whose multiple depends on their config (SwinIR's window).
    """

    scale: int

    def forward(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class ArchDescriptor:
    """An architecture as a plug-in: how to build it, how to recognise it, what it needs.

    Attributes:
        name: registry key (lower case, ``[a-z0-9_]``), e.g. ``"safmn"``; the ``arch`` of the
            named models and of lightsr's safetensors metadata.
        build: the constructor (keyword-only; ``upscaling_factor`` plus the config).
        detect: recognises this architecture's state dicts (see :data:`Detector`); None for an
            architecture that is only built by name, never detected.
        scales: the upscaling factors lightsr builds and tests it at (the constructor may
            accept others).
        size_multiple: input height and width must be multiples of this (the caller pads); a
            network whose multiple depends on its config also sets an instance attribute
            ``size_multiple`` (see :func:`lightsr.models.registry.size_multiple`).
        input_range: the value range of ``forward``'s input and output. Networks trained in
            [0, 255] (RLFN, RFDN, EDSR) scale inside, so they take [0, 1] like the rest.
        in_channels: channels of ``forward``'s input; ``out_channels``: of its output.
        supports_fp16: False where float16 (autocast) is known to fail for the architecture's
            reference weights: activations beyond float16's range (PAN, SAFMN++) or outputs
            far from float32's (light SAFMN++). True otherwise: checked on the reference
            weights where lightsr has them, on random weights where it has none
            (``tests/test_zoo.py``).
    """

    name: str
    build: Callable[..., Any]
    detect: Detector | None
    scales: tuple[int, ...] = (2, 3, 4)
    size_multiple: int = DEFAULT_SIZE_MULTIPLE
    input_range: tuple[float, float] = (0.0, 1.0)
    in_channels: int = 3
    out_channels: int = 3
    supports_fp16: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"architecture name {self.name!r}: use lower case, digits and _")
        if not callable(self.build):
            raise TypeError(f"architecture {self.name!r}: build must be callable")
        if self.size_multiple < 1 or not self.scales or min(self.scales) < 1:
            raise ValueError(f"architecture {self.name!r}: size_multiple and scales must be >= 1")
        if self.input_range[0] >= self.input_range[1]:
            raise ValueError(f"architecture {self.name!r}: empty input_range {self.input_range}")


# --------------------------------------------------------------------------------------------
# Helpers for detectors (they read shapes only, so they need no torch import)


def fold_branches(model: Any, deployed: Any, block: type, target: str) -> Any:
    """Load into ``deployed`` (a freshly built inference-form network) the re-parameterised
    ``model``: every ``block`` module's ``fused()`` (weight, bias) becomes ``{name}.{target}``,
    every other tensor that ``deployed`` has is copied; strict, so nothing is left out. Returns
    ``deployed`` in eval mode (SPAN's ``Conv3XC``, EFDN's EDBB)."""
    keep = deployed.state_dict().keys()
    state = {k: v for k, v in model.state_dict().items() if k in keep}
    for name, module in model.named_modules():
        if isinstance(module, block):
            state[f"{name}.{target}.weight"], state[f"{name}.{target}.bias"] = module.fused()
    deployed.load_state_dict(state, strict=True)
    return deployed.eval()


def has_keys(sd: StateDict, *keys: str) -> bool:
    """True when every key is in the state dict."""
    return all(k in sd for k in keys)


def count_indices(sd: StateDict, pattern: str) -> int:
    """Number of distinct integers captured by ``pattern`` (matched at the start of keys)."""
    return len({int(m.group(1)) for k in sd if (m := re.match(pattern, k))})


def pixelshuffle_scale(out_ch: int, ch: int = 3) -> int | None:
    """The factor r of a conv producing ``ch * r * r`` channels for PixelShuffle(r), or None."""
    r = math.isqrt(out_ch // ch)
    return r if r >= 1 and ch * r * r == out_ch else None
