"""The simple convolutional autoencoder of the engineering guide: two strided convolutions down, two
transposed convolutions up, sigmoid output."""

from __future__ import annotations

import torch
from torch import nn

from imdenoise.models.base import DenoisingNet


class SimpleCNN(DenoisingNet):
    """conv(stride 2)-ReLU x2, then transposed conv(stride 2) x2 with ReLU between and a sigmoid."""

    size_multiple = 4

    def __init__(self, in_channels: int = 1, features: int = 32) -> None:
        super().__init__()
        if not 1 <= in_channels <= 4 or not 1 <= features <= 512:
            raise ValueError(f"simple-cnn: in_channels must be 1-4 and features 1-512, got {in_channels}, {features}")
        self.in_channels = self.out_channels = in_channels
        f = features
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, f, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(f, 2 * f, 3, stride=2, padding=1), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * f, f, 3, stride=2, padding=1, output_padding=1), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(f, in_channels, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self.encoder(x))
