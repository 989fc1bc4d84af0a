"""Blind AWGN level estimation: the PCA estimator of Chen, Zhu and Heng (ICCV 2015).

All overlapping r x r patches of a channel are the samples; the eigenvalues of their covariance
are sorted, and the noise variance is the mean of the largest set of smallest eigenvalues whose
mean equals their median (as many eigenvalues above the mean as below it): for a natural image
the smallest principal directions hold noise only.
"""

from __future__ import annotations

import numpy as np

PATCH = 8


def _patch_eigenvalues(channel: np.ndarray, patch: int) -> np.ndarray:
    """Ascending eigenvalues of the covariance of all overlapping ``patch`` x ``patch`` patches."""
    windows = np.lib.stride_tricks.sliding_window_view(channel, (patch, patch))
    x = windows.reshape(-1, patch * patch).astype(np.float64)
    x -= x.mean(axis=0)
    cov = (x.T @ x) / x.shape[0]
    return np.linalg.eigvalsh(cov)


def _tail_variance(eig: np.ndarray) -> float:
    """Chen et al.: the mean of the longest prefix of ascending eigenvalues whose mean is its median."""
    eig = np.clip(eig, 0.0, None)
    for i in range(eig.size, 0, -1):
        tail = eig[:i]
        tau = tail.mean()
        if np.count_nonzero(tail > tau) == np.count_nonzero(tail < tau):
            return float(tau)
    return float(eig[0])


def estimate_sigma_channel(channel: np.ndarray, patch: int = PATCH) -> float:
    """AWGN sigma (0-255 scale) of one HxW channel with values on the [0, 1] scale."""
    channel = np.asarray(channel)
    if min(channel.shape) < patch:
        raise ValueError(f"image of shape {channel.shape} is smaller than the {patch}x{patch} patch")
    return float(np.sqrt(_tail_variance(_patch_eigenvalues(channel, patch))) * 255.0)


def estimate_sigma(image: np.ndarray) -> float:
    """Blind AWGN level on the 0-255 scale of a [0, 1] HxW or HxWxC image (channels: mean estimate)."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {image.shape}")
    return float(np.mean([estimate_sigma_channel(image[..., c]) for c in range(image.shape[2])]))
