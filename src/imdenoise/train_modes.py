"""What the network sees and is scored on in each training mode (supervised, masked, self-supervised)."""

from __future__ import annotations

import torch

from imdenoise.train_config import TrainConfig


def random_mask(shape: torch.Size, ratio: float | torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A (N,1,H,W) float mask with 1 where a pixel is masked, each pixel masked with probability ratio
    (a float, or one ratio per image as an (N,) tensor)."""
    n, _, h, w = shape
    ratio = torch.as_tensor(ratio, dtype=torch.float32).reshape(-1, 1, 1, 1)
    return (torch.rand((n, 1, h, w), generator=gen) < ratio).float()


def blind_spot_input(noisy: torch.Tensor, mask: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Noise2Void: replace each masked pixel by a random pixel of its 5x5 neighbourhood (not itself)."""
    n, c, h, w = noisy.shape
    dy = torch.randint(-2, 3, (n, 1, h, w), generator=gen)
    dx = torch.randint(-2, 3, (n, 1, h, w), generator=gen)
    same = (dy == 0) & (dx == 0)
    dx = torch.where(same, torch.ones_like(dx), dx)  # never copy the pixel onto itself
    yy = (torch.arange(h).view(1, 1, h, 1) + dy).clamp(0, h - 1)
    xx = (torch.arange(w).view(1, 1, 1, w) + dx).clamp(0, w - 1)
    flat = (yy * w + xx).expand(n, c, h, w).reshape(n, c, -1)
    swapped = noisy.reshape(n, c, -1).gather(2, flat).reshape(n, c, h, w)
    return torch.where(mask.bool().expand_as(noisy), swapped, noisy)


def make_step_inputs(cfg: TrainConfig, batch: dict[str, torch.Tensor], gen: torch.Generator
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(network input, target, loss mask) for one batch.

    - supervised: noisy -> clean.
    - masked (Chen et al., CVPR 2023): input pixels zeroed at random, target clean, loss on all
      pixels; the net must learn image structure rather than the noise's statistics. A CNN has no
      attention masking to bridge the gap to unmasked test inputs, so each image draws its own ratio
      uniformly in [0, mask_ratio]: the unmasked test input stays within the training distribution.
    - selfsupervised (Noise2Void-style blind spots): masked pixels replaced by neighbours, target is
      the noisy image itself, loss only on the masked pixels.
    """
    noisy, target = batch["noisy"], batch["target"]
    if cfg.mode == "supervised":
        return noisy, target, None
    if cfg.mode == "masked":
        ratios = torch.rand(noisy.shape[0], generator=gen) * cfg.selfsup.mask_ratio
        mask = random_mask(noisy.shape, ratios, gen).to(noisy.device)
        return noisy * (1.0 - mask), target, None
    mask = random_mask(noisy.shape, cfg.selfsup.blind_spot_ratio, gen).to(noisy.device)
    return blind_spot_input(noisy, mask, gen), noisy, mask



