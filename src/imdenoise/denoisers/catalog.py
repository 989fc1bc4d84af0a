"""The one catalogue of methods: `load` a Denoiser by name or path, `available_methods`, `describe` one.

Used by the library's `imdenoise.load`, the CLI, the web service, evaluation and export."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from imdenoise.denoisers.base import Denoiser
from imdenoise.denoisers.network import AutoDenoiser, InferenceOptions, ModelDenoiser, photo_rule
from imdenoise.errors import ImDenoiseError, UnknownMethodError
from imdenoise.models.weights import SHIPPED_ALIASES, SHIPPED_DIR, load_model, read_card, shipped_path


def available_methods() -> list[str]:
    """Every name `load` accepts: shipped models, aliases, classical methods, zero-shot."""
    from imdenoise.denoisers.classical import CLASSICAL_METHODS

    shipped = sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))
    aliases = [a for a, (g, c) in SHIPPED_ALIASES.items() if g in shipped and c in shipped]
    return aliases + shipped + sorted(CLASSICAL_METHODS) + ["zeroshot"]


def load(name_or_path: str | Path, *, arch: str | None = None, backend: str = "torch", **options: Any) -> Denoiser:
    """A Denoiser by shipped name ('default', 'gray', ...), weights path, classical name or 'zeroshot';
    `options` are InferenceOptions fields (an unknown one is an error, not silently dropped)."""
    unknown = sorted(set(options) - set(InferenceOptions.__dataclass_fields__))
    if unknown:
        raise ImDenoiseError(f"unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; "
                             f"choose from {', '.join(InferenceOptions.__dataclass_fields__)}")
    opts = InferenceOptions(**options)
    name = str(name_or_path)
    if backend == "onnxruntime":
        from imdenoise.denoisers.onnx import load_onnx

        return load_onnx(name_or_path, opts, arch=arch)
    if backend != "torch":
        raise ImDenoiseError(f"unknown backend {backend!r}; choose 'torch' or 'onnxruntime'")
    if name in SHIPPED_ALIASES:
        gray, color = (shipped_path(n) for n in SHIPPED_ALIASES[name])
        if gray and color:
            photo = shipped_path("photo") if name == "default" else None
            return AutoDenoiser(_load_weights(gray, None, opts), _load_weights(color, None, opts),
                                _load_weights(photo, None, opts) if photo else None, name=name,
                                photo_rule=photo_rule() if name == "default" else None)
    shipped = shipped_path(name)
    if shipped:
        return _load_weights(shipped, None, opts)
    p = Path(name)
    if p.suffix in (".safetensors", ".pt", ".pth", ".ckpt", ".bin", ".onnx"):
        if p.suffix == ".onnx":
            from imdenoise.denoisers.onnx import load_onnx

            return load_onnx(p, opts, arch=arch)
        return _load_weights(p, arch, opts)
    from imdenoise.denoisers.classical import CLASSICAL_METHODS, get_classical

    if name in CLASSICAL_METHODS:
        return get_classical(name, **opts.extra)
    if name == "zeroshot":
        from imdenoise.denoisers.zeroshot import ZeroShotDenoiser

        return ZeroShotDenoiser(**opts.extra)
    raise UnknownMethodError(f"unknown model or method {name!r}; choose from {', '.join(available_methods())} "
                             "or give a path to a .safetensors/.pt weights file")


def _load_weights(path: Path, arch: str | None, opts: InferenceOptions) -> ModelDenoiser:
    model, card = load_model(path, arch)
    return ModelDenoiser(model, card.name, card, opts)


@dataclass
class MethodInfo:
    """What a method is: one entry of the web service's GET /api/v1/models."""

    name: str
    kind: Literal["model", "classical", "zeroshot", "custom"]
    description: str
    sigma_max: float | None = None  # the highest noise level a model was trained on (the page's slider end)


def _trained_sigma_max(name: str) -> float | None:
    """The top of a shipped model's trained noise range (None for a blind model or an unreadable card)."""
    try:
        card = read_card(SHIPPED_DIR / f"{name}.safetensors")
    except Exception:  # noqa: BLE001 - a card that cannot be read leaves the slider at its default
        return None
    hi = (card.noise_range or (0.0, 0.0))[1]
    return float(hi) if hi and card.config.get("noise_map", True) else None


@functools.lru_cache(maxsize=128)
def describe(name: str) -> MethodInfo:
    """Kind and one-line description of an available method name (the web service's list of models)."""
    if name in SHIPPED_ALIASES:
        return MethodInfo(name, "model", "shipped U-Nets: the gray or the color model, chosen by the image; "
                                         "a photo's noise on pixel-shuffled sub-images",
                          _trained_sigma_max(SHIPPED_ALIASES[name][1]))
    if name == "zeroshot":
        return MethodInfo(name, "zeroshot", "zero-shot Noise2Noise: trains a tiny network on this image (slow)")
    try:
        from imdenoise.denoisers.classical import CLASSICAL_METHODS

        if name in CLASSICAL_METHODS:
            doc = (CLASSICAL_METHODS[name].__doc__ or "").strip().splitlines()
            return MethodInfo(name, "classical", doc[0] if doc else f"classical filter {name!r}")
    except ImportError:
        pass
    try:
        card = read_card(SHIPPED_DIR / f"{name}.safetensors")
        return MethodInfo(name, "model", card.description or name, _trained_sigma_max(name))
    except Exception:  # a card that cannot be read still leaves the model listed
        return MethodInfo(name, "model", f"shipped model {name!r}")
