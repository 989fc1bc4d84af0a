"""Dataset folders: image files by the one suffix list, MNIST idx files, array stacks, real noisy pairs,
decoded once into memory (uint8, or float32 for noisy-only float data)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from imdenoise.arrays import rgb_to_gray
from imdenoise.errors import ConfigError
from imdenoise.io.formats import IMAGE_SUFFIXES
from imdenoise.metrics import quantize_8bit

log = logging.getLogger(__name__)



def missing_data_hint(path: Path) -> str:
    """How to provide a missing standard set, for paths under the datasets' root (else nothing)."""
    from imdenoise.paths import DATASETS_HINT, under_datasets_root

    return f"; {DATASETS_HINT}" if under_datasets_root(path) else ""


def list_images(folder: str | Path) -> list[Path]:
    """Image files of a folder, sorted by name (the benchmark protocol's order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"data folder not found: {folder}{missing_data_hint(folder)}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ConfigError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def is_idx_file(path: str | Path) -> bool:
    """True for an IDX image file such as MNIST's `t10k-images-idx3-ubyte(.gz)`."""
    return "idx3-ubyte" in Path(path).name


def read_idx_images(path: str | Path) -> list[np.ndarray]:
    """Images of an IDX3 file (MNIST format, optionally gzipped) as uint8 HxWx1 arrays."""
    import gzip

    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        hint = missing_data_hint(Path(path)) if not Path(path).exists() else ""
        raise ConfigError(f"{path}: cannot read IDX file ({getattr(exc, 'strerror', None) or exc}){hint}") from None
    if len(raw) < 16 or int.from_bytes(raw[:4], "big") != 2051:
        raise ConfigError(f"{path}: not an IDX3 image file (bad magic number)")
    n, h, w = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
    if len(raw) != 16 + n * h * w:
        raise ConfigError(f"{path}: truncated IDX file ({len(raw)} bytes for {n} images of {h}x{w})")
    data = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, h, w, 1)
    return list(data)


def is_array_stack(path: str | Path) -> bool:
    """True for a .npy file (not a folder), taken as a stack of images such as the MNIST tutorial's
    `x_train.npy` (N x 28 x 28)."""
    p = Path(path)
    return p.suffix.lower() == ".npy" and p.is_file()


def read_array_stack(path: str | Path) -> list[np.ndarray]:
    """Images of an N x H x W (gray) or N x H x W x C .npy stack as float32 HxWxC in [0, 1]: uint8 and
    uint16 are scaled by their range, floats are taken as [0, 1] (or 0-255 if their maximum is above 1.5)."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ConfigError(f"{path}: cannot read the .npy image stack ({exc})") from None
    if data.ndim == 3 and data.shape[-1] > 4:
        data = data[..., None]
    if data.ndim != 4 or data.shape[-1] not in (1, 3, 4) or 0 in data.shape:
        raise ConfigError(f"{path}: a .npy training file must be a stack of images, N x H x W or N x H x W x C "
                          f"(C = 1, 3 or 4), got shape {data.shape}")
    if data.dtype.kind in "ui":
        scale = 65535.0 if data.dtype.itemsize > 1 else 255.0
    elif data.dtype.kind == "f":
        scale = 255.0 if float(np.nanmax(data)) > 1.5 else 1.0
    else:
        raise ConfigError(f"{path}: unsupported array type {data.dtype} for images")
    images = (data.astype(np.float32) / scale)
    if not np.isfinite(images).all():
        raise ConfigError(f"{path}: the image stack holds NaN or infinite values")
    return list(images)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Float HxWxC -> float32 HxWxchannels (RGB -> gray by ITU-R 601 luma, gray -> RGB by copy)."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape[-1] != channels:
        if channels == 1:
            image = rgb_to_gray(image)[..., None]
        else:
            image = np.repeat(image[..., :1], channels, axis=-1)
    return image


def to_uint8(image: np.ndarray, channels: int) -> np.ndarray:
    """Float HxWxC in [0, 1] -> uint8 HxWxchannels (RGB -> gray by ITU-R 601 luma, gray -> RGB by copy)."""
    return quantize_8bit(to_channels(image, channels))


def load_images(paths: Sequence[Path], channels: int, keep_float: bool = False) -> list[np.ndarray]:
    """Decode each file once into a uint8 HxWxC array (held in memory for the whole run).

    With `keep_float`, float sources (float32 TIFF / NPY) stay float32 and unclipped: noisy-only
    data keeps its noise as written (clipping at 0 and 1 would bias it); integer sources stay uint8."""
    from imdenoise.io.images import read_image

    out = []
    for p in paths:
        img = read_image(p)
        is_float = np.issubdtype(np.dtype(img.dtype), np.floating)
        out.append(to_channels(img.data, channels) if keep_float and is_float else to_uint8(img.data, channels))
    log.info("loaded %d images (%.1f MB in memory)", len(out), sum(a.nbytes for a in out) / 1e6)
    return out


def match_pairs(noisy_dir: Path, clean_dir: Path) -> tuple[list[Path], list[Path]]:
    """Pair files of two folders by stem; unmatched files are listed in the error."""
    noisy = {p.stem: p for p in list_images(noisy_dir)}
    clean = {p.stem: p for p in list_images(clean_dir)}
    only_noisy = sorted(noisy[k].name for k in set(noisy) - set(clean))
    only_clean = sorted(clean[k].name for k in set(clean) - set(noisy))
    if only_noisy or only_clean:
        raise ConfigError(f"unmatched files: in {noisy_dir} only: {only_noisy[:10]}; "
                          f"in {clean_dir} only: {only_clean[:10]}")
    stems = sorted(noisy)
    return [noisy[s] for s in stems], [clean[s] for s in stems]


REAL_PAIR_TAGS = (("_real", "_mean"), ("_noisy", "_clean"), ("_noisy", "_gt"))


def real_pairs(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """(noisy, reference) files of a folder of real noisy pairs, sorted by name.

    Two layouts: files named ``<stem>_real.*`` / ``<stem>_mean.*`` (PolyU; also ``_noisy`` / ``_clean``
    or ``_gt``) side by side, or a ``noisy/`` and a ``clean/`` subfolder with the same file names."""
    folder = Path(folder)
    if (folder / "noisy").is_dir() and (folder / "clean").is_dir():
        return match_pairs(folder / "noisy", folder / "clean")
    files = list_images(folder)
    for noisy_tag, clean_tag in REAL_PAIR_TAGS:
        noisy = {p.stem[: -len(noisy_tag)]: p for p in files if p.stem.endswith(noisy_tag)}
        clean = {p.stem[: -len(clean_tag)]: p for p in files if p.stem.endswith(clean_tag)}
        if noisy and clean:
            unmatched = sorted((noisy.get(k) or clean[k]).name for k in set(noisy) ^ set(clean))
            if unmatched:
                raise ConfigError(f"{folder}: no partner for {unmatched[0]}"
                                  + (f" (and {len(unmatched) - 1} more)" if len(unmatched) > 1 else "")
                                  + f"; expected <name>{noisy_tag}.* beside <name>{clean_tag}.*")
            stems = sorted(noisy)
            return [noisy[s] for s in stems], [clean[s] for s in stems]
    raise ConfigError(f"{folder}: not a folder of real noisy pairs: expected <name>_real.* beside <name>_mean.* "
                      "(or _noisy/_clean), or noisy/ and clean/ subfolders with the same file names")


def is_real_pairs(folder: str | Path) -> bool:
    """True for a folder that :func:`real_pairs` reads (no noise is to be synthesised on it)."""
    try:
        real_pairs(folder)
    except ConfigError:
        return False
    return True
