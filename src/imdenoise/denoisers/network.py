"""The inference engine: `load(name_or_path)` -> a Denoiser that cleans arrays of any size.

Channel rules (what is sound for AWGN):
- a gray model on a color image denoises each channel separately (the noise of the channels is
  independent, so each channel is a valid gray input);
- a color model is never run on a replicated gray image: the copies would carry identical noise,
  which a color model was not trained for. `default` therefore picks the gray or color model.
Alpha (a 2nd channel of gray+alpha or a 4th of RGBA) is passed through unchanged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from imdenoise.arrays import checked_sigma, rgb_to_gray
from imdenoise.denoisers.base import Prepared, as_hwc, prepare, split_alpha
from imdenoise.denoisers.ensemble import self_ensemble
from imdenoise.denoisers.options import MIN_TILE, Device, InferenceOptions  # noqa: F401 (re-exported)
from imdenoise.denoisers.shuffle import pixel_shuffled
from imdenoise.denoisers.tiling import run_tiled
from imdenoise.errors import ImDenoiseError
from imdenoise.models.base import DenoisingNet
from imdenoise.noise.estimation import NoiseEstimate, estimate_noise
from imdenoise.precision import autocast

log = logging.getLogger(__name__)

def resolve_device(device: Device) -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then the CPU; an unavailable explicit device is an error."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ImDenoiseError("device 'cuda' requested but CUDA is not available on this machine")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ImDenoiseError("device 'mps' requested but Apple MPS is not available on this machine")
    return torch.device(device)


class NetworkDenoiser:
    """The engine every network runs in (torch or onnxruntime): padding, tiling, sigma estimation,
    channels, alpha. Subclasses set the attributes below and run one (N,H,W,C) batch in `_run`."""

    name: str
    card: Any
    options: InferenceOptions
    channels: int  # the network's input channels (a gray network also denoises each channel of color images)
    size_multiple: int
    noise_conditioned: bool
    noise_range: tuple[float, float]
    precision: str

    @property
    def shuffle(self) -> int:
        """> 1: the network runs on the shuffle x shuffle pixel-shuffled sub-images (its card says so: it
        was trained on them), at the level of the whole image."""
        return int(getattr(self.card, "shuffle", 1) or 1)

    def sigma_for(self, image: np.ndarray, sigma: float | None, estimate: Any = None) -> float:
        """The level handed to the network: the given sigma, else the estimate clamped to the trained range
        (or the card's `blind_level` rule, for a model trained on that rule's levels); `estimate`: a
        `NoiseEstimate` already made for this image."""
        if sigma is not None:
            return checked_sigma(sigma, self.name)
        if not self.noise_conditioned:
            return 0.0
        rule = getattr(self.card, "blind_level", None)
        if rule is not None:
            est = rule.of(image, estimate)
        else:
            from imdenoise.noise.models import estimate_sigma

            est = float(estimate.sigma) if estimate is not None else float(estimate_sigma(image))
        lo, hi = self.noise_range
        return float(min(max(est, lo), hi)) if hi > lo else est

    def _run(self, batch: np.ndarray, sigma: float) -> np.ndarray:
        """(N,H,W,C) float32 -> denoised (N,H,W,C), tiled and padded."""
        raise NotImplementedError

    def _run_whole(self, batch: np.ndarray, sigma: float) -> np.ndarray:
        """`_run`, on the pixel-shuffled sub-images for a network trained on them."""
        if self.shuffle > 1:
            return pixel_shuffled(self._run, batch, sigma, self.shuffle, axis=1)
        return self._run(batch, sigma)

    def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Denoise one float32 HxW or HxWxC image (any size); blind when sigma is None."""
        return self.denoise_batch([image], sigma)[0]

    def denoise_batch(self, images: list[np.ndarray], sigma: float | None = None) -> list[np.ndarray]:
        """Denoise many images; images of equal shape and noise level run as one batch."""
        prepared: list[tuple[Prepared, float]] = []
        for image in images:
            p = prepare(image)
            if p.color.shape[-1] != self.channels and self.channels != 1:
                raise ImDenoiseError(f"model {self.name!r} expects {self.channels}-channel images, got "
                                     f"{p.color.shape[-1]}; use a gray model (or 'default') for gray images")
            prepared.append((p, self.sigma_for(p.color, sigma)))
        results: list[np.ndarray | None] = [None] * len(images)
        groups: dict[tuple, list[int]] = {}
        for i, (p, s) in enumerate(prepared):
            groups.setdefault((p.color.shape, round(s, 4)), []).append(i)
        for (shape, s), idx in groups.items():
            first = prepared[idx[0]][0].color
            if len(idx) == 1 and first.flags.c_contiguous and first.flags.writeable:
                stack = first[None]  # one image: a view, not a second full-size copy (tests/integration/test_memory.py)
            else:
                stack = np.stack([prepared[i][0].color for i in idx])
            if self.channels == 1 and shape[-1] > 1:  # gray model: each channel as its own gray image
                n, h, w, c = stack.shape
                per = stack.transpose(0, 3, 1, 2).reshape(n * c, h, w, 1)
                out = self._run_whole(per, s).reshape(n, c, h, w).transpose(0, 2, 3, 1)
            else:
                out = self._run_whole(stack, s)
            for j, i in enumerate(idx):
                results[i] = prepared[i][0].finish(out[j])
        return [r.astype(np.float32, copy=False) for r in results]  # type: ignore[union-attr]


class ModelDenoiser(NetworkDenoiser):
    """A trained torch network applied to whole images by the engine."""

    def __init__(self, model: DenoisingNet, name: str, card: Any = None, options: InferenceOptions | None = None):
        self.options = options or InferenceOptions()
        self.device = resolve_device(self.options.device)
        if self.options.threads:
            torch.set_num_threads(self.options.threads)
        self.name = name
        self.card = card
        self.model = model.eval().to(self.device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch stubs lack Module.to(memory_format=)
        from imdenoise.precision import resolve_precision

        self.precision = resolve_precision(self.options.precision, self.device)
        self.channels = model.in_channels
        self.size_multiple = model.size_multiple
        self.noise_conditioned = model.noise_conditioned
        self.noise_range = tuple(getattr(card, "noise_range", (0.0, 255.0)) or (0.0, 255.0))
        self._fn = torch.compile(self.model) if self.options.compile else self.model

    def _run(self, batch: np.ndarray, sigma: float) -> np.ndarray:
        """(N,H,W,C) float32 -> denoised (N,H,W,C) through the network, tiled and padded."""
        # NHWC memory seen as NCHW (channels_last strides): no full-size copy; tiles are made contiguous in fn
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).to(self.device)
        s = torch.full((x.shape[0],), sigma / 255.0, device=self.device)
        bf16 = autocast("bf16" if self.precision == "bf16" else "fp32", self.device)

        def fn(t: torch.Tensor) -> torch.Tensor:
            with bf16:
                return self._fn(t.contiguous(memory_format=torch.channels_last), s[: t.shape[0]]).float()

        with torch.inference_mode():
            out = run_tiled(self_ensemble(fn, self.options.ensemble), x, self.size_multiple,
                            self.options.tile, self.options.overlap)
        return out.permute(0, 2, 3, 1).cpu().numpy()


@dataclass(frozen=True)
class Plan:
    """How `default` denoises one image: which model, at which level, and why."""

    model: NetworkDenoiser
    sigma: float | None  # handed to the model (None: the model is blind)
    estimate: Any = None  # the NoiseEstimate of a blind run, else None
    shuffle: int = 1  # > 1: the model runs on the shuffle x shuffle pixel-shuffled sub-images (denoisers/shuffle.py)

    def describe(self) -> str:
        """One line for the user: model, noise kind and level."""
        if self.estimate is None:
            return f"model {self.model.name}, sigma {self.sigma:g} (given)"
        e = self.estimate
        level = f"level {e.level:.1f}" + (f" (pixel-scale estimate {e.fine:.1f})" if e.photo_like else "")
        used = "" if self.sigma is None or abs(self.sigma - e.level) < 0.05 else f", denoised at {self.sigma:.1f}"
        if self.shuffle > 1:
            used += f" on {self.shuffle}x{self.shuffle} pixel-shuffled sub-images"
        return f"model {self.model.name}, {e.kind} noise, {level}{used}"


class AutoDenoiser:
    """`default`: one name for every image and noise.

    Blind, it tells a photo's spatially correlated (or faint) noise from white noise (estimate_noise):
    white noise goes to the gray or color model at the estimated level; photos to the same model at the
    `photo_rule` (its level, on pixel-shuffled sub-images), or, the louder colour ones the rule hands
    over (`PhotoRule.photo_from`; all of them without a rule), to the `photo` model (gray ones as gray RGB,
    read back as gray). A given sigma means white Gaussian noise of that level: the gray or color model
    on the whole image."""

    def __init__(self, gray: NetworkDenoiser, color: NetworkDenoiser, photo: NetworkDenoiser | None = None,
                 name: str = "default", photo_rule: PhotoRule | None = None) -> None:
        self.name, self.gray, self.color, self.photo = name, gray, color, photo
        self.photo_rule = photo_rule

    def pick(self, image: np.ndarray, sigma: float | None = None) -> NetworkDenoiser:
        """The model that suits this image: see :meth:`plan`."""
        return self.plan(image, sigma).model

    def awgn_model(self, image: np.ndarray) -> NetworkDenoiser:
        """The white-noise model of this image's channel count."""
        c = 1 if image.ndim == 2 else image.shape[-1]
        return self.color if c in (3, 4) else self.gray

    def plan(self, image: np.ndarray, sigma: float | None = None) -> Plan:
        """Model and level for one image (estimated once here, not again by the model)."""
        hwc = as_hwc(image)[0]
        awgn = self.awgn_model(hwc)
        if sigma is not None:
            return Plan(awgn, checked_sigma(sigma, self.name))
        color = prepare(image).color
        est = estimate_noise(color)
        rule = self.photo_rule if est.photo_like else None
        if est.photo_like and self.photo is not None and (rule is None or rule.use_photo(est, color.shape[-1])):
            level = self.photo.sigma_for(color, None, est) if self.photo.noise_conditioned else None
            return Plan(self.photo, level, est, self.photo.shuffle)
        level = rule.level(est) if rule is not None else est.sigma
        lo, hi = awgn.noise_range
        return Plan(awgn, float(min(max(level, lo), hi)) if hi > lo else level, est, rule.shuffle if rule else 1)

    def run(self, plan: Plan, image: np.ndarray) -> np.ndarray:
        """Denoise `image` as `plan` says (gray images through a color photo model as gray RGB)."""
        hwc, was_2d = as_hwc(image)
        if plan.model.channels == 3 and hwc.shape[-1] in (1, 2):
            p = Prepared(*split_alpha(hwc), was_2d)
            rgb = plan.model.denoise(np.repeat(p.color, 3, axis=-1), plan.sigma)
            return p.finish(rgb_to_gray(rgb)[..., None])
        if plan.shuffle > 1 and plan.model.shuffle == 1:  # a white-noise model on a photo's sub-images
            return pixel_shuffled(plan.model.denoise, image, plan.sigma, plan.shuffle)
        return plan.model.denoise(image, plan.sigma)

    def denoise(self, image: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """Denoise with the model that suits the image and its noise."""
        return self.run(self.plan(image, sigma), image)


def median_seconds(denoiser: Any, image: np.ndarray, sigma: float | None = 25.0, repeats: int = 3) -> float:
    """Median wall seconds of `denoiser.denoise(image, sigma)` after one untimed warm-up call."""
    import time

    denoiser.denoise(image, sigma)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        denoiser.denoise(image, sigma)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@dataclass(frozen=True)
class PhotoRule:
    """How `default` denoises a photo with a white-noise model: at ``offset + scale x`` the stride-2
    estimate (`NoiseEstimate.sigma_coarse`, which follows a photo's correlated noise), at most
    ``max_level``, on ``shuffle`` x ``shuffle`` pixel-shuffled sub-images, where that noise is close to
    white (denoisers/shuffle.py)."""

    offset: float
    scale: float
    shuffle: int = 2
    max_level: float = 55.0
    photo_from: float = math.inf  # stride-2 estimates at or above it go to the `photo` model instead

    def use_photo(self, estimate: NoiseEstimate, channels: int = 3) -> bool:
        """Whether a photo this loud goes to the `photo` model (where there is one). Colour photos only:
        `photo` learned a colour camera's noise, and leaves a gray scan's grain (RNI6's Vinegar) that
        `gray` on sub-images removes."""
        return channels == 3 and estimate.sigma_coarse >= self.photo_from

    def level(self, estimate: NoiseEstimate) -> float:
        """The level for an image of this estimate (0-255 scale)."""
        return float(min(self.offset + self.scale * estimate.sigma_coarse, self.max_level))

    def of(self, image: np.ndarray) -> float:
        """The level for `image` (float, [0, 1]), estimated here."""
        return self.level(estimate_noise(image))


def photo_rule() -> PhotoRule:
    """`default`'s rule for photos: colour ones from a stride-2 estimate of 4 up, the `photo` model; the rest, `color`
    (or `gray`) at 5 + 1.25 x the stride-2 estimate, on 2x2 pixel-shuffled sub-images. The threshold:
    on Kodak24 crops through the camera model (shot 1e-4 to 1e-2) handing photos from 4 up to `photo`
    scored best; on CBSD68 (not used to pick it) it scores 31.44 dB against 30.54 for the sub-image path
    alone and 31.11 for `photo` alone; no PolyU Canon crop reads 4 (docs/training.md). The level was fitted on the first 22 PolyU Canon crops over a sweep of fixed levels
    4-12; on the other 33 it scores 39.88 dB against 39.89 for the best fixed level (7) and 39.77 for
    `color` at sigma 10 on whole images (docs/training.md, "What `default` does with photos")."""
    return PhotoRule(offset=5.0, scale=1.25, photo_from=4.0)
