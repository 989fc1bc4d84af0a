"""DnCNN (Zhang et al., 2017): 17 conv layers with batch norm, predicting the noise (the reference net)."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from imdenoise.models.base import DenoisingNet


class DnCNNConfig(BaseModel):
    """DnCNN-S: depth 17, 64 features; DnCNN-B/CDnCNN-B are the same net trained blind."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    in_channels: int = Field(1, ge=1, le=4)
    depth: int = Field(17, ge=3, le=64)
    features: int = Field(64, ge=1)


class DnCNN(DenoisingNet):
    """conv-relu, (depth-2) x conv-bn-relu, conv; output = input - predicted noise."""

    def __init__(self, config: DnCNNConfig | None = None, **overrides: object) -> None:
        super().__init__()
        cfg = DnCNNConfig(**{**(config.model_dump() if config else {}), **overrides})
        self.config = cfg
        self.in_channels = self.out_channels = cfg.in_channels
        f = cfg.features
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, f, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(cfg.depth - 2):
            layers += [nn.Conv2d(f, f, 3, padding=1, bias=False), nn.BatchNorm2d(f), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(f, cfg.in_channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        return x - self.body(x)
