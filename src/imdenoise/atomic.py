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


def write_bytes_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write data (text as UTF-8) to a temporary file beside path, fsync, then rename over path:
    readers see the old file or the new one, never a partial write; no temporary file is left."""
    path = Path(path)
    fd, tmp = temp_beside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
