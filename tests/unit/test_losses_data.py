"""Losses (weighted sums, masks, perceptual-loss guard) and training data (pairs, IDX, determinism)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imdenoise.errors import ConfigError
from imdenoise.io.datasets import match_pairs, read_idx_images
from imdenoise.training.datasets import IndexStream, PairedDataset, SyntheticNoiseDataset, augment, rescaled_copies
from imdenoise.training.losses import PSNR_LOSS_FLOOR, charbonnier, l1, mse, parse_loss, psnr_loss


def test_weighted_sum_matches_terms() -> None:
    torch.manual_seed(0)
    a, b = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    loss = parse_loss("0.5*l1 + 0.3*ssim + mse")(a, b)
    from imdenoise.metrics import ssim

    expected = 0.5 * l1(a, b) + 0.3 * (1 - ssim(a, b).mean()) + mse(a, b)
    assert torch.allclose(loss, expected)


def test_charbonnier_is_smooth_l1() -> None:
    a, b = torch.zeros(4), torch.tensor([0.0, 1.0, -2.0, 0.5])
    assert charbonnier(a, b, eps=1e-3).item() == pytest.approx(l1(a, b).item(), abs=1e-3)


def test_psnr_loss_is_minus_the_mean_skimage_psnr() -> None:
    from skimage.metrics import peak_signal_noise_ratio

    gen = torch.Generator().manual_seed(0)
    target = torch.rand(3, 1, 16, 16, generator=gen)
    pred = target + torch.randn(3, 1, 16, 16, generator=gen) * torch.tensor([0.01, 0.05, 0.2]).view(3, 1, 1, 1)
    mse_each = [10 ** (-peak_signal_noise_ratio(t.numpy(), p.numpy(), data_range=1.0) / 10)
                for t, p in zip(target, pred)]
    floored_psnr = [-10 * np.log10(m + PSNR_LOSS_FLOOR) for m in mse_each]
    assert psnr_loss(pred, target).item() == pytest.approx(-np.mean(floored_psnr), abs=1e-4)
    assert parse_loss("psnr")(pred, target).item() == pytest.approx(psnr_loss(pred, target).item())
    # a mask keeping the left half of each image is the loss of those halves alone
    half = torch.zeros(3, 1, 16, 16)
    half[..., :8] = 1
    assert psnr_loss(pred, target, half).item() == pytest.approx(
        psnr_loss(pred[..., :8], target[..., :8]).item(), abs=1e-5)


def test_psnr_loss_weights_images_by_inverse_mse() -> None:
    target = torch.zeros(2, 1, 8, 8)
    pred = torch.cat([torch.full((1, 1, 8, 8), 0.02), torch.full((1, 1, 8, 8), 0.2)]).requires_grad_()
    psnr_loss(pred, target).backward()
    g = pred.grad.abs().flatten(1).sum(1)
    mse_each = torch.tensor([0.02 ** 2, 0.2 ** 2])
    # d/dx log(mse) = 2*err / (mse + floor): the low-error image gets the larger gradient, unlike MSE
    expected = 10 / np.log(10) / 2 * 2 * torch.tensor([0.02, 0.2]) / (mse_each + PSNR_LOSS_FLOOR)
    assert torch.allclose(g, expected, rtol=1e-4)
    assert g[0] > g[1]


def test_masked_loss_only_counts_masked_pixels() -> None:
    a = torch.zeros(1, 1, 2, 2)
    b = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    assert mse(a, b, mask).item() == pytest.approx((1 + 16) / 2)
    assert l1(a, b, mask).item() == pytest.approx((1 + 4) / 2)


@pytest.mark.parametrize("spec,match", [("0.5*l3", "unknown loss"), ("l1 +", "bad loss term"), ("2**l1", "bad loss term")])
def test_bad_loss_specs(spec: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_loss(spec)


def test_perceptual_loss_needs_local_weights(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never downloads"):
        parse_loss("l1 + 0.1*vgg", vgg_weights=tmp_path / "vgg16.safetensors")


def test_perceptual_loss_from_local_vgg_weights(tmp_path: Path) -> None:
    """A torchvision-style VGG-16 state dict file gives a working loss; a wrong file is named."""
    layers, cin = [], 3
    for cout in (64, 64, "M", 128, 128, "M", 256, 256, 256):
        if cout == "M":
            layers.append(torch.nn.MaxPool2d(2))
        else:
            layers += [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.ReLU()]
            cin = cout
    features = torch.nn.Sequential(*layers)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg16.pth")
    loss = parse_loss("l1 + 0.1*vgg", vgg_weights=tmp_path / "vgg16.pth")
    a = torch.rand(1, 1, 32, 32)
    assert loss(a, a).item() == 0.0 and loss(a, 1 - a).item() > 0
    torch.save({"features.0.weight": torch.zeros(3)}, tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match="not VGG-16"):
        parse_loss("vgg", vgg_weights=tmp_path / "bad.pth")


def _write(folder: Path, names: list[str]) -> None:
    folder.mkdir()
    for n in names:
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / n)


def test_pairs_are_matched_by_name_and_unmatched_listed(tmp_path: Path) -> None:
    _write(tmp_path / "noisy", ["a.png", "b.png", "c.png"])
    _write(tmp_path / "clean", ["a.png", "b.png", "d.png"])
    with pytest.raises(ConfigError, match=r"only: \['c.png'\].*only: \['d.png'\]"):
        match_pairs(tmp_path / "noisy", tmp_path / "clean")
    (tmp_path / "noisy" / "c.png").unlink()
    (tmp_path / "clean" / "d.png").unlink()
    noisy, clean = match_pairs(tmp_path / "noisy", tmp_path / "clean")
    assert [p.name for p in noisy] == [p.name for p in clean] == ["a.png", "b.png"]


def test_idx_reader(tmp_path: Path) -> None:
    data = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)
    header = b"".join(int(v).to_bytes(4, "big") for v in (2051, 3, 4, 5))
    path = tmp_path / "x-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(header + data.tobytes())
    images = read_idx_images(path)
    assert len(images) == 3 and np.array_equal(images[1][..., 0], data[1])
    with gzip.open(path, "wb") as f:
        f.write(header + data.tobytes()[:-1])
    with pytest.raises(ConfigError, match="truncated"):
        read_idx_images(path)


def test_samples_are_a_pure_function_of_index() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 50, 1), dtype=np.uint8) for _ in range(3)]
    ds = SyntheticNoiseDataset(images, ["gaussian:0-55"], 16, seed=7)
    a, b = ds[12345], ds[12345]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(ds[1]["noisy"], ds[2]["noisy"])
    assert 0 <= a["sigma"].item() <= 55 / 255


def test_paired_patches_are_aligned() -> None:
    rng = np.random.default_rng(1)
    clean = [rng.integers(0, 200, (30, 30, 1), dtype=np.uint8)]
    noisy = [clean[0] + 10]
    item = PairedDataset(noisy, clean, 12, seed=0)[5]
    assert torch.allclose(item["noisy"] - item["target"], torch.full_like(item["target"], 10 / 255), atol=1e-6)


def test_dihedral_transforms_are_distinct() -> None:
    patch = np.arange(9).reshape(3, 3, 1)
    outs = {augment(patch, k).tobytes() for k in range(8)}
    assert len(outs) == 8


def test_index_stream_splits_global_batch_across_ranks() -> None:
    def take(stream: IndexStream, n: int) -> list[int]:
        it = iter(stream)
        return [next(it) for _ in range(n)]

    single = take(IndexStream(3, batch=4), 8)
    r0, r1 = take(IndexStream(3, 2, 0, 2), 4), take(IndexStream(3, 2, 1, 2), 4)
    assert single == [12, 13, 14, 15, 16, 17, 18, 19]
    assert sorted(r0[:2] + r1[:2]) == single[:4] and sorted(r0[2:] + r1[2:]) == single[4:]


def test_rescaled_copies_match_pil_bicubic_and_skip_too_small() -> None:
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (180, 200, 1), dtype=np.uint8)
    color = rng.integers(0, 256, (321, 481, 3), dtype=np.uint8)
    out = rescaled_copies([gray, color], [1.0, 0.5], min_size=128)
    # the originals unchanged, then the half-size color copy; the 90x100 gray copy is below the patch size
    assert [a.shape for a in out] == [(180, 200, 1), (321, 481, 3), (160, 240, 3)]
    assert out[0] is gray and out[1] is color
    reference = np.asarray(Image.fromarray(color).resize((240, 160), Image.Resampling.BICUBIC))
    np.testing.assert_array_equal(out[2], reference)
    # antialiased: a checkerboard at half size averages to flat gray instead of aliasing to black/white
    board = (np.indices((256, 256)).sum(0) % 2 * 255).astype(np.uint8)[..., None]
    (small,) = rescaled_copies([board], [0.5], min_size=64)
    assert small.shape == (128, 128, 1) and np.abs(small[8:-8, 8:-8].astype(int) - 128).max() <= 2


def test_scales_are_checked(tmp_path: Path) -> None:
    from imdenoise.training.config import load_config

    base = {"output_dir": str(tmp_path / "r"), "data": {"train": [str(tmp_path)]}}
    for scales, match in [([1.5], "must lie in"), ([0.0], "must lie in")]:
        with pytest.raises(ConfigError, match=match):
            load_config(raw={**base, "data": {"train": [str(tmp_path)], "scales": scales}})
    with pytest.raises(ConfigError, match="clean images"):
        load_config(raw={**base, "data": {"noisy": [str(tmp_path)], "scales": [0.5]}})
