"""A configurable U-Net family; the shipped models and the source articles' nets are configurations."""

from __future__ import annotations

from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from imdenoise.models.base import DenoisingNet
from imdenoise.models.blocks import BLOCKS, conv3x3, downsample, upsample
from imdenoise.models.mask_attention import MaskAttention


class UNetConfig(BaseModel):
    """Every knob of the family; unknown keys and bad values fail at construction, naming the field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    in_channels: int = Field(1, ge=1, le=4)
    out_channels: int | None = Field(None, ge=1, le=4, description="defaults to in_channels")
    widths: tuple[int, ...] = Field((64, 128, 256), min_length=1, max_length=6, description="one per level")
    blocks_per_level: int | tuple[int, ...] = Field(
        2, description="blocks per stage: one count, or one per level (the last for the bottleneck)")
    block: Literal["plain", "residual"] = "residual"
    down: Literal["maxpool", "strided"] = "strided"
    up: Literal["transposed", "bilinear", "pixelshuffle"] = "transposed"
    activation: Literal["relu", "leakyrelu", "gelu", "silu"] = "relu"
    norm: Literal["none", "batch", "group"] = "none"
    skip: Literal["add", "concat", "none"] = "add"
    residual: bool = Field(True, description="predict the noise and subtract it from the input")
    noise_map: bool = Field(False, description="extra input channel sigma/255 (non-blind conditioning)")
    pixel_unshuffle: int = Field(1, ge=1, le=4, description="work at 1/r resolution, as FFDNet does")
    output_activation: Literal["none", "sigmoid", "tanh"] = "none"
    dropout: float = Field(0.0, ge=0, lt=1, description="channel dropout at the end of every block (0: off)")
    mask_input: bool = Field(False, description=(
        "masked image training: the mask is an input channel and a mask-attention block follows the bottleneck"))
    attention_heads: int = Field(4, ge=1, le=16, description="heads of the mask-attention block")
    attention_window: int = Field(8, ge=2, le=32, description="window (bottleneck tokens) of the mask attention")
    attention_drop: float = Field(0.0, ge=0, lt=1, description=(
        "share of attention keys dropped at random in training (the original's attention masking)"))

    @model_validator(mode="before")
    @classmethod
    def _drop_removed_fields(cls, data: Any) -> Any:
        """Configs written before the unused refinement branch was removed say refine_width 0: nothing to build."""
        if isinstance(data, dict) and not data.get("refine_width"):
            data = {k: v for k, v in data.items() if k not in ("refine_width", "refine_blocks")}
        return data

    @model_validator(mode="after")
    def _check(self) -> "UNetConfig":
        if self.residual and self.output_activation != "none":
            raise ValueError("residual learning and an output activation exclude each other")
        if self.residual and (self.out_channels or self.in_channels) != self.in_channels:
            raise ValueError("residual learning needs out_channels == in_channels")
        if any(w < 1 for w in self.widths):
            raise ValueError(f"widths must be positive, got {self.widths}")
        if self.mask_input and self.widths[-1] % self.attention_heads:
            raise ValueError(f"mask attention: the bottleneck width {self.widths[-1]} must be a multiple of "
                             f"attention_heads ({self.attention_heads})")
        counts = self.level_blocks()
        if len(counts) != len(self.widths):
            raise ValueError(f"blocks_per_level needs one count per level ({len(self.widths)}), got {counts}")
        if any(not 1 <= n <= 8 for n in counts):
            raise ValueError(f"blocks_per_level counts must lie in 1-8, got {counts}")
        return self

    def level_blocks(self) -> tuple[int, ...]:
        """Blocks of each level's encoder and decoder stage (the last level's: the bottleneck)."""
        n = self.blocks_per_level
        return tuple(n) if isinstance(n, tuple) else (n,) * len(self.widths)


def _level_map(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The noise level (N,) as a constant (N,1,H,W) plane of `like`'s size and dtype."""
    return sigma.to(like.dtype).reshape(-1, 1, 1, 1).expand(like.shape[0], 1, like.shape[2], like.shape[3])


class UNet(DenoisingNet):
    """Encoder-decoder with skips; optional pixel-unshuffle input and noise-level map (FFDNet/DRUNet)."""

    def __init__(self, config: UNetConfig | None = None, **overrides: object) -> None:
        super().__init__()
        cfg = config.model_copy(update=overrides) if config else UNetConfig(**overrides)
        cfg = UNetConfig(**cfg.model_dump())  # re-validate after overrides
        self.config = cfg
        self.in_channels = cfg.in_channels
        self.out_channels = cfg.out_channels or cfg.in_channels
        self.noise_conditioned = cfg.noise_map
        self.mask_aware = cfg.mask_input
        r = cfg.pixel_unshuffle
        # a mask-attention net also tiles its bottleneck into whole attention windows
        self.size_multiple = r * 2 ** (len(cfg.widths) - 1) * (cfg.attention_window if cfg.mask_input else 1)
        block = BLOCKS[cfg.block]
        w = cfg.widths
        counts = cfg.level_blocks()

        def stage(cin: int, cout: int, n: int) -> nn.Sequential:
            return nn.Sequential(*[block(cin if i == 0 else cout, cout, cfg.activation, cfg.norm, cfg.dropout)
                                   for i in range(n)])

        self.head = conv3x3((cfg.in_channels + int(cfg.mask_input)) * r * r + int(cfg.noise_map), w[0])
        self.encoders = nn.ModuleList(stage(w[i], w[i], counts[i]) for i in range(len(w) - 1))
        self.downs = nn.ModuleList(downsample(cfg.down, w[i], w[i + 1]) for i in range(len(w) - 1))
        self.bottleneck = stage(w[-1], w[-1], counts[-1])
        self.attention = (MaskAttention(w[-1], cfg.attention_heads, cfg.attention_window, cfg.attention_drop)
                          if cfg.mask_input else None)
        self.ups = nn.ModuleList(upsample(cfg.up, w[i + 1], w[i]) for i in range(len(w) - 1))
        merge = 2 if cfg.skip == "concat" else 1
        self.decoders = nn.ModuleList(stage(w[i] * merge, w[i], counts[i]) for i in range(len(w) - 1))
        self.tail = conv3x3(w[0], self.out_channels * r * r)
        self.act_out = {"none": nn.Identity(), "sigmoid": nn.Sigmoid(), "tanh": nn.Tanh()}[cfg.output_activation]

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """Denoise x (N,C,H,W); `mask` (N,1,H,W, 1 = masked) only for a mask-input net (None: nothing masked)."""
        cfg = self.config
        if cfg.mask_input:
            mask = torch.zeros_like(x[:, :1]) if mask is None else mask.to(x.dtype)
            x_in = torch.cat([x, mask], dim=1)
        else:
            x_in = x
        h = F.pixel_unshuffle(x_in, cfg.pixel_unshuffle) if cfg.pixel_unshuffle > 1 else x_in
        if cfg.noise_map:
            if sigma is None:
                raise ValueError("this network is noise-conditioned: pass sigma (N,) on the 0-1 scale")
            h = torch.cat([h, _level_map(sigma, h)], dim=1)
        h = self.head(h)
        skips = []
        for enc, down in zip(self.encoders, self.downs):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.bottleneck(h)
        if self.attention is not None:
            f = x.shape[-1] // h.shape[-1]
            m = cast(torch.Tensor, mask)  # set above for a mask-input net, the only kind with attention
            h = self.attention(h, 1.0 - F.avg_pool2d(m, f) if f > 1 else 1.0 - m)
        for up, dec, skip in zip(reversed(self.ups), reversed(self.decoders), reversed(skips)):
            h = up(h)
            if cfg.skip == "add":
                h = h + skip
            elif cfg.skip == "concat":
                h = torch.cat([h, skip], dim=1)
            h = dec(h)
        h = self.tail(h)
        if cfg.pixel_unshuffle > 1:
            h = F.pixel_shuffle(h, cfg.pixel_unshuffle)
        if cfg.residual:
            return x - h
        return self.act_out(h)
