"""The shipped models: real denoising gains on real images, blind and given sigma, tiling-independent."""

from __future__ import annotations

import numpy as np
import pytest

from imdenoise.denoisers.catalog import load
from imdenoise.denoisers.network import InferenceOptions, ModelDenoiser
from imdenoise.metrics import psnr_uint8
from imdenoise.models.weights import SHIPPED_DIR
from imdenoise.noise.models import benchmark_noisy

pytestmark = pytest.mark.skipif(not (SHIPPED_DIR / "gray.safetensors").is_file()
                                or not (SHIPPED_DIR / "color.safetensors").is_file(),
                                reason="shipped weights not present")


def _u8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)


def _gain(denoiser, clean: np.ndarray, sigma: float, blind: bool) -> tuple[float, float]:
    noisy = benchmark_noisy(clean, sigma, 0)
    out = denoiser.denoise(noisy, None if blind else sigma)
    return psnr_uint8(_u8(clean), _u8(noisy)), psnr_uint8(_u8(clean), _u8(out))


# Margins over the noisy input on real crops (measured gains of the shipped models: BSD68 test001,
# a heavily textured image, 3.4 / 5.4 / 8.2 dB; Kodak kodim01 more): about 0.4 dB of room.
@pytest.mark.parametrize("sigma,margin", [(15, 3.0), (25, 5.0), (50, 7.8)])
@pytest.mark.parametrize("blind", [False, True])
def test_gray_model_gain(gray_image: np.ndarray, sigma: float, margin: float, blind: bool) -> None:
    noisy_psnr, psnr = _gain(load("gray"), gray_image[:160, :160], sigma, blind)
    assert psnr > noisy_psnr + margin, (noisy_psnr, psnr)


@pytest.mark.parametrize("sigma,margin", [(15, 6.0), (25, 8.0), (50, 10.0)])
def test_color_model_gain(color_image: np.ndarray, sigma: float, margin: float) -> None:
    noisy_psnr, psnr = _gain(load("color"), color_image[:160, :160], sigma, blind=True)
    assert psnr > noisy_psnr + margin, (noisy_psnr, psnr)


def test_gray_model_beats_wavelet_and_nlm(gray_image: np.ndarray) -> None:
    clean = gray_image[:160, :160]
    _, ours = _gain(load("gray"), clean, 25, blind=False)
    for method in ("wavelet", "nlm"):
        _, theirs = _gain(load(method), clean, 25, blind=False)
        assert ours > theirs + 0.5, (method, ours, theirs)


def test_default_picks_by_channels_and_noise(gray_image: np.ndarray, color_image: np.ndarray) -> None:
    """White noise goes to the gray or color model by channels at its estimate; a given sigma is used as
    is; a clean or faintly noisy image (a photo's case) follows the photo rule: the photo model from a
    stride-2 estimate of 4, else the color model at the rule's level."""
    from imdenoise.denoisers.network import photo_rule

    d = load("default")
    gray, color = benchmark_noisy(gray_image, 25, 0), benchmark_noisy(color_image, 25, 0)
    assert d.pick(gray).name == "gray" and d.pick(color).name == "color"
    assert d.plan(color).sigma == pytest.approx(25, abs=2)
    assert d.pick(gray_image, sigma=5).name == "gray" and d.pick(color_image, sigma=5).name == "color"
    plan = d.plan(color_image)
    assert plan.estimate.photo_like
    if photo_rule().use_photo(plan.estimate):
        assert plan.model.name == "photo" and plan.sigma is None and plan.estimate.sigma_coarse >= 4
    else:
        assert plan.model.name == "color" and plan.sigma == pytest.approx(photo_rule().of(color_image))


def test_tile_size_changes_psnr_by_less_than_0_02_db(gray_image: np.ndarray) -> None:
    """A 321x481 image through tiles of 96 and 160 pixels gives the untiled PSNR within 0.02 dB."""
    gray = load("gray")
    noisy = benchmark_noisy(gray_image, 25, 0)
    ref = psnr_uint8(_u8(gray_image), _u8(ModelDenoiser(gray.model, "g", gray.card, InferenceOptions(tile=None)).denoise(noisy, 25)))
    for tile in (96, 160):
        den = ModelDenoiser(gray.model, "g", gray.card, InferenceOptions(tile=tile, overlap=32))
        psnr = psnr_uint8(_u8(gray_image), _u8(den.denoise(noisy, 25)))
        assert abs(psnr - ref) < 0.02, (tile, psnr, ref)


def test_bf16_inference_costs_little(gray_image: np.ndarray) -> None:
    gray = load("gray")
    bf16 = ModelDenoiser(gray.model, "g", gray.card, InferenceOptions(precision="bf16"))
    noisy = benchmark_noisy(gray_image, 25, 0)
    a = psnr_uint8(_u8(gray_image), _u8(gray.denoise(noisy, 25)))
    b = psnr_uint8(_u8(gray_image), _u8(bf16.denoise(noisy, 25)))
    assert b > a - 0.1, (a, b)


def test_default_cleans_real_camera_photos(datasets_dir) -> None:
    """Real camera noise (PolyU Canon crops, JPEG, the mean of many shots as reference), blind: `default`
    gains over 1.5 dB on each of three crops and over 2 dB on average (measured: 2.6, 2.8, 4.1), where
    `color` blind reads the noise as almost none and gains under 0.5 dB (measured: 0.0-0.1)."""
    from PIL import Image

    folder = datasets_dir / "real" / "polyu-canon"
    names = sorted(p.name for p in folder.glob("*_real.JPG"))[::20]
    if len(names) < 3:
        pytest.skip(f"PolyU Canon crops not found in {folder}")
    d, color = load("default"), load("color")
    gains, color_gains = [], []
    for name in names:
        noisy = np.asarray(Image.open(folder / name).convert("RGB"))
        ref = np.asarray(Image.open(folder / name.replace("_real.", "_mean.")).convert("RGB"))
        x = noisy.astype(np.float32) / 255
        gains.append(psnr_uint8(ref, _u8(d.denoise(x))) - psnr_uint8(ref, noisy))
        color_gains.append(psnr_uint8(ref, _u8(color.denoise(x))) - psnr_uint8(ref, noisy))
    assert min(gains) > 1.5 and np.mean(gains) > 2.0, gains
    assert max(color_gains) < 0.5, color_gains
