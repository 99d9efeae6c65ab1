"""Atomic file writes: the one way lightsr writes an output, a weight file or a checkpoint.

A writer fills a temporary file in the destination's folder; only a complete file is renamed
over the destination, so a crash or Ctrl-C at any moment leaves the old file or the new one,
never a truncated one, and nothing of the user's is lost.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_path", "new_file_mode"]


def new_file_mode() -> int:
    """The permissions ``open(path, "w")`` would give a new file here (0o666 minus the umask).

    Temporary files come from :func:`tempfile.mkstemp`, which creates 0600 files; results get
    this mode before the rename so they are as readable as any other file the user makes.
    """
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fsync_dir(folder: Path) -> None:
    try:  # make the rename itself durable
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    The temporary file is hidden (``.<name>.<random><suffix>``) and exists, empty, when the
    block starts. On normal exit it is flushed to disk, given :func:`new_file_mode`, and renamed
    over ``path`` (then the folder is synced); on any exception it is removed and ``path`` is
    untouched. The parent folder is created if needed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
