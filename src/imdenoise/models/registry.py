"""One registry of architectures (name -> builder + default config) and of shipped pretrained models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from imdenoise.errors import UnknownMethodError
from imdenoise.models.base import DenoisingNet
from imdenoise.models.dncnn import DnCNN, FFDNet
from imdenoise.models.simple_cnn import SimpleCNN
from imdenoise.models.unet import UNet
from imdenoise.models.zeroshot_net import ZeroShotNet


@dataclass(frozen=True)
class Architecture:
    """A network family member: how to build it and what it is for."""

    name: str
    builder: Callable[..., DenoisingNet]
    defaults: dict[str, Any]
    description: str

    def build(self, **overrides: Any) -> DenoisingNet:
        """Instantiate with the default config updated by `overrides` (validated by the family)."""
        return self.builder(**{**self.defaults, **overrides})


# The efficient family of the shipped models: FFDNet-style pixel-unshuffle to half resolution, then a
# 3-level residual U-Net (DRUNet-style blocks, additive skips) with a noise-level map input. 0.22 MFLOP
# per pixel, 1/5 of DnCNN-17, with a receptive field of more than 100 pixels. The shipped weights use it
# with 64 channels and four blocks at the first level (widths [64, 96, 192], blocks_per_level [4, 2, 2],
# 0.43 MFLOP/px, 39% of DnCNN-17; configs/gray.yaml).
SHIPPED_UNET = dict(
    widths=(48, 96, 192), blocks_per_level=2, block="residual", down="strided", up="transposed",
    activation="relu", norm="none", skip="add", residual=True, noise_map=True, pixel_unshuffle=2,
)

ARCHITECTURES: dict[str, Architecture] = {
    a.name: a
    for a in [
        Architecture("unet", UNet, SHIPPED_UNET,
                     "efficient residual U-Net with noise-level map (the shipped models' family)"),
        Architecture("unet-large", UNet, {**SHIPPED_UNET, "widths": (64, 128, 256)},
                     "wider variant of unet (1.8x the compute)"),
        Architecture("unet-blind", UNet, {**SHIPPED_UNET, "noise_map": False},
                     "unet without noise-level map (blind; for self-supervised training)"),
        Architecture("unet-mask", UNet, {**SHIPPED_UNET, "noise_map": False, "mask_input": True,
                                         "attention_drop": 0.75},
                     "blind unet for masked image training (Chen et al. 2023): mask input channel and "
                     "mask attention at the bottleneck (75% of keys dropped in training, as the original)"),
        Architecture("unet-classic", UNet,
                     dict(widths=(64, 128, 256), block="plain", down="maxpool", up="transposed",
                          skip="concat", residual=False, output_activation="sigmoid"),
                     "3-level U-Net of the tutorial: max-pool, transposed-conv up-sampling, sigmoid output"),
        Architecture("unet-mnist", UNet,
                     dict(widths=(32, 64), blocks_per_level=1, block="plain", down="maxpool", up="transposed",
                          activation="gelu", skip="concat", residual=False, output_activation="tanh"),
                     "2-level U-Net with GELU and tanh output of the MNIST digit tutorial"),
        Architecture("encoder-decoder", UNet,
                     dict(widths=(64, 128, 256), block="plain", down="strided", up="transposed",
                          skip="none", residual=False, output_activation="sigmoid"),
                     "plain convolutional encoder-decoder without skip connections"),
        Architecture("dncnn", DnCNN, dict(depth=17, features=64), "DnCNN-17 with batch norm (reference network)"),
        Architecture("ffdnet", FFDNet, dict(depth=15, features=64),
                     "FFDNet's gray net: half resolution, noise-level map, 15 layers of 64 (reference network)"),
        Architecture("ffdnet-color", FFDNet, dict(depth=12, features=96),
                     "FFDNet's color net: 12 layers of 96 (reference network for speed)"),
        Architecture("simple-cnn", SimpleCNN, dict(features=32),
                     "the engineering guide's autoencoder: 2 strided convs down, 2 transposed convs up, sigmoid"),
        Architecture("zeroshot-net", ZeroShotNet, dict(features=48),
                     "tiny 2-layer noise predictor of zero-shot Noise2Noise"),
    ]
}


def get_architecture(name: str) -> Architecture:
    """Look an architecture up by name; the error lists the valid names."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise UnknownMethodError(f"unknown architecture {name!r}; choose from {', '.join(ARCHITECTURES)}") from None


def build_model(name: str, **overrides: Any) -> DenoisingNet:
    """Build an architecture by registry name with config overrides (e.g. in_channels=3)."""
    return get_architecture(name).build(**overrides)


def count_parameters(model: DenoisingNet) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class ModelInfo:
    """One row of `imdenoise models`."""

    name: str
    kind: str  # "pretrained" or "architecture"
    channels: str
    parameters: int
    description: str
    extra: dict[str, Any] = field(default_factory=dict)


def list_models() -> list[ModelInfo]:
    """Shipped pretrained models first, then every trainable architecture (gray variant's size)."""
    from imdenoise.models.weights import SHIPPED_ALIASES, shipped_models

    rows = [
        ModelInfo(card.name, "pretrained", "gray" if card.in_channels == 1 else "color",
                  card.parameters, card.description, {"file": str(path)})
        for card, path in shipped_models()
    ]
    shipped = {r.name: r for r in rows}
    for alias, (gray, color) in SHIPPED_ALIASES.items():
        if gray in shipped and color in shipped:
            photo = " (photos: on 2x2 pixel-shuffled sub-images, where their noise is close to white)" if alias == "default" else ""
            rows.insert(0, ModelInfo(alias, "pretrained", "auto", shipped[gray].parameters,
                                     f"'{gray}' for gray images, '{color}' for color images{photo}"))
    for arch in ARCHITECTURES.values():
        rows.append(ModelInfo(arch.name, "architecture", "any", count_parameters(arch.build()), arch.description))
    return rows
