"""The inference engine: any size and channel layout, tiling independence, blind sigma, batching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from imdenoise.denoisers.catalog import load
from imdenoise.denoisers.network import AutoDenoiser, InferenceOptions, ModelDenoiser
from imdenoise.errors import ImDenoiseError, UnknownMethodError
from imdenoise.models.registry import build_model


@pytest.fixture(scope="module")
def tiny() -> ModelDenoiser:
    torch.manual_seed(0)
    return ModelDenoiser(build_model("unet", widths=(8, 16, 32)), "tiny", options=InferenceOptions(tile=None))


@pytest.mark.parametrize("shape", [(37, 53), (1, 1), (1, 300), (300, 1), (37, 53, 1), (20, 33, 3), (20, 33, 4), (9, 9, 2)])
def test_any_shape_in_same_shape_out(tiny: ModelDenoiser, shape: tuple) -> None:
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    y = tiny.denoise(x, sigma=25)
    assert y.shape == x.shape and y.dtype == np.float32
    if len(shape) == 3 and shape[-1] in (2, 4):  # alpha passes through unchanged
        assert np.array_equal(y[..., -1], x[..., -1])


def test_gray_model_on_color_image_is_per_channel(tiny: ModelDenoiser) -> None:
    x = np.random.default_rng(1).random((24, 40, 3), dtype=np.float32)
    y = tiny.denoise(x, sigma=10)
    for c in range(3):
        assert np.allclose(y[..., c], tiny.denoise(x[..., c], sigma=10), atol=1e-5)


def test_color_model_refuses_gray_input() -> None:
    color = ModelDenoiser(build_model("unet", widths=(8, 16), in_channels=3), "c")
    with pytest.raises(ImDenoiseError, match="expects 3-channel"):
        color.denoise(np.zeros((8, 8), np.float32), sigma=5)


def test_auto_picks_by_channels(tiny: ModelDenoiser) -> None:
    color = ModelDenoiser(build_model("unet", widths=(8, 16), in_channels=3), "c")
    auto = AutoDenoiser(tiny, color)
    assert auto.pick(np.zeros((4, 4), np.float32)) is tiny
    assert auto.pick(np.zeros((4, 4, 3), np.float32)) is color
    assert auto.pick(np.zeros((4, 4, 4), np.float32)) is color


def test_tile_size_does_not_change_result(tiny: ModelDenoiser, gray_image: np.ndarray) -> None:
    x = gray_image + np.random.default_rng(2).normal(0, 25 / 255, gray_image.shape).astype(np.float32)
    ref = tiny.denoise(x, sigma=25)
    for tile in (128, 200):
        tiled = ModelDenoiser(tiny.model, "t", options=InferenceOptions(tile=tile, overlap=32)).denoise(x, sigma=25)
        mse = float(np.mean((tiled - ref) ** 2))
        assert 10 * np.log10(1 / max(mse, 1e-20)) > 50  # tiled output within 50 dB of untiled


def test_batch_equals_single(tiny: ModelDenoiser) -> None:
    rng = np.random.default_rng(3)
    imgs = [rng.random((16, 24), dtype=np.float32) for _ in range(3)] + [rng.random((8, 8), dtype=np.float32)]
    batch = tiny.denoise_batch(imgs, sigma=15)
    for img, out in zip(imgs, batch):
        assert np.allclose(out, tiny.denoise(img, sigma=15), atol=1e-5)


def test_bad_inputs(tiny: ModelDenoiser) -> None:
    with pytest.raises(ImDenoiseError, match="NaN"):
        tiny.denoise(np.full((8, 8), np.nan, np.float32), sigma=5)
    with pytest.raises(ImDenoiseError, match="shape"):
        tiny.denoise(np.zeros((2, 8, 8, 1), np.float32), sigma=5)
    with pytest.raises(ImDenoiseError, match="sigma"):
        tiny.denoise(np.zeros((8, 8), np.float32), sigma=-3)
    with pytest.raises(UnknownMethodError, match="unknown model or method"):
        load("no-such-model")


def test_load_by_path_and_classical(tmp_path: Path) -> None:
    from imdenoise.models.weights import ModelCard, save_weights

    model = build_model("unet", widths=(8, 16))
    path = save_weights(tmp_path / "m.safetensors", model,
                        ModelCard(name="m", architecture="unet", config={"widths": [8, 16]}, in_channels=1))
    d = load(path)
    assert d.name == "m"
    assert load("median").denoise(np.zeros((8, 8), np.float32), sigma=10).shape == (8, 8)


def _photo_scene(h: int = 128, w: int = 160) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([0.3 + 0.4 * x / w, 0.5 + 0.2 * np.sin(y / 9), 0.6 - 0.3 * y / h], axis=-1).astype(np.float32)


def test_default_sends_photos_to_the_photo_model_and_white_noise_to_the_awgn_models(tiny: ModelDenoiser) -> None:
    from imdenoise.arrays import rgb_to_gray
    from imdenoise.noise.models import parse_noise

    torch.manual_seed(0)
    color = ModelDenoiser(build_model("unet", widths=(8, 16), in_channels=3), "color")
    photo = ModelDenoiser(build_model("unet-blind", widths=(8, 16), in_channels=3), "photo")
    auto = AutoDenoiser(tiny, color, photo)
    clean = _photo_scene()
    rng = np.random.default_rng(0)
    white = clean + 25 / 255 * rng.standard_normal(clean.shape).astype(np.float32)
    plan = auto.plan(white)
    assert plan.model is color and plan.sigma == pytest.approx(25, rel=0.1) and "white" in plan.describe()
    camera, _, _ = parse_noise("camera:shot=0.002,quality=92,chroma=3,luma=1.5").sample_pair(clean, rng)
    plan = auto.plan(camera)
    assert plan.model is photo and plan.sigma is None and plan.estimate.photo_like and "white" not in plan.describe()
    assert auto.plan(camera, sigma=10).model is color  # a given sigma means white noise of that level
    # a gray photo goes through the colour photo model as gray RGB and comes back gray, alpha kept
    gray = np.concatenate([camera[..., :1], np.full(camera.shape[:2] + (1,), 0.7, np.float32)], axis=-1)
    assert auto.plan(gray).model is photo
    out = auto.denoise(gray)
    assert out.shape == gray.shape and np.array_equal(out[..., 1], gray[..., 1])
    expected = rgb_to_gray(photo.denoise(np.repeat(gray[..., :1], 3, axis=-1)))  # the one luma formula
    assert np.allclose(out[..., 0], expected, atol=1e-6)
    assert auto.denoise(camera[..., 0]).shape == camera.shape[:2]


def test_pixel_shuffled_puts_every_pixel_back_in_place() -> None:
    """Each of the 4 sub-images (odd sizes: 4x5, 4x4, 3x5, 3x4) is denoised once and lands where it came
    from; gray stays 2-D; an image under 4 pixels a side is denoised whole."""
    from imdenoise.denoisers.shuffle import pixel_shuffled

    seen: list[tuple[int, ...]] = []

    def double(sub: np.ndarray, sigma: float | None) -> np.ndarray:
        seen.append(sub.shape)
        assert sigma == 5.0 and (sub.flags.c_contiguous or sub.shape == (3, 3, 3))
        return sub * 2

    image = np.random.default_rng(0).random((7, 9, 3)).astype(np.float32)
    assert np.array_equal(pixel_shuffled(double, image, 5.0), image * 2)
    assert sorted(seen) == [(3, 4, 3), (3, 5, 3), (4, 4, 3), (4, 5, 3)]
    assert np.array_equal(pixel_shuffled(double, image[..., 0], 5.0), image[..., 0] * 2)
    seen.clear()
    assert pixel_shuffled(double, image[:3, :3], 5.0).shape == (3, 3, 3) and seen == [(3, 3, 3)]


def test_pixel_shuffled_batches_and_tensors_match_the_training_split() -> None:
    """The batched (NHWC) and tensor (NCHW) forms of pixel_shuffled visit the same sub-images as
    `to_sub_images` makes in training, and `from_sub_images` puts them back."""
    from imdenoise.denoisers.shuffle import from_sub_images, pixel_shuffled, to_sub_images

    batch = torch.rand(2, 3, 8, 6)
    subs = to_sub_images(batch, 2)
    assert subs.shape == (8, 3, 4, 3) and torch.equal(from_sub_images(subs, 2), batch)
    assert torch.equal(subs[1], batch[0, :, 0::2, 1::2]) and torch.equal(subs[6], batch[1, :, 1::2, 0::2])
    seen: list[torch.Tensor] = []

    def record(sub, sigma):
        seen.append(sub)
        return sub + 1

    assert torch.equal(pixel_shuffled(record, batch, None, 2, axis=2), batch + 1)
    assert all(torch.equal(seen[k], subs[k::4]) for k in range(4))
    nhwc = batch.permute(0, 2, 3, 1).numpy()
    assert np.array_equal(pixel_shuffled(lambda a, s: a * 3, nhwc, None, 2, axis=1), nhwc * 3)


def test_a_model_trained_on_sub_images_runs_on_them(tiny: ModelDenoiser) -> None:
    """A card with shuffle 2 makes the network run on the pixel-shuffled sub-images at the whole image's
    level, alone and as `default`'s photo model (not shuffled twice)."""
    from imdenoise.denoisers.shuffle import pixel_shuffled
    from imdenoise.models.weights import ModelCard
    from imdenoise.noise.estimation import BlindLevel
    from imdenoise.noise.models import parse_noise

    torch.manual_seed(3)
    net = build_model("unet", widths=(8, 16), in_channels=3)
    rule = BlindLevel(stride=2, scale=1.25, offset=5.0)
    card = ModelCard(name="photo", architecture="unet", in_channels=3, blind_level=rule, shuffle=2)
    opts = InferenceOptions(tile=None)
    photo = ModelDenoiser(net, "photo", card=card, options=opts)
    plain = ModelDenoiser(net, "plain", card=card.model_copy(update={"shuffle": 1}), options=opts)
    camera, _, _ = parse_noise("camera:shot=0.002,quality=92,chroma=3,luma=1.5").sample_pair(
        _photo_scene(), np.random.default_rng(1))
    level = rule.of(camera)
    expected = pixel_shuffled(plain.denoise, camera, level)
    assert np.allclose(photo.denoise(camera), expected, atol=1e-6)
    assert not np.allclose(plain.denoise(camera, level), expected, atol=1e-3)  # the shuffle changes the result
    color = ModelDenoiser(build_model("unet", widths=(8, 16), in_channels=3), "color", options=opts)
    auto = AutoDenoiser(tiny, color, photo)
    plan = auto.plan(camera)
    assert plan.model is photo and plan.shuffle == 2 and "pixel-shuffled" in plan.describe()
    assert np.allclose(auto.run(plan, camera), expected, atol=1e-6)


def test_the_photo_rule_hands_loud_photos_to_the_photo_model(tiny: ModelDenoiser) -> None:
    """With a `photo` model, a photo whose stride-2 estimate reaches `photo_from` goes to it; a fainter one
    stays on `color`'s sub-images at the rule's level; white noise and a given sigma never go to it."""
    from imdenoise.denoisers.network import PhotoRule
    from imdenoise.noise.estimation import estimate_noise
    from imdenoise.noise.models import parse_noise

    color = ModelDenoiser(build_model("unet", widths=(8, 16), in_channels=3), "color")
    photo = ModelDenoiser(build_model("unet-blind", widths=(8, 16), in_channels=3), "photo")
    camera, _, _ = parse_noise("camera:shot=0.002,quality=92,chroma=3,luma=1.5").sample_pair(
        _photo_scene(), np.random.default_rng(1))
    coarse = estimate_noise(camera).sigma_coarse
    loud = AutoDenoiser(tiny, color, photo, photo_rule=PhotoRule(offset=5.0, scale=1.25, photo_from=coarse - 0.01))
    faint = AutoDenoiser(tiny, color, photo, photo_rule=PhotoRule(offset=5.0, scale=1.25, photo_from=coarse + 0.01))
    plan = loud.plan(camera)
    assert plan.model is photo and plan.sigma is None and plan.shuffle == 1
    assert np.array_equal(loud.run(plan, camera), photo.denoise(camera))
    plan = faint.plan(camera)
    assert plan.model is color and plan.shuffle == 2 and plan.sigma == pytest.approx(5.0 + 1.25 * coarse)
    white = np.clip(_photo_scene() + np.random.default_rng(2).normal(0, 25 / 255, (128, 160, 3)), 0, 1).astype(np.float32)
    assert loud.plan(white).model is color and loud.plan(camera, sigma=10).model is color
    gray = camera[..., 0]  # a gray photo stays on `gray`'s sub-images: photo learned a colour camera's noise
    rule = PhotoRule(offset=5.0, scale=1.25, photo_from=estimate_noise(gray).sigma_coarse - 0.01)
    plan = AutoDenoiser(tiny, color, photo, photo_rule=rule).plan(gray)
    assert plan.estimate.photo_like and plan.model is tiny and plan.shuffle == 2


def test_default_runs_photos_on_pixel_shuffled_sub_images(tiny: ModelDenoiser) -> None:
    """A photo's plan says shuffle 2 and runs the color model on the sub-images at the rule's level; white
    noise and a given sigma run on the whole image."""
    from imdenoise.denoisers.network import PhotoRule
    from imdenoise.denoisers.shuffle import pixel_shuffled
    from imdenoise.noise.models import parse_noise

    color = ModelDenoiser(build_model("unet", widths=(8, 16), in_channels=3), "color", options=InferenceOptions(tile=None))
    rule = PhotoRule(offset=5.0, scale=2.0)
    auto = AutoDenoiser(tiny, color, photo_rule=rule)
    camera, _, _ = parse_noise("camera:shot=0.002,quality=92,chroma=3,luma=1.5").sample_pair(
        _photo_scene(), np.random.default_rng(1))
    plan = auto.plan(camera)
    assert plan.model is color and plan.shuffle == 2 and "pixel-shuffled" in plan.describe()
    assert plan.sigma == pytest.approx(5.0 + 2.0 * plan.estimate.sigma_coarse) == pytest.approx(rule.of(camera))
    assert np.array_equal(auto.run(plan, camera), pixel_shuffled(color.denoise, camera, plan.sigma))
    white = np.clip(_photo_scene() + np.random.default_rng(2).normal(0, 25 / 255, (128, 160, 3)), 0, 1).astype(np.float32)
    assert auto.plan(white).shuffle == 1 and auto.plan(camera, sigma=10).shuffle == 1


def test_a_conditioned_photo_model_gets_its_cards_blind_level_rule(tiny: ModelDenoiser) -> None:
    """A photo model trained on `data.blind_level` levels is given that rule's level, blind: by
    `default` (reusing its estimate), by itself, and not the white-noise estimate clamped."""
    from imdenoise.models.weights import ModelCard
    from imdenoise.noise.estimation import BlindLevel, estimate_noise, estimate_sigma
    from imdenoise.noise.models import parse_noise

    rule = BlindLevel(stride=2, scale=3.0, offset=6.0, max_level=40.0)
    card = ModelCard(name="photo", architecture="unet", in_channels=3, noise_range=(0.0, 40.0), blind_level=rule)
    color = ModelDenoiser(build_model("unet", widths=(8, 16), in_channels=3), "color")
    photo = ModelDenoiser(build_model("unet", widths=(8, 16), in_channels=3), "photo", card=card)
    camera, _, _ = parse_noise("camera:shot=0.002,quality=92,chroma=3,luma=1.5").sample_pair(
        _photo_scene(), np.random.default_rng(1))
    expected = 6.0 + 3.0 * estimate_noise(camera).sigma_coarse  # stride 2: the screen's coarse estimate
    assert expected < 40 and abs(expected - estimate_sigma(camera)) > 1  # the rule differs from the AWGN estimate
    assert rule.of(camera) == pytest.approx(expected) == rule.of(camera, estimate_noise(camera))
    assert BlindLevel(stride=3, scale=3.0, offset=6.0).of(camera) == pytest.approx(6.0 + 3.0 * estimate_sigma(camera[::3, ::3]))
    assert photo.sigma_for(camera, None) == pytest.approx(expected)
    plan = AutoDenoiser(tiny, color, photo).plan(camera)
    assert plan.model is photo and plan.sigma == pytest.approx(expected) and "denoised at" in plan.describe()
    assert np.allclose(photo.denoise(camera), photo.denoise(camera, sigma=expected), atol=1e-6)
    assert BlindLevel(scale=20, offset=100).of(camera) == 55.0  # clamped to max_level
    loud = BlindLevel(stride=1, scale=2.0, offset=0.0)
    assert loud.of(camera) == pytest.approx(2 * estimate_sigma(camera))
    tiny_image = camera[:30, :40]  # too small for a stride-2 sub-image estimate: estimated whole
    assert rule.of(tiny_image) == pytest.approx(6.0 + 3.0 * estimate_sigma(tiny_image))


def test_integer_arrays_are_refused_and_read_images_accepted(tiny: ModelDenoiser, tmp_path: Path) -> None:
    """A uint8 array would be denoised as if 0-255 were 0-1 (nonsense out): a clear error instead; the
    result of read_image can be passed as it is."""
    from PIL import Image

    from imdenoise.io.images import read_image

    u8 = np.full((16, 16), 128, np.uint8)
    with pytest.raises(ImDenoiseError, match="uint8 array: divide it by 255"):
        tiny.denoise(u8, sigma=25)
    Image.fromarray(u8).save(tmp_path / "a.png")
    out = tiny.denoise(read_image(tmp_path / "a.png"), sigma=25)
    assert out.shape == (16, 16, 1) and out.dtype == np.float32
    auto = AutoDenoiser(tiny, tiny)
    assert auto.denoise(read_image(tmp_path / "a.png"), sigma=25).shape == (16, 16, 1)


def test_load_refuses_unknown_options() -> None:
    with pytest.raises(ImDenoiseError, match="unknown option tiles; choose from device"):
        load("median", tiles=256)
