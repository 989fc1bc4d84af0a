"""Tiled application equals the untiled one; padding handles any size."""

from __future__ import annotations

import torch

from imdenoise.denoisers.tiling import pad_to_multiple, run_tiled
from imdenoise.models.registry import build_model


def test_pad_to_multiple_thin_and_odd() -> None:
    for h, w in [(1, 1), (1, 33), (17, 2), (64, 64)]:
        x = torch.rand(1, 1, h, w)
        xp, size = pad_to_multiple(x, 8)
        assert size == (h, w)
        assert xp.shape[-2] % 8 == 0 and xp.shape[-1] % 8 == 0
        assert torch.equal(xp[..., :h, :w], x)


def test_tiled_equals_untiled_within_tolerance() -> None:
    torch.manual_seed(0)
    model = build_model("unet", widths=(8, 16, 32)).eval()
    x = torch.rand(1, 1, 200, 328)
    sigma = torch.full((1,), 0.1)
    fn = lambda t: model(t, sigma)  # noqa: E731
    with torch.inference_mode():
        whole = run_tiled(fn, x, model.size_multiple, tile=None)
        for tile, overlap in [(64, 16), (96, 32), (128, 64)]:
            tiled = run_tiled(fn, x, model.size_multiple, tile=tile, overlap=overlap)
            assert tiled.shape == whole.shape
            mse = torch.mean((tiled - whole) ** 2).item()
            psnr_gap = 10 * torch.log10(torch.tensor(1.0 / max(mse, 1e-20))).item()
            assert psnr_gap > 45, (tile, overlap, psnr_gap)  # differences far below visibility


def test_identity_network_tiles_exactly() -> None:
    """Blending weights sum correctly: an identity network gives back the input through tiles."""
    x = torch.rand(2, 3, 150, 97)
    out = run_tiled(lambda t: t, x, 8, tile=64, overlap=16)
    assert torch.allclose(out, x, atol=1e-6)
