"""The one interface every denoising method implements: networks, classical filters, zero-shot."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Denoiser(Protocol):
    """Anything that cleans a float32 HxW or HxWxC image; ``sigma`` is on the 0-255 scale or None (blind)."""

    name: str

    def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Return the denoised image with the input's shape and float32 dtype."""
        ...
