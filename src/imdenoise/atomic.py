"""The one atomic writer: a temporary file beside the target (same file system, normal permissions),
moved into place only when complete."""

from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


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


@contextmanager
def atomic_path(path: str | Path, *, overwrite: bool = True, fsync: bool = True) -> Iterator[Path]:
    """The one atomic writer: yields a temporary path beside `path` to write; when the block ends it is
    fsynced and moved onto `path` (without `overwrite`, a hard link that fails rather than clobbers:
    FileExistsError), else removed. Readers see the old file or the new one, never a partial write."""
    path = Path(path)
    fd, name = temp_beside(path)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, new_file_mode())  # writers that recreate the file (safetensors) get mkstemp's mode back
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        _move_into_place(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    """os.replace when overwriting; a hard link otherwise, which fails instead of clobbering."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.replace(tmp, path)


def write_bytes_atomic(path: str | Path, data: bytes | str, overwrite: bool = True) -> Path:
    """Write data (text as UTF-8) atomically (see :func:`atomic_path`); no temporary file is left."""
    path = Path(path)
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path
