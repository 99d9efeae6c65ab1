"""Looking inside SR networks: local attribution maps, layer similarity and feature maps.

- :mod:`lightsr.analysis.lam`: LAM (Gu and Dong, CVPR 2021) and its diffusion index.
- :mod:`lightsr.analysis.cka`: linear CKA (Kornblith et al., ICML 2019) between layers.
- :mod:`lightsr.analysis.features`: channel-reduced feature maps and window-attention maps.

Each works on any lightsr model (a name with bundled weights, or a checkpoint) through
:func:`lightsr.models.resolve.resolve_model`, records layers with forward hooks (no change to the
architectures), and writes PNG figures and a JSON of the numbers. ``lightsr analyze`` is the
command line. The names below load their modules (and torch) on first use.
"""

from __future__ import annotations

from lightsr._lazy import lazy_getattr

_EXPORTS = {
    "run_lam": "lightsr.analysis.lam",
    "lam": "lightsr.analysis.lam",
    "diffusion_index": "lightsr.analysis.lam",
    "run_cka": "lightsr.analysis.cka",
    "linear_cka": "lightsr.analysis.cka",
    "run_features": "lightsr.analysis.features",
    "load_network": "lightsr.analysis._common",
    "module_names": "lightsr.analysis._common",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_getattr(__name__, _EXPORTS)
