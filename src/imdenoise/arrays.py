"""Array helpers every layer shares: a valid noise level, finite samples, RGB to gray."""

from __future__ import annotations

import math

import numpy as np

from imdenoise.errors import ImDenoiseError

MAX_SIGMA = 255.0  # the whole 0-255 range; a larger noise level leaves nothing to recover
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 luma weights


def checked_sigma(sigma: object, who: str = "") -> float:
    """A given noise level as a float on the 0-255 scale; anything else is an error naming the method."""
    prefix = f"{who}: " if who else ""
    if (isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating, np.integer))
            or not (math.isfinite(float(sigma)) and 0 <= float(sigma) <= MAX_SIGMA)):
        raise ImDenoiseError(f"{prefix}sigma must be a number from 0 to {MAX_SIGMA:g} (0-255 scale), got {sigma!r}")
    return float(sigma)


def all_finite(data: np.ndarray) -> bool:
    """Whether every sample is finite, without a full-size mask: a float64 sum is non-finite exactly
    when a sample is NaN or infinite (float32 samples cannot overflow it)."""
    with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf is NaN: still non-finite, no warning
        return math.isfinite(float(np.sum(data, dtype=np.float64)))


def check_finite_output(data: np.ndarray, who: str = "") -> np.ndarray:
    """`data` if every sample is finite; else an error, so a NaN result is never written as an image."""
    if not all_finite(data):
        prefix = f"{who}: " if who else ""
        raise ImDenoiseError(f"{prefix}the denoised result has NaN or infinite values (the input's values are "
                             f"probably far outside the 0-1 range of an image); nothing was written")
    return data


def rgb_to_gray(rgb: np.ndarray) -> np.ndarray:
    """The one RGB-to-gray formula: BT.601 luma of the first three channels of HxWxC float data (HxW out)."""
    return rgb[..., :3] @ LUMA
