"""Validation during training, under the benchmark protocol (seeded noise, 8-bit output, PSNR/SSIM)."""

from __future__ import annotations

import functools
from typing import Sequence, Union

import numpy as np
import torch

from imdenoise.denoisers.shuffle import pixel_shuffled
from imdenoise.denoisers.tiling import run_tiled
from imdenoise.models.base import DenoisingNet
from imdenoise.noise.estimation import BlindLevel

Samples = list[tuple[np.ndarray, np.ndarray, np.ndarray]]
SAMPLE_COUNT, SAMPLE_CROP = 8, 128


def _forward(model: DenoisingNet, t: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return model(t, sigma)


def _whole(model: DenoisingNet, sigma: torch.Tensor, x: torch.Tensor, _level: object = None) -> torch.Tensor:
    """The model over one (N,C,H,W) image, tiled (pixel_shuffled's callback: the level is in `sigma`)."""
    return run_tiled(functools.partial(_forward, model, sigma=sigma), x, model.size_multiple, tile=512)


ValImage = Union[np.ndarray, tuple[np.ndarray, np.ndarray]]  # clean uint8, or a real (noisy, reference) pair


def validate(model: DenoisingNet, images: Sequence[ValImage], val_noise: str, device: torch.device,
             blind_level: BlindLevel | None = None, shuffle: int = 1) -> tuple[dict[str, float], Samples]:
    """Mean PSNR/SSIM of the EMA model on the held-out images with seeded noise, or on real noisy
    pairs (data.val_pairs), with the noisy input's PSNR for reference, and
    (noisy, denoised, clean) crops of the first few images for the sample grids. `blind_level`: a
    model trained on that rule's levels (data.blind_level) is given them here too, and one trained on
    pixel-shuffled sub-images (data.shuffle) runs on them."""
    from imdenoise.metrics import psnr_uint8, quantize_8bit, ssim_uint8
    from imdenoise.noise.models import benchmark_rng, parse_noise

    if not images:
        return {"psnr": float("nan"), "ssim": float("nan"), "noisy_psnr": float("nan")}, []
    noise = parse_noise(val_noise)
    level = noise.level  # the seeding rule's level (sigma for Gaussian noise)
    psnrs, ssims, noisy_psnrs = [], [], []
    samples: Samples = []
    for i, item in enumerate(images):
        if isinstance(item, tuple):  # a real noisy/reference pair: no noise is added
            noisy_u8, clean_u8 = item
            clean, noisy = clean_u8.astype(np.float32) / 255.0, noisy_u8.astype(np.float32) / 255.0
        else:
            clean_u8 = item
            clean = clean_u8.astype(np.float32) / 255.0
            noisy = noise(clean, benchmark_rng(level, i))
        x = torch.from_numpy(noisy.transpose(2, 0, 1)[None].copy()).to(device)
        # conditioning level: the nominal sigma, else the measured strength of the added noise
        # (a model blind to the user: its data.blind_level rule on the noisy input)
        nominal = None if isinstance(item, tuple) else noise.nominal_sigma
        cond = nominal if nominal is not None else 255.0 * float(np.std(noisy - clean))
        if blind_level is not None:
            cond = blind_level.of(np.clip(noisy, 0.0, 1.0))
        sigma = torch.full((1,), cond / 255.0, device=device)
        with torch.inference_mode():
            out = pixel_shuffled(functools.partial(_whole, model, sigma), x, None, shuffle, axis=2)
        out_u8 = quantize_8bit(out[0].cpu().numpy().transpose(1, 2, 0))
        noisy_u8 = quantize_8bit(noisy)
        psnrs.append(psnr_uint8(clean_u8, out_u8))
        ssims.append(ssim_uint8(clean_u8, out_u8))
        noisy_psnrs.append(psnr_uint8(clean_u8, noisy_u8))
        if len(samples) < SAMPLE_COUNT:
            c = SAMPLE_CROP
            samples.append((noisy_u8[:c, :c], out_u8[:c, :c], clean_u8[:c, :c]))
    metrics = {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "noisy_psnr": float(np.mean(noisy_psnrs))}
    return metrics, samples
