"""The contract every name of the catalogue keeps: it loads, denoises odd sizes in gray and color (where
its declared channels allow), and returns float32 of the input's shape, finite, on the [0, 1] scale."""

from __future__ import annotations

import numpy as np
import pytest

from imdenoise.denoisers.base import Denoiser
from imdenoise.denoisers.catalog import available_methods, load

SLOW = {"zeroshot": "trains a network per image", "bm3d": "block matching, seconds per image"}
SHAPES = {"gray": (37, 53), "gray-hw1": (53, 37, 1), "color": (37, 53, 3)}


def _names() -> list:
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in available_methods()]


@pytest.fixture(scope="module")
def loaded() -> dict[str, Denoiser]:
    return {}


@pytest.mark.parametrize("kind", list(SHAPES))
@pytest.mark.parametrize("name", _names())
def test_every_method_keeps_the_contract(name: str, kind: str, loaded: dict[str, Denoiser]) -> None:
    if name not in loaded:
        loaded[name] = load(name)
    denoiser = loaded[name]
    assert isinstance(denoiser, Denoiser) and denoiser.name
    shape = SHAPES[kind]
    channels = shape[2] if len(shape) == 3 else 1
    declared = getattr(denoiser, "channels", None)  # a network's declared input channels (gray nets take any)
    if declared not in (None, 1, channels):
        pytest.skip(f"{name} declares {declared}-channel input")
    rng = np.random.default_rng(37)
    ramp = np.linspace(0.2, 0.8, shape[1], dtype=np.float32)[None].repeat(shape[0], 0)
    clean = ramp if len(shape) == 2 else np.repeat(ramp[..., None], channels, axis=-1)
    noisy = (clean + rng.normal(0, 20 / 255, shape)).astype(np.float32)
    for sigma in (None, 20.0):
        out = denoiser.denoise(noisy, sigma)
        assert out.shape == noisy.shape and out.dtype == np.float32
        assert np.all(np.isfinite(out)) and -0.5 <= out.min() and out.max() <= 1.5, (out.min(), out.max())
