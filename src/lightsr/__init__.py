"""lightsr: efficient single-image super-resolution (SAFMN, UPS), faithful and fast.

Quick use::

    import lightsr
    model = lightsr.load_model("SAFMN_DF2K_x2.pth")      # or a named model with bundled weights
    sr = model.upscale(image)                             # numpy / PIL / torch in, same kind out
"""

from __future__ import annotations

from .archs import MODELS, build_model
from .checkpoint import detect_arch, load_checkpoint, read_state_dict, save_safetensors
from .errors import CheckpointError, ImageError, LightSRError
from .inference import Upscaler, load_model
from .io import read_image, write_image

__version__ = "0.1.0"

__all__ = [
    "MODELS",
    "CheckpointError",
    "ImageError",
    "LightSRError",
    "Upscaler",
    "__version__",
    "build_model",
    "detect_arch",
    "load_checkpoint",
    "load_model",
    "read_image",
    "read_state_dict",
    "save_safetensors",
    "write_image",
]
