"""Training losses and weighted sums of them parsed from a config string such as '0.5*l1 + 0.3*ssim'."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, cast

import torch
import torch.nn.functional as F

from imdenoise.errors import ConfigError

LossFn = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _masked_mean(err: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of `err` over the pixels where mask is 1 (all pixels when mask is None)."""
    if mask is None:
        return err.mean()
    mask = mask.expand_as(err).to(err.dtype)
    return (err * mask).sum() / mask.sum().clamp_min(1.0)


def mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error (optionally over masked pixels only)."""
    return _masked_mean((pred - target) ** 2, mask)


def l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error (optionally over masked pixels only)."""
    return _masked_mean((pred - target).abs(), mask)


# Per-image MSE floor of the PSNR loss: 1e-4 is 40 dB on the [0, 1] scale. Below it an image counts as
# 40 dB, so near-noiseless patches (sigma ~ 0) cannot dominate the batch through a tiny denominator.
PSNR_LOSS_FLOOR = 1e-4


def psnr_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Minus the mean per-image PSNR in dB (MSE floored at 40 dB): the benchmark's own objective.

    A batch MSE lets the noisiest images dominate the gradient. Averaging 10*log10 of each image's MSE
    weights every image by 1/MSE, so that a 0.1 dB gain counts the same at sigma 15 as at sigma 50,
    just as the quality table does."""
    err = (pred - target) ** 2
    if mask is None:
        per_image = err.flatten(1).mean(1)
    else:
        mask = mask.expand_as(err).to(err.dtype)
        per_image = (err * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1.0)
    return 10.0 * torch.log10(per_image + PSNR_LOSS_FLOOR).mean()


def charbonnier(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                eps: float = 1e-3) -> torch.Tensor:
    """sqrt((x-y)^2 + eps^2): a smooth L1, robust and well-behaved near zero."""
    return _masked_mean(torch.sqrt((pred - target) ** 2 + eps * eps), mask)


def ssim_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """1 - SSIM (the protocol's Gaussian-window SSIM on the [0, 1] scale); masks are ignored."""
    from imdenoise.metrics import ssim

    return 1.0 - ssim(pred.float(), target.float(), data_range=1.0).mean()


class PerceptualLoss(torch.nn.Module):
    """VGG-16 feature distance, only from a weights file the user supplies (nothing is downloaded)."""

    def __init__(self, weights: str | Path | None) -> None:
        super().__init__()
        if not weights or not Path(weights).is_file():
            raise ConfigError(f"perceptual loss needs local VGG-16 weights (optim.vgg_weights); file not found: "
                              f"{weights!r}. imdenoise never downloads weights.")
        from safetensors.torch import load_file

        layers: list[torch.nn.Module] = []
        cin = 3
        for cout in (64, 64, "M", 128, 128, "M", 256, 256, 256):
            if not isinstance(cout, int):
                layers.append(torch.nn.MaxPool2d(2))
            else:
                layers += [torch.nn.Conv2d(cin, cout, 3, padding=1), torch.nn.ReLU(inplace=True)]
                cin = cout
        self.features = torch.nn.Sequential(*layers)
        state = load_file(str(weights)) if str(weights).endswith(".safetensors") else \
            torch.load(weights, map_location="cpu", weights_only=True)
        state = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
        wanted = self.features.state_dict()
        missing = [k for k in wanted if k not in state or state[k].shape != wanted[k].shape]
        if missing:
            raise ConfigError(f"{weights}: not VGG-16 feature weights (missing or mis-shaped: {missing[:4]}); "
                              "expected torchvision's vgg16 state dict keys features.0.weight ... features.14.bias")
        self.features.load_state_dict({k: state[k] for k in wanted})
        self.requires_grad_(False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if pred.shape[1] == 1:
            pred, target = pred.repeat(1, 3, 1, 1), target.repeat(1, 3, 1, 1)
        return F.l1_loss(self.features(pred), self.features(target))


LOSSES: dict[str, LossFn] = {"mse": mse, "l2": mse, "l1": l1, "charbonnier": charbonnier, "ssim": ssim_loss,
                           "psnr": psnr_loss}
_TERM = re.compile(r"^\s*(?:(\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?([a-z0-9_]+)\s*$")


def parse_loss(spec: str, vgg_weights: str | Path | None = None) -> Callable[..., torch.Tensor]:
    """'0.5*l1 + 0.3*ssim' -> a callable summing weighted terms; names the bad term on error."""
    terms: list[tuple[float, Callable[..., torch.Tensor]]] = []
    for raw in spec.split("+"):
        m = _TERM.match(raw)
        if not m:
            raise ConfigError(f"bad loss term {raw.strip()!r} in {spec!r}; write e.g. '0.5*l1 + 0.3*ssim'")
        weight, name = float(m.group(1) or 1.0), m.group(2)
        if name in ("vgg", "perceptual"):
            terms.append((weight, PerceptualLoss(vgg_weights)))
        elif name in LOSSES:
            terms.append((weight, LOSSES[name]))
        else:
            raise ConfigError(f"unknown loss {name!r} in {spec!r}; choose from {sorted(LOSSES) + ['vgg']}")

    def total(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return cast(torch.Tensor, sum(w * fn(pred, target, mask) for w, fn in terms))

    return total
