"""The one interface every denoising method implements (networks, classical filters, zero-shot), and the
one input preparation they share: HxW or HxWxC float arrays, alpha split off and passed through, NaN refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from imdenoise.arrays import all_finite
from imdenoise.errors import ImDenoiseError


@runtime_checkable
class Denoiser(Protocol):
    """Anything that cleans a float32 HxW or HxWxC image; ``sigma`` is on the 0-255 scale or None (blind)."""

    @property
    def name(self) -> str:
        """The method's name (as `load` knows it)."""
        ...

    def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Return the denoised image with the input's shape and float32 dtype."""
        ...


def as_hwc(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """float32 HxWxC view of an HxW or HxWxC array (or of a read_image result), and whether it was 2-D."""
    if not isinstance(image, np.ndarray) and isinstance(getattr(image, "data", None), np.ndarray):
        image = image.data  # imdenoise.read_image(path): its float32 [0, 1] pixels
    if not isinstance(image, np.ndarray):
        raise ImDenoiseError(f"expected a numpy array, got {type(image).__name__}")
    if not np.issubdtype(image.dtype, np.floating):
        peak = np.iinfo(image.dtype).max if np.issubdtype(image.dtype, np.integer) else 1
        raise ImDenoiseError(f"expected float values on the [0, 1] scale, got a {image.dtype} array: divide it by "
                             f"{peak} first (imdenoise.read_image does this)")
    if image.ndim == 2:
        return image[..., None].astype(np.float32, copy=False), True
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4):
        raise ImDenoiseError(f"expected an HxW or HxWxC image with C in 1-4, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImDenoiseError(f"empty image of shape {image.shape}")
    return image.astype(np.float32, copy=False), False


def split_alpha(image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(color channels, alpha or None) of an HxWxC array: C=2 is gray+alpha, C=4 is RGBA."""
    if image.shape[-1] in (2, 4):
        return image[..., :-1], image[..., -1:]
    return image, None


@dataclass
class Prepared:
    """A denoiser's input: the color channels as float32 HxWxC, the alpha channel apart, and the way back."""

    color: np.ndarray
    alpha: np.ndarray | None
    was_2d: bool

    def finish(self, out: np.ndarray) -> np.ndarray:
        """The denoised color channels back in the input's layout: alpha re-attached, HxW if it was."""
        res = out if self.alpha is None else np.concatenate([out, self.alpha], axis=-1)
        return res[..., 0] if self.was_2d else res


def prepare(image: np.ndarray, who: str = "") -> Prepared:
    """Check and split one input image; NaN or infinite color values are an error naming `who`."""
    hwc, was_2d = as_hwc(image)
    color, alpha = split_alpha(hwc)
    if not all_finite(color):
        prefix = f"{who}: " if who else ""
        raise ImDenoiseError(f"{prefix}image contains NaN or infinite values; replace them before denoising")
    return Prepared(color, alpha, was_2d)
