"""Building blocks shared by the network families: activations, norms, conv blocks, resampling."""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {
    "relu": lambda: nn.ReLU(inplace=True),
    "leakyrelu": lambda: nn.LeakyReLU(0.2, inplace=True),
    "gelu": lambda: nn.GELU(),
    "silu": lambda: nn.SiLU(inplace=True),
}
NORMS = ("none", "batch", "group")


def activation(name: str) -> nn.Module:
    """An activation module by name (relu, leakyrelu, gelu, silu)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def norm(name: str, channels: int) -> nn.Module:
    """A normalization layer by name; 'none' is the identity (the shipped models use none)."""
    if name == "none":
        return nn.Identity()
    if name == "batch":
        return nn.BatchNorm2d(channels)
    if name == "group":
        return nn.GroupNorm(min(8, channels), channels)
    raise ValueError(f"unknown norm {name!r}; choose from {NORMS}")


def conv3x3(cin: int, cout: int, bias: bool = True) -> nn.Conv2d:
    """A 3x3 convolution with 'same' zero padding."""
    return nn.Conv2d(cin, cout, 3, padding=1, bias=bias)


def dropout(p: float) -> nn.Module:
    """Channel dropout (whole feature maps) at rate p; the identity at 0. It holds no parameters, so
    blocks with and without it share their state-dict keys."""
    return nn.Dropout2d(p) if p > 0 else nn.Identity()


class PlainBlock(nn.Module):
    """conv-norm-act twice: the block of the classic U-Net (optional dropout at the end)."""

    def __init__(self, cin: int, cout: int, act: str, norm_name: str, drop: float = 0.0) -> None:
        super().__init__()
        bias = norm_name == "none"
        self.body = nn.Sequential(
            conv3x3(cin, cout, bias), norm(norm_name, cout), activation(act),
            conv3x3(cout, cout, bias), norm(norm_name, cout), activation(act),
        )
        self.drop = dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.body(x))


class ResBlock(nn.Module):
    """x + conv(act(conv(x))): the DRUNet-style residual block (identity shortcut, no final act)."""

    def __init__(self, cin: int, cout: int, act: str, norm_name: str, drop: float = 0.0) -> None:
        super().__init__()
        bias = norm_name == "none"
        self.body = nn.Sequential(
            conv3x3(cin, cout, bias), norm(norm_name, cout), activation(act),
            conv3x3(cout, cout, bias), norm(norm_name, cout),
        )
        self.shortcut = nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1)
        self.drop = dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.drop(self.body(x))


BLOCKS = {"plain": PlainBlock, "residual": ResBlock}


def downsample(kind: str, cin: int, cout: int) -> nn.Module:
    """Halve the resolution: 'maxpool' (then a 1x1 conv if widths change) or 'strided' 2x2 conv."""
    if kind == "strided":
        return nn.Conv2d(cin, cout, 2, stride=2)
    if kind == "maxpool":
        return nn.Sequential(nn.MaxPool2d(2), nn.Identity() if cin == cout else nn.Conv2d(cin, cout, 1))
    raise ValueError(f"unknown down-sampling {kind!r}; choose from ['maxpool', 'strided']")


def upsample(kind: str, cin: int, cout: int) -> nn.Module:
    """Double the resolution: 'transposed' 2x2 conv, 'bilinear' + 1x1 conv, or 'pixelshuffle'."""
    if kind == "transposed":
        return nn.ConvTranspose2d(cin, cout, 2, stride=2)
    if kind == "bilinear":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(cin, cout, 1))
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(cin, cout * 4, 1), nn.PixelShuffle(2))
    raise ValueError(f"unknown up-sampling {kind!r}; choose from ['transposed', 'bilinear', 'pixelshuffle']")
