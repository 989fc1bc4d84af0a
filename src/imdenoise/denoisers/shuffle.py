"""Pixel-shuffle denoising (Zhou et al., "When AWGN-based denoiser meets real noises", AAAI 2020).

A camera photo's noise is correlated between neighbouring pixels (demosaicing, in-camera noise
reduction, JPEG); on every second pixel it is close to white again. So a white-noise model denoises
each of the stride x stride sub-images (every stride-th pixel, starting at each offset) and the results
are put back in place: the same number of pixels through the network as one pass over the image.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Denoise = Callable[[np.ndarray, "float | None"], np.ndarray]


def pixel_shuffled(denoise: Denoise, image: np.ndarray, sigma: float | None, stride: int = 2) -> np.ndarray:
    """`denoise(sub, sigma)` on each pixel-shuffled sub-image of the HxW or HxWxC `image`, reassembled.
    One sub-image at a time: memory stays that of one pass. Images under 2 x stride pixels a side are
    denoised whole."""
    image = np.asarray(image)
    if stride <= 1 or min(image.shape[:2]) < 2 * stride:
        return denoise(image, sigma)
    out: np.ndarray | None = None
    for y in range(stride):
        for x in range(stride):
            part = denoise(np.ascontiguousarray(image[y::stride, x::stride]), sigma)
            if out is None:
                out = np.empty(image.shape[:2] + part.shape[2:], dtype=part.dtype)
            out[y::stride, x::stride] = part
    assert out is not None
    return out
