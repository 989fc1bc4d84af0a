"""PSNR and SSIM in torch (batched, differentiable), identical to scikit-image under BENCHMARK.md.

SSIM follows ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)``: an 11-tap Gaussian window (truncate 3.5), K1 = 0.01, K2 = 0.03,
and the mean of the SSIM map over the valid region only (a border of 5 pixels is cropped, so
the window never leaves the image and no padding mode matters); color: mean over channels.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim", "psnr_uint8", "ssim_uint8", "gaussian_window", "quantize_8bit"]

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5
K1, K2 = 0.01, 0.03


def _as_nchw(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(H,W) -> (1,1,H,W), (C,H,W) -> (1,C,H,W), (N,C,H,W) as is; also the original ndim."""
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(np.asarray(x))
    if x.ndim == 2:
        return x[None, None], 2
    if x.ndim == 3:
        return x[None], 3
    if x.ndim == 4:
        return x, 4
    raise ValueError(f"expected (H,W), (C,H,W) or (N,C,H,W), got shape {tuple(x.shape)}")


def _check(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape != y.shape:
        raise ValueError(f"shape mismatch: {tuple(x.shape)} vs {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB per image (mean over C,H,W); a 0-d tensor for one image."""
    x4, nd = _as_nchw(x)
    y4, _ = _as_nchw(y)
    _check(x4, y4)
    dtype = torch.promote_types(x4.dtype, torch.float32) if x4.is_floating_point() else torch.float64
    diff = x4.to(dtype) - y4.to(dtype)
    mse = diff.pow(2).flatten(1).mean(dim=1)
    out = 10.0 * torch.log10(torch.as_tensor(float(data_range) ** 2, dtype=dtype, device=mse.device) / mse)
    return out[0] if nd < 4 else out


def gaussian_window(sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE,
                    dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The normalized 1-D Gaussian taps scipy.ndimage uses: radius int(truncate * sigma + 0.5)."""
    r = int(truncate * sigma + 0.5)
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (t / sigma) ** 2)
    return (g / g.sum()).to(dtype)


def _blur_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filter per channel, 'valid' region only (no padding)."""
    c, k = x.shape[1], g.numel()
    x = F.conv2d(x, g.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, g.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image (Gaussian 11x11, sigma 1.5, population covariance): equals scikit-image."""
    x4, nd = _as_nchw(x)
    y4, _ = _as_nchw(y)
    _check(x4, y4)
    dtype = torch.promote_types(x4.dtype, torch.float32) if x4.is_floating_point() else torch.float64
    x4, y4 = x4.to(dtype), y4.to(dtype)
    g = gaussian_window(dtype=dtype).to(x4.device)
    if min(x4.shape[-2:]) < g.numel():
        raise ValueError(f"SSIM needs images of at least {g.numel()}x{g.numel()} pixels, got "
                         f"{tuple(x4.shape[-2:])}")
    n, c = x4.shape[:2]
    # one grouped convolution over the five statistics of every channel
    stats = torch.cat([x4, y4, x4 * x4, y4 * y4, x4 * y4], dim=1)
    mu_x, mu_y, e_xx, e_yy, e_xy = _blur_valid(stats, g).split(c, dim=1)
    vx, vy, cxy = e_xx - mu_x * mu_x, e_yy - mu_y * mu_y, e_xy - mu_x * mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (vx + vy + c2))
    out = s.reshape(n, -1).mean(dim=1)
    return out[0] if nd < 4 else out


def quantize_8bit(unit: np.ndarray) -> np.ndarray:
    """The protocol's 8-bit image: clipped to [0, 1], scaled to 255, rounded (half to even), uint8."""
    return np.round(np.clip(unit, 0.0, 1.0) * 255.0).astype(np.uint8)


def _u8_pair(clean_u8: np.ndarray, out_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(clean_u8), np.asarray(out_u8)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected HxW or HxWxC images, got shape {a.shape}")
    return a, b


def psnr_uint8(clean_u8: np.ndarray, out_u8: np.ndarray) -> float:
    """The protocol's PSNR: 8-bit pair, data range 255, over all pixels and channels (inf if equal)."""
    a, b = _u8_pair(clean_u8, out_u8)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def ssim_uint8(clean_u8: np.ndarray, out_u8: np.ndarray) -> float:
    """The protocol's SSIM on an 8-bit HxW or HxWxC pair (data range 255, float64): = scikit-image."""
    a, b = _u8_pair(clean_u8, out_u8)
    if a.ndim == 2:
        a, b = a[..., None], b[..., None]
    ta = torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float64))
    tb = torch.from_numpy(np.ascontiguousarray(b.transpose(2, 0, 1), dtype=np.float64))
    return float(ssim(ta, tb, data_range=255.0))


def psnr_change(clean: np.ndarray, noisy: np.ndarray, out: np.ndarray) -> tuple[float, float, str]:
    """8-bit PSNR of the noisy input and of the output against `clean` (float arrays, clipped and
    quantized first) and the line 'PSNR a dB -> b dB (+c dB)', the change signed either way."""
    q = quantize_8bit
    p_in, p_out = psnr_uint8(q(clean), q(noisy)), psnr_uint8(q(clean), q(out))
    return p_in, p_out, f"PSNR {p_in:.2f} dB -> {p_out:.2f} dB ({p_out - p_in:+.2f} dB)"
