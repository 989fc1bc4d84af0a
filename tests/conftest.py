"""Shared fixtures: where the standard datasets are, and small real images for tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("IMDENOISE_DATASETS", ROOT.parent / "shared" / "datasets"))


def _synthetic(h: int, w: int, c: int) -> np.ndarray:
    """A textured test pattern in [0, 1] (edges, gradients, stripes) for machines without datasets."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.5 + 0.25 * np.sin(xx / 7.0) * np.cos(yy / 11.0)
    base[(xx // 32 + yy // 32) % 2 == 0] += 0.2
    base += 0.1 * (xx / w)
    img = np.clip(base, 0, 1)
    if c == 3:
        img = np.stack([img, np.roll(img, 5, axis=1), 1 - img], axis=-1)
    else:
        img = img[..., None]
    return img.astype(np.float32)


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The shared datasets folder; tests needing it are skipped when it is absent."""
    if not DATASETS.is_dir():
        pytest.skip(f"datasets folder not found: {DATASETS}")
    return DATASETS


def _load_u8(path: Path, color: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB" if color else "L"))
    return arr if color else arr[..., None]


@pytest.fixture(scope="session")
def gray_image() -> np.ndarray:
    """BSD68 test001 (or a synthetic pattern) as float32 HxWx1 in [0, 1], quantized to 8 bits."""
    path = DATASETS / "test" / "bsd68" / "test001.png"
    if path.is_file():
        return (_load_u8(path, color=False) / 255.0).astype(np.float32)
    return np.round(_synthetic(160, 240, 1) * 255).astype(np.float32) / 255.0


@pytest.fixture(scope="session")
def color_image() -> np.ndarray:
    """Kodak24 kodim01 crop (or a synthetic pattern) as float32 HxWx3 in [0, 1], 8-bit quantized."""
    path = DATASETS / "test" / "kodak24" / "kodim01.png"
    if path.is_file():
        return (_load_u8(path, color=True)[:256, :256] / 255.0).astype(np.float32)
    return np.round(_synthetic(256, 256, 3) * 255).astype(np.float32) / 255.0
