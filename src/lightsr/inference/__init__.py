"""Inference: the :class:`~lightsr.inference.upscaler.Upscaler` (``upscaler``), padding and
tiling (``tiling``), image files (``io``) and the ONNX export and backend (``onnx``).

Nothing is imported here, so ``lightsr.inference.io`` can be used without loading torch."""
