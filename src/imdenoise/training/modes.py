"""What the network sees and is scored on in each training mode (supervised, masked, self-supervised)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from imdenoise.training.config import TrainConfig


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


@dataclass
class StepInputs:
    """What one training step feeds the network and scores: the loss is the weighted sum of the loss
    over each term's pixels (mask None: all pixels)."""

    inp: torch.Tensor
    target: torch.Tensor
    loss_terms: list[tuple[float, torch.Tensor | None]]
    net_mask: torch.Tensor | None = None  # (N,1,H,W), 1 = masked: given to mask-aware networks


def mask_ratio_range(cfg: TrainConfig, step: int) -> tuple[float, float]:
    """The masked mode's (low, high) ratio at `step`: selfsup's range, scaled by the curriculum if it
    applies to the mask ratio (the progressive mask ratio)."""
    s, cur = cfg.selfsup, cfg.optim.curriculum
    f = cur.factor(step, cfg.optim.steps) if cur and "mask_ratio" in cur.apply_to else 1.0
    return s.mask_ratio_min * f, s.mask_ratio * f


def make_step_inputs(cfg: TrainConfig, batch: dict[str, torch.Tensor], gen: torch.Generator,
                     step: int = 0) -> StepInputs:
    """The network input, target and weighted loss terms of one batch.

    - supervised: noisy -> clean.
    - masked (Chen et al., CVPR 2023): input pixels zeroed at random (each image's ratio drawn in
      [mask_ratio_min, mask_ratio], growing with the step under a mask-ratio curriculum), target clean;
      the loss weighs unmasked and masked pixels apart (0.7 / 0.3 by default, as in the original). A
      mask-aware network (``unet-mask``) also receives the mask and excludes masked pixels from its
      attention, which bridges the gap to the unmasked test input.
    - selfsupervised (Noise2Void-style blind spots): masked pixels replaced by neighbours, target is
      the noisy image itself, loss only on the masked pixels.
    """
    noisy, target = batch["noisy"], batch["target"]
    if cfg.mode == "supervised":
        return StepInputs(noisy, target, [(1.0, None)])
    if cfg.mode == "masked":
        lo, hi = mask_ratio_range(cfg, step)
        ratios = lo + torch.rand(noisy.shape[0], generator=gen) * (hi - lo)
        mask = random_mask(noisy.shape, ratios, gen).to(noisy.device)
        s = cfg.selfsup
        terms: list[tuple[float, torch.Tensor | None]] = [
            (w, m) for w, m in ((s.unmasked_weight, 1.0 - mask), (s.masked_weight, mask)) if w > 0]
        return StepInputs(noisy * (1.0 - mask), target, terms, mask)
    mask = random_mask(noisy.shape, cfg.selfsup.blind_spot_ratio, gen).to(noisy.device)
    return StepInputs(blind_spot_input(noisy, mask, gen), noisy, [(1.0, mask)])
