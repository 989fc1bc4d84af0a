"""Noise models: statistics, seeding, spec parsing, the benchmark noise and the sigma estimator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imdenoise.errors import ImDenoiseError, NoiseSpecError
from imdenoise.noise.models import (
    GaussianNoise,
    MixedNoise,
    PoissonNoise,
    SaltPepperNoise,
    SpeckleNoise,
    benchmark_noisy,
    benchmark_rng,
    estimate_sigma,
    parse_noise,
    parse_noise_levels,
)

FLAT = np.full((256, 256, 1), 0.5, dtype=np.float32)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_gaussian_statistics_and_unclipped() -> None:
    noisy = parse_noise("gaussian:25")(FLAT, rng())
    assert noisy.dtype == np.float32 and noisy.shape == FLAT.shape
    d = noisy - FLAT
    assert abs(d.mean()) < 0.002
    assert d.std() * 255 == pytest.approx(25, rel=0.02)
    # values are not clipped:
    dark = parse_noise("gaussian:50")(np.zeros((64, 64, 1), np.float32), rng())
    assert dark.min() < 0


def test_poisson_statistics() -> None:
    peak = 30.0
    noisy = parse_noise("poisson:30")(FLAT, rng())
    assert noisy.mean() == pytest.approx(0.5, abs=0.003)
    assert noisy.var() == pytest.approx(0.5 / peak, rel=0.03)  # Var[P(x*peak)/peak] = x / peak


def test_speckle_statistics() -> None:
    noisy = parse_noise("speckle:0.1")(FLAT, rng())
    assert noisy.mean() == pytest.approx(0.5, abs=0.003)
    assert noisy.var() == pytest.approx(0.25 * 0.1, rel=0.03)  # Var[x * n] = x^2 var


def test_salt_pepper_fraction_and_ratio() -> None:
    noisy = parse_noise("saltpepper:0.1:0.3")(FLAT, rng())
    salt, pepper = np.mean(noisy == 1.0), np.mean(noisy == 0.0)
    assert salt + pepper == pytest.approx(0.1, abs=0.005)
    assert salt / (salt + pepper) == pytest.approx(0.3, abs=0.03)
    assert np.all((noisy == 0.5) | (noisy == 0) | (noisy == 1))


def test_mixed_defaults_and_overrides() -> None:
    m = parse_noise("mixed")
    assert isinstance(m, MixedNoise) and m.sigma == 10 and m.amount == 0.01
    m2 = parse_noise("mixed:sigma=5,peak=50,amount=0.02")
    assert (m2.sigma, m2.peak, m2.amount, m2.salt) == (5, 50, 0.02, 0.5)
    noisy = m2(FLAT, rng())
    assert np.mean((noisy == 0) | (noisy == 1)) == pytest.approx(0.02, abs=0.004)
    off = parse_noise("mixed:sigma=0,peak=0,amount=0")(FLAT, rng())
    assert np.array_equal(off, FLAT)


@pytest.mark.parametrize("spec", ["gaussian:25", "gaussian:0-55", "poisson:30", "saltpepper:0.05",
                                  "speckle:0.1", "mixed"])
def test_seeding(spec: str, color_image: np.ndarray) -> None:
    model = parse_noise(spec)
    a, b, c = model(color_image, rng(1)), model(color_image, rng(1)), model(color_image, rng(2))
    assert a.dtype == np.float32 and a.shape == color_image.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sigma_range_sampling() -> None:
    model = parse_noise("gaussian:0-55")
    assert model.sigma_range == (0, 55) and model.nominal_sigma is None
    sigmas = []
    for seed in range(40):
        noisy, sigma = model.sample(FLAT, rng(seed))
        assert 0 <= sigma <= 55
        assert np.std(noisy - FLAT) * 255 == pytest.approx(sigma, rel=0.05, abs=0.1)
        sigmas.append(sigma)
    assert min(sigmas) < 15 and max(sigmas) > 40
    fixed = parse_noise("gaussian:25")
    assert fixed.nominal_sigma == 25 and fixed.sigma_range == (25, 25)
    assert fixed.sample(FLAT, rng())[1] == 25


def test_ranges_work_for_every_kind() -> None:
    _, level = parse_noise("poisson:peak=10-100").sample(FLAT, rng())
    assert level > 0  # realized RMS level on the 0-255 scale


@pytest.mark.parametrize("spec,cls", [("gaussian:sigma=25", GaussianNoise), ("awgn:25", GaussianNoise),
                                      ("poisson:peak=30", PoissonNoise), ("saltpepper:amount=0.05,salt=0.2", SaltPepperNoise),
                                      ("SPECKLE:var=0.1", SpeckleNoise), ("mixed:10:50", MixedNoise)])
def test_named_and_positional_forms(spec: str, cls: type) -> None:
    model = parse_noise(spec)
    assert isinstance(model, cls)
    assert parse_noise(model.spec) == model  # canonical spec round-trips


@pytest.mark.parametrize("spec", ["", "gaussian", "gaussian:abc", "gaussian:-5", "gaussian:300", "gaussian:50-10",
                                  "poisson:0", "saltpepper:1.5", "saltpepper:0.1:0.5:3", "speckle:nan",
                                  "mixed:zz=1", "mixed:sigma=1,sigma=2", "laplace:3", "gaussian:sigma=1,2"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(NoiseSpecError) as err:
        parse_noise(spec)
    assert isinstance(err.value, ImDenoiseError)
    assert repr(spec) in str(err.value) or spec == ""


def test_error_names_valid_forms() -> None:
    with pytest.raises(NoiseSpecError, match=r"gaussian:<sigma>.*saltpepper:<amount>\[:<salt>\]"):
        parse_noise("gauss:x")


def test_parse_noise_levels() -> None:
    assert [m.nominal_sigma for m in parse_noise_levels("gaussian:15,25,50")] == [15, 25, 50]
    assert parse_noise_levels("mixed:sigma=5,peak=20") == [parse_noise("mixed:sigma=5,peak=20")]
    model = parse_noise("poisson:30")
    assert parse_noise(model) is model  # a model passes through


@pytest.mark.parametrize("sigma", [25, 25.0, 15])
def test_benchmark_noisy_matches_protocol(sigma: float, gray_image: np.ndarray) -> None:
    i = 3
    r = np.random.default_rng(1000 * int(sigma) + i)
    expected = gray_image + (int(sigma) / 255) * r.standard_normal(gray_image.shape, dtype=np.float32)
    got = benchmark_noisy(gray_image, sigma, i)
    assert got.dtype == np.float32
    assert np.array_equal(got, expected)
    # the gaussian model fed with benchmark_rng is the same noise
    assert np.array_equal(parse_noise(f"gaussian:{sigma}")(gray_image, benchmark_rng(sigma, i)), expected)


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32)[..., None] / 255.0


@pytest.mark.parametrize("sigma", [15, 25, 50])
def test_estimator_accuracy(sigma: int, datasets_dir: Path) -> None:
    paths = [datasets_dir / "test" / "set12" / n for n in ("01.png", "05.png")] + \
            [datasets_dir / "test" / "bsd68" / n for n in ("test002.png", "test010.png")]
    errors = [estimate_sigma(benchmark_noisy(_load(p), sigma, i)) - sigma for i, p in enumerate(paths)]
    assert np.mean(np.abs(errors)) < 1.5, errors


def test_estimator_color_and_2d(color_image: np.ndarray, gray_image: np.ndarray) -> None:
    assert estimate_sigma(benchmark_noisy(color_image, 25, 0)) == pytest.approx(25, abs=2.5)
    noisy = benchmark_noisy(gray_image, 25, 0)
    assert estimate_sigma(noisy[..., 0]) == estimate_sigma(noisy)


def test_estimator_small_and_flat_images() -> None:
    small = benchmark_noisy(np.full((16, 16, 1), 0.5, np.float32), 25, 0)
    assert estimate_sigma(small) == pytest.approx(25, abs=5)  # smaller patches, still sane
    assert estimate_sigma(benchmark_noisy(np.full((6, 9, 1), 0.5, np.float32), 25, 0)) > 0
    assert estimate_sigma(np.full((32, 32), 0.3, np.float32)) == 0.0
    with pytest.raises(ImDenoiseError, match="give sigma"):
        estimate_sigma(np.zeros((2, 40), np.float32))


# ---------------------------------------------------------------- camera noise (issue 23)

def _scene(h: int = 96, w: int = 128) -> np.ndarray:
    """A smooth colour scene with edges: gradients and a disc (a stand-in for a photo)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    disc = ((y - h / 2) ** 2 + (x - w / 2) ** 2 < (h / 3) ** 2).astype(np.float32)
    return np.stack([0.2 + 0.6 * x / w, 0.3 + 0.4 * disc, 0.7 - 0.5 * y / h], axis=-1).astype(np.float32)


def _lag1(noise: np.ndarray) -> float:
    n = noise - noise.mean(axis=(0, 1))
    return float(np.mean(n[:, 1:] * n[:, :-1]) / np.mean(n * n))


def test_camera_noise_is_seeded_in_range_and_keeps_shape() -> None:
    from imdenoise.noise.models import CameraNoise

    model = parse_noise("camera")
    assert isinstance(model, CameraNoise) and parse_noise(model.spec) == model
    clean = _scene(37, 51)  # odd sizes: the Bayer mosaic needs even ones internally
    a, ref_a, level_a = model.sample_pair(clean, rng(3))
    b, ref_b, level_b = model.sample_pair(clean, rng(3))
    assert np.array_equal(a, b) and np.array_equal(ref_a, ref_b) and level_a == level_b
    assert a.shape == clean.shape and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    gray, ref, _ = model.sample_pair(clean[..., :1], rng(0))
    assert gray.shape == (37, 51, 1) and ref.shape == (37, 51, 1)


def test_camera_reference_is_the_scene_and_noise_grows_with_shot() -> None:
    from imdenoise.metrics import psnr

    smooth = _scene()
    smooth[..., 1] = 0.5  # no edges: demosaicing is then exact, and the colour path must be the identity
    quiet = "camera:shot={},quality=0,sharpen=0,chroma=0,luma=0"
    _, ref, _ = parse_noise(quiet.format(0.0001)).sample_pair(smooth, rng(0))
    assert psnr(smooth[4:-4, 4:-4], ref[4:-4, 4:-4], data_range=1.0) > 45
    clean = _scene()
    _, ref, low = parse_noise(quiet.format(0.0001)).sample_pair(clean, rng(0))
    _, _, high = parse_noise(quiet.format(0.01)).sample_pair(clean, rng(0))
    assert psnr(clean, ref, data_range=1.0) > 30  # the disc's edges: demosaicing's own error
    assert 0 < low < high  # realized noise RMS (0-255) rises with the shot-noise gain
    assert high > 10


def test_camera_noise_reduction_correlates_the_noise() -> None:
    clean = _scene()
    plain = parse_noise("camera:shot=0.002,quality=0,sharpen=0,chroma=0,luma=0")
    reduced = parse_noise("camera:shot=0.002,quality=0,sharpen=0,chroma=3,luma=1.5")
    n0, r0, _ = plain.sample_pair(clean, rng(1))
    n1, r1, _ = reduced.sample_pair(clean, rng(1))
    assert _lag1(n1 - r1) > _lag1(n0 - r0) + 0.2
    white = parse_noise("gaussian:10")(clean, rng(1)) - clean
    assert abs(_lag1(white)) < 0.05


def test_camera_reference_options_change_the_target_only() -> None:
    """refsharpen and refblur shape the training target; the noisy photo is the same shot."""
    clean = _scene()
    base = "camera:shot=0.002,quality=0,sharpen=1,chroma=0,luma=0"
    noisy, ref, _ = parse_noise(base).sample_pair(clean, rng(4))
    n_soft, soft, _ = parse_noise(base + ",refsharpen=0,refblur=1").sample_pair(clean, rng(4))
    assert np.array_equal(noisy, n_soft)
    grad = lambda a: float(np.mean(np.abs(np.diff(a, axis=1))))  # noqa: E731 - edge energy
    assert grad(soft) < 0.8 * grad(ref)
    with pytest.raises(ImDenoiseError, match="refblur"):
        parse_noise("camera:refblur=5")


def test_camera_spec_errors_name_the_parameter() -> None:
    with pytest.raises(NoiseSpecError, match="quality"):
        parse_noise("camera:quality=120")
    with pytest.raises(NoiseSpecError, match="no parameter 'iso'"):
        parse_noise("camera:iso=800")


def test_estimate_noise_tells_camera_noise_from_white_noise() -> None:
    from imdenoise.noise.estimation import estimate_noise

    clean = _scene(192, 256)
    white = estimate_noise(parse_noise("gaussian:15")(clean, rng(0)))
    assert not white.correlated and white.level == pytest.approx(15, rel=0.1)
    noisy, ref, level = parse_noise("camera:shot=0.002,quality=95,chroma=3,luma=1.5").sample_pair(clean, rng(0))
    photo = estimate_noise(noisy)
    assert photo.correlated
    # the pixel-scale estimate misses most of it; the stride-2 level (over the flattest regions, where this
    # signal-dependent noise is weakest) reads it more than twice as high, still under its RMS
    assert photo.sigma < 0.2 * level and 2 * photo.fine < photo.level < level


def test_screen_reads_white_noise_alike_at_both_scales() -> None:
    """`screen`'s fine estimate reads white noise as the full estimate does, and its coarse one (every
    second pixel, the same regions) reads it the same: no white noise is taken for a photo's."""
    from imdenoise.errors import ImDenoiseError
    from imdenoise.noise.estimation import screen

    clean = _scene(192, 256)
    for sigma in (5, 15, 40):
        noisy = parse_noise(f"gaussian:{sigma}")(clean, rng(sigma))
        fine, coarse = screen(noisy)
        assert fine == pytest.approx(estimate_sigma(noisy), rel=0.05) and fine == pytest.approx(sigma, rel=0.1)
        assert coarse == pytest.approx(fine, rel=0.15)
    small = noisy[:40, :40]  # no room for a sub-image of 3 patches: the whole estimate, twice
    assert screen(small) == (estimate_sigma(small), estimate_sigma(small))
    noisy[5, 5, 0] = np.nan
    with pytest.raises(ImDenoiseError, match="NaN"):
        screen(noisy)


def test_an_ambiguous_screen_is_decided_on_the_full_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `screen` ratio between AMBIGUOUS and CORRELATION_RATIO is decided again at full cost: white noise
    stays white, camera noise is correlated, whatever the screen read."""
    import imdenoise.noise.estimation as est

    clean = _scene(192, 256)
    white = parse_noise("gaussian:15")(clean, rng(0))
    camera, _, _ = parse_noise("camera:shot=0.002,quality=95,chroma=3,luma=1.5").sample_pair(clean, rng(0))
    monkeypatch.setattr(est, "screen", lambda image: (8.0, 8.0 * 1.3))  # ambiguous for both
    assert not est.estimate_noise(white).correlated and est.estimate_noise(camera).correlated
    monkeypatch.setattr(est, "screen", lambda image: (8.0, 8.0 * 1.1))  # clearly white: no second look
    assert not est.estimate_noise(camera).correlated
    full = est.estimate_sigma
    calls: list[int] = []
    monkeypatch.setattr(est, "estimate_sigma", lambda image, stride=1: calls.append(stride) or full(image, stride))
    monkeypatch.setattr(est, "screen", lambda image: (1.0, 1.3))  # faint: a photo, named without a second look
    faint = est.estimate_noise(camera)
    assert faint.photo_like and faint.kind == "faint" and faint.level == 1.3 and calls == []


def test_estimate_survives_8bit_clipping() -> None:
    """Clipped 8-bit files: dark and bright regions lose their noise, the estimate must not follow."""
    y, x = np.mgrid[0:256, 0:256].astype(np.float32)
    clean = np.clip(np.where(x < 96, 0.02, np.where(x > 160, 0.98, 0.5)) + 0.0 * y, 0, 1)[..., None]
    noisy = clean + 25 / 255 * rng(0).standard_normal(clean.shape).astype(np.float32)
    eight_bit = np.round(np.clip(noisy, 0, 1) * 255) / 255
    assert estimate_sigma(eight_bit) == pytest.approx(25, rel=0.06)
    assert estimate_sigma(noisy) == pytest.approx(25, rel=0.06)
    from imdenoise.noise.estimation import screen

    assert screen(eight_bit)[0] == pytest.approx(25, rel=0.06)
