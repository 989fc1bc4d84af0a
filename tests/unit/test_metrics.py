"""PSNR/SSIM agree with scikit-image under BENCHMARK.md; batching changes nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from imdenoise.metrics import psnr, psnr_uint8, ssim, ssim_uint8
from imdenoise.noise.models import benchmark_noisy


def _u8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def _pair(image: np.ndarray, sigma: float = 25, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    return _u8(image), _u8(benchmark_noisy(image, sigma, index))


def _sk_ssim(a: np.ndarray, b: np.ndarray) -> float:
    kw = {"channel_axis": -1} if a.ndim == 3 and a.shape[2] > 1 else {}
    if not kw and a.ndim == 3:
        a, b = a[..., 0], b[..., 0]
    return float(structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, **kw))


@pytest.mark.parametrize("which", ["gray", "color"])
def test_uint8_metrics_match_skimage(which: str, gray_image: np.ndarray, color_image: np.ndarray) -> None:
    clean, noisy = _pair(gray_image if which == "gray" else color_image)
    assert psnr_uint8(clean, noisy) == pytest.approx(peak_signal_noise_ratio(clean, noisy, data_range=255), abs=1e-6)
    assert ssim_uint8(clean, noisy) == pytest.approx(_sk_ssim(clean, noisy), abs=1e-6)
    if which == "gray":  # HxW works the same as HxWx1
        assert ssim_uint8(clean[..., 0], noisy[..., 0]) == pytest.approx(ssim_uint8(clean, noisy), abs=1e-12)


@pytest.mark.parametrize("which", ["gray", "color"])
def test_torch_float32_metrics_match_skimage(which: str, gray_image: np.ndarray, color_image: np.ndarray) -> None:
    clean, noisy = _pair(gray_image if which == "gray" else color_image, sigma=15)
    x = torch.from_numpy(clean.transpose(2, 0, 1) / 255.0).float()
    y = torch.from_numpy(noisy.transpose(2, 0, 1) / 255.0).float()
    assert float(ssim(x, y)) == pytest.approx(_sk_ssim(clean, noisy), abs=1e-3)
    assert float(psnr(x, y)) == pytest.approx(peak_signal_noise_ratio(clean, noisy, data_range=255), abs=1e-3)


def test_batched_equals_per_image(color_image: np.ndarray) -> None:
    pairs = [_pair(color_image[:128, :160], sigma=s, index=i) for i, s in enumerate((10, 25, 50))]
    xs = torch.stack([torch.from_numpy(c.transpose(2, 0, 1) / 255.0) for c, _ in pairs]).float()
    ys = torch.stack([torch.from_numpy(n.transpose(2, 0, 1) / 255.0) for _, n in pairs]).float()
    batch_s, batch_p = ssim(xs, ys), psnr(xs, ys)
    assert batch_s.shape == (3,) and batch_p.shape == (3,)
    for i in range(3):
        assert float(batch_s[i]) == pytest.approx(float(ssim(xs[i], ys[i])), abs=1e-6)
        assert float(batch_p[i]) == pytest.approx(float(psnr(xs[i], ys[i])), abs=1e-5)
    assert batch_p[0] > batch_p[1] > batch_p[2]


def test_identical_images_and_gradients(gray_image: np.ndarray) -> None:
    x = torch.from_numpy(gray_image[:64, :64, 0]).float()
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    assert math.isinf(float(psnr(x, x)))
    assert math.isinf(psnr_uint8(_u8(gray_image), _u8(gray_image)))
    y = (x + 0.05 * torch.randn_like(x)).requires_grad_(True)
    (1 - ssim(y, x)).backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()


def test_bad_shapes() -> None:
    with pytest.raises(ValueError):
        ssim(torch.zeros(8, 8), torch.zeros(8, 8))  # smaller than the 11x11 window
    with pytest.raises(ValueError):
        psnr(torch.zeros(16, 16), torch.zeros(16, 17))
    with pytest.raises(ValueError):
        psnr_uint8(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
