"""The one optimisation step every loop takes: training runs, prune's fine-tune and zero-shot fitting."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def optimizer_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, parameters: Iterable[torch.Tensor], *,
                   scaler: torch.amp.GradScaler | None = None, grad_clip: float = 0.0) -> None:
    """Backward and one optimiser step: fp16 loss scaling when a `scaler` is given (a disabled one is a
    no-op), and the gradient norm clipped to `grad_clip` (0: off), measured on the unscaled gradients."""
    optimizer.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    if grad_clip:
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        torch.nn.utils.clip_grad_norm_(list(parameters), grad_clip)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
