"""Pixel-shuffle denoising (Zhou et al., "When AWGN-based denoiser meets real noises", AAAI 2020).

A camera photo's noise is correlated between neighbouring pixels (demosaicing, in-camera noise
reduction, JPEG); on every second pixel it is close to white again. So a white-noise model denoises
each of the stride x stride sub-images (every stride-th pixel, starting at each offset) and the results
are put back in place: the same number of pixels through the network as one pass over the image.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

Denoise = Callable[[Any, Any], Any]  # (sub-image, level) -> denoised sub-image


def pixel_shuffled(denoise: Denoise, image: Any, sigma: Any, stride: int = 2, axis: int = 0) -> Any:
    """`denoise(sub, sigma)` on each pixel-shuffled sub-image of `image` (a numpy array or torch tensor
    whose rows and columns are axes `axis` and `axis + 1`: 0 for HxW(xC), 1 for NxHxWxC, 2 for NxCxHxW),
    reassembled. One sub-image at a time: memory stays that of one pass. Images under 2 x stride pixels a
    side are denoised whole."""
    lead = (slice(None),) * axis
    if stride <= 1 or min(image.shape[axis: axis + 2]) < 2 * stride:
        return denoise(image, sigma)
    out: Any = None
    for y in range(stride):
        for x in range(stride):
            where = lead + (slice(y, None, stride), slice(x, None, stride))
            sub = image[where]
            part = denoise(np.ascontiguousarray(sub) if isinstance(sub, np.ndarray) else sub.contiguous(), sigma)
            if out is None:
                shape = tuple(image.shape[: axis + 2]) + tuple(part.shape[axis + 2:])
                out = (np.empty(shape, dtype=part.dtype) if isinstance(part, np.ndarray)
                       else part.new_empty(shape))
            out[where] = part
    return out


def to_sub_images(batch: torch.Tensor, stride: int) -> torch.Tensor:
    """(N,C,H,W) -> (N*stride^2, C, H/stride, W/stride): each image's pixel-shuffled sub-images, in a row
    (H and W multiples of `stride`). How a model that runs on sub-images is trained."""
    if stride <= 1:
        return batch
    n, c, h, w = batch.shape
    sub = torch.nn.functional.pixel_unshuffle(batch, stride)  # channel index c * s^2 + dy * s + dx
    return sub.reshape(n, c, stride * stride, h // stride, w // stride).transpose(1, 2).reshape(
        n * stride * stride, c, h // stride, w // stride)


def from_sub_images(subs: torch.Tensor, stride: int) -> torch.Tensor:
    """The inverse of :func:`to_sub_images`."""
    if stride <= 1:
        return subs
    m, c, h, w = subs.shape
    n = m // (stride * stride)
    grouped = subs.reshape(n, stride * stride, c, h, w).transpose(1, 2).reshape(n, c * stride * stride, h, w)
    return torch.nn.functional.pixel_shuffle(grouped, stride)
