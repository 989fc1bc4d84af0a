"""Weights files round-trip with their card; pickles that run code are refused without running it."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from imdenoise.errors import WeightsError
from imdenoise.models.registry import build_model
from imdenoise.models.weights import ModelCard, load_model, read_card, save_weights


def _card(**kw) -> ModelCard:
    base = dict(name="t", architecture="unet", config={"widths": [8, 16], "in_channels": 1}, in_channels=1,
                noise_range=(0, 55), training_data="synthetic", psnr={"bsd68/25": 29.1}, version="1.2")
    return ModelCard(**{**base, **kw})


def test_round_trip_with_metadata(tmp_path: Path) -> None:
    model = build_model("unet", widths=(8, 16))
    path = save_weights(tmp_path / "m.safetensors", model, _card())
    card = read_card(path)
    assert card.psnr == {"bsd68/25": 29.1} and card.version == "1.2" and card.noise_range == (0, 55)
    loaded, card2 = load_model(path)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    assert card2.parameters == sum(p.numel() for p in model.parameters())
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


def test_half_precision_storage_is_close(tmp_path: Path) -> None:
    model = build_model("unet", widths=(8, 16))
    path = save_weights(tmp_path / "m.safetensors", model, _card(), dtype=torch.float16)
    loaded, _ = load_model(path)
    for a, b in zip(model.state_dict().values(), loaded.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-3, rtol=1e-3)
        assert b.dtype == torch.float32


def test_plain_state_dict_needs_arch_and_loads(tmp_path: Path) -> None:
    model = build_model("dncnn", depth=5, features=8)
    path = tmp_path / "sd.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(WeightsError, match="--arch"):
        load_model(path)
    loaded, _ = load_model(path, "dncnn", depth=5, features=8)
    assert torch.equal(next(iter(loaded.state_dict().values())), next(iter(model.state_dict().values())))


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _Evil.marker = marker
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"weight": _Evil()}, f)
    with pytest.raises(WeightsError, match="refused"):
        load_model(path, "dncnn")
    assert not marker.exists()


def test_bad_files_give_clear_errors(tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="not a valid safetensors"):
        read_card(junk)
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "missing.safetensors")
    other = tmp_path / "m.npz"
    other.write_bytes(b"x")
    with pytest.raises(WeightsError, match="unsupported"):
        load_model(other, "unet")


def test_mismatched_weights_are_named(tmp_path: Path) -> None:
    path = save_weights(tmp_path / "m.safetensors", build_model("unet", widths=(8, 16)), _card())
    torch.save(build_model("unet", widths=(8, 16)).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(WeightsError, match="do not match"):
        load_model(tmp_path / "sd.pt", "unet")  # default widths differ from the saved (8, 16)
    assert path.exists()


def test_card_keeps_a_blind_level_rule(tmp_path):
    """The rule a photo model was trained with survives save/load: inference applies the same one."""
    from imdenoise.models.registry import build_model
    from imdenoise.models.weights import ModelCard, load_model, read_card, save_weights
    from imdenoise.noise.estimation import BlindLevel

    rule = BlindLevel(stride=2, scale=3.0, offset=6.0)
    model = build_model("unet", widths=(8, 16), in_channels=3)
    card = ModelCard(name="p", architecture="unet", config={"widths": [8, 16], "in_channels": 3}, in_channels=3,
                     blind_level=rule)
    path = save_weights(tmp_path / "p.safetensors", model, card)
    assert read_card(path).blind_level == rule and load_model(path)[1].blind_level == rule
    plain = save_weights(tmp_path / "q.safetensors", model, card.model_copy(update={"blind_level": None}))
    assert read_card(plain).blind_level is None
