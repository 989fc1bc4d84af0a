"""Per-level block counts and function-preserving growth of a trained U-Net into a deeper one."""

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
    added = load_grown(grown, source.state_dict())
    assert sorted(added) == ["bottleneck.2", "decoders.0.2", "decoders.0.3", "encoders.0.2", "encoders.0.3"]
    x, sigma = torch.rand(2, 1, 32, 48), torch.tensor([0.1, 0.2])
    with torch.no_grad():
        torch.testing.assert_close(grown(x, sigma), source(x, sigma), atol=1e-6, rtol=1e-5)
    # and the new blocks can learn: their first conv is random, only the last one starts at zero
    assert grown.encoders[0][2].body[0].weight.abs().sum() > 0


def test_same_architecture_is_a_plain_load() -> None:
    source = _trained_like()
    target = build_model("unet", in_channels=1, **SMALL)
    assert load_grown(target, source.state_dict()) == []
    for a, b in zip(source.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)


def test_growth_refuses_what_it_cannot_preserve() -> None:
    source = _trained_like(blocks_per_level=2)
    with pytest.raises(ConfigError, match="shapes differ.*widths and channels must match"):
        load_grown(build_model("unet", in_channels=1, widths=(8, 16, 64)), source.state_dict())
    with pytest.raises(ConfigError, match="no place in this architecture"):
        load_grown(build_model("unet", in_channels=1, **SMALL, blocks_per_level=1), source.state_dict())
    with pytest.raises(ConfigError, match="outside added residual blocks"):
        load_grown(build_model("unet", in_channels=1, **SMALL, block="plain", blocks_per_level=3),
                   _trained_like(block="plain", blocks_per_level=2).state_dict())


def test_training_can_start_from_a_shallower_model(tmp_path: Path) -> None:
    from imdenoise.train import Trainer
    from imdenoise.train_config import load_config
    from imdenoise.weights_io import ModelCard, save_weights

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
