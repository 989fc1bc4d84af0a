"""The small interface every network implements: forward(x, sigma) plus declared constraints."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class DenoisingNet(nn.Module):
    """Base of all networks: `forward(x, sigma)` with x (N,C,H,W) and sigma (N,) on the 0-1 scale.

    Constraints are declared, not discovered: `size_multiple` tells the inference engine how to pad,
    `noise_conditioned` whether sigma is used, `tile_safe` whether the output is local enough to tile,
    `mask_aware` whether forward also takes the masked-training mask (None at test: nothing masked).
    """

    config: Any  # the family's validated config (a pydantic model)
    in_channels: int = 1
    out_channels: int = 1
    size_multiple: int = 1
    noise_conditioned: bool = False
    tile_safe: bool = True
    mask_aware: bool = False  # forward also takes mask=(N,1,H,W), 1 = pixel masked (masked image training)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError
