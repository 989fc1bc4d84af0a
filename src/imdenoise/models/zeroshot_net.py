"""The tiny noise predictor of zero-shot Noise2Noise (Mansour and Heckel, CVPR 2023)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from imdenoise.models.base import DenoisingNet


class ZeroShotNetConfig(BaseModel):
    """Two 3x3 conv layers of `features` channels and a 1x1 output conv, as in the paper's code."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    in_channels: int = Field(1, ge=1, le=4)
    features: int = Field(48, ge=1)


class ZeroShotNet(DenoisingNet):
    """Predicts the noise: forward returns the noise estimate, the caller subtracts it."""

    def __init__(self, config: ZeroShotNetConfig | None = None, **overrides: object) -> None:
        super().__init__()
        cfg = ZeroShotNetConfig(**{**(config.model_dump() if config else {}), **overrides})
        self.config = cfg
        self.in_channels = self.out_channels = cfg.in_channels
        self.body = nn.Sequential(
            nn.Conv2d(cfg.in_channels, cfg.features, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(cfg.features, cfg.features, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(cfg.features, cfg.in_channels, 1),
        )

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(x)
