"""Inference: the :class:`~lightsr.inference.upscaler.Upscaler` (``upscaler``), padding and
tiling (``tiling``), image files (``io``), batches of files (``batch``) and the ONNX export and
backend (``onnx``).

Nothing heavy is imported here, so the CLI can read these defaults without loading torch.
"""

#: Context (LR pixels) given to each tile on every side. SAFMN's receptive field is wide (its
#: 8x-pooled branch sees +-16 px per block), but the influence decays fast: 32 px keeps tiled
#: output within 1/255 of the untiled one (see tests/test_inference.py).
DEFAULT_TILE_OVERLAP = 32
