"""The architectures, one module each; every module declares ``ARCH = ArchDescriptor(...)``.

:mod:`lightsr.models.registry` imports every module here whose name does not start with ``_``
and registers its ``ARCH`` (see :mod:`lightsr.models.base`). ``_``-modules are shared helpers.
"""
