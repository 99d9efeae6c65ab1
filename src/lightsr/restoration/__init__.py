"""Restoration beyond super-resolution with the same networks (the UPS paper's "and Beyond").

- :mod:`lightsr.restoration.tasks`: the tasks (``denoise``, ``jpeg``, ``depth``) and their
  seeded degradations, shared by training (:mod:`lightsr.training.data`) and evaluation; the
  synthetic depth maps used to train depth SR. numpy and Pillow only.
- :mod:`lightsr.restoration.evaluate`: the tasks' benchmark protocols (CBSD68, Middlebury), the
  anchors computed in the same run (``identity``, ``cbm3d``, ``bicubic``) and the published
  reference rows; used by ``lightsr eval --task ...``.
- :mod:`lightsr.restoration.api`: :class:`Restorer`, :func:`load_restorer`, :func:`restore` and
  :func:`restore_files` (``lightsr restore``), built on :mod:`lightsr.inference`.

The networks are SAFMN, UPS and SwinIR built at ``scale=1`` (no upsampler, the input image
added to the output). Depth SR uses the ordinary x4/x8 networks on single-channel maps, so a
trained depth model runs with ``lightsr upscale``. ``docs/restoration.md`` has the protocols,
commands and measurements.

Where it sits in the layering: ``tasks`` beside :mod:`lightsr.degrade` (it imports only
:mod:`lightsr.evaluation.resize` for the MATLAB bicubic); ``evaluate`` at the level of
:mod:`lightsr.evaluation`; ``api`` at the level of :mod:`lightsr.inference`. Nothing here imports
:mod:`lightsr.training` or :mod:`lightsr.cli`. Importing this package loads no torch.
"""

from __future__ import annotations

from lightsr._lazy import lazy_getattr

#: Public name -> the module that defines it (loaded on first use).
_EXPORTS = {
    "TASKS": "lightsr.restoration.tasks",
    "TaskSpec": "lightsr.restoration.tasks",
    "synthetic_depth": "lightsr.restoration.tasks",
    "evaluate_task": "lightsr.restoration.evaluate",
    "format_task_results": "lightsr.restoration.evaluate",
    "Restorer": "lightsr.restoration.api",
    "load_restorer": "lightsr.restoration.api",
    "restore": "lightsr.restoration.api",
    "restore_files": "lightsr.restoration.api",
}


__getattr__ = lazy_getattr(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
