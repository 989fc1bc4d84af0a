"""Classical denoisers (mean, median, gaussian, wavelet, nlm, tv, bm3d) behind the Denoiser interface.

Every method takes a float32 HxW or HxWxC image and a noise level ``sigma`` on the 0-255 scale
(None: estimated with ``noise.estimate_sigma``); its parameters are chosen from sigma unless given
as options, e.g. ``get_classical("nlm", h=0.1)``. BM3D needs the optional ``bm3d`` package.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np

from imdenoise.arrays import checked_sigma
from imdenoise.denoisers.base import prepare
from imdenoise.errors import ConfigError, ImDenoiseError, UnknownMethodError

__all__ = ["CLASSICAL_METHODS", "ClassicalDenoiser", "get_classical"]


@dataclass
class ClassicalDenoiser:
    """Base: shape handling, sigma (given or estimated) and parameter choice; subclasses filter."""

    name: ClassVar[str] = ""
    # Smallest height and width the filter is sound on; smaller images are mirrored out to this size
    # (symmetric padding) and cropped back. 1 = no padding needed.
    min_side: ClassVar[int] = 1

    def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Denoised float32 image of the input's shape; sigma on the 0-255 scale, None = estimate."""
        p = prepare(image, self.name)  # NaN would spread through the filter, or break estimation
        hwc = p.color
        if sigma is None:
            from imdenoise.noise.models import estimate_sigma

            sigma = estimate_sigma(hwc)
        sigma = checked_sigma(sigma, self.name)
        if sigma == 0:
            return p.finish(hwc.copy())
        padded, (h, w) = pad_to_min_side(hwc, self.min_side)
        out = np.asarray(self._denoise(padded, float(sigma)), dtype=np.float32).reshape(padded.shape)
        return p.finish(np.ascontiguousarray(out[:h, :w]))

    def _denoise(self, image: np.ndarray, sigma: float) -> np.ndarray:
        raise NotImplementedError


def pad_to_min_side(image: np.ndarray, min_side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(image mirrored at its bottom/right edges to at least min_side x min_side, original (h, w)).

    Symmetric (edge-repeating) padding works for any size, a 1x1 image included; crop the result
    with ``out[:h, :w]``. The image itself is returned when it is big enough.
    """
    h, w = image.shape[:2]
    ph, pw = max(0, min_side - h), max(0, min_side - w)
    if not (ph or pw):
        return image, (h, w)
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (image.ndim - 2)
    return np.pad(image, pad, mode="symmetric"), (h, w)


@dataclass
class MeanFilter(ClassicalDenoiser):
    """Box (uniform) filter per channel; size grows with sigma."""

    size: int | None = None
    name: ClassVar[str] = "mean"

    def _denoise(self, image: np.ndarray, sigma: float) -> np.ndarray:
        from scipy.ndimage import uniform_filter

        k = self.size or (3 if sigma < 30 else 5 if sigma < 45 else 7)
        return uniform_filter(image, size=(k, k, 1), mode="reflect")


@dataclass
class MedianFilter(ClassicalDenoiser):
    """Median filter per channel: the filter for impulse (salt-and-pepper) noise."""

    size: int | None = None
    name: ClassVar[str] = "median"

    def _denoise(self, image: np.ndarray, sigma: float) -> np.ndarray:
        from scipy.ndimage import median_filter

        k = self.size or (3 if sigma < 22 else 5 if sigma < 40 else 7)
        return median_filter(image, size=(k, k, 1), mode="reflect")


@dataclass
class GaussianFilter(ClassicalDenoiser):
    """Gaussian blur per channel, its width growing with sigma."""

    width: float | None = None
    name: ClassVar[str] = "gaussian"

    def _denoise(self, image: np.ndarray, sigma: float) -> np.ndarray:
        from scipy.ndimage import gaussian_filter

        w = self.width or 0.2 + 0.028 * sigma
        return gaussian_filter(image, sigma=(w, w, 0), mode="reflect", truncate=3.0)


@dataclass
class WaveletDenoiser(ClassicalDenoiser):
    """BayesShrink soft thresholding of a wavelet decomposition (scikit-image); color in YCbCr."""

    wavelet: str = "db2"
    levels: int | None = None
    name: ClassVar[str] = "wavelet"
    min_side: ClassVar[int] = 8  # below it pywt warns that every coefficient has boundary effects

    def _denoise(self, image: np.ndarray, sigma: float) -> np.ndarray:
        from skimage.restoration import denoise_wavelet

        color = image.shape[2] == 3
        if sigma < 1e-6:  # under a millionth of a gray level: no noise; BayesShrink's sigma^2 would underflow to NaN
            return image.copy()
        return denoise_wavelet(image, sigma=sigma / 255, wavelet=self.wavelet, mode="soft", method="BayesShrink",
                               wavelet_levels=self.levels, convert2ycbcr=color, rescale_sigma=True,
                               channel_axis=-1)


@dataclass
class NLMeans(ClassicalDenoiser):
    """Non-local means (scikit-image, fast mode) with h, patch size and search distance set by sigma."""

    h: float | None = None  # on the [0, 1] scale; default h_factor * sigma / 255
    h_factor: float | None = None
    patch_size: int | None = None
    patch_distance: int | None = None
    name: ClassVar[str] = "nlm"

    def params(self, sigma: float, channels: int) -> tuple[float, int, int]:
        """(h, patch_size, patch_distance) for a noise level on the 0-255 scale."""
        factor = self.h_factor or 0.6
        h = self.h if self.h is not None else factor * sigma / 255
        patch = self.patch_size or (5 if sigma <= 30 else 7)
        dist = self.patch_distance or (6 if sigma <= 30 else 9)
        return h, patch, dist

    def _denoise(self, image: np.ndarray, sigma: float) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        h, patch, dist = self.params(sigma, image.shape[2])
        return denoise_nl_means(image, h=h, sigma=sigma / 255, patch_size=patch, patch_distance=dist,
                                fast_mode=True, preserve_range=True, channel_axis=-1)


@dataclass
class TVDenoiser(ClassicalDenoiser):
    """Total-variation denoising (Chambolle), weight proportional to sigma."""

    weight: float | None = None  # default weight_factor * sigma / 255
    weight_factor: float = 0.75
    name: ClassVar[str] = "tv"

    def _denoise(self, image: np.ndarray, sigma: float) -> np.ndarray:
        from skimage.restoration import denoise_tv_chambolle

        weight = self.weight if self.weight is not None else self.weight_factor * sigma / 255
        # skimage divides by the weight: a vanishing one (sigma 1e-125) overflows to NaN; 1e-6 is a no-op too
        return denoise_tv_chambolle(image, weight=max(weight, 1e-6), channel_axis=-1)


@dataclass
class BM3DDenoiser(ClassicalDenoiser):
    """BM3D (gray) / CBM3D (color) from the optional ``bm3d`` package (pip install imdenoise[bm3d])."""

    profile: str = "np"
    name: ClassVar[str] = "bm3d"
    # The bm3d package raises ValueError below its 8x8 block and segfaults at exactly 8x8 (gray and
    # color, any sigma; bm3d 4.0.3). Every size from 9x9 to 20x20, strips 9xN and Nx9 and color were
    # run in a subprocess without a crash; 16 keeps a margin. tests/unit/test_classical.py checks the
    # small sizes in a subprocess, so a regression shows as a failed test, not a dead test run.
    min_side: ClassVar[int] = 16

    def _denoise(self, image: np.ndarray, sigma: float) -> np.ndarray:
        try:
            import bm3d
        except ImportError:
            raise ImDenoiseError("the bm3d method needs the optional 'bm3d' package: "
                                 "pip install 'imdenoise[bm3d]'") from None
        c = image.shape[2]
        if c > 1 and all(np.array_equal(image[..., 0], image[..., k]) for k in range(1, c)):
            plane = self._gray(bm3d, image[..., 0], sigma)  # gray stored as RGB: its chroma is constant
            return np.repeat(plane[..., None], c, axis=-1)
        if c == 3:
            # bm3d_rgb scales each YCbCr channel by its range: a constant one gives 0/0 = NaN everywhere
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.asarray(bm3d.bm3d_rgb(image.astype(np.float64), sigma_psd=sigma / 255,
                                               profile=self.profile))
            if np.all(np.isfinite(out)):
                return out
        return np.stack([self._gray(bm3d, image[..., k], sigma) for k in range(c)], axis=-1)

    def _gray(self, bm3d: Any, plane: np.ndarray, sigma: float) -> np.ndarray:
        """One HxW plane through gray BM3D; a constant plane has no noise to remove and is kept."""
        if np.ptp(plane) == 0:
            return plane.astype(np.float64)
        out = bm3d.bm3d(plane.astype(np.float64), sigma_psd=sigma / 255, profile=self.profile)
        return np.asarray(out).reshape(plane.shape)


CLASSICAL_METHODS: dict[str, type[ClassicalDenoiser]] = {
    cls.name: cls for cls in (MeanFilter, MedianFilter, GaussianFilter, WaveletDenoiser, NLMeans,
                              TVDenoiser, BM3DDenoiser)
}


def get_classical(name: str, **options: Any) -> ClassicalDenoiser:
    """A classical Denoiser by name; options override its sigma-derived parameters."""
    key = str(name).strip().lower()
    key = {"nl_means": "nlm", "nlmeans": "nlm", "box": "mean", "uniform": "mean", "cbm3d": "bm3d",
           "bayesshrink": "wavelet", "total_variation": "tv"}.get(key, key)
    if key not in CLASSICAL_METHODS:
        raise UnknownMethodError(f"unknown classical method {name!r}; valid names: {', '.join(CLASSICAL_METHODS)}")
    cls = CLASSICAL_METHODS[key]
    valid = [f.name for f in fields(cls)]
    bad = sorted(set(options) - set(valid))
    if bad:
        raise ConfigError(f"method {key!r} has no option {', '.join(map(repr, bad))}; "
                          f"valid options: {', '.join(valid) or 'none'}")
    return cls(**options)
