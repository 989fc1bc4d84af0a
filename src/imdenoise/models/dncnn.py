"""DnCNN (Zhang et al., 2017): 17 conv layers with batch norm, predicting the noise (the reference net)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class FFDNetConfig(DnCNNConfig):
    """FFDNet (Zhang et al., 2018): gray 15 layers of 64 features, color 12 layers of 96."""

    depth: int = Field(15, ge=3, le=64)


class FFDNet(DenoisingNet):
    """Pixel-unshuffle by 2, a noise-level map per image channel, a plain conv-bn-relu stack, shuffle
    back: the half-resolution net our U-Nets are measured against (speed does not depend on weights)."""

    noise_conditioned = True

    def __init__(self, config: FFDNetConfig | None = None, **overrides: object) -> None:
        super().__init__()
        cfg = FFDNetConfig(**{**(config.model_dump() if config else {}), **overrides})
        self.config = cfg
        self.in_channels = self.out_channels = cfg.in_channels
        self.size_multiple = 2
        c, f = cfg.in_channels, cfg.features
        layers: list[nn.Module] = [nn.Conv2d(4 * c + c, f, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(cfg.depth - 2):
            layers += [nn.Conv2d(f, f, 3, padding=1, bias=False), nn.BatchNorm2d(f), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(f, 4 * c, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        if sigma is None:
            raise ValueError("FFDNet is noise-conditioned: pass sigma (N,) on the 0-1 scale")
        h = F.pixel_unshuffle(x, 2)
        level = sigma.to(h.dtype).reshape(-1, 1, 1, 1).expand(h.shape[0], self.in_channels, h.shape[2], h.shape[3])
        return F.pixel_shuffle(self.body(torch.cat([h, level], dim=1)), 2)
