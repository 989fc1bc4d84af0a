"""The one catalogue of methods: `load` a Denoiser by name or path, `available_methods`, `describe`.

Used by the library's `imdenoise.load`, the CLI, the web service, evaluation and export."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imdenoise.denoisers.base import Denoiser
from imdenoise.denoisers.network import AutoDenoiser, InferenceOptions, ModelDenoiser
from imdenoise.errors import ImDenoiseError, UnknownMethodError
from imdenoise.models.weights import PHOTO_MODEL, SHIPPED_ALIASES, SHIPPED_DIR, load_model, shipped_path


def available_methods() -> list[str]:
    """Every name `load` accepts: shipped models, aliases, classical methods, zero-shot."""
    from imdenoise.denoisers.classical import CLASSICAL_METHODS

    shipped = sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))
    aliases = [a for a, (g, c) in SHIPPED_ALIASES.items() if g in shipped and c in shipped]
    return aliases + shipped + sorted(CLASSICAL_METHODS) + ["zeroshot"]


def load(name_or_path: str | Path, *, arch: str | None = None, backend: str = "torch", **options: Any) -> Denoiser:
    """A Denoiser by shipped name ('default', 'gray', ...), weights path, classical name or 'zeroshot'."""
    opts = InferenceOptions(**{k: v for k, v in options.items() if k in InferenceOptions.__dataclass_fields__})
    name = str(name_or_path)
    if backend == "onnxruntime":
        from imdenoise.denoisers.onnx import load_onnx

        return load_onnx(name_or_path, opts, arch=arch)
    if backend != "torch":
        raise ImDenoiseError(f"unknown backend {backend!r}; choose 'torch' or 'onnxruntime'")
    if name in SHIPPED_ALIASES:
        gray, color = SHIPPED_ALIASES[name]
        if shipped_path(gray) and shipped_path(color):
            photo = load(PHOTO_MODEL, **options) if name == "default" and shipped_path(PHOTO_MODEL) else None
            return AutoDenoiser(load(gray, **options), load(color, **options), photo, name=name)
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
