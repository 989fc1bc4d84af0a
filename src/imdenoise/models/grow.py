"""Start a deeper network from a trained one without losing what it learned (function-preserving growth).

A residual block whose last convolution is zero is the identity, so a U-Net with extra residual blocks,
given the trained weights for every other parameter, computes exactly what the trained net did; training
then only has to learn what the new blocks add. This is how a shipped model gains capacity (more blocks
at the full-detail level, say) without a from-scratch run.
"""

from __future__ import annotations

import torch
from torch import nn

from imdenoise.errors import ConfigError
from imdenoise.models.blocks import ResBlock


def load_grown(model: nn.Module, source: dict[str, torch.Tensor], source_name: str = "init weights") -> list[str]:
    """Load `source` into `model`, which may hold extra residual blocks; returns the added blocks' names.

    Every source tensor must fit a parameter of the same name and shape; every parameter the source
    lacks must belong to a wholly new residual block, which starts as the identity."""
    target = model.state_dict()
    misplaced = [k for k in source if k not in target]
    if misplaced:
        raise ConfigError(f"{source_name}: {len(misplaced)} tensors have no place in this architecture "
                          f"(first: {misplaced[0]}); growth can only add residual blocks")
    wrong = [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in source.items() if v.shape != target[k].shape]
    if wrong:
        raise ConfigError(f"{source_name}: shapes differ from this architecture's ({wrong[0]}"
                          f"{f' and {len(wrong) - 1} more' if len(wrong) > 1 else ''}); widths and channels must match")
    missing = set(target) - set(source)
    added = []
    for name, module in model.named_modules():
        keys = {f"{name}.{k}" for k in module.state_dict()}
        if isinstance(module, ResBlock) and keys and keys <= missing:
            added.append(name)
            missing -= keys
    if missing:
        raise ConfigError(f"{source_name}: this architecture has {len(missing)} new tensors outside added residual "
                          f"blocks (first: {sorted(missing)[0]}); growth can only add residual blocks")
    model.load_state_dict(source, strict=False)
    with torch.no_grad():
        for name in added:
            last = [m for m in model.get_submodule(name).body if isinstance(m, nn.Conv2d)][-1]
            last.weight.zero_()
            if last.bias is not None:
                last.bias.zero_()
    return added
