"""Temporary files for atomic writes: beside the target (same file system), with normal permissions."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


def new_file_mode() -> int:
    """Permissions a plain open() would give a new file (0o666 less the umask), not mkstemp's 0o600."""
    return 0o666 & ~_UMASK


def temp_beside(path: str | Path) -> tuple[int, str]:
    """(fd, name) of a new hidden temporary file in path's folder, to be renamed onto path when complete."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, new_file_mode())
    return fd, tmp
