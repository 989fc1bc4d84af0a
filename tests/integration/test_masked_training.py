"""Masked image training as in Chen et al. 2023 (mask-attention U-Net, weighted loss, progressive mask
ratio), the curriculum, dropout and colour jitter; fast."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imdenoise.errors import ConfigError
from imdenoise.models.mask_attention import MaskAttention
from imdenoise.models.registry import build_model
from imdenoise.noise.models import parse_noise
from imdenoise.training.config import load_config
from imdenoise.training.data import CurriculumStrength
from imdenoise.training.datasets import SyntheticNoiseDataset
from imdenoise.training.losses import l1
from imdenoise.training.modes import make_step_inputs, mask_ratio_range
from imdenoise.training.trainer import Trainer


def _cfg(**sections) -> object:
    raw = {"mode": "masked", "data": {"train": ["x"], "channels": 1}, **sections}
    return load_config(raw=raw)


def _batch(n: int = 4, size: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(n, 1, size, size, generator=g)
    return {"noisy": clean + 0.1 * torch.randn(n, 1, size, size, generator=g), "target": clean,
            "sigma": torch.zeros(n)}


def test_unet_mask_is_registered_mask_aware_and_unmasked_by_default() -> None:
    net = build_model("unet-mask", widths=(8, 16, 32), attention_heads=2).eval()
    assert net.mask_aware and not build_model("unet-blind").mask_aware
    x = torch.rand(1, 1, 40, 24)
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x, None, mask=torch.zeros(1, 1, 40, 24)))
        assert not torch.allclose(net(x), net(x, None, mask=(torch.rand(1, 1, 40, 24) < 0.5).float()))


def test_mask_attention_never_attends_to_fully_masked_regions() -> None:
    torch.manual_seed(0)
    att = MaskAttention(8, heads=2, window=4).eval()
    x = torch.randn(1, 8, 4, 4)
    visible = torch.ones(1, 1, 4, 4)
    visible[..., :2, :] = 0  # the top half of the tokens fully masked
    y = att(x, visible)
    x2 = x.clone()
    x2[..., :2, :] += 5 * torch.randn(1, 8, 2, 4)  # change only the masked tokens
    y2 = att(x2, visible)
    # the visible tokens' outputs do not depend on what lies under the mask
    torch.testing.assert_close(y[..., 2:, :], y2[..., 2:, :])
    assert not torch.allclose(att(x2)[..., 2:, :], att(x)[..., 2:, :])  # without the mask they do


def test_attention_drop_only_in_training() -> None:
    torch.manual_seed(0)
    att = MaskAttention(8, heads=2, window=4, drop_ratio=0.75)
    x = torch.randn(2, 8, 8, 8)
    att.eval()
    torch.testing.assert_close(att(x), att(x))
    att.train()
    assert not torch.allclose(att(x), att(x))


def test_masked_loss_weighs_unmasked_and_masked_pixels_apart() -> None:
    cfg = _cfg(selfsup={"mask_ratio": 0.6, "mask_ratio_min": 0.4})
    step = make_step_inputs(cfg, _batch(), torch.Generator().manual_seed(1))
    mask = step.net_mask
    assert [w for w, _ in step.loss_terms] == [0.7, 0.3]
    assert torch.equal(step.loss_terms[1][1], mask) and torch.equal(step.loss_terms[0][1], 1 - mask)
    assert torch.all(step.inp[mask.bool().expand_as(step.inp)] == 0)
    assert 0.4 <= float(mask.mean()) <= 0.6
    pred = step.target + torch.where(mask.bool(), 0.5, 0.1)  # error 0.1 on unmasked, 0.5 on masked pixels
    loss = sum(w * l1(pred, step.target, m) for w, m in step.loss_terms)
    assert float(loss) == pytest.approx(0.7 * 0.1 + 0.3 * 0.5, rel=1e-5)


def test_progressive_mask_ratio_grows_with_the_step() -> None:
    cfg = _cfg(selfsup={"mask_ratio": 0.9, "mask_ratio_min": 0.8},
               optim={"steps": 100, "curriculum": {"apply_to": ["mask_ratio"], "start": 0.25, "steps": 50}})
    assert mask_ratio_range(cfg, 0) == pytest.approx((0.2, 0.225))
    assert mask_ratio_range(cfg, 25) == pytest.approx((0.5, 0.5625))
    assert mask_ratio_range(cfg, 50) == mask_ratio_range(cfg, 99) == pytest.approx((0.8, 0.9))
    g = torch.Generator().manual_seed(0)
    early = make_step_inputs(cfg, _batch(), g, step=0).net_mask.mean()
    late = make_step_inputs(cfg, _batch(), g, step=80).net_mask.mean()
    assert float(early) < 0.3 < 0.75 < float(late)


def test_curriculum_noise_range_grows_with_the_step() -> None:
    cfg = load_config(raw={"data": {"train": ["x"], "noise": ["gaussian:0-50"], "batch_size": 4},
                           "optim": {"steps": 100, "curriculum": {"start": 0.2}}})
    strength = CurriculumStrength(cfg.optim.curriculum, cfg.optim.steps, 4)
    assert strength(0) == pytest.approx(0.2) and strength(4 * 50) == strength(4 * 99) == 1.0
    image = [np.full((64, 64, 1), 128, np.uint8)]
    ds = SyntheticNoiseDataset(image, ["gaussian:0-50"], 16, 0, augment=False, strength=strength)
    early = [float(ds[i]["sigma"]) * 255 for i in range(40)]  # steps 0-9
    assert all(s <= 50 * strength(i) + 1e-4 for i, s in enumerate(early)) and max(early) < 18
    late = [float(ds[i]["sigma"]) * 255 for i in range(4 * 60, 4 * 70)]
    assert max(late) > 30
    assert parse_noise("poisson:10-100").at_strength(0.1).spec == "poisson:peak=91-100"  # weaker = larger peak
    assert parse_noise("gaussian:25").at_strength(0.1).spec == "gaussian:sigma=25"  # fixed values are kept


@pytest.mark.parametrize("raw, words", [
    ({"mode": "masked", "selfsup": {"mask_ratio": 0.5, "mask_ratio_min": 0.6}}, ["mask_ratio_min"]),
    ({"mode": "masked", "selfsup": {"unmasked_weight": 0, "masked_weight": 0}}, ["unmasked_weight"]),
    ({"mode": "supervised", "optim": {"curriculum": {"apply_to": ["mask_ratio"]}}}, ["mask_ratio", "masked"]),
    ({"optim": {"curriculum": {"start": 1.5}}}, ["optim.curriculum.start"]),
    ({"optim": {"curriculum": {"apply_to": ["sigma"]}}}, ["optim.curriculum.apply_to"]),
    ({"optim": {"curriculum": {"ramp": 3}}}, ["optim.curriculum.ramp", "unknown key"]),
    ({"data": {"train": ["x"], "noise": ["rican:10"]}}, ["data.noise", "unknown noise kind"]),
    ({"data": {"noisy": ["x"], "color_jitter": 0.2}, "mode": "selfsupervised"}, ["color_jitter"]),
    ({"model": {"config": {"dropout": 1.5}}}, []),  # model config is checked when the net is built
])
def test_new_config_keys_are_validated(raw: dict, words: list[str]) -> None:
    raw = {"data": {"train": ["x"]}, **raw}
    if not words:
        with pytest.raises(ValueError, match="dropout"):
            build_model("unet", **raw["model"]["config"])
        return
    with pytest.raises(ConfigError) as e:
        load_config(raw=raw)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_dropout_keeps_weights_compatible_and_acts_only_in_training() -> None:
    plain, drop = build_model("unet", widths=(8, 16)), build_model("unet", widths=(8, 16), dropout=0.3)
    assert list(plain.state_dict()) == list(drop.state_dict())
    drop.load_state_dict(plain.state_dict())
    x, s = torch.rand(1, 1, 32, 32), torch.full((1,), 0.1)
    with torch.no_grad():
        torch.testing.assert_close(drop.eval()(x, s), plain.eval()(x, s))
        drop.train()
        assert not torch.allclose(drop(x, s), drop(x, s))


def test_color_jitter_varies_the_clean_patch_only_when_on() -> None:
    rng = np.random.default_rng(0)
    image = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)]
    off = SyntheticNoiseDataset(image, ["gaussian:0"], 32, 3)
    on = SyntheticNoiseDataset(image, ["gaussian:0"], 32, 3, color_jitter=0.3)
    a, b = off[5]["target"], on[5]["target"]
    assert not torch.allclose(a, b) and 0 <= float(b.min()) and float(b.max()) <= 1
    ratio = float((b.mean() / a.mean()))
    assert 0.5 < ratio < 1.5
    # same patch and transform: the jittered patch is a monotone function of the plain one's brightness
    assert np.corrcoef(a.mean(0).ravel(), b.mean(0).ravel())[0, 1] > 0.9


@pytest.fixture()
def tiny_folder(tmp_path: Path, gray_image: np.ndarray) -> Path:
    u8 = np.round(gray_image[..., 0] * 255).astype(np.uint8)
    for k in range(4):
        Image.fromarray(u8[40 * k:40 * k + 48, :48]).save(tmp_path / f"i{k}.png")
    return tmp_path


def test_trainer_gives_the_mask_to_a_mask_aware_net(tiny_folder: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    raw = {"mode": "masked", "output_dir": str(tmp_path / "run"),
           "model": {"architecture": "unet-mask", "config": {"widths": [8, 16, 32], "attention_heads": 2}},
           "data": {"train": [str(tiny_folder)], "patch_size": 32, "batch_size": 2, "workers": 0, "holdout": 1,
                    "val_limit": 1},
           "selfsup": {"mask_ratio": 0.9, "mask_ratio_min": 0.8},
           "optim": {"steps": 3, "threads": 1, "precision": "fp32",
                     "curriculum": {"apply_to": ["mask_ratio"], "start": 0.5}},
           "log": {"tensorboard": False, "progress": False, "val_every": 3}}
    trainer = Trainer(load_config(raw=raw))
    seen = []
    forward = trainer.model.forward
    monkeypatch.setattr(trainer.model, "forward", lambda x, s=None, mask=None: (seen.append(mask), forward(x, s, mask))[1])
    trainer.fit()
    masks = [m for m in seen if m is not None]
    assert len(masks) == 3 and 0.35 < float(masks[0].mean()) < 0.5  # step 0: half of U[0.8, 0.9]
    assert (tmp_path / "run" / "model.safetensors").is_file()
