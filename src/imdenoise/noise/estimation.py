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

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from imdenoise.arrays import all_finite
from imdenoise.errors import ImDenoiseError

PATCH = 8
REGION = 48
KEEP = 0.25
FINE_STEP = 2  # `screen` pools every second full-scale patch position: thousands of patches still


def _patch_moments(region: np.ndarray, patch: int, mean: float = 0.0, exclude_clipped: bool = False,
                   step: int = 1) -> tuple[int, np.ndarray, np.ndarray]:
    """(count, sum, sum of outer products) of the overlapping ``patch`` x ``patch`` patches of
    ``region - mean`` at every ``step``-th position (those holding a sample at exactly 0 or 1 left out if
    ``exclude_clipped``). Only this region is converted to float64: memory is bounded by the region."""
    if exclude_clipped:
        clipped = (region == 0.0) | (region == 1.0)  # samples at the clip level itself
    region = region.astype(np.float64) - mean
    windows = np.lib.stride_tricks.sliding_window_view(region, (patch, patch))[::step, ::step]
    x = windows.reshape(-1, patch * patch)
    if exclude_clipped and clipped.any():
        hit = np.lib.stride_tricks.sliding_window_view(clipped, (patch, patch))[::step, ::step].any(axis=(-2, -1))
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
    patch = _patch_for(h, w, patch)
    if min(h, w) < patch:
        raise ImDenoiseError(f"cannot estimate the noise level of a {channel.shape[1]}x{channel.shape[0]} "
                             "image (at least 3x3 pixels needed); give sigma explicitly")
    if not all_finite(channel):  # eigvalsh would fail with LinAlgError
        raise ImDenoiseError("cannot estimate the noise level of an image with NaN or infinite values")
    return _estimate(channel, float(np.mean(channel, dtype=np.float64)), patch, region, keep)


def _patch_for(h: int, w: int, patch: int = PATCH) -> int:
    """Small images get smaller patches, so that samples outnumber dimensions."""
    while patch > 3 and (h - patch + 1) * (w - patch + 1) < 10 * patch * patch:
        patch -= 1
    return patch


def _estimate(channel: np.ndarray, mean: float, patch: int, region: int, keep: float) -> float:
    """The regional PCA estimate of ``channel - mean``, patches touching a clipped sample left out."""
    boxes, chosen, exclude = _flattest(channel, mean, patch, region, keep)
    return _pooled_sigma([channel[boxes[i]] for i in chosen], mean, patch, exclude)


Box = tuple[slice, slice]


def _flattest(channel: np.ndarray, mean: float, patch: int, region: int, keep: float
              ) -> tuple[list[Box], list[int], bool]:
    """The first pass: the ``region`` boxes of the channel, the flattest ``keep`` share of them (lowest
    regional estimates, one number kept per region) and whether clipped patches are left out.
    Keeping every region's 64x64 moment matrix instead took 32 kB a region: 0.5 GB per channel of a
    36-megapixel image."""
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
    return boxes, chosen, exclude


def _pooled_sigma(regions: list[np.ndarray], mean: float, patch: int, exclude: bool, step: int = 1) -> float:
    """The second pass: sigma (0-255) from the moments of the patches at every `step`-th position of
    `regions`, pooled (nan if none is left)."""
    count: int = 0
    total: Any = 0.0  # then the (patch,) and (patch, patch) sums of the regions
    outer: Any = 0.0
    for region in regions:
        n, t, o = _patch_moments(region, patch, mean, exclude, step)
        count, total, outer = count + n, total + t, outer + o
    return float(np.sqrt(_variance(count, total, outer)) * 255.0) if count else float("nan")


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
AMBIGUOUS = 1.2  # `screen` ratios from here to CORRELATION_RATIO are decided again on the full estimates


def screen(image: np.ndarray) -> tuple[float, float]:
    """(fine, coarse) on the 0-255 scale over the same flat regions, for telling white noise from a photo's
    at half the cost of `estimate_sigma` (mean over channels).

    The regions (48 pixels) are ranked once, on the every-second-pixel sub-image: ``coarse`` pools the
    flattest quarter's patches there, where a photo's correlated noise reads much higher than at the
    pixel scale and white noise the same; ``fine`` pools the same regions at full resolution. Ranked on
    the sub-image, the selection biases ``coarse`` low, never ``fine``: white noise is not taken for a
    photo's. Images under 48 pixels a side: `estimate_sigma` twice."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if min(image.shape[:2]) // 2 < 3 * PATCH:
        sigma = estimate_sigma(image)
        return sigma, sigma
    if not all_finite(image):
        raise ImDenoiseError("cannot estimate the noise level of an image with NaN or infinite values")
    fine, coarse = [], []
    for c in range(image.shape[2]):
        channel = image[..., c]
        mean = float(np.mean(channel, dtype=np.float64))
        sub = channel[::2, ::2]
        patch = _patch_for(*sub.shape)
        boxes, chosen, exclude = _flattest(sub, mean, patch, REGION // 2, KEEP)
        subs = [sub[boxes[i]] for i in chosen]
        full = [channel[2 * y.start: 2 * y.stop, 2 * x.start: 2 * x.stop] for y, x in (boxes[i] for i in chosen)]
        f, g = _pooled_sigma(full, mean, patch, exclude, FINE_STEP), _pooled_sigma(subs, mean, patch, exclude)
        if not np.isfinite(f):  # every full-scale patch there holds a clipped sample: keep them all
            f = _pooled_sigma(full, mean, patch, False, FINE_STEP)
        fine.append(f)
        coarse.append(g)
    return float(np.mean(fine)), float(np.mean(coarse))


class NoiseEstimate:
    """What a blind run knows of an image's noise: whether it is white or a photo's (correlated, or faint),
    and its level.

    The decision reads `screen` (half of one full estimate's work); the full white-noise estimate
    (`sigma`) is made only when something needs it: the level of white noise, not a photo's."""

    def __init__(self, image: np.ndarray, sigma: float | None = None, sigma_coarse: float | None = None) -> None:
        self._image: np.ndarray | None = image
        self._sigma = None if sigma is None else float(sigma)
        self._coarse = sigma_coarse
        self._fine: float | None = None
        self._correlated: bool | None = None
        if sigma is None and sigma_coarse is None:
            self._fine, self._coarse = screen(image)
            if min(np.shape(image)[:2]) // 2 < 3 * PATCH:  # `screen` made the whole estimate
                self._sigma = self._fine

    @property
    def sigma(self) -> float:
        """The white-noise (AWGN) level: `estimate_sigma` of the whole image."""
        if self._sigma is None:
            self._sigma = estimate_sigma(self._held())
        return self._sigma

    @property
    def fine(self) -> float:
        """The pixel-scale estimate the decision compares with `sigma_coarse`."""
        return self.sigma if self._fine is None else self._fine

    @property
    def sigma_coarse(self) -> float:
        """The estimate on every second pixel (over `screen`'s flat regions): closer to the level of
        correlated noise."""
        if self._coarse is None:
            self._fine, self._coarse = screen(self._held())
        return self._coarse

    def _held(self) -> np.ndarray:
        if self._image is None:
            raise RuntimeError("NoiseEstimate.release() was called: the image is no longer held")
        return self._image

    def release(self) -> None:
        """Drop the reference to the image, so a caller done with it can free it; only estimates already
        made (by `describe`, `photo_like`) can be asked for afterwards."""
        self._image = None

    @property
    def correlated(self) -> bool:
        """Spatially correlated noise (camera photo, JPEG) rather than white noise. `screen` decides,
        except between AMBIGUOUS and CORRELATION_RATIO, where its one ranking is too noisy (white noise
        at sigma 15 reads up to 1.35, an old noisy photo 1.32): there the full estimates decide,
        stride 2 (all four sub-images) against stride 1, at the cost of two full estimates."""
        if self._correlated is None:
            ratio = self.sigma_coarse / max(self.fine, 1e-12)
            if self._fine is not None and AMBIGUOUS < ratio <= CORRELATION_RATIO:
                ratio = estimate_sigma(self._held(), stride=2) / max(self.sigma, 1e-12)
            self._correlated = bool(ratio > CORRELATION_RATIO)
        return self._correlated

    @property
    def photo_like(self) -> bool:
        """Noise of a camera photo (correlated), or too faint to be white Gaussian noise worth the name."""
        return self.fine < FAINT or self.correlated

    @property
    def level(self) -> float:
        """The level to report: the coarse estimate for a photo's noise, else the white-noise level."""
        return max(self.sigma_coarse, self.fine) if self.photo_like else self.sigma

    @property
    def kind(self) -> str:
        """How `describe` names the noise. A faint image is a photo whatever its ratio, so its label reads
        `screen`'s ratio alone: naming it never costs the second look."""
        if self.fine < FAINT:
            return "correlated (camera-like)" if self.sigma_coarse > CORRELATION_RATIO * self.fine else "faint"
        return "correlated (camera-like)" if self.correlated else "white"

    def __repr__(self) -> str:
        return f"NoiseEstimate(fine={self._fine}, sigma={self._sigma}, sigma_coarse={self._coarse})"


def estimate_noise(image: np.ndarray) -> NoiseEstimate:
    """Estimates at stride 1 and at stride 2 (pixel-shuffled), see `screen`: white noise reads the same
    at both, the correlated noise of real photos much higher at stride 2 (docs/noise.md has the
    measurements)."""
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
        """The level (0-255 scale) for `image`. Stride 1: the white-noise estimate; stride 2: `screen`'s
        coarse estimate (`NoiseEstimate.sigma_coarse`, what `default` reads anyway); stride 3-4: the
        estimate on the first pixel-shuffled sub-image. An `estimate` already made is reused; images too
        small for a sub-image estimate are estimated whole."""
        image = np.asarray(image, dtype=np.float32)
        if self.stride == 2:
            raw = (estimate if estimate is not None else estimate_noise(image)).sigma_coarse
        elif self.stride == 1 or min(image.shape[:2]) // self.stride < 3 * PATCH:
            raw = estimate.sigma if estimate is not None else estimate_sigma(image)
        else:
            raw = estimate_sigma(image[:: self.stride, :: self.stride])
        return float(min(self.offset + self.scale * raw, self.max_level))
