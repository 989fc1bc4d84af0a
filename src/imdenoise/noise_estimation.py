"""Blind AWGN level estimation: the PCA estimator of Chen, Zhu and Heng (ICCV 2015).

All overlapping r x r patches of a channel are the samples; the eigenvalues of their covariance
are sorted, and the noise variance is the mean of the largest set of smallest eigenvalues whose
mean equals their median (as many eigenvalues above the mean as below it): for a natural image
the smallest principal directions hold noise only.

Texture leaks into those directions and biases the plain estimator upwards at low noise levels.
So the channel is cut into regions of about 48x48 pixels, each region gets its own estimate, and
the final estimate pools the patch statistics of the flattest quarter of the regions (lowest
regional estimates) before applying the same rule (measured in docs/noise.md).
"""

from __future__ import annotations

import numpy as np

from imdenoise.errors import ImDenoiseError

PATCH = 8
REGION = 48
KEEP = 0.25


def _patch_moments(region: np.ndarray, patch: int) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, sum, sum of outer products) of all overlapping ``patch`` x ``patch`` patches."""
    windows = np.lib.stride_tricks.sliding_window_view(region, (patch, patch))
    x = windows.reshape(-1, patch * patch).astype(np.float64)
    return x.shape[0], x.sum(axis=0), x.T @ x


def _variance(count: int, total: np.ndarray, outer: np.ndarray) -> float:
    """Noise variance from pooled patch moments: covariance eigenvalues, then the tail rule."""
    mean = total / count
    return _tail_variance(np.linalg.eigvalsh(outer / count - np.outer(mean, mean)))


def _tail_variance(eig: np.ndarray) -> float:
    """Chen et al.: the mean of the longest prefix of ascending eigenvalues whose mean is its median."""
    eig = np.clip(eig, 0.0, None)
    for i in range(eig.size, 0, -1):
        tail = eig[:i]
        tau = tail.mean()
        if np.count_nonzero(tail > tau) == np.count_nonzero(tail < tau):
            return float(tau)
    return float(eig[0])


def _edges(n: int, size: int) -> np.ndarray:
    return np.linspace(0, n, max(1, n // size) + 1).astype(int)


def estimate_sigma_channel(channel: np.ndarray, patch: int = PATCH, region: int = REGION,
                           keep: float = KEEP) -> float:
    """AWGN sigma (0-255 scale) of one HxW channel with values on the [0, 1] scale."""
    channel = np.asarray(channel, dtype=np.float64)
    h, w = channel.shape
    while patch > 3 and (h - patch + 1) * (w - patch + 1) < 10 * patch * patch:
        patch -= 1  # small images: smaller patches, so that samples outnumber dimensions
    if min(h, w) < patch:
        raise ImDenoiseError(f"cannot estimate the noise level of a {channel.shape[0]}x{channel.shape[1]} "
                             "image (at least 3x3 pixels needed); give sigma explicitly")
    if not np.all(np.isfinite(channel)):  # eigvalsh would fail with LinAlgError
        raise ImDenoiseError("cannot estimate the noise level of an image with NaN or infinite values")
    channel = channel - channel.mean()  # better conditioned moments; the covariance is unchanged
    ys, xs = _edges(channel.shape[0], region), _edges(channel.shape[1], region)
    moments = [_patch_moments(channel[y0:y1, x0:x1], patch)
               for y0, y1 in zip(ys[:-1], ys[1:]) for x0, x1 in zip(xs[:-1], xs[1:])]
    if len(moments) > 1:
        flat = np.argsort([_variance(*m) for m in moments])[: max(1, int(round(keep * len(moments))))]
        moments = [moments[i] for i in flat]
    pooled = (sum(m[0] for m in moments), sum(m[1] for m in moments), sum(m[2] for m in moments))
    return float(np.sqrt(_variance(*pooled)) * 255.0)


def estimate_sigma(image: np.ndarray) -> float:
    """Blind AWGN level on the 0-255 scale of a [0, 1] HxW or HxWxC image (channels: mean estimate)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {image.shape}")
    return float(np.mean([estimate_sigma_channel(image[..., c]) for c in range(image.shape[2])]))
