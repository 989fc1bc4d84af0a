"""Every registered network runs on odd sizes; configs are validated; the U-Net family's options work."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from imdenoise.denoisers.tiling import run_padded
from imdenoise.errors import UnknownMethodError
from imdenoise.models.registry import ARCHITECTURES, build_model, get_architecture
from imdenoise.models.unet import UNet, UNetConfig


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
@pytest.mark.parametrize("channels", [1, 3])
def test_forward_on_odd_sizes_keeps_shape(name: str, channels: int) -> None:
    model = build_model(name, in_channels=channels).eval()
    for h, w in [(37, 53), (1, 9), (8, 1)]:
        x = torch.rand(2, channels, h, w)
        sigma = torch.full((2,), 25 / 255)
        with torch.inference_mode():
            y = run_padded(lambda t, s=sigma: model(t, s), x, model.size_multiple)
        assert y.shape == x.shape
        assert torch.isfinite(y).all()


@pytest.mark.parametrize(
    "overrides",
    [
        dict(down="maxpool", up="bilinear"),
        dict(up="pixelshuffle", skip="concat", block="plain", norm="batch"),
        dict(skip="none", residual=False, output_activation="sigmoid", activation="gelu"),
        dict(widths=(16, 32, 64, 128), norm="group", activation="silu", pixel_unshuffle=1),
    ],
)
def test_unet_family_options(overrides: dict) -> None:
    model = UNet(**{"widths": (16, 32), **overrides}).eval()
    x = torch.rand(1, 1, 32, 48)
    with torch.inference_mode():
        y = model(x, torch.zeros(1))
    assert y.shape == x.shape
    if overrides.get("output_activation") == "sigmoid":
        assert (y >= 0).all() and (y <= 1).all()


def test_residual_learning_predicts_noise() -> None:
    """With the last layer zeroed a residual U-Net is the identity: it outputs input minus predicted noise."""
    model = UNet(widths=(8, 16), residual=True).eval()
    torch.nn.init.zeros_(model.tail.weight)
    torch.nn.init.zeros_(model.tail.bias)
    x = torch.rand(1, 1, 16, 16)
    assert torch.equal(model(x), x)


def test_noise_map_changes_output() -> None:
    model = UNet(widths=(8, 16), noise_map=True).eval()
    x = torch.rand(1, 1, 16, 16)
    with torch.inference_mode():
        a, b = model(x, torch.tensor([0.0])), model(x, torch.tensor([0.2]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="noise-conditioned"):
        model(x)


def test_bad_configs_are_named() -> None:
    with pytest.raises(ValidationError, match="widths"):
        UNetConfig(widths=())
    with pytest.raises(ValidationError, match="unknown_key"):
        UNetConfig(unknown_key=1)
    with pytest.raises(ValidationError, match="output activation"):
        UNetConfig(residual=True, output_activation="sigmoid")
    with pytest.raises(UnknownMethodError, match="choose from"):
        get_architecture("resnet-9000")


def test_shipped_models_are_efficient() -> None:
    """The shipped models (their own architecture config) cost under 40% of DnCNN-17's FLOPs per pixel,
    and the registry's `unet` under a quarter."""
    from torch.utils.flop_counter import FlopCounterMode

    from imdenoise.models.weights import load_network

    def flops(model: torch.nn.Module) -> int:
        channels = model.in_channels
        with FlopCounterMode(display=False) as fc, torch.inference_mode():
            model(torch.rand(1, channels, 64, 64), torch.full((1,), 0.1))
        return fc.get_total_flops()

    dncnn = flops(build_model("dncnn"))
    assert flops(build_model("unet")) < 0.25 * dncnn
    from imdenoise.denoisers.catalog import available_methods

    for name in [n for n in ("gray", "color", "photo") if n in available_methods()]:
        model, _ = load_network(name)
        assert flops(model) < 0.40 * flops(build_model("dncnn", in_channels=model.in_channels))
