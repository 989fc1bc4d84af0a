"""The one optimisation loop (`optim.run_steps`): what the Trainer and zero-shot fitting both run."""

from __future__ import annotations

import torch

from imdenoise.optim import optimizer_step, run_steps


def test_run_steps_counts_from_start_reports_each_step_and_stops_when_asked() -> None:
    seen: list[tuple[int, float]] = []
    assert run_steps(lambda i: float(i), 3, 7, lambda done, loss: seen.append((done, loss)) or False) == 7
    assert seen == [(4, 3.0), (5, 4.0), (6, 5.0), (7, 6.0)]  # resumed at 3: steps 3..6, reported as done 4..7
    assert run_steps(lambda i: 0.0, 0, 10, lambda done, loss: done == 4) == 4  # early stop after step 4
    assert run_steps(lambda i: 0.0, 5, 5) == 5  # nothing left to do


def test_run_steps_with_optimizer_step_fits_a_line() -> None:
    """A real fit through the loop: least squares on y = 3x converges."""
    torch.manual_seed(0)
    w = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1)
    x = torch.linspace(-1, 1, 32)

    def step(_: int) -> float:
        loss = ((w * x - 3 * x) ** 2).mean()
        optimizer_step(loss, opt, [w], grad_clip=10.0)
        return float(loss)

    run_steps(step, 0, 200)
    assert abs(float(w) - 3.0) < 1e-3
