"""Any-size application of a network: pad to its size multiple, and tile large images with blending.

Memory bound: a tiled call holds one batch of `tile x tile` activations plus two full-size float32
accumulators (output and weights), i.e. about 8 * H * W * C bytes beyond the input itself.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

NetFn = Callable[[torch.Tensor], torch.Tensor]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (N,C,H,W) on the bottom/right to multiples of `multiple` (reflect; replicate when too thin)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def run_padded(fn: NetFn, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """fn on x padded to the multiple, cropped back to x's size."""
    xp, (h, w) = pad_to_multiple(x, multiple)
    return fn(xp)[..., :h, :w]


def _starts(length: int, tile: int, step: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _window(length: int, overlap: int, device: torch.device) -> torch.Tensor:
    """1-D blending weights: raised-cosine ramps of `overlap` pixels at both ends, 1 inside, never 0."""
    w = torch.ones(length, device=device)
    if overlap > 0 and length > 2 * overlap:
        ramp = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(overlap, device=device) + 0.5) / overlap)
        w[:overlap] = ramp
        w[-overlap:] = ramp.flip(0)
    return w.clamp_min(1e-3)


def run_tiled(fn: NetFn, x: torch.Tensor, multiple: int, tile: int | None, overlap: int = 32) -> torch.Tensor:
    """Apply fn to x (N,C,H,W) in overlapping tiles of at most tile x tile, blended smoothly."""
    n, c, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        return run_padded(fn, x, multiple)
    tile = max(multiple, tile - tile % multiple)
    overlap = min(overlap, tile // 4)
    step = tile - 2 * overlap
    out = None
    weight = torch.zeros(1, 1, h, w, dtype=torch.float32, device=x.device)
    for y0 in _starts(h, tile, step):
        for x0 in _starts(w, tile, step):
            patch = x[..., y0:y0 + tile, x0:x0 + tile]
            res = run_padded(fn, patch, multiple).float()
            th, tw = res.shape[-2:]
            if out is None:
                out = torch.zeros(n, res.shape[1], h, w, dtype=torch.float32, device=x.device)
            wy = _window(th, overlap if th == tile else 0, x.device)
            wx = _window(tw, overlap if tw == tile else 0, x.device)
            # tiles touching the image border need no ramp on that side
            if y0 == 0:
                wy[: th // 2] = wy[: th // 2].clamp_min(1.0)
            if y0 + th == h:
                wy[th // 2:] = wy[th // 2:].clamp_min(1.0)
            if x0 == 0:
                wx[: tw // 2] = wx[: tw // 2].clamp_min(1.0)
            if x0 + tw == w:
                wx[tw // 2:] = wx[tw // 2:].clamp_min(1.0)
            wt = wy[:, None] * wx[None, :]
            out[..., y0:y0 + th, x0:x0 + tw] += res * wt
            weight[..., y0:y0 + th, x0:x0 + tw] += wt
    assert out is not None
    return out / weight
