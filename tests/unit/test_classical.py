"""Classical baselines: one interface, shapes kept, PSNR raised on a real image."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from imdenoise.denoisers.base import Denoiser
from imdenoise.denoisers.classical import CLASSICAL_METHODS, get_classical
from imdenoise.errors import ConfigError, ImDenoiseError, UnknownMethodError
from imdenoise.metrics import psnr_uint8
from imdenoise.noise.models import benchmark_noisy, parse_noise

EXPECTED = {"mean", "median", "gaussian", "wavelet", "nlm", "tv", "bm3d"}
MIN_GAIN = {"nlm": 3.0, "bm3d": 3.0}  # dB over the noisy input at sigma 25; others: any gain


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


@pytest.fixture(scope="module")
def crop(gray_image: np.ndarray) -> np.ndarray:
    """A 128x128 crop of BSD68 test001 (or the synthetic pattern), HxWx1."""
    h, w = gray_image.shape[:2]
    return np.ascontiguousarray(gray_image[h // 2 - 64: h // 2 + 64, w // 2 - 64: w // 2 + 64])


def test_registry() -> None:
    assert set(CLASSICAL_METHODS) == EXPECTED
    for name in EXPECTED:
        d = get_classical(name)
        assert isinstance(d, Denoiser) and d.name == name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_raises_psnr_at_sigma_25(name: str, crop: np.ndarray) -> None:
    noisy = benchmark_noisy(crop, 25, 0)
    out = get_classical(name).denoise(noisy, sigma=25)
    assert out.dtype == np.float32 and out.shape == crop.shape
    gain = psnr_uint8(_u8(crop), _u8(out)) - psnr_uint8(_u8(crop), _u8(noisy))
    assert gain > MIN_GAIN.get(name, 0.5), f"{name}: {gain:.2f} dB"


@pytest.mark.parametrize("name", ["mean", "wavelet", "nlm", "tv"])
def test_color_and_2d_shapes(name: str, color_image: np.ndarray) -> None:
    clean = color_image[:64, :64]
    noisy = benchmark_noisy(clean, 25, 1)
    d = get_classical(name)
    out = d.denoise(noisy, sigma=25)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert psnr_uint8(_u8(clean), _u8(out)) > psnr_uint8(_u8(clean), _u8(noisy))
    out2d = d.denoise(noisy[..., 0], sigma=25)
    assert out2d.shape == (64, 64) and out2d.dtype == np.float32


def test_bm3d_color(color_image: np.ndarray) -> None:
    clean = color_image[:64, :64]
    noisy = benchmark_noisy(clean, 25, 2)
    out = get_classical("bm3d").denoise(noisy, sigma=25)
    assert out.shape == clean.shape
    assert psnr_uint8(_u8(clean), _u8(out)) > psnr_uint8(_u8(clean), _u8(noisy)) + 3


def test_blind_uses_estimated_sigma(crop: np.ndarray) -> None:
    noisy = benchmark_noisy(crop, 25, 0)
    d = get_classical("nlm")
    blind = d.denoise(noisy)
    assert psnr_uint8(_u8(crop), _u8(blind)) > psnr_uint8(_u8(crop), _u8(noisy)) + 3


def test_median_beats_gaussian_on_salt_and_pepper(crop: np.ndarray) -> None:
    noisy = parse_noise("saltpepper:0.1")(crop, np.random.default_rng(0))
    median = get_classical("median", size=3).denoise(noisy, sigma=25)
    gauss = get_classical("gaussian").denoise(noisy, sigma=25)
    clean = _u8(crop)
    assert psnr_uint8(clean, _u8(median)) > psnr_uint8(clean, _u8(gauss)) + 3


def test_errors(crop: np.ndarray) -> None:
    with pytest.raises(UnknownMethodError, match="valid names: mean, median"):
        get_classical("bilateral")
    with pytest.raises(ConfigError, match="valid options"):
        get_classical("nlm", strength=3)
    with pytest.raises(ImDenoiseError, match="sigma"):
        get_classical("mean").denoise(crop, sigma=-1)
    assert np.array_equal(get_classical("tv").denoise(crop, sigma=0), crop)


def test_bm3d_missing_package(monkeypatch: pytest.MonkeyPatch, crop: np.ndarray) -> None:
    real_import = builtins.__import__

    def fake_import(name: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "bm3d":
            raise ImportError("no bm3d")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImDenoiseError, match=r"pip install 'imdenoise\[bm3d\]'"):
        get_classical("bm3d").denoise(crop, sigma=25)


TINY_SHAPES = [(1, 1), (1, 1, 3), (1, 37), (37, 1), (2, 2), (2, 2, 3), (4, 4), (8, 8), (8, 8, 3), (1, 7, 3),
               (8, 40), (15, 15, 3)]

_TINY_SCRIPT = """
import sys, warnings
import numpy as np
from imdenoise.denoisers.classical import CLASSICAL_METHODS, get_classical
warnings.simplefilter("error")  # e.g. pywt's "all coefficients will experience boundary effects"
rng = np.random.default_rng(0)
for name in sorted(CLASSICAL_METHODS):
    for shape in SHAPES:
        for sigma in (10, 60):
            img = rng.random(shape).astype(np.float32)
            out = get_classical(name).denoise(img, sigma=sigma)
            assert out.shape == img.shape and out.dtype == np.float32, (name, shape, out.shape)
            assert np.all(np.isfinite(out)), (name, shape)
            print(name, shape, sigma, "ok", flush=True)
print("ALL OK")
"""


def test_every_method_is_sound_on_tiny_and_thin_images() -> None:
    """1x1, 1xN, Nx1, 2x2, 4x4, 8x8 (gray and color) through every classical method, in a subprocess:
    before the fix bm3d raised ValueError below 8x8 and segfaulted at 8x8, which would kill pytest."""
    import subprocess
    import sys

    pytest.importorskip("bm3d")
    script = _TINY_SCRIPT.replace("SHAPES", repr(TINY_SHAPES))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    last = (proc.stdout.strip().splitlines() or ["(nothing)"])[-1]
    assert proc.returncode == 0 and "ALL OK" in proc.stdout, (
        f"rc {proc.returncode} after {last!r}: {proc.stderr[-1500:]}")


def test_bm3d_tiny_image_is_cropped_back_and_denoised() -> None:
    """The padded bm3d output is the input's size, and still removes noise from a flat patch."""
    pytest.importorskip("bm3d")
    rng = np.random.default_rng(5)
    clean = np.full((5, 6, 1), 0.5, np.float32)
    noisy = (clean + rng.normal(0, 25 / 255, clean.shape)).astype(np.float32)
    out = get_classical("bm3d").denoise(noisy, sigma=25)
    assert out.shape == clean.shape
    assert np.abs(out - clean).mean() < np.abs(noisy - clean).mean()


def test_bm3d_gray_stored_as_rgb_or_flat_is_not_nan(crop: np.ndarray) -> None:
    """bm3d_rgb divides by each YCbCr channel's range: gray-as-RGB (constant chroma) came back all NaN."""
    pytest.importorskip("bm3d")
    clean = np.repeat(crop[:48, :48], 3, axis=-1)
    noisy = benchmark_noisy(clean[..., :1], 25, 3).repeat(3, axis=-1)
    out = get_classical("bm3d").denoise(noisy, sigma=25)
    assert np.all(np.isfinite(out)) and out.shape == clean.shape
    assert psnr_uint8(_u8(clean), _u8(out)) > psnr_uint8(_u8(clean), _u8(noisy)) + 3
    flat = np.full((20, 20, 3), 0.4, np.float32)
    flat[..., 0] = 0.6  # constant luma and chroma: nothing to denoise
    assert np.allclose(get_classical("bm3d").denoise(flat, sigma=25), flat, atol=1e-6)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_vanishing_sigma_gives_finite_output(name: str) -> None:
    """A level far under a gray level (1e-216: its square underflows) must not turn into NaN; it was
    wavelet's BayesShrink on small colour images (found by the property tests)."""
    image = np.random.default_rng(0).random((5, 7, 3)).astype(np.float32)
    for sigma in (1e-216, 1e-30):
        out = get_classical(name).denoise(image, sigma=sigma)
        assert np.isfinite(out).all() and out.shape == image.shape
