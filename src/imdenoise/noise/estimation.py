"""Blind AWGN level estimation: the PCA estimator of Chen, Zhu and Heng (ICCV 2015).

All overlapping r x r patches of a channel are the samples; the eigenvalues of their covariance
are sorted, and the noise variance is the mean of the largest set of smallest eigenvalues whose
mean equals their median (as many eigenvalues above the mean as below it): for a natural image
the smallest principal directions hold noise only.

Texture leaks into those directions and biases the plain estimator upwards at low noise levels.
So the channel is cut into regions of about 48x48 pixels, each region gets its own estimate, and
the final estimate pools the patch statistics of the flattest quarter of the regions (lowest
regional estimates) before applying the same rule (measured in docs/noise.md).

Two things break the plain estimate on real files, and are handled here:
- clipping: an 8-bit file clips noise at 0 and 255, so dark and bright regions look flat and win the
  flattest-quarter vote. Patches holding a sample at exactly 0 or 1 are left out (float data, which
  is not clipped, almost never holds these exact values).
- correlated noise: demosaicing, in-camera noise reduction and JPEG make a photo's noise smooth at
  the pixel scale, where the estimator looks. On every ``stride``-th pixel (pixel-shuffled
  sub-images) it is closer to white again; white noise reads the same at every stride.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from imdenoise.arrays import all_finite
from imdenoise.errors import ImDenoiseError

PATCH = 8
REGION = 48
KEEP = 0.25


def _patch_moments(region: np.ndarray, patch: int, mean: float = 0.0, exclude_clipped: bool = False
                   ) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, sum, sum of outer products) of all overlapping ``patch`` x ``patch`` patches of
    ``region - mean`` (those holding a sample at exactly 0 or 1 left out if ``exclude_clipped``).
    Only this region is converted to float64: memory is bounded by the region, not the image."""
    if exclude_clipped:
        clipped = (region == 0.0) | (region == 1.0)  # samples at the clip level itself
    region = region.astype(np.float64) - mean
    windows = np.lib.stride_tricks.sliding_window_view(region, (patch, patch))
    x = windows.reshape(-1, patch * patch)
    if exclude_clipped and clipped.any():
        hit = np.lib.stride_tricks.sliding_window_view(clipped, (patch, patch)).any(axis=(-2, -1))
        x = x[~hit.reshape(-1)]
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
    channel = np.asarray(channel)
    if channel.dtype.kind != "f":
        channel = channel.astype(np.float64)
    h, w = channel.shape
    while patch > 3 and (h - patch + 1) * (w - patch + 1) < 10 * patch * patch:
        patch -= 1  # small images: smaller patches, so that samples outnumber dimensions
    if min(h, w) < patch:
        raise ImDenoiseError(f"cannot estimate the noise level of a {channel.shape[1]}x{channel.shape[0]} "
                             "image (at least 3x3 pixels needed); give sigma explicitly")
    if not all_finite(channel):  # eigvalsh would fail with LinAlgError
        raise ImDenoiseError("cannot estimate the noise level of an image with NaN or infinite values")
    return _estimate(channel, float(np.mean(channel, dtype=np.float64)), patch, region, keep)


def _estimate(channel: np.ndarray, mean: float, patch: int, region: int, keep: float) -> float:
    """The regional PCA estimate of ``channel - mean``, patches touching a clipped sample left out.

    Two passes: each region's estimate first (keeping one number per region), then the patch moments
    of the flattest quarter again, pooled. Keeping every region's 64x64 moment matrix instead took
    32 kB a region: 0.5 GB per channel of a 36-megapixel image."""
    ys, xs = _edges(channel.shape[0], region), _edges(channel.shape[1], region)
    boxes = [(slice(y0, y1), slice(x0, x1)) for y0, y1 in zip(ys[:-1], ys[1:]) for x0, x1 in zip(xs[:-1], xs[1:])]
    exclude, enough, variances = True, [], []
    for i, b in enumerate(boxes):  # regions with enough unclipped patches, and their estimates
        moments = _patch_moments(channel[b], patch, mean, exclude_clipped=True)
        if moments[0] >= 2 * patch * patch:
            enough.append(i)
            variances.append(_variance(*moments))
    if not enough:
        exclude, enough = False, list(range(len(boxes)))
        variances = [_variance(*_patch_moments(channel[b], patch, mean)) for b in boxes] if len(boxes) > 1 else [0.0]
    chosen = enough
    if len(enough) > 1:
        chosen = [enough[i] for i in np.argsort(variances)[: max(1, int(round(keep * len(enough))))]]
    count: int = 0
    total: Any = 0.0  # then the (patch,) and (patch, patch) sums of the chosen regions
    outer: Any = 0.0
    for i in chosen:
        n, t, o = _patch_moments(channel[boxes[i]], patch, mean, exclude)
        count, total, outer = count + n, total + t, outer + o
    return float(np.sqrt(_variance(count, total, outer)) * 255.0)


def estimate_sigma(image: np.ndarray, stride: int = 1) -> float:
    """Blind AWGN level on the 0-255 scale of a [0, 1] HxW or HxWxC image (channels: mean estimate).

    ``stride`` > 1 estimates on the pixel-shuffled sub-images (every stride-th pixel; the mean over
    the sub-images, each big enough): the level of spatially correlated noise."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {image.shape}")
    if stride > 1 and min(image.shape[:2]) // stride >= 3 * PATCH:
        subs = [image[y::stride, x::stride] for y in range(stride) for x in range(stride)]
        return float(np.mean([estimate_sigma(s) for s in subs]))
    return float(np.mean([estimate_sigma_channel(image[..., c]) for c in range(image.shape[2])]))


CORRELATION_RATIO = 1.5  # sigma at stride 2 over sigma at stride 1: white noise reads 1.0-1.5 (docs/noise.md)
FAINT = 2.0  # white-noise estimates below this (0-255) are a photo's or a clean image's, not AWGN's


class NoiseEstimate:
    """What a blind run knows of an image's noise: its white-noise level and whether it is correlated.

    The stride-2 estimate is made only when something needs it: a faint white-noise estimate already
    makes the image photo-like, so routing a typical photo costs one estimate, not two."""

    def __init__(self, image: np.ndarray, sigma: float | None = None, sigma_coarse: float | None = None) -> None:
        self._image: np.ndarray | None = image
        self.sigma = estimate_sigma(image) if sigma is None else float(sigma)  # pixel scale: the AWGN level
        self._coarse = sigma_coarse

    @property
    def sigma_coarse(self) -> float:
        """The estimate on every second pixel: closer to the level of correlated noise."""
        if self._coarse is None:
            self._coarse = estimate_sigma(cast(np.ndarray, self._image), stride=2)
        return self._coarse

    def release(self) -> None:
        """Drop the reference to the image, so a caller done with it can free it; only estimates already
        made (by `describe`, `photo_like`) can be asked for afterwards."""
        self._image = None

    @property
    def correlated(self) -> bool:
        """Spatially correlated noise (camera photo, JPEG) rather than white noise."""
        return self.sigma_coarse > CORRELATION_RATIO * self.sigma

    @property
    def photo_like(self) -> bool:
        """Noise of a camera photo (correlated), or too faint to be white Gaussian noise worth the name."""
        return self.sigma < FAINT or self.correlated

    @property
    def level(self) -> float:
        """The level to report: the coarse estimate for a photo's noise, else the white-noise level."""
        return max(self.sigma_coarse, self.sigma) if self.photo_like else self.sigma

    @property
    def kind(self) -> str:
        return "correlated (camera-like)" if self.correlated else ("faint" if self.photo_like else "white")

    def __repr__(self) -> str:
        return f"NoiseEstimate(sigma={self.sigma:.3f}, sigma_coarse={self._coarse})"


def estimate_noise(image: np.ndarray) -> NoiseEstimate:
    """Estimate at stride 1, and at stride 2 (pixel-shuffled) when the decision needs it: white noise
    reads the same at both, the correlated noise of real photos much higher at stride 2 (docs/noise.md
    has the measurements)."""
    return NoiseEstimate(np.asarray(image, dtype=np.float32))


class BlindLevel(BaseModel):
    """How a noise-conditioned model that is blind to the user gets its level: ``offset + scale *`` the
    estimate at ``stride`` (2: the pixel-shuffled estimate, which follows correlated camera noise).
    The same rule feeds the network in training (``data.blind_level``) and at inference (its card), so
    the level input means what the network learned, whatever the estimator's bias."""

    model_config = ConfigDict(extra="forbid")

    stride: int = Field(2, ge=1, le=4, description="estimate on every stride-th pixel (1: the white-noise estimate)")
    scale: float = Field(1.0, gt=0, le=20)
    offset: float = Field(0.0, ge=0, le=100)
    max_level: float = Field(55.0, gt=0, le=255, description="levels above are clamped, in training as at inference")

    def of(self, image: np.ndarray, estimate: NoiseEstimate | None = None) -> float:
        """The level (0-255 scale) for `image`. At stride > 1 the estimate is made on the first
        pixel-shuffled sub-image only (a 1/stride^2 share of the work of `estimate_sigma(stride=...)`,
        which averages all of them); images too small for it are estimated whole. A stride-1
        `estimate` already made is reused."""
        image = np.asarray(image, dtype=np.float32)
        if self.stride == 1 or min(image.shape[:2]) // self.stride < 3 * PATCH:
            raw = estimate.sigma if estimate is not None else estimate_sigma(image)
        else:
            raw = estimate_sigma(image[:: self.stride, :: self.stride])
        return float(min(self.offset + self.scale * raw, self.max_level))
