"""Start a deeper or wider network from a trained one without losing what it learned (function-preserving growth).

Two moves keep the trained function exactly, so training only has to learn what the new capacity adds:

- **deeper**: a residual block whose last convolution is zero is the identity, so extra blocks start
  as no-ops;
- **wider**: a level's extra channels take random weights from the old channels, but every weight
  from a new channel into an old one starts at zero. The old channels then compute what they did, and
  the new ones are invisible downstream until training makes those weights non-zero.

- **blind**: a noise-conditioned source becomes a blind net by dropping its noise-map input channel,
  which is the source at sigma 0 (the starting point of a blind model fine-tuned on real noise).

This is how a shipped model gains capacity at the full-detail level without a from-scratch run. The
grown net is checked against the source on a random input; a change the moves cannot preserve (other
image channels, pixel-unshuffle factor or noise map) is refused.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from imdenoise.errors import ConfigError
from imdenoise.models.base import DenoisingNet
from imdenoise.models.blocks import ResBlock

log = logging.getLogger(__name__)
GROWTH = "growth can only add residual blocks, widen levels or drop the noise map"
# Branches added to a running sum: with their last convolution at zero they add nothing.
ZERO_START_BRANCHES = (ResBlock,)


def _io_dims(module: nn.Module, param: str) -> tuple[int, int | None]:
    """(output dim, input dim) of a convolution's parameter; a bias has no input dim."""
    if param == "bias":
        return 0, None
    if isinstance(module, nn.ConvTranspose2d):
        return 1, 0
    return 0, 1


def _widened(module: nn.Module, param: str, source: torch.Tensor, fresh: torch.Tensor) -> torch.Tensor:
    """`fresh` (the new net's random init) with `source` in its leading slice and new-to-old weights at zero."""
    out_dim, in_dim = _io_dims(module, param)
    grown = fresh.clone()
    grown[tuple(slice(0, n) for n in source.shape)] = source
    if in_dim is not None and grown.shape[in_dim] > source.shape[in_dim]:
        cross = [slice(None)] * grown.ndim
        cross[out_dim] = slice(0, source.shape[out_dim])
        cross[in_dim] = slice(source.shape[in_dim], None)
        grown[tuple(cross)] = 0
    return grown


def _goes_blind(model: nn.Module, source: nn.Module) -> bool:
    """True when a noise-conditioned source is loaded into the same net without the noise map."""
    return bool(getattr(source, "noise_conditioned", False)) and not getattr(model, "noise_conditioned", True)


def _check_preserved(model: nn.Module, source: nn.Module, source_name: str) -> None:
    """Refuse a grown net whose output differs from the source's on a random input."""
    shape = (2, getattr(source, "in_channels", 1), 2 * getattr(source, "size_multiple", 1),
             3 * getattr(source, "size_multiple", 1))
    x, sigma = torch.rand(shape, generator=torch.Generator().manual_seed(0)), torch.tensor([0.05, 0.2])
    source_sigma = torch.zeros_like(sigma) if _goes_blind(model, source) else sigma
    modes = [(net, net.training) for net in (model, source)]
    try:
        with torch.no_grad():
            got, want = model.eval()(x, sigma), source.eval()(x, source_sigma)
    except RuntimeError:  # e.g. other image channels: the grown head cannot take the source's input
        got = want = None
    finally:
        for net, training in modes:
            net.train(training)
    if got is None or got.shape != want.shape or not torch.allclose(got, want, atol=1e-4, rtol=1e-3):
        raise ConfigError(f"{source_name}: the grown architecture does not compute what the source did; {GROWTH} "
                          "(image channels, pixel_unshuffle and noise_map must match)")


def load_grown(model: nn.Module, source: nn.Module, source_name: str = "init weights") -> list[str]:
    """Load the trained `source` into `model`, which may be deeper or wider; returns the added branches' names.

    Every source tensor must fit a parameter of the same name that is as large or larger in every
    dimension; every parameter the source lacks must belong to a wholly new residual block."""
    state, target = source.state_dict(), model.state_dict()
    if _goes_blind(model, source) and "head.weight" in state:  # the map is the head's last input channel
        state["head.weight"] = state["head.weight"][:, :-1]
    misplaced = [k for k in state if k not in target]
    if misplaced:
        raise ConfigError(f"{source_name}: {len(misplaced)} tensors have no place in this architecture "
                          f"(first: {misplaced[0]}); {GROWTH}")
    shrunk = [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in state.items()
              if v.ndim != target[k].ndim or any(a > b for a, b in zip(v.shape, target[k].shape))]
    if shrunk:
        raise ConfigError(f"{source_name}: tensors are larger than this architecture's ({shrunk[0]}"
                          f"{f' and {len(shrunk) - 1} more' if len(shrunk) > 1 else ''}); {GROWTH}")
    missing = set(target) - set(state)
    added = []
    for name, module in model.named_modules():
        keys = {f"{name}.{k}" for k in module.state_dict()}
        if isinstance(module, ZERO_START_BRANCHES) and keys and keys <= missing:
            added.append(name)
            missing -= keys
    if missing:
        raise ConfigError(f"{source_name}: this architecture has {len(missing)} new tensors outside added residual "
                          f"blocks (first: {sorted(missing)[0]}); {GROWTH}")
    widened = {k for k, v in state.items() if v.shape != target[k].shape}
    loaded = dict(state)
    for key in widened:
        owner, param = key.rsplit(".", 1)
        loaded[key] = _widened(model.get_submodule(owner), param, state[key].to(target[key].dtype), target[key])
    if widened:
        log.info("%s: widened %d tensors (first: %s), new channels feed the old ones through zero weights",
                 source_name, len(widened), sorted(widened)[0])
    model.load_state_dict(loaded, strict=False)
    with torch.no_grad():
        for name in added:
            branch = model.get_submodule(name)
            path = branch.body if isinstance(branch, ResBlock) else branch  # not a ResBlock's 1x1 shortcut
            last = [m for m in path.modules() if isinstance(m, nn.Conv2d)][-1]
            last.weight.zero_()
            if last.bias is not None:
                last.bias.zero_()
    if isinstance(model, DenoisingNet):
        _check_preserved(model, source, source_name)
    return added
