"""The simple convolutional autoencoder of the engineering guide: two strided convolutions down, two
transposed convolutions up, sigmoid output."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from imdenoise.models.base import DenoisingNet


class SimpleCNNConfig(BaseModel):
    """Channels of the image and of the first convolution (the second has twice as many)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    in_channels: int = Field(1, ge=1, le=4)
    features: int = Field(32, ge=1, le=512)


class SimpleCNN(DenoisingNet):
    """conv(stride 2)-ReLU x2, then transposed conv(stride 2) x2 with a ReLU between and a sigmoid."""

    size_multiple = 4

    def __init__(self, config: SimpleCNNConfig | None = None, **overrides: object) -> None:
        super().__init__()
        cfg = SimpleCNNConfig(**{**(config.model_dump() if config else {}), **overrides})
        self.config = cfg
        self.in_channels = self.out_channels = cfg.in_channels
        c, f = cfg.in_channels, cfg.features
        self.encoder = nn.Sequential(
            nn.Conv2d(c, f, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(f, 2 * f, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * f, f, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(f, c, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.encoder(x))
