"""Mask attention of masked image training (Chen et al., CVPR 2023), as a block for a CNN's bottleneck.

Windowed multi-head self-attention over the bottleneck's feature tokens in which each key is weighted
by how much of its image region the input mask left visible (a log-visibility bias: a fully masked
region is never attended to), plus the original's random attention masking during training (a share
of the keys dropped, each query keeping itself). At test time nothing is masked, every bias is 0 and
the block is plain window attention: the trained network's view of a masked and of an unmasked image
differ only by what the masks removed, which is what lets it generalise to the unmasked test input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_HIDDEN = -1e4  # additive attention bias of an excluded key (finite: a row never becomes all -inf)


def _windows(x: torch.Tensor, w: int) -> torch.Tensor:
    """(N,C,H,W) with H, W multiples of w -> (N * windows, w*w, C) tokens."""
    n, c, h, wd = x.shape
    x = x.reshape(n, c, h // w, w, wd // w, w).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(-1, w * w, c)


def _unwindows(t: torch.Tensor, n: int, h: int, wd: int, w: int) -> torch.Tensor:
    """Inverse of :func:`_windows`."""
    c = t.shape[-1]
    t = t.reshape(n, h // w, wd // w, w, w, c).permute(0, 5, 1, 3, 2, 4)
    return t.reshape(n, c, h, wd)


class MaskAttention(nn.Module):
    """x + proj(window-attention(norm(x))) with keys weighted by their visible share (see module doc)."""

    def __init__(self, channels: int, heads: int = 4, window: int = 8, drop_ratio: float = 0.0) -> None:
        super().__init__()
        if channels % heads:
            raise ValueError(f"mask attention: {channels} channels do not split into {heads} heads")
        self.heads, self.window, self.drop_ratio = heads, window, drop_ratio
        self.norm = nn.LayerNorm(channels)  # per token (as in Swin): no statistics shared with masked tokens
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, visible: torch.Tensor | None = None) -> torch.Tensor:
        """`visible`: (N,1,H,W) share of each token's region left unmasked (None: all visible)."""
        n, c, h, wd = x.shape
        w = min(self.window, max(h, wd))
        ph, pw = (-h) % w, (-wd) % w
        vis = torch.ones_like(x[:, :1]) if visible is None else visible.to(x.dtype)
        normed = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        qkv = self.qkv(normed)
        if ph or pw:  # (never at inference: the engine pads images to the net's size_multiple)
            qkv = F.pad(qkv, (0, pw, 0, ph))
            vis = F.pad(vis, (0, pw, 0, ph))  # padding tokens are invisible
        H, W = h + ph, wd + pw
        q, k, v = (_windows(t, w) for t in qkv.chunk(3, dim=1))
        d = c // self.heads
        q, k, v = (t.reshape(t.shape[0], t.shape[1], self.heads, d).transpose(1, 2) for t in (q, k, v))
        share = _windows(vis, w).transpose(1, 2)  # (B, 1, w*w): one per key
        bias = torch.where(share > 0, torch.log(share.clamp_min(1e-4)), torch.full_like(share, _HIDDEN))
        bias = bias.unsqueeze(1).expand(-1, 1, w * w, w * w)
        if self.training and self.drop_ratio > 0:
            drop = torch.rand(bias.shape, device=x.device) < self.drop_ratio
            drop &= ~torch.eye(w * w, dtype=torch.bool, device=x.device)  # each query keeps itself
            bias = bias.masked_fill(drop, _HIDDEN)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        out = out.transpose(1, 2).reshape(-1, w * w, c)
        out = _unwindows(out, n, H, W, w)[:, :, :h, :wd]
        return x + self.proj(out)
