"""Pruned shapes: find the U-Net blocks whose inner conv can lose channels, shrink them, rebuild a pruned
network from the widths a card records (`pruned`: module name -> kept channels)."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from imdenoise.errors import ImDenoiseError, WeightsError
from imdenoise.models.base import DenoisingNet


def prunable_blocks(model: nn.Module) -> dict[str, nn.Sequential]:
    """Module name -> block body (Sequential) whose body[0] and body[3] are 3x3 convs joined by norm+act."""
    found = {}
    for name, mod in model.named_modules():
        body = getattr(mod, "body", None)
        if (isinstance(body, nn.Sequential) and len(body) >= 4 and isinstance(body[0], nn.Conv2d)
                and isinstance(body[3], nn.Conv2d) and isinstance(body[1], (nn.Identity, nn.BatchNorm2d))
                and body[0].groups == 1 and body[3].groups == 1):
            found[name] = body
    return found


def _shrink(body: nn.Sequential, idx: torch.Tensor) -> None:
    """Keep output channels `idx` of body[0] (and body[1] if a BatchNorm) and input channels of body[3]."""
    c1, c2 = cast(nn.Conv2d, body[0]), cast(nn.Conv2d, body[3])
    new1 = nn.Conv2d(c1.in_channels, len(idx), c1.kernel_size, c1.stride, c1.padding,  # type: ignore[arg-type]
                     bias=c1.bias is not None)
    new2 = nn.Conv2d(len(idx), c2.out_channels, c2.kernel_size, c2.stride, c2.padding,  # type: ignore[arg-type]
                     bias=c2.bias is not None)
    with torch.no_grad():
        new1.weight.copy_(c1.weight[idx])
        if c1.bias is not None and new1.bias is not None:
            new1.bias.copy_(c1.bias[idx])
        new2.weight.copy_(c2.weight[:, idx])
        if c2.bias is not None and new2.bias is not None:
            new2.bias.copy_(c2.bias)
    body[0], body[3] = new1, new2
    if isinstance(body[1], nn.BatchNorm2d):
        bn = body[1]
        new_bn = nn.BatchNorm2d(len(idx), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
        with torch.no_grad():
            for attr in ("weight", "bias", "running_mean", "running_var"):
                src = getattr(bn, attr)
                if src is not None:
                    getattr(new_bn, attr).copy_(src[idx])
        body[1] = new_bn


def prune_channels(model: DenoisingNet, keep: float) -> dict[str, int]:
    """Remove the lowest-L1 filters of each prunable block's inner conv in place; returns the kept widths."""
    if not 0 < keep <= 1:
        raise ImDenoiseError(f"--keep must be in (0, 1], got {keep}")
    blocks = prunable_blocks(model)
    if not blocks:
        raise ImDenoiseError(f"{type(model).__name__} has no prunable blocks (conv-norm-act-conv bodies); "
                             "pruning supports the U-Net family")
    spec = {}
    for name, body in blocks.items():
        conv = cast(nn.Conv2d, body[0])
        k = max(1, int(round(keep * conv.out_channels)))
        norms = conv.weight.detach().abs().sum(dim=(1, 2, 3))
        idx = torch.sort(torch.topk(norms, k).indices).values
        _shrink(body, idx)
        spec[name] = k
    return spec


def apply_pruned_shapes(model: DenoisingNet, spec: dict[str, int]) -> DenoisingNet:
    """Resize the named blocks' inner convs to the recorded widths (weights to be loaded afterwards)."""
    blocks = prunable_blocks(model)
    for name, k in spec.items():
        if name not in blocks:
            raise WeightsError(f"pruned block {name!r} of the card does not exist in {type(model).__name__}")
        _shrink(blocks[name], torch.arange(int(k)))
    return model
