"""The one optimisation loop and the one step it takes: training runs (and prune's fine-tune, which runs
as one) and zero-shot fitting, which sits below the Trainer in the layers (it is inference on one image)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

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


def run_steps(step: Callable[[int], float], start: int, end: int,
              after: Callable[[int, float], bool] | None = None) -> int:
    """The optimisation loop: ``step(i)`` (one batch: forward, loss, `optimizer_step`; returns the loss)
    for i from `start` up to `end`, then ``after(i + 1, loss)`` (logging, validation, checkpoints), which
    stops the loop early by returning True. Returns the number of steps completed (`start` counts)."""
    done = start
    while done < end:
        loss = step(done)
        done += 1
        if after is not None and after(done, loss):
            break
    return done
