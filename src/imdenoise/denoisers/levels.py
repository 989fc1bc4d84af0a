"""The noise levels of one denoising job, for any method of the catalogue: what is estimated from the
image, what the method is given and what it denoised with. The web service reports these; the
library decides them (the server has no sigma logic of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imdenoise.errors import ImDenoiseError


@dataclass
class SigmaPlan:
    """The noise levels of one job: estimated from the image (None when the client gave one), handed
    to the method (None: the method decides), and the one the method actually denoised with (None:
    the method does not use a noise level, or does not say)."""

    estimated: float | None
    given: float | None
    used: float | None
    auto: Any = None  # 'default': the library's own plan (model and level), run as planned


def _sigma_range(denoiser: Any) -> tuple[float, float] | None:
    """The (lo, hi) noise range a noise-conditioned network clamps a blind estimate to (the engine's
    `noise_conditioned` and `noise_range`); None if the denoiser is not such a network. (0, 0) marks a
    network that ignores sigma altogether."""
    conditioned = getattr(denoiser, "noise_conditioned", None)
    if conditioned is None or not hasattr(denoiser, "noise_range"):
        return None
    if not conditioned:
        return (0.0, 0.0)
    lo, hi = (float(x) for x in denoiser.noise_range)
    return (lo, hi) if hi > lo else (0.0, 255.0)


def plan_sigma(denoiser: Any, kind: str, data: np.ndarray, sigma: float | None) -> SigmaPlan:
    """What noise level to estimate, to pass and to report for one job.

    - A client's sigma is passed as is and never estimated (a 1xN strip cannot be estimated, and
      need not be when the level is given).
    - Blind, classical: the estimate is passed (the filters would estimate it the same way).
    - Blind, shipped network: the estimate clamped to the model's trained range (what the model
      itself would do) is passed, and that clamped level is reported as used.
    - Methods that take no noise level (zero-shot, blind networks): nothing is reported as used; the
      estimate is still shown when it can be made. Custom methods decide for themselves.
    """
    from imdenoise.noise.models import estimate_sigma

    if callable(getattr(denoiser, "plan", None)):  # 'default' picks its model and level itself
        auto = denoiser.plan(data, sigma)
        estimated = auto.estimate.level if auto.estimate is not None else None
        return SigmaPlan(estimated, sigma, auto.sigma, auto)
    rng = _sigma_range(denoiser) if kind in ("model", "custom") else None
    uses_sigma = kind != "zeroshot" and rng != (0.0, 0.0)
    if sigma is not None:
        return SigmaPlan(None, sigma, sigma if uses_sigma else None)
    needs_estimate = kind == "classical" or (rng is not None and uses_sigma)
    try:
        estimated = float(estimate_sigma(data))
    except ImDenoiseError:
        if needs_estimate:
            raise  # e.g. "cannot estimate the noise level of a 1x500 image ...; give sigma explicitly"
        return SigmaPlan(None, None, None)
    if kind == "classical":
        return SigmaPlan(estimated, estimated, estimated)
    if rng is not None and uses_sigma:
        if callable(getattr(denoiser, "sigma_for", None)):  # the model's own rule (clamp, or its card's blind_level)
            from imdenoise.noise.estimation import NoiseEstimate

            used = float(denoiser.sigma_for(data, None, NoiseEstimate(data, sigma=estimated)))
        else:
            used = min(max(estimated, rng[0]), rng[1])
        return SigmaPlan(estimated, used, used)
    return SigmaPlan(estimated, None, None)
