"""Per-level block counts and function-preserving growth of a trained U-Net into a deeper or wider one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from imdenoise.errors import ConfigError
from imdenoise.models.grow import load_grown
from imdenoise.models.registry import build_model

SMALL = dict(widths=(8, 16, 32))


def _trained_like(**overrides) -> torch.nn.Module:
    """A small shipped-style U-Net with random (non-zero) weights everywhere, as after training."""
    torch.manual_seed(0)
    model = build_model("unet", in_channels=1, **SMALL, **overrides)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return model.eval()


def test_per_level_block_counts_build_those_stages() -> None:
    model = build_model("unet", in_channels=1, **SMALL, blocks_per_level=(3, 1, 2))
    assert [len(e) for e in model.encoders] == [3, 1] and [len(d) for d in model.decoders] == [3, 1]
    assert len(model.bottleneck) == 2
    with pytest.raises(ValidationError, match="one count per level"):
        build_model("unet", **SMALL, blocks_per_level=(2, 2))
    with pytest.raises(ValidationError, match="1-8"):
        build_model("unet", **SMALL, blocks_per_level=(2, 0, 2))


def test_grown_net_computes_what_the_source_did() -> None:
    source = _trained_like(blocks_per_level=2)
    grown = build_model("unet", in_channels=1, **SMALL, blocks_per_level=(4, 2, 3)).eval()
    added = load_grown(grown, source)
    assert sorted(added) == ["bottleneck.2", "decoders.0.2", "decoders.0.3", "encoders.0.2", "encoders.0.3"]
    x, sigma = torch.rand(2, 1, 32, 48), torch.tensor([0.1, 0.2])
    with torch.no_grad():
        torch.testing.assert_close(grown(x, sigma), source(x, sigma), atol=1e-6, rtol=1e-5)
    # and the new blocks can learn: their first conv is random, only the last one starts at zero
    assert grown.encoders[0][2].body[0].weight.abs().sum() > 0


def test_widened_net_computes_what_the_source_did_and_its_new_channels_learn() -> None:
    source = _trained_like(pixel_unshuffle=2, noise_map=True)
    grown = build_model("unet", in_channels=1, widths=(12, 16, 40), blocks_per_level=(3, 2, 2),
                        pixel_unshuffle=2, noise_map=True).eval()
    assert sorted(load_grown(grown, source)) == ["decoders.0.2", "encoders.0.2"]
    x, sigma = torch.rand(2, 1, 32, 48), torch.tensor([0.1, 0.2])
    with torch.no_grad():
        torch.testing.assert_close(grown(x, sigma), source(x, sigma), atol=1e-6, rtol=1e-5)
    # old channels are copied; new ones draw on the old but feed them through zero weights
    head = grown.head.weight
    torch.testing.assert_close(head[:8], source.head.weight)
    block = grown.encoders[0][0].body[0].weight
    assert block[:8, 8:].abs().sum() == 0 and block[8:, :8].abs().sum() > 0
    up = grown.ups[1].weight  # ConvTranspose2d: (in, out, k, k)
    assert up[32:, :16].abs().sum() == 0 and up[:32, :16].abs().sum() > 0
    # training reaches the zero weights: the loss gradient on them is non-zero
    grown.train()
    loss = (grown(x, sigma) - x * 0.5).square().mean()
    loss.backward()
    assert grown.encoders[0][0].body[0].weight.grad[:8, 8:].abs().sum() > 0


def test_same_architecture_is_a_plain_load() -> None:
    source = _trained_like()
    target = build_model("unet", in_channels=1, **SMALL)
    assert load_grown(target, source) == []
    for a, b in zip(source.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)


def test_growth_refuses_what_it_cannot_preserve() -> None:
    source = _trained_like(blocks_per_level=2)
    with pytest.raises(ConfigError, match="larger than this architecture.s.*add residual blocks, widen"):
        load_grown(build_model("unet", in_channels=1, widths=(8, 16, 16)), source)
    with pytest.raises(ConfigError, match="no place in this architecture"):
        load_grown(build_model("unet", in_channels=1, **SMALL, blocks_per_level=1), source)
    with pytest.raises(ConfigError, match="outside added residual blocks"):
        load_grown(build_model("unet", in_channels=1, **SMALL, block="plain", blocks_per_level=3),
                   _trained_like(block="plain", blocks_per_level=2))
    # more input channels would widen the head too, but the unshuffled colour planes land on old inputs
    with pytest.raises(ConfigError, match="does not compute what the source did"):
        load_grown(build_model("unet", in_channels=3, **SMALL, pixel_unshuffle=2, noise_map=True),
                   _trained_like(pixel_unshuffle=2, noise_map=True))


def test_training_can_start_from_a_shallower_model(tmp_path: Path) -> None:
    from imdenoise.models.weights import ModelCard, save_weights
    from imdenoise.training.config import load_config
    from imdenoise.training.trainer import Trainer

    source = _trained_like()
    card = ModelCard(name="small", architecture="unet", config=source.config.model_dump(), in_channels=1)
    weights = save_weights(tmp_path / "small.safetensors", source, card)
    images = tmp_path / "images"
    images.mkdir()

    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (48, 48), dtype=np.uint8)).save(images / f"{i}.png")
    raw = {"output_dir": str(tmp_path / "run"),
           "model": {"architecture": "unet", "config": {**SMALL, "blocks_per_level": [3, 2, 2]},
                     "init_weights": str(weights)},
           "data": {"train": [str(images)], "channels": 1, "patch_size": 32, "workers": 0, "holdout": 1},
           "optim": {"steps": 1, "precision": "fp32", "threads": 1}, "log": {"tensorboard": False, "progress": False}}
    trainer = Trainer(load_config(raw=raw))
    x, sigma = torch.rand(1, 1, 32, 32), torch.tensor([0.1])
    with torch.no_grad():
        torch.testing.assert_close(trainer.model.eval()(x, sigma), source(x, sigma), atol=1e-5, rtol=1e-4)  # channels-last sums


def test_configs_from_before_the_refinement_branch_was_removed_still_build() -> None:
    assert build_model("unet", **SMALL, pixel_unshuffle=2, refine_width=0, refine_blocks=1) is not None
    with pytest.raises(ValidationError, match="refine_width"):
        build_model("unet", **SMALL, pixel_unshuffle=2, refine_width=8)


def test_a_noise_conditioned_net_goes_blind_as_itself_at_sigma_zero() -> None:
    """Dropping the noise-map input (the photo model's start from the color model) keeps the source's
    function at sigma 0, and only there: at sigma 0.2 the source differs."""
    source = _trained_like(pixel_unshuffle=2, noise_map=True)
    blind = build_model("unet", in_channels=1, **SMALL, pixel_unshuffle=2, noise_map=False)
    assert load_grown(blind, source) == []
    x = torch.rand(1, 1, 16, 24, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = blind.eval()(x)
        assert torch.allclose(got, source(x, torch.zeros(1)), atol=1e-5)
        assert not torch.allclose(got, source(x, torch.full((1,), 0.2)), atol=1e-3)
