"""Validation during training, under the benchmark protocol (seeded noise, 8-bit output, PSNR/SSIM)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from imdenoise.tiling import run_tiled

if TYPE_CHECKING:
    from imdenoise.train import Trainer


def validate(trainer: "Trainer") -> dict[str, float]:
    """Mean PSNR/SSIM of the EMA model on the held-out images; noisy input PSNR for reference."""
    from imdenoise.metrics import psnr_uint8, ssim_uint8
    from imdenoise.noise import benchmark_rng, parse_noise

    cfg = trainer.cfg
    if not trainer.val_images:
        return {"psnr": float("nan"), "ssim": float("nan"), "noisy_psnr": float("nan")}
    model = trainer.ema_model()
    noise = parse_noise(cfg.data.val_noise)
    level = noise.nominal_sigma or 0.0
    psnrs, ssims, noisy_psnrs = [], [], []
    for i, clean_u8 in enumerate(trainer.val_images):
        clean = clean_u8.astype(np.float32) / 255.0
        noisy = noise(clean, benchmark_rng(level, i))
        x = torch.from_numpy(noisy.transpose(2, 0, 1)[None].copy()).to(trainer.device)
        sigma = torch.full((1,), level / 255.0, device=trainer.device)
        with torch.inference_mode():
            out = run_tiled(lambda t: model(t, sigma), x, model.size_multiple, tile=512)
        out_u8 = np.round(np.clip(out[0].cpu().numpy().transpose(1, 2, 0), 0, 1) * 255).astype(np.uint8)
        noisy_u8 = np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)
        psnrs.append(psnr_uint8(clean_u8, out_u8))
        ssims.append(ssim_uint8(clean_u8, out_u8))
        noisy_psnrs.append(psnr_uint8(clean_u8, noisy_u8))
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims)), "noisy_psnr": float(np.mean(noisy_psnrs))}
