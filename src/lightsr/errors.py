"""Exceptions for mistakes a user can fix (bad file, bad flag, unknown name).

The CLI prints these as one line and exits non-zero; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

__all__ = ["CheckpointError", "ImageError", "LightSRError"]


class LightSRError(ValueError):
    """A problem with the user's input, described in one line that says what to do."""


class CheckpointError(LightSRError):
    """A checkpoint that cannot be read, recognised or loaded."""


class ImageError(LightSRError):
    """An image that cannot be read or written."""
