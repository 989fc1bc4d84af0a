"""Any-size application of a network: pad to its size multiple, and tile large images with blending.

Memory bound: a tiled call holds one batch of `tile x tile` activations plus one full-size float32
accumulator (the output, C channels), i.e. 4 * H * W * C bytes beyond the input itself. The blending
weights are separable (a row profile times a column profile), so no full-size weight plane is kept.
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
    """Tile origins, all multiples of `step` (itself a multiple of the net's size multiple), so that
    every tile sees the same down-sampling phase as the whole image; the last tile may be shorter."""
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + step)
    return starts


def _window(length: int, ramp: int, ramp_start: bool, ramp_end: bool, device: torch.device) -> torch.Tensor:
    """1-D blending weights of a tile: raised-cosine ramps over the `ramp` pixels it shares with its
    neighbours (none at the image border). Neighbouring ramps sum to exactly 1: a seamless crossfade."""
    w = torch.ones(length, device=device)
    if ramp <= 0:
        return w
    up = 0.5 - 0.5 * torch.cos(torch.pi * (torch.arange(ramp, device=device) + 0.5) / ramp)
    if ramp_start:
        w[:ramp] = up
    if ramp_end:
        w[-ramp:] = w[-ramp:] * up.flip(0)
    return w


def run_tiled(fn: NetFn, x: torch.Tensor, multiple: int, tile: int | None, overlap: int = 32) -> torch.Tensor:
    """Apply fn to x (N,C,H,W) in tiles of at most tile x tile that share 2*overlap pixels with their
    neighbours, crossfaded there; tile origins keep the network's down-sampling phase."""
    n, c, h, w = x.shape
    if tile is None or (h <= tile and w <= tile):
        return run_padded(fn, x, multiple)
    tile = max(multiple, tile - tile % multiple)
    overlap = min(overlap, tile // 4)
    step = max(multiple, (tile - 2 * overlap) // multiple * multiple)
    ramp = tile - step  # the width shared by neighbouring tiles
    out = None
    # every tile's weights are wy (its rows) x wx (its columns), so their sum is (sum of wy) x (sum of wx)
    weight_y = torch.zeros(h, dtype=torch.float32, device=x.device)
    weight_x = torch.zeros(w, dtype=torch.float32, device=x.device)
    for y0 in _starts(h, tile, step):
        for x0 in _starts(w, tile, step):
            res = run_padded(fn, x[..., y0:y0 + tile, x0:x0 + tile], multiple).float()
            th, tw = res.shape[-2:]
            if out is None:
                out = torch.zeros(n, res.shape[1], h, w, dtype=torch.float32, device=x.device)
            wy = _window(th, ramp, y0 > 0, y0 + th < h, x.device)
            wx = _window(tw, ramp, x0 > 0, x0 + tw < w, x.device)
            out[..., y0:y0 + th, x0:x0 + tw] += res * (wy[:, None] * wx[None, :])
            if x0 == 0:
                weight_y[y0:y0 + th] += wy
            if y0 == 0:
                weight_x[x0:x0 + tw] += wx
    assert out is not None
    return out.div_(weight_y[:, None]).div_(weight_x[None, :])  # in place, broadcast: no full-size tensor
