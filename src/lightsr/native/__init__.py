"""Native CPU kernels and the fast inference path.

``ops``: the C++ kernels (``kernels/safmn.cpp``), how they are built and loaded, and their
torch custom ops; ``fast``: :class:`~lightsr.native.fast.FastSAFMN`, the same function as the
plain SAFMN computed faster, with or without the kernels."""
