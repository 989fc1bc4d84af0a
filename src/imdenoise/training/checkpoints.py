"""Training checkpoints: atomic writes with a SHA-256 sidecar, keep-last-k, best, and safe loading."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import torch

from imdenoise.atomic import atomic_path, write_bytes_atomic
from imdenoise.errors import RunWriteError, WeightsError

log = logging.getLogger(__name__)
PATTERN = "ckpt-*.pt"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_failure(exc: BaseException) -> str:
    """The reason a write failed, in one line: the OS's words, or the last line of torch's message."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return (lines[-1] if lines else type(exc).__name__)[:160]


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    """Write `state` to path atomically (temp file, fsync, rename) with `path.sha256` beside it; a
    failed write (full disk, read-only folder) leaves the previous checkpoints intact and is a
    RunWriteError saying how to continue."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(state, tmp)  # torch reports a full disk as RuntimeError ("file write failed")
            digest = _sha256(tmp)
        write_bytes_atomic(path.with_name(path.name + ".sha256"), digest + "\n")
    except (OSError, RuntimeError) as exc:
        raise _cannot_write(path, exc) from None
    return path


def _cannot_write(path: Path, exc: BaseException) -> RunWriteError:
    run_dir = path.parent.parent
    return RunWriteError(f"{path}: cannot write the checkpoint ({write_failure(exc)}); free disk space or make "
                         f"the folder writable, then continue with `imdenoise train --resume {run_dir}`")


def verify(path: Path) -> bool:
    """True when the checkpoint's SHA-256 sidecar exists and matches its content."""
    side = path.with_name(path.name + ".sha256")
    try:
        return side.read_text().strip() == _sha256(path)
    except OSError:
        return False


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with torch.load(weights_only=True): plain tensors and containers only."""
    if not verify(path):
        raise WeightsError(f"{path}: checkpoint is corrupted or incomplete (checksum mismatch)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses any pickle that is not plain tensors/containers
        raise WeightsError(f"{path}: refused: not a plain checkpoint (only weights_only loading is allowed): "
                           f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__}") from None


def step_checkpoints(run_dir: Path) -> list[Path]:
    """Step checkpoints of a run, oldest first."""
    return sorted((run_dir / "checkpoints").glob(PATTERN))


def latest_good(run_dir: Path) -> Path | None:
    """The newest checkpoint whose checksum verifies; corrupted ones are reported and skipped."""
    for path in reversed(step_checkpoints(run_dir)):
        if verify(path):
            return path
        log.warning("skipping corrupted checkpoint %s (checksum mismatch)", path)
    return None


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that a killed run never finished; return them."""
    stale = sorted((run_dir / "checkpoints").glob(".*.tmp"))
    for path in stale:
        log.warning("removing %s: an unfinished checkpoint write of a stopped run", path)
        path.unlink(missing_ok=True)
    return stale


def prune(run_dir: Path, keep_last: int) -> None:
    """Delete all but the newest `keep_last` step checkpoints (best.pt is kept apart)."""
    for path in step_checkpoints(run_dir)[:-keep_last]:
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
